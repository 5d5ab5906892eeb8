"""The export's memory cost model: how much resident memory `bortconv export` needs for a model, and the
OpenVINO route that fits a --max-memory budget (the watchdog that enforces the budget is
:mod:`bortconv._util.memory`)."""

from __future__ import annotations

import logging

from bortconv._util.memory import fmt_size
from bortconv.errors import MemoryBudgetError

log = logging.getLogger(__name__)


#: Peak RSS of `bortconv export` (MiB) as fixed + per_weight x (fp32 weight MiB), by (target, int8, both
#: OpenVINO routes). Fitted to the kernel's high-water marks (VmHWM) of two models with this version's stage
#: order (PyTorch outputs recorded, model freed before the optimizer/compiler), then rounded up ~3%:
#:   (target, int8, both routes)   Bort, 287 MiB of weights   all-MiniLM-L6-v2, 87 MiB   largest stage
#:   onnx fp32                      1558                       780                        torch.onnx.export
#:   openvino fp32, both routes     1557                       801                        torch.onnx.export
#:   openvino fp32, ONNX route      1560                       762                        torch.onnx.export
#:   onnx int8                      2288                       977                        int8 candidates
#:   openvino int8, ONNX route      1898                       965                        NNCF
#:   openvino int8, both routes     1917                       1012                       NNCF
EXPORT_PEAK_MB: dict[tuple[str, bool, bool], tuple[float, float]] = {
    ("onnx", False, False): (470.0, 3.95),
    ("openvino", False, True): (500.0, 4.05),   # never planned below the ONNX route alone
    ("openvino", False, False): (450.0, 4.05),
    ("onnx", True, False): (440.0, 6.7),
    ("openvino", True, False): (590.0, 4.75),
    ("openvino", True, True): (650.0, 4.75),
}


def export_need(weights: int, *, target: str, int8: bool, both_routes: bool, fill_mask: bool = False) -> int:
    """Bytes of resident memory `bortconv export` is expected to peak at for a model of `weights` fp32 bytes."""
    fixed, per = EXPORT_PEAK_MB[(target, int8, both_routes and target == "openvino")]
    extra = weights if fill_mask else 0  # fill-mask keeps the PyTorch model through parity
    return int(fixed * 2**20 + per * weights + extra)


def fit_budget(limit: int, weights: int, *, target: str, int8: bool, route: str, fill_mask: bool) -> str:
    """The OpenVINO route to take under a `limit`-byte budget; raises MemoryBudgetError if nothing fits.

    `auto` converts to OpenVINO both from ONNX and from PyTorch and keeps the faster; when only one fits,
    the ONNX route (auto's preference on a near-tie) is taken and the manifest says why."""
    both = target == "openvino" and route in ("auto", "fastest")
    need = export_need(weights, target=target, int8=int8, both_routes=both, fill_mask=fill_mask)
    if need <= limit:
        return route
    if both and route == "auto":
        single = export_need(weights, target=target, int8=int8, both_routes=False, fill_mask=fill_mask)
        if single <= limit:
            log.warning("--max-memory %s: converting to OpenVINO from ONNX only (both routes need about %s)",
                        fmt_size(limit), fmt_size(need))
            return "onnx"
        need = single
    raise MemoryBudgetError(
        f"export: this model ({fmt_size(weights)} of fp32 weights{', int8' if int8 else ''}) needs about "
        f"{fmt_size(need)} of resident memory, over --max-memory {fmt_size(limit)}; nothing was written")
