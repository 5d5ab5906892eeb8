"""OpenVINO IR from the plain ONNX graph (by default) or from the PyTorch module.

Route (`--openvino-from`): by default (auto) both are converted and timed, and the PyTorch IR is kept only when
it is clearly faster (`measure.keep_preferred`); near-ties go to the ONNX route, so the same source gives the same IR on
every run. `fastest` keeps whichever timed faster, with no margin: not reproducible, because on Bort the two
routes are within timing noise of each other (bort_4_8_768_1024, 2 threads, OpenVINO 2026.4, median of 5 x 10 runs,
ms: 1x128 pytorch 184 / onnx 187; 4x128 496 / 462; 1x512 251 / 247), so the choice was a coin toss.

Reproducible files: OpenVINO names the nodes it creates from a process-wide counter (`Constant_18280`,
`Model4`), so the same graph converted twice gets different XML. :func:`save_ir` renames those nodes by
their position in the graph before saving.

OpenVINO's `save_model` compresses weights to fp16 unless told otherwise (openvino #30041): bortconv always
passes `compress_to_fp16` explicitly, fp32 unless --fp16 was asked for.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.converters.onnx_export import _quiet, example_inputs, input_names
from bortconv.errors import ExportError
from bortconv.measure import Latency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OvCandidate:
    source: str  # "pytorch" or "onnx"
    model: Any
    median_ms: float | None  # None when only one route was converted (nothing to choose, nothing timed)
    rounds_ms: tuple[float, ...] = ()  # its median in each interleaved round (what the choice compares)
    decision: dict[str, Any] | None = None  # on the kept candidate: how it was chosen (measure.confirmed_choice)


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
    from bortconv._util.atomic import interrupts_deferred
    with interrupts_deferred(), _quiet(), torch.no_grad():  # Ctrl-C lands after the tracer, not inside it
        model = ov.convert_model(module, example_input=feeds, input=[(n, shape, ov.Type.i64) for n in names])
    return _name_io(model, names, output_name)


def from_onnx(onnx_path: Path, *, output_name: str, names: list[str]) -> Any:
    import openvino as ov

    with _quiet():
        model = ov.convert_model(str(onnx_path))
    return _name_io(model, names, output_name)


def best_openvino(module: Any, plain_onnx: Path, *, output_name: str, static_shape: tuple[int, int] | None,
                  threads: int | None, bench_feeds: dict[str, np.ndarray],
                  route: str = "auto", names: list[str] | None = None) -> tuple[OvCandidate, list[OvCandidate]]:
    """Convert by `route` ("auto", "onnx", "pytorch" or "fastest"); return the IR kept and every candidate.

    "auto" converts both ways, times both in this process, and keeps the PyTorch IR only when it is clearly
    faster (:func:`bortconv.measure.keep_preferred`), so near-ties resolve to ONNX every time; "fastest" keeps
    whichever measured faster (no margin: not reproducible); "onnx"/"pytorch" convert one way and time nothing.
    `module` may be None for the "onnx" route (the exporter has freed it by then); `names` are then the ONNX
    inputs."""
    names = names if names is not None else input_names(module)
    makers = {"pytorch": lambda: from_pytorch(module, output_name=output_name, static_shape=static_shape),
              "onnx": lambda: from_onnx(plain_onnx, output_name=output_name, names=names)}
    order = {"auto": ["onnx", "pytorch"], "onnx": ["onnx"], "pytorch": ["pytorch"],
             "fastest": ["onnx", "pytorch"]}[route]
    models: dict[str, Any] = {}
    errors = []
    for source in order:
        try:
            models[source] = makers[source]()
        except Exception as exc:  # one route failing is not fatal while another may work
            log.warning("OpenVINO conversion from %s failed: %s", source, str(exc).splitlines()[0][:200])
            errors.append(f"{source}: {str(exc).splitlines()[0][:200]}")
    if not models:
        raise ExportError(f"OpenVINO conversion failed ({'; '.join(errors)})")
    if len(models) == 1:
        (source, model), = models.items()
        cand = OvCandidate(source, model, None)
        return cand, [cand]
    lat = time_models(models, bench_feeds, threads)
    candidates = [OvCandidate(s, m, lat[s].median_ms, lat[s].rounds_ms) for s, m in models.items()]
    by = {c.source: c for c in candidates}
    if route == "fastest":
        return min(candidates, key=lambda c: c.median_ms or 0.0), candidates
    from bortconv.measure import confirmed_choice
    kept, decision = confirmed_choice({k: lat[k] for k in ("onnx", "pytorch")},
                                      lambda keys: time_models({k: models[k] for k in keys}, bench_feeds, threads))
    return replace(by[kept], decision=decision), candidates


def time_models(models: dict[str, Any], feeds: dict[str, np.ndarray], threads: int | None) -> dict[str, Latency]:
    """The latency of each compiled model at one shape, measured in alternating rounds."""
    from bortconv.runtime.bort import OpenVinoSession
    from bortconv.measure import interleaved

    sessions = {k: OpenVinoSession("", threads, model=m) for k, m in models.items()}
    lat = interleaved({k: s.run for k, s in sessions.items()}, feeds, rounds=5, runs_per_round=3)
    return dict(lat)


#: an OpenVINO-made name: op type and counter (a folded constant keeps the name of the op it replaced)
_AUTO_NAME = re.compile(r"([A-Z][A-Za-z0-9]*)(?:_\d+)+")  # also Constant_206_1 (a duplicate made unique)


def stable_names(model: Any) -> Any:
    """Rename the nodes OpenVINO named from its process-wide counter (``Constant_18280``) by their position
    in the graph (``Constant_n12``), and the model itself: the same graph then serializes to the same XML."""
    for i, op in enumerate(model.get_ordered_ops()):
        m = _AUTO_NAME.fullmatch(op.get_friendly_name())
        if m:
            op.set_friendly_name(f"{m.group(1)}_n{i}")
    model.set_friendly_name("bortconv")
    return model


def save_ir(model: Any, xml: Path, *, fp16: bool) -> None:
    import openvino as ov
    ov.save_model(stable_names(model), str(xml), compress_to_fp16=fp16)
