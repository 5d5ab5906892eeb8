"""`bortconv bench` with its baselines: BERT-large (or BERT-base) with seeded random weights, built once through
the same export pipeline as Bort's artifacts (fused ONNX, and its int8), then measured by
:func:`bortconv.bench.harness.bench`. The baselines are built here because building them is an export; the
measuring stage below does not import the pipeline above it."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from bortconv.layout import CONFIG_FILE, MANIFEST_FILE, ONNX_FILE, WEIGHT_FILES
from bortconv.bench import harness as measured
from bortconv.bench.harness import BASELINES, SEED, BenchReport

log = logging.getLogger(__name__)


def bench(artifacts: Any, **options: Any) -> BenchReport:
    """:func:`bortconv.bench.harness.bench` with the baselines built (once, cached) by the export pipeline."""
    return measured.bench(artifacts, build_baseline=ensure_baseline, build_int8_baseline=ensure_int8_baseline,
                          **options)


def _baseline_key(name: str) -> str:
    import hashlib

    from bortconv.manifest import versions
    v = versions()
    from bortconv.runtime.bort import ORT_DISABLED_OPTIMIZERS  # the fusion recipe: a different one is a new build
    blob = json.dumps([name, BASELINES[name], SEED, v["bortconv"], v["torch"], v["transformers"], v["onnx"],
                       v["onnxruntime"], list(ORT_DISABLED_OPTIMIZERS)], sort_keys=True)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def ensure_int8_baseline(onnx_dir: Path, threads: int | None) -> Path:
    """The baseline's fused ONNX through bortconv's ONNX Runtime int8 scheme (dynamic s8, per-channel,
    QAttention/QEmbedLayerNorm), built once beside it. No accuracy gate: its weights are random and it exists
    to be timed, so the int8 Bort artifacts have a same-pipeline int8 comparison."""
    from bortconv.manifest import carried_fields, read_manifest, write_manifest
    from bortconv.quantize import ort_int8

    out = onnx_dir.parent / "onnx-int8"
    if (out / MANIFEST_FILE).is_file():
        return out
    log.info("quantizing the baseline to int8 in %s (once)", out)
    tmp = onnx_dir.parent / f"onnx-int8.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_dir / CONFIG_FILE, tmp / CONFIG_FILE)
    ort_int8.quantize(onnx_dir / ONNX_FILE, tmp / ONNX_FILE, "dynamic-s8", calibration=[],
                      input_names=["input_ids", "attention_mask"])
    write_manifest(tmp, carried_fields(read_manifest(onnx_dir))
                   | {"precision": "int8", "int8": {"scheme": "dynamic-s8", "gate": "none (baseline)"}})
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def ensure_baseline(name: str, root: Path, threads: int | None) -> tuple[Path, Path]:
    """(HF directory, fused-ONNX artifact directory) of a random-weight baseline, built once into `root`.

    The HF directory is a ``BertModel`` (no pooler, like Bort's encoder) with seeded random weights, written
    by ``save_pretrained`` as safetensors; the ONNX directory is ``bortconv.export`` of it: the same
    pipeline, fusions and parity gate as Bort's artifacts.
    """
    import torch
    import transformers

    from bortconv.converters.hf_model import transformers_quiet
    from bortconv.pipeline.export import export

    base = root / _baseline_key(name)
    hf_dir, onnx_dir = base / "hf", base / "onnx"
    if not (hf_dir / WEIGHT_FILES[0]).is_file():
        log.info("writing the random-weight %s baseline to %s (once)", name, hf_dir)
        tmp = base / f"hf.tmp{os.getpid()}"
        with transformers_quiet(transformers):
            torch.manual_seed(SEED)
            model = transformers.BertModel(transformers.BertConfig(**BASELINES[name]), add_pooling_layer=False)
            model.save_pretrained(str(tmp), safe_serialization=True)
            del model
        if hf_dir.exists():
            shutil.rmtree(hf_dir)
        tmp.rename(hf_dir)
    if not (onnx_dir / MANIFEST_FILE).is_file():
        log.info("exporting the %s baseline to fused ONNX in %s (once)", name, onnx_dir)
        export(hf_dir, onnx_dir, target="onnx", threads=threads, bench=False, progress=False, force=True)
    return hf_dir, onnx_dir


