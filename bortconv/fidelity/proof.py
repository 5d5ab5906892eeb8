"""An artifact's own proof: the deployment gate's probes and the fp32 reference's outputs on them, carried in the
artifact (``proof.npz``, hashed in the manifest like every other file), so `bortconv validate` re-runs the gate
on a device that has neither torch nor the source.

What the file holds is what :func:`bortconv.fidelity.metrics.deployed_fidelity` compares, reduced to what the
metric needs (the reference's outputs in full would be ~40 MB of hidden states or GBs of MLM logits):

    probes                every probe's token ids and attention mask, exactly as the gate ran them
                          (token_type_ids are zeros in every probe and are rebuilt)
    feature-extraction    each row's mean-pooled fp32 sentence vector (stored fp16: a cosine changes by ~1e-7),
                          and the token states of every k-th valid token over all probes, at most
                          :data:`TOKEN_BUDGET` of them (fp16): mean token cosine is a mean over tokens, and a
                          stride over all of them estimates it without bias (to ~1e-4)
    fill-mask             at every valid position, the reference's top :data:`TOPK` token ids and logits: top-1
                          agreement with the gate's tie rule (:func:`bortconv.fidelity.metrics.agreement`); a pick
                          outside the reference's top-k counts as a disagreement
    text-classification   the logits of every row (a few numbers each)

Torch-free: reading a proof and judging an artifact with it needs numpy and the artifact's runtime only.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError
from bortconv.measure import Runner
from bortconv.fidelity.heldout import Probe
from bortconv.fidelity.metrics import TIE_REL, cosine, row_scores, summarize
from bortconv.runtime.bort import largest

log = logging.getLogger(__name__)

PROOF_FORMAT = 1
#: at most this many token states are kept (every k-th valid token over all probes)
TOKEN_BUDGET = 1024
#: fill-mask: reference tokens kept per position
TOPK = 8
#: fp16 keeps values up to 65504; hidden states beyond that (outlier dimensions) are kept in fp32
FP16_MAX = 6.0e4
TASKS = ("feature-extraction", "fill-mask", "text-classification")


def _half(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return a.astype(np.float16) if not a.size or float(np.abs(a).max()) < FP16_MAX else a


def _topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, values) of the `k` largest logits of each row, largest first (ties: lower id first, as argmax)."""
    ids, vals = largest(logits, min(k, logits.shape[-1]))
    return ids.astype(np.int32), vals


