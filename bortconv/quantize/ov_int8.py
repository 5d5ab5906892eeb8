"""int8 for OpenVINO with NNCF post-training quantization for transformers.

``nncf.quantize(model_type=TRANSFORMER)`` keeps the softmax/LayerNorm paths in float and applies SmoothQuant
where it helps; bias correction is on. Two CPU-dependent choices: on CPUs without VNNI the int8 kernels can
overflow (nncf #1498), so ``overflow_fix`` is enabled there; and fp32 inference stays f32 (no bf16 hint).
The Gather of the word embedding is quantized by NNCF as well, so the IR shrinks about 4x.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import INT8_SCHEMES

SCHEMES = INT8_SCHEMES["openvino"]
#: op types NNCF leaves in float in "nncf-ptq-fp-attention". A quantized ScaledDotProductAttention runs as one
#: int8 Subgraph kernel (jit_avx512_i8) which, compiled for bf16 inference (OpenVINO's default on CPUs with
#: AMX), returns wrong values when the sequence length equals the head size (sentence cosine 0.77 at 32 tokens
#: for MiniLM's 32-wide heads, 0.99+ at 31 and 33; measured with OpenVINO 2026.4.1). Kept in float, the stock
#: load passes at every length and the IR is as fast (the attention matmuls are a few % of the FLOPs).
FLOAT_OPS = ("ScaledDotProductAttention",)

log = logging.getLogger(__name__)


def default_candidates(vnni: bool, arch: str = "x86_64") -> tuple[str, ...]:
    """Schemes to try, preferred first: weight-only int8 on every CPU family. The activation-quantized schemes
    (NNCF PTQ, with or without SmoothQuant or float attention) lose one- to three-word texts, whose few tokens
    include [CLS]/[SEP] with outlying values, on x86 as on ARM. Measured on all-MiniLM-L6-v2 (int4 word table)
    against transformers' fp32 on tests/data/short_en.txt, Xeon with AMX, OpenVINO 2026.4.1: worst sentence
    cosine 0.85 ("Thank you!") for nncf-ptq-fp-attention and nncf-ptq, 0.93 for nncf-ptq-smoothquant-off, 0.991
    for nncf-weights-only; calibrating on short texts as well did not help (0.85). Weight-only was also as fast
    under the stock load there (1x128, 2 threads: 7.1 ms vs PTQ 6.9 and fp32 8.7). The PTQ schemes follow for
    models where they pass the gate: the choice keeps one only if it is clearly faster in the same run (on CPUs
    without VNNI, where oneDNN runs int8 FullyConnected through ``jit_gemm_i8``, it is slower than fp32).
    `vnni` no longer changes the order; it stays in the signature every backend shares."""
    del vnni
    if arch == "aarch64":
        # measured on emulated Cortex-A72 and Neoverse-N1 (docs/arm.md): weight-only int8 holds under f32 and
        # under N1's stock f16; the PTQ schemes are not tried there
        return ("nncf-weights-only",)
    return ("nncf-weights-only", "nncf-ptq-fp-attention", "nncf-ptq", "nncf-ptq-smoothquant-off")


def node_groups(model: Any) -> dict[str, list[str]]:
    """Operation names by encoder layer / embeddings / head, for NNCF's ignored scope."""
    groups: dict[str, list[str]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Gather", "Convolution"):
            continue
        name = op.get_friendly_name()
        m = re.search(r"layer\.(\d+)(?:\D|$)", name)
        g = f"layer.{int(m.group(1))}" if m else ("embeddings" if "embed" in name or op.get_type_name() == "Gather"
                                                   else "head")
        groups.setdefault(g, []).append(name)
    return groups


def quantize(fp32_xml: Path, scheme: str, *, calibration: Sequence[dict[str, np.ndarray]], vnni: bool,
             exclude: Sequence[str] = ()) -> Any:
    """The int8 ov.Model for `scheme` (not saved), leaving operations in `exclude` in float."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters, OverflowFix)

    from bortconv.converters.onnx_export import _quiet

    # NNCF logs its bit-width statistics table at INFO through its own stdout handler (redirect_stdout misses
    # it): it belongs in the debug log, not in the output of `bortconv export --json`.
    nncf.set_log_level(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    model = ov.Core().read_model(str(fp32_xml))
    if scheme == "nncf-weights-only":
        with _quiet():
            return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                         ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False))
    names = [p.get_any_name() for p in model.inputs]
    data = nncf.Dataset([{k: f[k] for k in names} for f in calibration])
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE if vnni else OverflowFix.ENABLE)
    if scheme == "nncf-ptq-smoothquant-off":
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=-1)
    elif scheme not in ("nncf-ptq", "nncf-ptq-fp-attention"):
        raise ValueError(f"unknown OpenVINO int8 scheme {scheme}")
    float_attention = scheme == "nncf-ptq-fp-attention"
    names = list(exclude) + (activation_matmuls(model) if float_attention else [])
    scope = nncf.IgnoredScope(names=names, types=list(FLOAT_OPS) if float_attention else [], validate=False)
    with _quiet():
        return nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration),
                             ignored_scope=scope, advanced_parameters=advanced)


#: ops a weight passes through between its Constant and the MatMul that uses it
_WEIGHT_PATH = ("Convert", "Multiply", "Subtract", "Reshape", "Transpose", "FakeQuantize", "Unsqueeze")


def _from_constant(output: Any, depth: int = 0) -> bool:
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "Constant":
        return True
    if depth > 6 or kind not in _WEIGHT_PATH:
        return False
    inputs = range(1 if kind in ("FakeQuantize", "Reshape", "Transpose", "Unsqueeze", "Convert")
                   else node.get_input_size())
    return all(_from_constant(node.input_value(i), depth + 1) for i in inputs)


def activation_matmuls(model: Any) -> list[str]:
    """MatMuls of two activations (attention scores and context where attention is not one SDPA op): kept in
    float with SDPA in "nncf-ptq-fp-attention" (see FLOAT_OPS)."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
            and not any(_from_constant(op.input_value(i)) for i in (0, 1))]
