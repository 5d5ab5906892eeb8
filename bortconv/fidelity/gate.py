"""The deployment gate: an artifact of a precision that is not atol-exact (int8, bf16, fp16, and fp32 where a
stock loader infers in bf16) is judged on held-out text of every length (:mod:`bortconv.fidelity.heldout`),
in every way it is meant to be loaded (:mod:`bortconv.runtime.loaders`), against the fp32 reference.

Used when an artifact is made (export, quantize: nothing that fails is kept) and again by `validate` on
whatever CPU it runs on, where the precision a stock loader picks, bf16 and the int8 kernels may differ.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import GateThresholds, gate_sweep, max_positions
from bortconv.measure import Runner
from bortconv.fidelity import text_split as cal
from bortconv.fidelity import heldout
from bortconv.fidelity.metrics import deployed_fidelity, failures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderVerdict:
    """The gate's result for one loader on this CPU."""

    loader: str
    inference_precision: str
    metrics: dict[str, Any]
    thresholds: GateThresholds
    failed: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"loader": self.loader, "inference_precision": self.inference_precision, "passed": self.passed,
                "metrics": {k: round(v, 6) if isinstance(v, float) else v for k, v in self.metrics.items()},
                "failed": list(self.failed)}


@dataclass(frozen=True)
class HeldoutText:
    """Where the gate's text comes from: never calibration text."""

    source: str
    texts: tuple[str, ...]


def heldout_text(calibration: str | Path | None, samples: int | None) -> HeldoutText:
    """The shipped held-out text, or the held-out part of the user's calibration file (lines after `samples`)."""
    if calibration is None:
        return HeldoutText(f"bortconv/data/{heldout.HELDOUT_FILE} (WordNet 3.0 example sentences, disjoint from "
                           f"the calibration set)", tuple(heldout.shipped_texts()))
    split = cal.split_texts(calibration, samples)
    return HeldoutText(f"{split.source} (lines after the {len(split.calibration)} calibration lines)", split.heldout)


@dataclass
class DeploymentGate:
    """Probes of one model and the reference's outputs on them (computed once, shared by every candidate)."""

    probes: list[heldout.Probe]
    reference: Runner
    task: str
    text: HeldoutText
    tokenizer_used: bool
    sweep: str = "full"  # config.GATE_SWEEPS
    _outputs: list[np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def for_artifact(cls, artifact_dir: Path, reference: Runner, task: str, text: HeldoutText, *,
                     config: dict[str, Any], with_types: bool, tokenizer: Any = None,
                     static_shape: tuple[int, int] | None = None) -> DeploymentGate:
        tok = tokenizer if tokenizer is not None else cal.load_tokenizer(artifact_dir)
        sweep = gate_sweep()
        probes = heldout.probes(list(text.texts), tok, vocab_size=int(config["vocab_size"]),
                                pad_id=int(config.get("pad_token_id") or 0), with_types=with_types,
                                max_length=max_positions(config),
                                static_shape=static_shape, sweep=sweep)
        return cls(probes, reference, task, text, tok is not None, sweep)

    @property
    def outputs(self) -> list[np.ndarray]:
        if self._outputs is None:
            self._outputs = [self.reference(p.feeds) for p in self.probes]
        return self._outputs

    def judge(self, run: Runner, loader: str, inference_precision: str,
              thresholds: GateThresholds) -> LoaderVerdict:
        """The gate's verdict on one session (`run`) loaded by `loader`."""
        return verdict(deployed_fidelity(self.outputs, run, self.probes, self.task), loader, inference_precision,
                       thresholds)

    def judge_loaders(self, artifact_dir: Path, thresholds: GateThresholds, threads: int | None,
                      loaders: Sequence[str] = ("bortconv", "stock"),
                      stock_thresholds: GateThresholds | None = None,
                      pinned: str | None = None) -> list[LoaderVerdict]:
        """The artifact in `artifact_dir` as each loader loads it on this CPU."""
        from bortconv.runtime.loaders import open_as, session_precision
        out = []
        for loader in loaders:
            session = open_as(artifact_dir, loader, threads, precision=pinned)
            precision = session_precision(session)
            t = stock_thresholds if loader == "stock" and stock_thresholds is not None else thresholds
            out.append(self.judge(session.run, loader, precision, t))
            del session
        return out

    def record(self) -> dict[str, Any]:
        """What the manifest says about the gate's text and probes."""
        kinds: dict[str, int] = {}
        for p in self.probes:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        lengths = sorted({int(p.feeds["attention_mask"][0].sum()) for p in self.probes if p.kind == "length"})
        return {"text": self.text.source, "token_ids": "tokenizer" if self.tokenizer_used else "random",
                "sweep": self.sweep, "probes": kinds, "lengths": [lengths[0], lengths[-1]] if lengths else [],
                "padded_batches": [list(r) for r in heldout.padded_lengths(max(lengths or [8]))]}


def judge_proof(proof: Any, run: Runner, loader: str, inference_precision: str,
                thresholds: GateThresholds) -> LoaderVerdict:
    """The gate's verdict on one session (`run`) against an artifact's proof
    (:class:`bortconv.fidelity.proof.Proof`): what `export` holds a gated fp32, fp16 or bf16 artifact to, and
    what `validate` re-runs on any CPU, so the two cannot disagree on the same CPU."""
    return verdict(proof.fidelity(run), loader, inference_precision, thresholds, source=" from the proof")


def verdict(metrics: dict[str, Any], loader: str, inference_precision: str, thresholds: GateThresholds,
            source: str = "") -> LoaderVerdict:
    """`metrics` judged against `thresholds`, logged: one loader's verdict."""
    out = LoaderVerdict(loader, inference_precision, metrics, thresholds, tuple(failures(metrics, thresholds)))
    log.info("gate %s (%s)%s: %s -> %s", loader, inference_precision, source,
             {k: v for k, v in metrics.items() if k.startswith(("sentence", "label", "top1", "worst"))},
             "pass" if out.passed else "fail: " + "; ".join(out.failed))
    return out