def _token_samples(probes: Sequence[Probe]) -> tuple[int, list[tuple[int, int]]]:
    """(stride, [(row, position)]) of the token states kept: every `stride`-th valid token over all probes."""
    valid = [(r, p) for r, m in enumerate(m for pr in probes for m in pr.feeds["attention_mask"].astype(bool))
             for p in np.flatnonzero(m).tolist()]
    stride = max(1, math.ceil(len(valid) / TOKEN_BUDGET))
    return stride, valid[stride // 2::stride]


def build_proof(probes: Sequence[Probe], outputs: Iterable[np.ndarray], task: str) -> dict[str, np.ndarray]:
    """The arrays of ``proof.npz``: `probes` and the fp32 reference's `outputs` on them (one per probe, consumed
    one at a time, so a fill-mask reference's logits are never all held at once)."""
    if task not in TASKS:
        raise InputError(f"proof: task '{task}' is not one of {', '.join(TASKS)}")
    stride, samples = _token_samples(probes) if task == "feature-extraction" else (0, [])
    want: dict[int, list[int]] = {}
    for r, p in samples:
        want.setdefault(r, []).append(p)
    sentence, tokens, top_ids, top_vals, logits = [], [], [], [], []
    row = 0
    for probe, ref in zip(probes, outputs):
        mask = probe.feeds["attention_mask"].astype(bool)
        for i in range(len(mask)):
            if task == "feature-extraction":
                m = mask[i][:, None]
                sentence.append((ref[i].astype(np.float64) * m).sum(0) / m.sum())
                tokens += [ref[i, p] for p in want.get(row, [])]
            elif task == "fill-mask":
                ids, vals = _topk(np.asarray(ref[i][mask[i]], np.float32), TOPK)
                top_ids.append(ids)
                top_vals.append(vals)
            else:
                logits.append(np.asarray(ref[i], np.float32))
            row += 1
    meta = {"format": PROOF_FORMAT, "task": task, "kinds": [p.kind for p in probes],
            "labels": [p.label for p in probes], "token_stride": stride, "topk": TOPK}
    out: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(meta)),
        "shapes": np.array([p.feeds["input_ids"].shape for p in probes], np.int32).reshape(-1, 2),
        "input_ids": np.concatenate([p.feeds["input_ids"].ravel() for p in probes]).astype(np.int32),
        "attention_mask": np.concatenate([p.feeds["attention_mask"].ravel() for p in probes]).astype(np.uint8)}
    if task == "feature-extraction":
        out |= {"sentence": _half(np.stack(sentence)), "token": _half(np.stack(tokens)),
                "token_row": np.array([r for r, _ in samples], np.int32),
                "token_pos": np.array([p for _, p in samples], np.int32)}
    elif task == "fill-mask":
        out |= {"topk_ids": np.concatenate(top_ids), "topk_values": np.concatenate(top_vals).astype(np.float32)}
    else:
        out["logits"] = np.stack(logits)
    return out


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What ``np.savez_compressed`` writes (np.load reads it), with fixed entry times and order, so the same proof
    gives the same bytes (savez stamps each entry with the current time: exports would not be reproducible)."""
    import io

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def write_proof(path: Path, probes: Sequence[Probe], outputs: Iterable[np.ndarray], task: str) -> dict[str, Any]:
    """Write ``proof.npz`` at `path` (compressed); returns what the manifest says about it."""
    arrays = build_proof(probes, outputs, task)
    _write_npz(path, arrays)
    kinds: dict[str, int] = {}
    for p in probes:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    stored = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items() if k != "meta"}
    log.info("proof %s: %d probes, %d bytes", path.name, len(probes), path.stat().st_size)
    out: dict[str, Any] = {"file": path.name, "format": PROOF_FORMAT, "task": task, "probes": kinds,
                           "rows": int(arrays["shapes"][:, 0].sum()), "bytes": path.stat().st_size, "arrays": stored}
    if task == "feature-extraction":
        out["token_states"] = (f"every {json.loads(str(arrays['meta']))['token_stride']}th valid token over all "
                               f"probes (at most {TOKEN_BUDGET}), fp16")
    elif task == "fill-mask":
        out["topk"] = TOPK
    return out


def proof_record(written: Mapping[str, Any], *, text: str, sweep: str, reference: str,
                 thresholds: Any, loaders: Sequence[str] = ("bortconv", "stock")) -> dict[str, Any]:
    """The manifest's ``proof`` section: the file (:func:`write_proof`'s record), where its text and reference
    outputs came from, and the gate `validate` holds each loader to with it (`thresholds`: GateThresholds)."""
    return dict(written) | {"text": text, "sweep": sweep, "reference": reference, "loaders": list(loaders),
                            "thresholds": thresholds.to_dict()}


def write_gate_proof(artifact_dir: Path, gate: Any, thresholds: Any, reference: str) -> dict[str, Any]:
    """The proof of a :class:`bortconv.fidelity.gate.DeploymentGate` whose reference outputs are fp32's
    (int8: the fp32 artifact, which passed atol parity against PyTorch); returns the manifest's section."""
    from bortconv.layout import PROOF_FILE
    written = write_proof(artifact_dir / PROOF_FILE, gate.probes, gate.outputs, gate.task)
    return proof_record(written, text=gate.text.source, sweep=gate.sweep, reference=reference,
                        thresholds=thresholds)


