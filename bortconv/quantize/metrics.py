"""The int8 accuracy gate's metrics: fidelity of a quantized artifact to its fp32 model on held-out text.

feature-extraction: cosine per valid token and of mean-pooled sentence vectors; fill-mask: top-1 agreement at
valid positions; text-classification: label agreement. The thresholds and their names are
:class:`bortconv.config.GateThresholds` and :data:`bortconv.config.GATE_METRICS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bortconv.config import GATE_METRICS, GateThresholds
from bortconv.measure import Runner


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def fidelity(reference: Runner, candidate: Runner, feeds: Sequence[Mapping[str, np.ndarray]],
             task: str) -> dict[str, float]:
    """Fidelity metrics of `candidate` against `reference` over `feeds` (held-out text)."""
    tok, sent, top1, label = [], [], [], []
    for f in feeds:
        ref, got = reference(f), candidate(f)
        mask = f["attention_mask"].astype(bool)
        if task == "text-classification":
            label.extend((ref.argmax(-1) == got.argmax(-1)).tolist())
        elif task == "fill-mask":
            top1.extend((ref.argmax(-1) == got.argmax(-1))[mask].tolist())
        else:
            tok.extend(_cos(ref, got)[mask].tolist())
            m = mask[..., None]
            pooled_r = (ref * m).sum(1) / m.sum(1)
            pooled_g = (got * m).sum(1) / m.sum(1)
            sent.extend(_cos(pooled_r, pooled_g).tolist())
    out: dict[str, float] = {"texts": float(sum(len(f["input_ids"]) for f in feeds))}
    if tok:
        out |= {"token_cosine_mean": float(np.mean(tok)), "token_cosine_p5": float(np.percentile(tok, 5))}
    if sent:
        out |= {"sentence_cosine_mean": float(np.mean(sent)), "sentence_cosine_p5": float(np.percentile(sent, 5))}
    if top1:
        out["top1_agreement"] = float(np.mean(top1))
    if label:
        out["label_agreement"] = float(np.mean(label))
    return out


def passes(metrics: Mapping[str, float], t: GateThresholds) -> bool:
    """Whether every gated metric present in `metrics` reaches its threshold."""
    return all(metrics[k] >= getattr(t, field) for k, (field, _) in GATE_METRICS.items() if k in metrics)


def describe(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "texts")


#: which metrics the gate measures for each task
TASK_METRICS = {"feature-extraction": ("token_cosine_mean", "sentence_cosine_mean", "sentence_cosine_p5"),
                "fill-mask": ("top1_agreement",), "text-classification": ("label_agreement",)}


def describe_thresholds(t: GateThresholds, task: str) -> str:
    """The gate a task's artifact must pass, for messages: "mean token cosine >= 0.99, ..."."""
    return ", ".join(f"{GATE_METRICS[k][1]} >= {getattr(t, GATE_METRICS[k][0])}" for k in TASK_METRICS[task])
