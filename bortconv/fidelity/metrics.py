"""The int8 accuracy gate's metrics: fidelity of a quantized artifact to its fp32 model on held-out text.

feature-extraction: cosine per valid token and of mean-pooled sentence vectors; fill-mask: top-1 agreement at
valid positions; text-classification: label agreement. The thresholds and their names are
:class:`bortconv.config.GateThresholds` and :data:`bortconv.config.GATE_METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bortconv.config import GATE_METRICS, GateThresholds
from bortconv.measure import Runner


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the last axis, in float64."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def describe(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k in GATE_METRICS or k.endswith("_p5"))


#: which metrics the gate measures for each task
TASK_METRICS = {"feature-extraction": ("token_cosine_mean", "sentence_cosine_mean", "sentence_cosine_p5",
                                       "sentence_cosine_worst"),
                "fill-mask": ("top1_agreement",), "text-classification": ("label_agreement",)}


def describe_thresholds(t: GateThresholds, task: str) -> str:
    """The gate a task's artifact must pass, for messages: "mean token cosine >= 0.99, ..."."""
    return ", ".join(f"{GATE_METRICS[k][1]} >= {getattr(t, GATE_METRICS[k][0])}" for k in TASK_METRICS[task])


#: two classes or tokens whose reference logits are this close (relative to the top logit) are a tie: bf16 keeps
#: ~3 significant digits, so picking either is agreement (a random-weight MLM head has many such near-ties)
TIE_REL = 0.01


def agreement(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per position: the candidate's top-1 is the reference's, or ties with it in the reference's own logits."""
    top = ref.max(-1)
    picked = np.take_along_axis(ref, got.argmax(-1)[..., None], -1)[..., 0]
    return (ref.argmax(-1) == got.argmax(-1)) | (top - picked <= TIE_REL * np.maximum(np.abs(top), 1e-6))


def _rows(ref: np.ndarray, got: np.ndarray, mask: np.ndarray, task: str) -> tuple[list[float], list[float]]:
    """(per-token cosines, per-row score) of one batch: sentence cosine of mean-pooled vectors for encoders,
    the fraction of agreeing labels / top-1 tokens per row (:func:`agreement`) for the heads."""
    if task == "text-classification":
        return [], agreement(ref, got).astype(float).tolist()
    if task == "fill-mask":
        agree = agreement(ref, got)
        return [], [float(agree[i][mask[i]].mean()) for i in range(len(agree))]
    m = mask[..., None]
    pooled = cosine((ref * m).sum(1) / m.sum(1), (got * m).sum(1) / m.sum(1))
    return cosine(ref, got)[mask].tolist(), pooled.tolist()


def deployed_fidelity(reference: Sequence[np.ndarray], candidate: Runner, probes: Sequence[Any],
                      task: str) -> dict[str, Any]:
    """Fidelity of `candidate` on the gate's probes (:mod:`bortconv.fidelity.heldout`) against the reference's
    outputs for the same probes: mean, 5th percentile and worst case over every row, and where the worst was.

    Encoders are scored by sentence cosine (mean-pooled over valid tokens) and token cosine; fill-mask by top-1
    agreement and classifiers by label agreement, as the int8 gate always has.
    """
    tok: list[float] = []
    scores: list[tuple[float, str, int]] = []  # (score, label, length)
    for probe, ref in zip(probes, reference):
        mask = probe.feeds["attention_mask"].astype(bool)
        t, per_row = _rows(ref, candidate(probe.feeds), mask, task)
        tok += t
        scores += row_scores(probe, per_row, mask)
    return summarize(tok, scores, task)


def row_scores(probe: Any, per_row: Sequence[float], mask: np.ndarray) -> list[tuple[float, str, int]]:
    """(score, where, valid length) of each row of one probe: what :func:`summarize` takes."""
    return [(float(v), probe.label + (f" row {i}" if len(per_row) > 1 else ""), int(mask[i].sum()))
            for i, v in enumerate(per_row)]


def summarize(tok: Sequence[float], scores: Sequence[tuple[float, str, int]], task: str) -> dict[str, Any]:
    """The gate's metrics from per-token cosines and per-row scores: mean, 5th percentile, worst and where."""
    values = np.array([s[0] for s in scores])
    worst = min(scores)
    by_length: dict[int, float] = {}
    for v, _, n in scores:
        by_length[n] = min(by_length.get(n, 1.0), v)
    out: dict[str, Any] = {"texts": float(len(scores)), "worst_at": worst[1],
                           "worst_length": min(by_length, key=by_length.__getitem__),
                           "lengths": len(by_length)}
    if task == "feature-extraction":
        out |= {"token_cosine_mean": float(np.mean(tok)), "sentence_cosine_mean": float(values.mean()),
                "sentence_cosine_p5": float(np.percentile(values, 5)), "sentence_cosine_worst": float(worst[0])}
    else:
        out["top1_agreement" if task == "fill-mask" else "label_agreement"] = float(values.mean())
    return out


def margin(metrics: Mapping[str, Any], t: GateThresholds) -> float:
    """How far the gated metric closest to failing is above its threshold (negative: below; -inf: no metric, or
    one that is not a number).

    What ranks candidates that all failed, so the one named "best" is the one closest to passing: the lowest raw
    metric would favour a candidate whose worst text is high (threshold 0.98) over one nearer the mean's 0.995."""
    gaps = [float(metrics[k]) - getattr(t, field) for k, (field, _) in GATE_METRICS.items() if k in metrics]
    return min(gaps) if gaps and all(math.isfinite(g) for g in gaps) else float("-inf")


def failures(metrics: Mapping[str, Any], t: GateThresholds) -> list[str]:
    """One phrase per gated metric below its threshold, e.g. "worst sentence cosine 0.7706 < 0.98". A metric that
    is not a number (NaN outputs) fails: it is not at or above its threshold."""
    return [f"{label} {metrics[k]:.4f} < {getattr(t, field)}" for k, (field, label) in GATE_METRICS.items()
            if k in metrics and not metrics[k] >= getattr(t, field)]