@dataclass(frozen=True)
class Proof:
    """A loaded ``proof.npz``: the probes (as feeds) and the reduced fp32 reference outputs."""

    task: str
    probes: list[Probe]
    arrays: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return sum(len(p.feeds["input_ids"]) for p in self.probes)

    def fidelity(self, run: Runner) -> dict[str, Any]:
        """The gate's metrics (:func:`bortconv.fidelity.metrics.summarize`) of `run` against this proof."""
        tok: list[float] = []
        scores: list[tuple[float, str, int]] = []
        row, pos = 0, 0  # first row of the probe; its first valid position (fill-mask)
        for probe in self.probes:
            mask = probe.feeds["attention_mask"].astype(bool)
            got = np.asarray(run(probe.feeds))
            if got.shape[:1] != mask.shape[:1]:
                raise ValueError(f"{probe.label}: output shape {got.shape} for {mask.shape[0]} rows")
            t, per_row = self._compare(got, mask, row, pos)
            tok += t
            scores += row_scores(probe, per_row, mask)
            row, pos = row + len(mask), pos + int(mask.sum())
        return summarize(tok, scores, self.task)

    def _compare(self, got: np.ndarray, mask: np.ndarray, row: int, pos: int) -> tuple[list[float], list[float]]:
        a = self.arrays
        if self.task == "text-classification":
            ref = a["logits"][row:row + len(mask)]
            agree = (ref.argmax(-1) == got.argmax(-1)) | (
                ref.max(-1) - np.take_along_axis(ref, got.argmax(-1)[:, None], -1)[:, 0]
                <= TIE_REL * np.maximum(np.abs(ref.max(-1)), 1e-6))
            return [], agree.astype(float).tolist()
        if self.task == "fill-mask":
            per_row = []
            for i in range(len(mask)):
                n = int(mask[i].sum())
                per_row.append(float(_topk_agreement(a["topk_ids"][pos:pos + n], a["topk_values"][pos:pos + n],
                                                     got[i][mask[i]].argmax(-1)).mean()))
                pos += n
            return [], per_row
        m = mask[..., None]
        pooled = (got.astype(np.float64) * m).sum(1) / m.sum(1)
        sentences = cosine(pooled, a["sentence"][row:row + len(mask)]).tolist()
        lo, hi = np.searchsorted(a["token_row"], [row, row + len(mask)])
        r, p = a["token_row"][lo:hi] - row, a["token_pos"][lo:hi]
        return cosine(got[r, p], a["token"][lo:hi]).tolist(), sentences


def _topk_agreement(ids: np.ndarray, values: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """:func:`bortconv.fidelity.metrics.agreement` from the reference's top-k: the pick is the reference's top-1,
    or one of its top-k within the tie margin of it."""
    hit = ids == picked[:, None]
    value = np.where(hit.any(1), values[np.arange(len(ids)), hit.argmax(1)], -np.inf)
    top = values[:, 0]
    return (ids[:, 0] == picked) | (top - value <= TIE_REL * np.maximum(np.abs(top), 1e-6))


REQUIRED = {"feature-extraction": ("sentence", "token", "token_row", "token_pos"),
            "fill-mask": ("topk_ids", "topk_values"), "text-classification": ("logits",)}


def read_proof(path: Path) -> Proof:
    """Load ``proof.npz``; InputError (exit 2) naming the file for anything missing or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        task = str(meta["task"])
        if meta.get("format") != PROOF_FORMAT:
            raise ValueError(f"format {meta.get('format')}, this bortconv reads {PROOF_FORMAT}")
        missing = [k for k in ("shapes", "input_ids", "attention_mask") + REQUIRED.get(task, ("?",))
                   if k not in arrays]
        if missing:
            raise ValueError(f"no {', '.join(missing)} for task {task}")
        probes = _probes(arrays, meta)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; this artifact carries no proof") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable bortconv proof ({type(exc).__name__}: {exc})") from None
    return Proof(task, probes, arrays)


def _probes(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> list[Probe]:
    shapes = arrays["shapes"].astype(np.int64)
    if shapes.ndim != 2 or shapes.shape[1] != 2 or (shapes <= 0).any():
        raise ValueError("probe shapes are not (batch, length) pairs")
    total = int(shapes.prod(1).sum())
    if not total == arrays["input_ids"].size == arrays["attention_mask"].size or \
            not len(meta["labels"]) == len(meta["kinds"]) == len(shapes):
        raise ValueError("probe shapes, ids, masks and labels disagree")
    out, start = [], 0
    for (b, n), kind, label in zip(shapes.tolist(), meta["kinds"], meta["labels"]):
        ids = arrays["input_ids"][start:start + b * n].astype(np.int64).reshape(b, n)
        mask = arrays["attention_mask"][start:start + b * n].astype(np.int64).reshape(b, n)
        if not mask.any(1).all():
            raise ValueError(f"{label}: a row with no valid token")
        out.append(Probe(str(kind), str(label), {"input_ids": ids, "attention_mask": mask,
                                                  "token_type_ids": np.zeros_like(ids)}))
        start += b * n
    return out
