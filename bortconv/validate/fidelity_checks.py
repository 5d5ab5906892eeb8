"""`bortconv validate` for what depends on the CPU it runs on: the deployment gate re-run here.

- int8 and bf16 artifacts, and any with an int8 or int4 word table: the gate they passed when they were made
  (:mod:`bortconv.fidelity.gate`), with the thresholds and held-out text their manifest records (a compressed
  table's own thresholds where they are looser), under bortconv's runtime and a stock load;
- other fp32 and fp16 artifacts (whose atol parity is checked pinned to f32): a stock load, in whatever
  precision OpenVINO picks on this CPU (as the plugin reports it), held to the bf16 gate;
- bf16 artifacts on a CPU without native bf16: a failing row, since OpenVINO cannot give them here what they
  were built for.

One row per loader and metric: "max diff" is 1 - metric and the tolerance 1 - threshold, so the table reads
like the atol rows; "where" names the input the worst value came from (e.g. "length 32").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bortconv.config import GATE_DEFAULTS, GATE_METRICS, GateThresholds
from bortconv.layout import CONFIG_FILE
from bortconv.manifest import compressed_table, static_shape
from bortconv.fidelity.gate import DeploymentGate, LoaderVerdict, heldout_text, judge_proof
from bortconv.validate.checks import Check


def _section(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _thresholds(manifest: Mapping[str, Any], precision: str) -> GateThresholds:
    """The precision's recorded gate; with a compressed word table, no stricter than the table's own gate, which
    export passed it under (the table's loss is allowed on top of the precision's)."""
    recorded = _section(_section(_section(manifest, precision), "gate"), "thresholds")
    fields = GateThresholds.__dataclass_fields__
    base = GATE_DEFAULTS.get(precision, GATE_DEFAULTS["bf16"]).to_dict()
    out = base | {k: float(v) for k, v in recorded.items() if k in fields}
    table = _section(_section(compressed_table(manifest) or {}, "gate"), "thresholds")
    return GateThresholds(**{k: min(v, float(table[k])) if k in table else v for k, v in out.items()})


def _text(manifest: Mapping[str, Any], precision: str, rows: list[Check]) -> Any:
    """The held-out text the gate ran on when the artifact was made (never its calibration text)."""
    calib = _section(_section(manifest, precision), "calibration")
    user_file = Path(str(calib["file"])) if calib.get("file") else None
    samples = calib.get("split_samples")
    if user_file is not None and not user_file.is_file():
        rows.append(Check("fidelity", "held-out text", "info",
                          detail=f"calibration file {user_file} is not here; gating on the shipped held-out text"))
        user_file, samples = None, None
    return heldout_text(user_file, int(samples) if samples else None)


def _rows(verdict: LoaderVerdict, n_probes: int, seconds: float) -> list[Check]:
    group = f"fidelity/{verdict.loader}"
    rows = [Check(group, "inference precision", "info", where=verdict.inference_precision,
                  detail=f"on this CPU, as {verdict.loader} loading compiles it")]
    for key, (field_name, label) in GATE_METRICS.items():
        if key not in verdict.metrics:
            continue
        value, threshold = float(verdict.metrics[key]), float(getattr(verdict.thresholds, field_name))
        ok = value >= threshold
        where = f"worst at {verdict.metrics['worst_at']}" if key == "sentence_cosine_worst" else f"{n_probes} probes"
        rows.append(Check(group, label, "pass" if ok else "fail", max_diff=round(1.0 - value, 9), where=where,
                          tolerance=round(1.0 - threshold, 9), seconds=seconds,
                          detail="" if ok else f"{value:.4f} < {threshold} ({verdict.loader} load, "
                                               f"{verdict.inference_precision}, {where})"))
    return rows


def _native_bf16_row() -> Check:
    from bortconv.runtime.loaders import native_bf16
    native, why = native_bf16()
    return Check("fidelity", "native bf16", "pass" if native else "fail", where=why,
                 detail="" if native else "this CPU has no native bf16 (AMX-BF16 or AVX512_BF16): OpenVINO "
                                          "cannot run this artifact as it was built; deploy fp32 here")


def _stock_row() -> Check:
    from bortconv.runtime.loaders import stock_precision
    return Check("fidelity", "stock precision here", "info", where=stock_precision(),
                 detail='what ov.Core().compile_model(xml, "CPU") infers in on this CPU')


def proof_thresholds(manifest: Mapping[str, Any]) -> GateThresholds:
    """The gate the manifest's ``proof`` section records (ValueError if it records none)."""
    recorded = _section(_section(manifest, "proof"), "thresholds")
    fields = GateThresholds.__dataclass_fields__
    if not recorded or any(k not in recorded for k in fields):
        raise ValueError("the manifest's proof section records no complete gate thresholds")
    return GateThresholds(**{k: float(recorded[k]) for k in fields})


