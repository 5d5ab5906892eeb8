"""OpenVINO IR from the PyTorch module and from the plain ONNX graph; the faster one is kept.

OpenVINO's `save_model` compresses weights to fp16 unless told otherwise (openvino #30041): bortconv always
passes `compress_to_fp16` explicitly, fp32 unless --fp16 was asked for.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.converters.onnx_export import _quiet, example_inputs, input_names
from bortconv.errors import ExportError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OvCandidate:
    source: str  # "pytorch" or "onnx"
    model: Any
    median_ms: float


def _name_io(model: Any, names: list[str], output_name: str) -> Any:
    for port, name in zip(model.inputs, names):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({output_name})
    return model


def from_pytorch(module: Any, *, output_name: str, static_shape: tuple[int, int] | None) -> Any:
    import openvino as ov
    import torch

    names = input_names(module)
    b, length = static_shape or (2, 16)
    shape = ov.PartialShape([b, length] if static_shape else [-1, -1])
    feeds = example_inputs(module, b, length)
    with _quiet(), torch.no_grad():
        model = ov.convert_model(module, example_input=feeds, input=[(n, shape, ov.Type.i64) for n in names])
    return _name_io(model, names, output_name)


def from_onnx(onnx_path: Path, *, output_name: str, names: list[str]) -> Any:
    import openvino as ov

    with _quiet():
        model = ov.convert_model(str(onnx_path))
    return _name_io(model, names, output_name)


def time_model(model: Any, feeds: dict[str, np.ndarray], threads: int | None, runs: int = 15) -> float:
    """Median latency (ms) of a compiled model at one shape, after warm-up."""
    from bortconv.runtime import OpenVinoSession

    sess = OpenVinoSession("", threads, model=model)
    for _ in range(3):
        sess.run(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def best_openvino(module: Any, plain_onnx: Path, *, output_name: str, static_shape: tuple[int, int] | None,
                  threads: int | None, bench_feeds: dict[str, np.ndarray]) -> tuple[OvCandidate, list[OvCandidate]]:
    """Convert both ways, time both at one shape in this process, return the faster (and all candidates)."""
    names = input_names(module)
    candidates = []
    errors = []
    for source, make in (("pytorch", lambda: from_pytorch(module, output_name=output_name,
                                                             static_shape=static_shape)),
                         ("onnx", lambda: from_onnx(plain_onnx, output_name=output_name, names=names))):
        try:
            model = make()
        except Exception as exc:  # one route failing is not fatal while the other works
            log.warning("OpenVINO conversion from %s failed: %s", source, str(exc).splitlines()[0][:200])
            errors.append(f"{source}: {str(exc).splitlines()[0][:200]}")
            continue
        candidates.append(OvCandidate(source, model, time_model(model, bench_feeds, threads)))
    if not candidates:
        raise ExportError("OpenVINO conversion failed both from PyTorch and from ONNX: " + "; ".join(errors))
    best = min(candidates, key=lambda c: c.median_ms)
    return best, candidates


def save_ir(model: Any, xml: Path, *, fp16: bool) -> None:
    import openvino as ov
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
