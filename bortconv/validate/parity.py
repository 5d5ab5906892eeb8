"""Parity of an artifact against its reference model over a table of shapes, as a report, not a boolean."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bortconv.measure import Runner, make_feeds

#: (name, batch, valid lengths per row, padded length). Rows shorter than the length are right-padded.
PARITY_SHAPES: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("b1-l1", (1,), 1),
    ("b1-l7", (7,), 7),
    ("b1-l128", (128,), 128),
    ("b4-l128-padded", (128, 90, 7, 1), 128),
    ("b1-l512", (512,), 512),
    ("b4-l512-padded", (512, 300, 33, 2), 512),
)

#: max abs diff per (target, precision). fp32 is the issue's floor; fp16 weights round at ~1e-3 relative.
TOLERANCES: dict[tuple[str, str], float] = {
    ("onnx", "fp32"): 1e-4,
    ("openvino", "fp32"): 1e-4,
    ("onnx", "fp16"): 5e-2,
    ("openvino", "fp16"): 5e-2,
}


@dataclass(frozen=True)
class ParityRow:
    shape: str
    batch: int
    length: int
    max_abs_diff: float
    where: tuple[int, ...]  # index of the worst element
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class ParityReport:
    output: str
    rows: tuple[ParityRow, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def max_abs_diff(self) -> float:
        return max(r.max_abs_diff for r in self.rows)

    def worst(self) -> ParityRow:
        return max(self.rows, key=lambda r: r.max_abs_diff / r.tolerance)

    def to_dict(self) -> dict[str, object]:
        return {"output": self.output, "passed": self.passed, "max_abs_diff": self.max_abs_diff,
                "rows": [asdict(r) for r in self.rows]}


def parity_shapes(static_shape: tuple[int, int] | None, max_length: int) -> list[tuple[str, tuple[int, ...], int]]:
    """The shape table, cut to the model's max length and named by what runs: a 64-position model's "b1-l512" row
    runs 64 tokens, as "b1-l128" does, so it is that row again and is dropped; "b4-l512-padded" cut to 64 keeps
    other rows than "b4-l128-padded" cut to 64, so it stays, as "b4-l64-padded-2". A static artifact is checked at
    its one shape."""
    if static_shape:
        b, length = static_shape
        lens = tuple(max(1, length - (length * i) // max(b, 1)) for i in range(b))
        return [(f"static-b{b}-l{length}", lens, length)]
    out: list[tuple[str, tuple[int, ...], int]] = []
    for name, lens, length in PARITY_SHAPES:
        cut = min(length, max_length)
        row = tuple(min(x, cut) for x in lens)
        if any((row, cut) == (r, n) for _, r, n in out):
            continue
        name, taken, k = name.replace(f"-l{length}", f"-l{cut}"), {n for n, _, _ in out}, 1
        while (f"{name}-{k}" if k > 1 else name) in taken:
            k += 1
        out.append((f"{name}-{k}" if k > 1 else name, row, cut))
    return out


def compare(got: np.ndarray, want: np.ndarray, mask: np.ndarray | None, tol: float) -> tuple[float, tuple[int, ...]]:
    """Max abs diff (and where), over valid positions only when `mask` is given (sequence outputs)."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if mask is not None and diff.ndim == 3:
        diff = diff * mask[:, :, None]
    if not np.isfinite(diff).all():
        idx = np.unravel_index(int(np.argmax(~np.isfinite(diff))), diff.shape)
        return float("inf"), tuple(int(i) for i in idx)
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[idx]), tuple(int(i) for i in idx)


def check_parity(run_artifact: Runner,
                 run_reference: Runner, *, output: str,
                 shapes: Sequence[tuple[str, tuple[int, ...], int]], tolerance: float, vocab_size: int,
                 pad_id: int, with_types: bool, seed: int = 0) -> ParityReport:
    """Run both on every shape; compare at valid positions."""
    rows = []
    for k, (name, lengths, length) in enumerate(shapes):
        feeds = make_feeds(lengths, length, vocab_size, pad_id, seed + k, with_types)
        got, want = run_artifact(feeds), run_reference(feeds)
        if got.shape != want.shape:
            rows.append(ParityRow(name, len(lengths), length, float("inf"), (), tolerance, False))
            continue
        diff, where = compare(got, want, feeds["attention_mask"], tolerance)
        rows.append(ParityRow(name, len(lengths), length, diff, where, tolerance, diff <= tolerance))
    return ParityReport(output=output, rows=tuple(rows))


def record_reference(run_reference: Runner, *,
                     shapes: Sequence[tuple[str, tuple[int, ...], int]], vocab_size: int, pad_id: int,
                     with_types: bool, seed: int = 0) -> Runner:
    """Run the reference now on the feeds :func:`check_parity` will use, and return a runner that replays them.

    The exporter records the PyTorch outputs (13 MB for Bort's hidden states) before it builds the artifact,
    so the PyTorch model (300 MB) is not held while the optimizer and the artifact's session run. The replay
    refuses feeds it was not recorded on: a parity check must never compare against the wrong outputs."""
    recorded: dict[bytes, np.ndarray] = {}

    def key(feeds: Mapping[str, np.ndarray]) -> bytes:
        return b"|".join(np.ascontiguousarray(feeds[k]).tobytes() + str(feeds[k].shape).encode()
                         for k in sorted(feeds))

    for k, (_name, lengths, length) in enumerate(shapes):
        feeds = make_feeds(lengths, length, vocab_size, pad_id, seed + k, with_types)
        recorded[key(feeds)] = run_reference(feeds)

    def replay(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        try:
            return recorded[key(feeds)]
        except KeyError:
            raise RuntimeError("parity: no recorded reference output for these feeds") from None
    return replay