def proof_gate(artifact_dir: Path, manifest: Mapping[str, Any], proof: Any, session: Any, *,
               threads: int | None) -> Sequence[Check]:
    """The deployment gate on this CPU from the artifact's own proof (:mod:`bortconv.fidelity.proof`): under
    each loader the manifest's proof names (bortconv's runtime: `session`; stock loaders at this CPU's stock
    precision), held to the thresholds it records. Needs neither torch nor the source."""
    from bortconv.runtime.loaders import open_as, session_precision

    rows: list[Check] = [_native_bf16_row()] if manifest["precision"] == "bf16" else []
    if manifest.get("target") == "openvino":
        rows.append(_stock_row())
    thresholds = proof_thresholds(manifest)
    loaders = [str(x) for x in _section(manifest, "proof").get("loaders", ("bortconv", "stock"))]
    for loader in loaders:
        t0 = time.perf_counter()
        s = session if loader == "bortconv" else open_as(artifact_dir, loader, threads)
        precision = session_precision(s)
        try:
            verdict = judge_proof(proof, s.run, loader, precision, thresholds)
        except Exception as exc:  # the graph loaded but does not run on the proof's probes: the artifact's failure
            line = str(exc).strip().splitlines()
            rows.append(Check(f"fidelity/{loader}", "run on the proof's probes", "fail",
                              detail=f"{type(exc).__name__}: {line[0][:300] if line else ''}"))
            continue
        rows += _rows(verdict, len(proof.probes), (time.perf_counter() - t0) / len(GATE_METRICS))
        del s
    return rows


def fidelity_gate(artifact_dir: Path, manifest: Mapping[str, Any], reference: Any, session: Any, *,
                  threads: int | None) -> Sequence[Check]:
    """The deployment gate on this CPU for `artifact_dir`, against the fp32 PyTorch model of its source."""
    precision = str(manifest["precision"])
    rows: list[Check] = [_native_bf16_row()] if precision == "bf16" else []
    gated = precision in ("int8", "bf16") or compressed_table(manifest) is not None
    text = _text(manifest, precision, rows) if gated else heldout_text(None, None)
    cfg = json.loads((artifact_dir / CONFIG_FILE).read_text())
    t0 = time.perf_counter()
    gate = DeploymentGate.for_artifact(artifact_dir, lambda f: reference.run(dict(f)), str(manifest["task"]), text,
                                       config=cfg, with_types="token_type_ids" in session.input_names,
                                       static_shape=static_shape(manifest))
    loaders = ("bortconv", "stock") if gated else ("stock",)
    thresholds = _thresholds(manifest, precision) if gated else GATE_DEFAULTS["bf16"]
    verdicts = gate.judge_loaders(artifact_dir, thresholds, threads, loaders=loaders)
    seconds = (time.perf_counter() - t0) / max(1, len(verdicts) * len(GATE_METRICS))
    if manifest.get("target") == "openvino":
        rows.append(_stock_row())
    for v in verdicts:
        rows += _rows(v, len(gate.probes), seconds)
    return rows
