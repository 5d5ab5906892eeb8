"""The int8 accuracy gate: fidelity of an int8 artifact to its fp32 model on held-out text.

feature-extraction: cosine per valid token and of mean-pooled sentence vectors; fill-mask: top-1 agreement at
valid positions; text-classification: label agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class GateThresholds:
    token_cosine: float = 0.99  # mean over tokens
    sentence_cosine: float = 0.995  # mean over sentences
    sentence_cosine_p5: float = 0.99  # 5th percentile: no sizeable minority of texts may fall apart
    top1_agreement: float = 0.95  # fill-mask
    label_agreement: float = 0.98  # text-classification

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


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
    checks = [("token_cosine_mean", t.token_cosine), ("sentence_cosine_mean", t.sentence_cosine),
              ("sentence_cosine_p5", t.sentence_cosine_p5),
              ("top1_agreement", t.top1_agreement), ("label_agreement", t.label_agreement)]
    return all(metrics[k] >= v for k, v in checks if k in metrics)


def describe(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "texts")
