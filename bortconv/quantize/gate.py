"""The int8 accuracy gate: fidelity of an int8 artifact to its fp32 model on held-out text.

feature-extraction: cosine per valid token and of mean-pooled sentence vectors; fill-mask: top-1 agreement at
valid positions; text-classification: label agreement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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


#: metric -> (threshold field, row name). A row's "max diff" is 1 - metric and its tolerance 1 - threshold, so
#: the validate table reads like the atol rows: pass when the shortfall is within the tolerance.
_GATE_ROWS = {"token_cosine_mean": ("token_cosine", "mean token cosine"),
              "sentence_cosine_mean": ("sentence_cosine", "mean sentence cosine"),
              "sentence_cosine_p5": ("sentence_cosine_p5", "5th pct sentence cosine"),
              "top1_agreement": ("top1_agreement", "top-1 agreement"),
              "label_agreement": ("label_agreement", "label agreement")}


def fidelity_gate(artifact_dir: Path, manifest: Mapping[str, Any], reference: Any, session: Any, *,
                  threads: int | None) -> Sequence[Any]:
    """`bortconv validate` for int8 artifacts: re-run the gate the artifact passed at quantization time.

    The int8 session is judged against the fp32 PyTorch model of its source (`reference`) on the held-out part
    of the calibration text recorded in the manifest (never the calibration sentences), with the thresholds
    recorded there. One report row per metric: "max diff" is 1 - metric, the tolerance 1 - threshold.
    """
    from bortconv.quantize import calibration as cal
    from bortconv.validate.validate import Check

    info = manifest.get("int8") if isinstance(manifest.get("int8"), Mapping) else {}
    gate_info = info.get("gate") if isinstance(info.get("gate"), Mapping) else {}
    fields = GateThresholds.__dataclass_fields__
    recorded = gate_info.get("thresholds") if isinstance(gate_info.get("thresholds"), Mapping) else {}
    thresholds = GateThresholds(**{k: float(v) for k, v in recorded.items() if k in fields})
    calib = info.get("calibration") if isinstance(info.get("calibration"), Mapping) else {}
    rows: list[Any] = []
    user_file = Path(str(calib["file"])) if calib.get("file") else None
    samples = calib.get("split_samples")  # the same split as quantization: held-out text is never calibration text
    if user_file is not None and not user_file.is_file():
        rows.append(Check("fidelity", "held-out text", "info",
                          detail=f"calibration file {user_file} is not here; gating on the shipped WordNet text"))
        user_file, samples = None, None
    t0 = time.perf_counter()
    split = cal.split_texts(user_file, int(samples) if samples else None)
    cfg = json.loads((artifact_dir / "config.json").read_text())
    # as quantization did: the artifact's tokenizer, or (if it calibrated without one) the same seeded ids
    tok = cal.load_tokenizer(artifact_dir) if calib.get("token_ids", "tokenizer") == "tokenizer" else None
    n_held, feeds = cal.heldout_feeds(split, tok, int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0),
                                      "token_type_ids" in session.input_names)
    task = str(manifest["task"])
    metrics = fidelity(lambda f: reference.run(dict(f)), session.run, feeds, task)
    seconds = (time.perf_counter() - t0) / max(1, len(_GATE_ROWS))
    for key, (field_name, label) in _GATE_ROWS.items():
        if key not in metrics:
            continue
        threshold = float(getattr(thresholds, field_name))
        shortfall = round(1.0 - metrics[key], 9)  # 1 - 0.98 is 0.0200000000000000018 in binary
        ok = metrics[key] >= threshold
        rows.append(Check("fidelity", label, "pass" if ok else "fail", max_diff=shortfall,
                          where=f"{n_held} held-out texts", tolerance=round(1.0 - threshold, 9),
                          detail="" if ok else f"{metrics[key]:.4f} < {threshold} (int8 vs fp32 PyTorch)",
                          seconds=seconds))
    return rows
