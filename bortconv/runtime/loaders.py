"""How an artifact is meant to be loaded, and what each way of loading gives on the CPU at hand.

Two loaders judge every artifact, at export and in `validate`:

    bortconv   bortconv's own runtime (:func:`bortconv.runtime.bort.open_session`): threads and the inference
               precision the manifest records, pinned
    stock      what a user's own code does: ``ov.Core().compile_model(xml, "CPU")`` with no hints, and
               ``ort.InferenceSession(path, disabled_optimizers=["SkipLayerNormFusion"])`` (the one option the
               docs tell ONNX Runtime users to pass)

OpenVINO's CPU plugin picks its inference precision from the CPU when nothing pins it, and which one varies by
CPU and version (OpenVINO 2026.4.1: bf16 on an AMX Xeon and on an AMD EPYC with AVX512_BF16, f16 on several ARM
cores, f32 on others), so nothing here assumes it: :func:`stock_precision` asks the plugin itself. A hint saved in
the IR's rt_info is not read by ``compile_model`` (measured: ``runtime_options/INFERENCE_PRECISION_HINT`` is
kept in the file and ignored), so the pin cannot travel inside the IR: the manifest and the docs carry it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError, MissingDependencyError
from bortconv.layout import ONNX_FILE, OV_XML

LOADERS = ("bortconv", "stock")
#: inference precision an artifact of each precision is pinned to on OpenVINO (its manifest records it)
OV_INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16"}
#: what ONNX Runtime's CPU provider computes in, per artifact precision (it has no bf16 GEMM on x86 CPUs)
ORT_INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f32 (fp16 weights, f32 compute)", "int8": "int8 / f32"}


class StockSession:
    """An artifact loaded as a user's own code loads it (module docstring), with the Session interface."""

    def __init__(self, artifact_dir: Path) -> None:
        if (artifact_dir / OV_XML).is_file():
            import openvino as ov
            self.compiled = ov.Core().compile_model(str(artifact_dir / OV_XML), "CPU")
            self.request = self.compiled.create_infer_request()
            self.input_names = [p.get_any_name() for p in self.compiled.inputs]
            self.kind = "openvino"
        elif (artifact_dir / ONNX_FILE).is_file():
            import onnxruntime as ort

            from bortconv.runtime.bort import ORT_DISABLED_OPTIMIZERS
            self.session = ort.InferenceSession(str(artifact_dir / ONNX_FILE), providers=["CPUExecutionProvider"],
                                                disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS))
            self.input_names = [i.name for i in self.session.get_inputs()]
            self.kind = "onnxruntime"
        else:
            raise InputError(f"{artifact_dir}: holds neither {ONNX_FILE} nor {OV_XML}")

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.kind == "openvino":
            return np.array(self.request.infer({k: feeds[k] for k in self.input_names})[self.compiled.outputs[0]])
        return self.session.run(None, {k: feeds[k] for k in self.input_names})[0]  # type: ignore[no-any-return]


def open_as(artifact_dir: str | os.PathLike[str], loader: str, threads: int | None = None,
            precision: str | None = None) -> Any:
    """A session of the artifact as `loader` loads it ("bortconv" or "stock"); `precision` overrides the
    OpenVINO inference precision bortconv's runtime pins (default: the manifest's)."""
    d = Path(artifact_dir)
    if loader == "stock":
        try:
            return StockSession(d)
        except ImportError as exc:
            raise MissingDependencyError(f"loading {d} needs its runtime: {exc}") from None
    if loader != "bortconv":
        raise InputError(f"loader '{loader}' is not one of {', '.join(LOADERS)}")
    from bortconv.runtime.bort import open_session
    return open_session(d, threads, precision=precision)


def session_precision(session: Any) -> str:
    """The precision a session infers in: what OpenVINO compiled it for, f32 for ONNX Runtime."""
    compiled = getattr(session, "compiled", None)
    return _ov_type_name(compiled.get_property("INFERENCE_PRECISION_HINT")) if compiled is not None else "f32"


def _ov_type_name(t: Any) -> str:
    name = str(getattr(t, "get_type_name", lambda: t)())
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16", "f32": "f32", "bf16": "bf16",
            "f16": "f16"}.get(name, name)


@lru_cache(maxsize=1)
def stock_precision() -> str:
    """The inference precision OpenVINO's CPU plugin picks here when nothing pins it ("f32", "bf16", "f16")."""
    import openvino as ov
    return _ov_type_name(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


@lru_cache(maxsize=1)
def native_bf16() -> tuple[bool, str]:
    """(whether this CPU computes bf16 natively, the instruction sets that say so) -- AMX-BF16 or AVX512_BF16."""
    from bortconv.runtime.cpu import cpu_flags
    _, flags = cpu_flags()
    have = sorted(flags & {"amx_bf16", "avx512_bf16"})
    return bool(have), ", ".join(have) or "neither amx_bf16 nor avx512_bf16"


def loading_contract(target: str, precision: str) -> dict[str, Any]:
    """The manifest's `loading` section: per runtime, how the weights are stored, which precision inference
    runs in under bortconv's runtime and under stock loading on this CPU, and the exact load configuration."""
    from bortconv.runtime.bort import ORT_DISABLED_OPTIMIZERS
    weights = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp16 (OpenVINO-compressed; bf16 at compile time)",
               "int8": "int8 (+fp32)"}
    if target == "openvino":
        pinned = OV_INFERENCE_PRECISION[precision]
        stock = stock_precision()
        return {"runtime": "openvino", "weights": weights[precision], "inference_precision": pinned,
                "config": {"INFERENCE_PRECISION_HINT": pinned},
                "stock": {"call": 'ov.Core().compile_model(xml, "CPU")', "inference_precision_here": stock,
                          "note": f'ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") gave {stock} on the CPU '
                                  "this was written on; other CPUs may pick another precision. Pass "
                                  f'{{"INFERENCE_PRECISION_HINT": "{pinned}"}} to get what bortconv checked'}}
    return {"runtime": "onnxruntime", "weights": weights[precision],
            "inference_precision": ORT_INFERENCE_PRECISION[precision],
            "config": {"disabled_optimizers": list(ORT_DISABLED_OPTIMIZERS)},
            "stock": {"call": 'ort.InferenceSession(path, disabled_optimizers=["SkipLayerNormFusion"])',
                      "inference_precision_here": ORT_INFERENCE_PRECISION[precision]}}
