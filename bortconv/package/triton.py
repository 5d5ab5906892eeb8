"""A Triton Inference Server model repository entry: ``NAME/config.pbtxt`` + ``NAME/1/<model file>``.

The config is Triton's ``ModelConfig`` protobuf in text format (the schema of tritonclient's
``model_config_pb2``; the tests parse it with it). Inputs and outputs are the model file's own (names, types,
shapes; dynamic axes -1). A dynamic batch axis becomes ``max_batch_size`` N with the batch left out of
``dims``; a static-shape artifact gets ``max_batch_size: 0`` and its full dims, since Triton could otherwise
hand it fewer rows than its fixed batch.

What the artifact's own session settings become (docs/deploy.md says what cannot be expressed):

- ONNX Runtime (``platform: "onnxruntime_onnx"``): threads -> ``intra_op_thread_count`` (and 1 inter-op
  thread). The backend has no parameter for ``disabled_optimizers``; the config sets ``optimization { graph {
  level: -1 } }`` (ORT_ENABLE_BASIC) instead, which does not run SkipLayerNormFusion or any other extended
  fusion at load: the artifact's graph is fused already, and basic level gave the same outputs (max diff 0)
  as bortconv's own session (all levels, SkipLayerNormFusion disabled).
- OpenVINO (``backend: "openvino"``, ``model.xml/.bin``): ``PERFORMANCE_HINT`` LATENCY and
  ``INFERENCE_NUM_THREADS``; a bf16-pinned artifact (manifest ``loading.inference_precision``) gets
  ``HINT_BF16: YES``. The backend has no f32 hint (it accepts HINT_BF16 YES and nothing else for precision),
  so on CPUs where the plugin's default is bf16 (what ``ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")``
  reports there) Triton runs an f32-pinned artifact in bf16.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bortconv.layout import ONNX_FILE, OV_BIN, OV_XML
from bortconv.manifest import static_shape
from bortconv.package.signature import Signature, TensorSpec
from bortconv.runtime.bort import pinned_precision

CONFIG_FILE = "config.pbtxt"
VERSION = "1"
#: Triton's TYPE_* names for the element types bortconv artifacts use
TRITON_TYPES = {"int64": "TYPE_INT64", "int32": "TYPE_INT32", "float32": "TYPE_FP32", "float16": "TYPE_FP16",
                "bool": "TYPE_BOOL", "string": "TYPE_STRING", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8",
                "float64": "TYPE_FP64"}
#: the largest batch Triton may send when the batch axis is dynamic (BortRuntime's default batch is 16)
DEFAULT_MAX_BATCH = 16


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensors(kind: str, specs: Sequence[TensorSpec], batched: bool) -> list[str]:
    lines = [f"{kind} ["]
    for k, t in enumerate(specs):
        dims = t.shape[1:] if batched else t.shape
        sep = "," if k < len(specs) - 1 else ""
        lines += ["  {", f"    name: {_quote(t.name)}", f"    data_type: {TRITON_TYPES[t.dtype]}",
                  f"    dims: [ {', '.join(map(str, dims))} ]", "  }" + sep]
    return lines + ["]"]


def _parameters(params: dict[str, str]) -> list[str]:
    return [f"parameters {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}" for k, v in params.items()]


def triton_config(name: str, sig: Signature, *, threads: int | None, max_batch_size: int,
                  precision: str = "f32") -> str:
    """config.pbtxt text for a model of signature `sig` (max_batch_size 0: no batch axis in dims)."""
    batched = max_batch_size > 0
    lines = [f"name: {_quote(name)}"]
    if sig.runtime == "onnxruntime":
        lines.append('platform: "onnxruntime_onnx"')
        default_file = ONNX_FILE
    else:
        lines.append('backend: "openvino"')
        default_file = "model.xml"
    lines += [f"default_model_filename: {_quote(default_file)}", f"max_batch_size: {max_batch_size}"]
    lines += _tensors("input", sig.inputs, batched) + _tensors("output", sig.outputs, batched)
    lines += ["instance_group [", "  {", "    count: 1", "    kind: KIND_CPU", "  }", "]"]
    if sig.runtime == "onnxruntime":
        # no way to pass disabled_optimizers: basic level keeps ORT from re-fusing the fused graph (module doc)
        lines += ["optimization { graph { level: -1 } }"]
        params = {"inter_op_thread_count": "1", "execution_mode": "0"}
        if threads:
            params = {"intra_op_thread_count": str(threads), **params}
    else:
        params = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if threads:
            params["INFERENCE_NUM_THREADS"] = str(threads)
        if precision == "bf16":
            params["HINT_BF16"] = "YES"
    return "\n".join(lines + _parameters(params)) + "\n"


def max_batch_for(sig: Signature, static_shape: Sequence[int] | None) -> int:
    """Triton's max_batch_size for this model: 0 for a static batch axis, else DEFAULT_MAX_BATCH."""
    return DEFAULT_MAX_BATCH if sig.batch_dynamic and not static_shape else 0


def write_triton(artifact_dir: Path, repo: Path, name: str, sig: Signature, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``repo/name/config.pbtxt`` and ``repo/name/1/<model file>``; returns what was written."""
    version_dir = repo / name / VERSION
    version_dir.mkdir(parents=True)
    if sig.runtime == "onnxruntime":
        shutil.copyfile(artifact_dir / ONNX_FILE, version_dir / ONNX_FILE)
        files = [f"{name}/{VERSION}/{ONNX_FILE}"]
    else:  # the OpenVINO backend's default names; an IR finds its weights by the .xml's own name
        shutil.copyfile(artifact_dir / OV_XML, version_dir / "model.xml")
        shutil.copyfile(artifact_dir / OV_BIN, version_dir / "model.bin")
        files = [f"{name}/{VERSION}/model.xml", f"{name}/{VERSION}/model.bin"]
    threads = manifest.get("threads") or manifest.get("parity_threads")
    mbs = max_batch_for(sig, static_shape(manifest))
    precision = pinned_precision(artifact_dir)
    (repo / name / CONFIG_FILE).write_text(triton_config(name, sig, threads=threads, max_batch_size=mbs,
                                                         precision=precision))
    return {"models": {name: {"config": f"{name}/{CONFIG_FILE}", "files": files, "max_batch_size": mbs,
                              "threads": threads, "precision": precision}}}
