"""int8 for ONNX Runtime on the transformer-fused graph.

Schemes (all with int8 weights, per output channel where the op supports it):
- ``dynamic-s8``: activations quantized at run time (u8), weights s8; fused Attention/EmbedLayerNorm become
  QAttention/QEmbedLayerNormalization, so the word embedding is stored int8 too.
- ``dynamic-s8-reduced``: the same with 7-bit weights. On AVX2 without VNNI, u8 x s8 products go through
  VPMADDUBSW, whose 16-bit sums saturate (onnxruntime #14642, #5849); 7-bit weights cannot saturate.
- ``dynamic-u8``: u8 weights (u8 x u8 kernels: no saturation, usually slower).
- ``static-qdq-s8``: calibrated activations (MinMax over the calibration text), QDQ format, s8/s8, on the
  MatMuls; the fused embedding and attention nodes get int8 weights through their Q* contrib kernels.
- ``matmulnbits-s8``: the MatMuls become MatMulNBits with 8-bit symmetric weights in blocks of 64 along the
  input dimension, at accuracy level 4 (int8 compute with activations quantized per block of 64, not per
  tensor); the word embedding through QEmbedLayerNormalization; the fused Attention computes in fp32 on its
  QKV weight stored int8 per column (:func:`_int8_attention_weights`). The per-tensor
  activation scale of the dynamic schemes is what fails on one- to three-word texts, whose few tokens include
  [CLS]/[SEP] with outlying values (MiniLM: worst sentence cosine 0.93-0.96 on x86 and emulated aarch64); per
  block it stays >= 0.997 (docs/arm.md).
Which one is used: the first of :func:`default_candidates` that passes the accuracy gate, unless another
passing one is clearly faster in the same run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import INT8_SCHEMES

log = logging.getLogger(__name__)

SCHEMES = INT8_SCHEMES["onnx"]
#: MatMulNBits' weight block (along K) and accuracy level 4: int8 compute, activations quantized per block.
#: 64, not 32: half the fp32 scales (MiniLM with the int4 word table: 17.8 MB, not 18.3), and the same fidelity
#: there (worst of 20 one- to three-word texts 0.992 vs 0.994; the gate's worst 0.9935 vs 0.9928; AMX Xeon)
NBITS_BLOCK, NBITS_ACCURACY = 64, 4
QUANTIZABLE = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather", "Gemm")


def default_candidates(vnni: bool, arch: str = "x86_64") -> tuple[str, ...]:
    """Schemes worth trying on this CPU family, best first: ``matmulnbits-s8`` everywhere, the only one that holds
    on one- to three-word texts (per-block activation scales; the dynamic and static schemes' per-tensor scale
    does not). Measured on all-MiniLM-L6-v2 (int4 word table) against transformers' fp32 on
    tests/data/short_en.txt, Xeon with AMX, onnxruntime 1.32: worst sentence cosine 0.954 for dynamic-s8, 0.958
    dynamic-u8, 0.935 static-qdq-s8, 0.994 matmulnbits-s8 (keeping any one layer, or every FFN output MatMul, in
    fp32 left dynamic-s8 below 0.98); on emulated aarch64 the same (docs/arm.md). It is slower than fp32 there
    (1x128, 2 threads: 25.5 ms vs 20.8; dynamic-s8 11.8), so the export says so; the per-tensor schemes follow
    for models where they pass the gate, and the choice keeps one if it is clearly faster. Without VNNI
    full-range s8 weights can saturate: 7-bit weights first among those."""
    if arch == "aarch64":
        return ("matmulnbits-s8",)
    return ("matmulnbits-s8", "dynamic-s8", "static-qdq-s8", "dynamic-u8") if vnni else \
        ("matmulnbits-s8", "dynamic-s8-reduced", "dynamic-u8", "static-qdq-s8")


def node_groups(model_path: Path) -> dict[str, list[str]]:
    """Quantizable nodes by encoder layer ("layer.N"), "embeddings" and "head", for mixed precision."""
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type not in QUANTIZABLE:
            continue
        # the node's own name first, then what it produces (a fused Attention is named "Attention_3" but
        # writes layer 3's tensor), its inputs last (they come from the previous layer)
        text = " ".join([node.name, *node.output, *node.input])
        m = re.search(r"layer\.(\d+)(?:\D|$)", text)
        if m:
            g = f"layer.{int(m.group(1))}"
        elif node.op_type in ("EmbedLayerNormalization", "Gather") or "embeddings" in text:
            g = "embeddings"
        else:
            g = "head"
        groups.setdefault(g, []).append(node.name)
    return groups


class _Reader:
    """ORT CalibrationDataReader over a fixed list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter([{k: f[k] for k in names} for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _beside(fp32: Path, out: Path) -> Path:
    """The source model linked (or copied) beside `out`: ONNX Runtime's quantizers write a shape-inferred copy
    next to the model they read (``model-inferred.onnx``, quant_utils.load_model_with_shape_infer), which must not
    appear in the user's fp32 artifact, however briefly (a read-only directory, a server or a copy reading it)."""
    staged = out.with_name(out.stem + ".src.onnx")
    staged.unlink(missing_ok=True)
    try:
        os.link(fp32, staged)
    except OSError:  # another filesystem, or no hard links there
        shutil.copyfile(fp32, staged)
    return staged


def quantize(fp32: Path, out: Path, scheme: str, *, calibration: Sequence[dict[str, np.ndarray]],
             input_names: Sequence[str], exclude: Sequence[str] = ()) -> None:
    """Write the int8 model for `scheme`, leaving the nodes in `exclude` in fp32. Nothing is written beside
    `fp32` (:func:`_beside`)."""
    src = _beside(Path(fp32), Path(out))
    try:
        _quantize(src, out, scheme, calibration=calibration, input_names=input_names, exclude=exclude)
    finally:
        src.unlink(missing_ok=True)


def _quantize(fp32: Path, out: Path, scheme: str, *, calibration: Sequence[dict[str, np.ndarray]],
              input_names: Sequence[str], exclude: Sequence[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from bortconv.converters.onnx_export import _quiet

    # The fused graph carries contrib ops the quantizer cannot type; without a default it fails with
    # "Unable to find data type for weight_name" (export-notes).
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    with _quiet():
        if scheme.startswith("dynamic"):
            quantize_dynamic(str(fp32), str(out), per_channel=True, reduce_range=scheme.endswith("reduced"),
                             weight_type=QuantType.QUInt8 if scheme == "dynamic-u8" else QuantType.QInt8,
                             nodes_to_exclude=list(exclude), extra_options=extra)
        elif scheme == "static-qdq-s8":
            # MatMul and Gather only: the fused contrib ops have no QDQ kernels, and the head's Gemm bias
            # cannot be given an int32 scale (ValueError in _quantize_bias_tensors).
            staged = out.with_name(out.stem + ".qdq.onnx")
            quantize_static(str(fp32), str(staged), _Reader(calibration, input_names), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=list(exclude),
                            extra_options={**extra, "ActivationSymmetric": False, "WeightSymmetric": True})
            # ...so the fused EmbedLayerNormalization (the word-embedding table: half of Bort's bytes) and the
            # fused Attention weights would stay fp32 and the artifact would shrink by only ~25%. They get the
            # int8-weight contrib kernels (QEmbedLayerNormalization, QAttention) instead.
            quantize_dynamic(str(staged), str(out), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["EmbedLayerNormalization", "Attention"],
                             nodes_to_exclude=list(exclude), extra_options=extra)
            staged.unlink()
        elif scheme == "matmulnbits-s8":
            _matmul_nbits(fp32, out, exclude, extra)
        else:
            raise ValueError(f"unknown ONNX Runtime int8 scheme {scheme}")


def _matmul_nbits(fp32: Path, out: Path, exclude: Sequence[str], extra: dict) -> None:
    """matmulnbits-s8 (module docstring): int8 embedding table first, then 8-bit MatMulNBits."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    # its first import calls logging.basicConfig(level=INFO): inside _quiet that undid the quiet root (ERROR, no
    # new handler), and a script calling bortconv.export printed ~90 of its INFO lines during the run
    root.setLevel(level)
    root.handlers[:] = handlers

    staged = out.with_name(out.stem + ".emb.onnx")
    quantize_dynamic(str(fp32), str(staged), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["EmbedLayerNormalization"], nodes_to_exclude=list(exclude),
                     extra_options=extra)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(staged)), bits=8, block_size=NBITS_BLOCK, is_symmetric=True,
                                     accuracy_level=NBITS_ACCURACY, nodes_to_exclude=list(exclude))
    quantizer.process()
    _int8_attention_weights(quantizer.model.model, exclude)
    quantizer.model.save_model_to_file(str(out), False)
    staged.unlink()


def _int8_attention_weights(model: Any, exclude: Sequence[str]) -> None:
    """Store each fused Attention's QKV weight (a third of an encoder layer's weights) as int8, symmetric with one
    scale per output column, behind a DequantizeLinear: MatMulNBits only takes MatMul nodes, and QAttention
    quantizes its activations per tensor, the failing mode above. Weight-only, so the Attention kernel computes
    in fp32 as before, on weights dequantized at run time (MiniLM: 26.2 -> 18.3 MB; the same sentence cosines)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    dequantize = []
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "Attention" and len(node.input) > 1 else None
        if weight is None or node.name in exclude:
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)  # (hidden, 3 * hidden)
        scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        names = [f"{weight.name}_q8", f"{weight.name}_scale", f"{weight.name}_zero"]
        model.graph.initializer.remove(weight)
        model.graph.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                                        numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), names[2])])
        dequantize.append(helper.make_node("DequantizeLinear", names, [weight.name], name=f"{weight.name}_dq",
                                           axis=1))
    for n in reversed(dequantize):  # they read initializers only: first in topological order
        model.graph.node.insert(0, n)
