"""`bortconv validate` for gated precisions (int8): re-run the gate the artifact passed when it was made."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bortconv.config import GATE_METRICS, GateThresholds
from bortconv.layout import CONFIG_FILE
from bortconv.quantize import calibration as cal
from bortconv.quantize.metrics import fidelity
from bortconv.validate.checks import Check


def _section(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def fidelity_gate(artifact_dir: Path, manifest: Mapping[str, Any], reference: Any, session: Any, *,
                  threads: int | None) -> Sequence[Check]:
    """The int8 session judged against the fp32 PyTorch model of its source (`reference`).

    On the held-out part of the calibration text recorded in the manifest (never the calibration sentences),
    with the thresholds recorded there. One report row per metric: "max diff" is 1 - metric and the tolerance
    1 - threshold, so the table reads like the atol rows: pass when the shortfall is within the tolerance.
    """
    info = _section(manifest, "int8")
    recorded = _section(_section(info, "gate"), "thresholds")
    fields = GateThresholds.__dataclass_fields__
    thresholds = GateThresholds(**{k: float(v) for k, v in recorded.items() if k in fields})
    calib = _section(info, "calibration")
    rows: list[Check] = []
    user_file = Path(str(calib["file"])) if calib.get("file") else None
    samples = calib.get("split_samples")  # the same split as quantization: held-out text is never calibration text
    if user_file is not None and not user_file.is_file():
        rows.append(Check("fidelity", "held-out text", "info",
                          detail=f"calibration file {user_file} is not here; gating on the shipped WordNet text"))
        user_file, samples = None, None
    t0 = time.perf_counter()
    split = cal.split_texts(user_file, int(samples) if samples else None)
    cfg = json.loads((artifact_dir / CONFIG_FILE).read_text())
    # as quantization did: the artifact's tokenizer, or (if it calibrated without one) the same seeded ids
    tok = cal.load_tokenizer(artifact_dir) if calib.get("token_ids", "tokenizer") == "tokenizer" else None
    n_held, feeds = cal.heldout_feeds(split, tok, int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0),
                                      "token_type_ids" in session.input_names)
    metrics = fidelity(lambda f: reference.run(dict(f)), session.run, feeds, str(manifest["task"]))
    seconds = (time.perf_counter() - t0) / max(1, len(GATE_METRICS))
    for key, (field_name, label) in GATE_METRICS.items():
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
