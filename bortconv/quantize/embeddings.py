"""Weight-only quantization of the word-embedding table (``--embeddings int8|int4``), the biggest tensor.

The table is quantized in groups of `group_size` consecutive values of a row (int4: asymmetric, values 0..15
with a zero point; int8: symmetric, -128..127; one fp16 scale per group) and kept compressed in the model file
*and* in memory at run time, through each runtime's own kernels:

- ONNX Runtime: ``GatherBlockQuantized`` (com.microsoft; CPU kernel for int4 and for uint8 with ``bits=8``).
  The transformer-fused graph's ``EmbedLayerNormalization`` takes a float table, so it is unfused into
  GatherBlockQuantized (words) + GatherBlockQuantized int8 (positions) + Gather (token types) + Add +
  LayerNormalization, and its mask-index output becomes a ReduceSum of the attention mask (what the fused op
  computes).
- OpenVINO: the word Gather's weight input becomes the decompression subgraph NNCF writes for group-wise
  weights, Constant(u4|i8) -> Convert -> [Subtract(u4 zero point)] -> Multiply(fp16 scale) -> Reshape, which
  the CPU plugin runs as a compressed Gather (the table stays u4/i8 in memory).

The fp32 table is always the source (never an int8 table re-quantized). The MLM decoder of a fill-mask model
shares the table: ``--embeddings`` is refused there (:func:`check_task`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import is_embedding_group
from bortconv.errors import InputError

log = logging.getLogger(__name__)

#: int4 group size when none is given. Group 32 (fp16 scale + u4 zero point per group: 0.9 MB for MiniLM's
#: table) put OpenVINO int8 + int4 MiniLM at 18.1 MB, over issue 19's 18 MB; group 64 halves that overhead.
DEFAULT_GROUP = {"int4": 64}
BITS = {"int4": 4, "int8": 8}


@dataclass(frozen=True)
class Quantized:
    """A table quantized group-wise: `q` (rows x cols; int8 values -128..127, or int4 values 0..15 with `zero`
    points, one per group), fp16 `scales` (rows x cols/group)."""

    q: np.ndarray
    scales: np.ndarray
    group: int
    bits: int
    zero: np.ndarray | None = None  # uint8 zero points (rows x cols/group), int4 only

    def dequantized(self) -> np.ndarray:
        rows, cols = self.q.shape
        g = self.q.reshape(rows, cols // self.group, self.group).astype(np.float32)
        if self.zero is not None:
            g = g - self.zero[..., None].astype(np.float32)
        return (g * self.scales.astype(np.float32)[..., None]).reshape(rows, cols)

    @property
    def nbytes(self) -> int:
        """Stored bytes: packed values, fp16 scales and packed zero points."""
        zero = 0 if self.zero is None else self.zero.size * self.bits // 8
        return self.q.size * self.bits // 8 + self.scales.size * 2 + zero


def group_size(scheme: str, hidden: int, asked: int | None) -> int:
    """The group size for `scheme` on rows of `hidden` values: the one asked for (checked), else int4's default
    or, for int8, the largest power of two dividing a row (a whole row where it is one: per-row int8)."""
    if asked is None:
        asked = DEFAULT_GROUP.get(scheme) or max(g for g in (2**k for k in range(4, 14)) if hidden % g == 0)
        asked = min(asked, hidden)
    if not is_embedding_group(asked) or hidden % asked:
        raise InputError(f"embedding_group_size: {asked} must be a power of two >= 16 dividing the hidden size "
                         f"{hidden} (ONNX Runtime's GatherBlockQuantized kernel needs it)",
                         option="embedding_group_size")
    return asked


#: --embeddings auto: the int4 group sizes tried on the chosen int8 encoder, largest (smallest file) first. Issue
#: 19's MiniLM table: worst sentence cosine 0.991 at group 128, 0.996 at 32; 64 (the explicit default) is between.
AUTO_INT4_GROUPS = (128, 32)
#: what `--embeddings auto` does with int8, as the manifest states it
AUTO_RULE = ("--embeddings auto: on the int8 encoder already chosen (its scheme and fp32 layers), the tables in "
             "`order` are tried, smallest file first; the first the deployment gate passes is kept; if none passes, "
             "the int8 scheme's own word table (no --embeddings compression)")


def stored_bytes(scheme: str, group: int, values: int) -> int:
    """Bytes a table of `values` takes as `scheme` at `group` (values, fp16 scales, int4 zero points)."""
    bits = BITS[scheme]
    return values * bits // 8 + values // group * 2 + (values // group * bits // 8 if bits == 4 else 0)


def auto_ladder(hidden: int, pinned: int | None) -> list[tuple[str, int]]:
    """(scheme, group) that `--embeddings auto` tries, smallest file first, at most three gate runs: int4 at each
    of AUTO_INT4_GROUPS dividing a row, then int8 at its default group; `pinned` (--embedding-group-size): int4
    and int8 at that group only. Empty where no group fits (hidden size not a multiple of 16)."""
    if pinned is not None:
        return sorted(((s, group_size(s, hidden, pinned)) for s in ("int4", "int8")),
                      key=lambda sg: stored_bytes(*sg, hidden))
    if hidden % 16:
        return []
    tried = [("int4", g) for g in AUTO_INT4_GROUPS if g <= hidden and hidden % g == 0]
    return sorted(tried + [("int8", group_size("int8", hidden, None))], key=lambda sg: stored_bytes(*sg, hidden))


#: int4 clipping ratios tried per group (the one with the least squared error is kept)
CLIP_RATIOS = tuple(np.linspace(0.7, 1.0, 13))


def quantize_table(table: np.ndarray, scheme: str, group: int) -> Quantized:
    """Group-wise quantization of `table` (rows x cols, float): int8 symmetric (max-abs); int4 asymmetric
    (uint4 + zero point, range clipped per group to the ratio of CLIP_RATIOS with the least squared error: on
    MiniLM's table 17% less error than symmetric max-abs at group 32)."""
    rows, cols = table.shape
    g = table.astype(np.float32).reshape(rows, cols // group, group)
    if scheme == "int8":
        scales = (np.abs(g).max(-1) / 127).astype(np.float16)
        safe = np.where(scales == 0, 1, scales).astype(np.float32)
        q = np.clip(np.rint(g / safe[..., None]), -128, 127).astype(np.int8).reshape(rows, cols)
        return Quantized(q, scales, group, 8)
    lo, hi = g.min(-1, keepdims=True), g.max(-1, keepdims=True)
    best: tuple[np.ndarray, ...] | None = None
    for r in CLIP_RATIOS:
        scale = ((hi - lo) * r / 15).astype(np.float16).astype(np.float32)
        scale = np.where(scale == 0, 1, scale)
        zero = np.clip(np.rint(-lo * r / scale), 0, 15)
        q = np.clip(np.rint(g / scale) + zero, 0, 15)
        err = (((q - zero) * scale - g) ** 2).sum(-1, keepdims=True)
        if best is None:
            best = (err, q, scale, zero)
        else:
            keep = err < best[0]
            best = tuple(np.where(keep, new, old) for new, old in zip((err, q, scale, zero), best))
    assert best is not None
    _, q, scale, zero = best
    return Quantized(q.astype(np.uint8).reshape(rows, cols), scale[..., 0].astype(np.float16), group, 4,
                     zero[..., 0].astype(np.uint8))


def pack_int4(q: np.ndarray) -> np.ndarray:
    """4-bit values, two per byte, low nibble first (ONNX UINT4 and OpenVINO u4 layout); an odd count is padded."""
    q = q.reshape(-1)
    if q.size % 2:
        q = np.concatenate([q, q[:1] * 0])
    u = (q.astype(np.uint8) & 0xF).reshape(-1)
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8)


def check_task(task: str, scheme: str) -> None:
    """Refuse compressed embeddings where the MLM decoder shares the table: quantizing it would change every
    logit, and keeping an fp32 copy for the decoder would save nothing."""
    if scheme not in ("fp32", "auto") and task == "fill-mask":
        raise InputError("embeddings: the fill-mask decoder shares the word-embedding table; --embeddings "
                         f"{scheme} applies to feature-extraction and text-classification", option="embeddings")


def record(scheme: str, q: Quantized, table_bytes: int, runtime_op: str) -> dict[str, Any]:
    """What the manifest says about the compressed table."""
    zero = "symmetric" if q.zero is None else "with a uint4 zero point"
    return {"scheme": scheme, "group_size": q.group, "scales": f"fp16, one per group, {zero}",
            "table_shape": list(q.q.shape), "table_bytes_fp32": table_bytes, "table_bytes": q.nbytes,
            "bytes_saved": table_bytes - q.nbytes, "runtime_op": runtime_op}


# --- ONNX ------------------------------------------------------------------------------------------------


def _onnx_gbq(name: str, q: Quantized, indices: str, out_dtype: int, nodes: list[Any], inits: list[Any]) -> str:
    """A GatherBlockQuantized of `q` at `indices` (output cast to `out_dtype`); returns the output's name."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    if q.bits == 4:
        assert q.zero is not None
        inits += [helper.make_tensor(f"{name}_q4", T.UINT4, list(q.q.shape), pack_int4(q.q).tobytes(), raw=True),
                  helper.make_tensor(f"{name}_zp", T.UINT4, list(q.zero.shape), pack_int4(q.zero).tobytes(), raw=True)]
        ins = [f"{name}_q4", indices, f"{name}_scales", f"{name}_zp"]
    else:  # the CPU kernel's 8-bit form is uint8 data with zero points
        inits.append(numpy_helper.from_array((q.q.astype(np.int16) + 128).astype(np.uint8), f"{name}_q8"))
        inits.append(numpy_helper.from_array(np.full(q.scales.shape, 128, np.uint8), f"{name}_zp"))
        ins = [f"{name}_q8", indices, f"{name}_scales", f"{name}_zp"]
    inits.append(numpy_helper.from_array(q.scales, f"{name}_scales"))
    nodes.append(helper.make_node("GatherBlockQuantized", ins, [f"{name}_f16"], name=f"{name}_GatherBlockQuantized",
                                  domain="com.microsoft", gather_axis=0, quantize_axis=1, block_size=q.group,
                                  bits=q.bits))
    if out_dtype == T.FLOAT16:
        return f"{name}_f16"
    nodes.append(helper.make_node("Cast", [f"{name}_f16"], [f"{name}_out"], name=f"{name}_Cast", to=out_dtype))
    return f"{name}_out"


def _unfused(node: Any, init: dict[str, Any], word: Quantized) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers computing what the EmbedLayerNormalization `node` computes, words from `word`."""
    from onnx import helper, numpy_helper

    ids, types, _, pos_name, type_name, gamma, beta, mask = (list(node.input) + [""] * 8)[:8]
    dtype = init[gamma].data_type
    pos = numpy_helper.to_array(init[pos_name])
    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
    p = "bortconv_embed"
    nodes: list[Any] = []
    inits: list[Any] = [numpy_helper.from_array(np.array(v, np.int64), f"{p}_{k}")
                        for k, v in (("zero", 0), ("one", 1), ("axis1", [1]))]
    words = _onnx_gbq(f"{p}_words", word, ids, dtype, nodes, inits)
    nodes += [helper.make_node("Shape", [ids], [f"{p}_shape"], start=1, end=2),
              helper.make_node("Squeeze", [f"{p}_shape"], [f"{p}_len"]),
              helper.make_node("Range", [f"{p}_zero", f"{p}_len", f"{p}_one"], [f"{p}_positions"])]
    pos_q = quantize_table(pos, "int8", group_size("int8", pos.shape[1], None))
    positions = _onnx_gbq(f"{p}_pos", pos_q, f"{p}_positions", dtype, nodes, inits)
    nodes.append(helper.make_node("Add", [words, positions], [f"{p}_sum0"]))
    total = f"{p}_sum0"
    if types and type_name:
        nodes += [helper.make_node("Gather", [type_name, types], [f"{p}_types"]),
                  helper.make_node("Add", [total, f"{p}_types"], [f"{p}_sum1"])]
        total = f"{p}_sum1"
    nodes.append(helper.make_node("LayerNormalization", [total, gamma, beta], [node.output[0]], axis=-1,
                                  epsilon=eps, name=f"{p}_LayerNorm"))
    if len(node.output) > 1 and node.output[1]:  # the fused op's mask index: valid tokens per row (int32)
        nodes.append(helper.make_node("ReduceSum", [mask, f"{p}_axis1"], [node.output[1]], keepdims=0))
    return nodes, inits


def compress_onnx(model_path: Path, out_path: Path, scheme: str, group: int | None,
                  table: np.ndarray, q: Quantized | None = None) -> dict[str, Any]:
    """Rewrite `model_path` (fused by bortconv, with a float EmbedLayerNormalization) so the word table `table`
    is stored and gathered as `scheme` (`q`: `table` already quantized so); writes `out_path`, returns the
    manifest record."""
    import onnx

    model = onnx.load(str(model_path))
    init = {i.name: i for i in model.graph.initializer}
    fused = [n for n in model.graph.node if n.op_type == "EmbedLayerNormalization"]
    if len(fused) != 1 or fused[0].input[2] not in init:
        raise InputError(f"embeddings: {model_path.name} has no float EmbedLayerNormalization to compress (the "
                         f"fused ONNX graph); --embeddings needs the fused graph, not --portable",
                         option="embeddings")
    node = fused[0]
    q = q or quantize_table(table, scheme, group_size(scheme, table.shape[1], group))
    nodes, inits = _unfused(node, init, q)
    at = list(model.graph.node).index(node)
    kept = [n for n in model.graph.node if n is not node]
    del model.graph.node[:]
    model.graph.node.extend(kept[:at] + nodes + kept[at:])
    dropped = {node.input[2], node.input[3]}
    still_used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name not in dropped or i.name in still_used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + inits)
    onnx.save(model, str(out_path))
    return record(scheme, q, table.size * 4, "com.microsoft GatherBlockQuantized (EmbedLayerNormalization unfused)")


def onnx_word_table(model_path: Path) -> np.ndarray:
    """The float word table of bortconv's fused ONNX graph (input 2 of EmbedLayerNormalization)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    init = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "EmbedLayerNormalization" and n.input[2] in init:
            return numpy_helper.to_array(init[n.input[2]]).astype(np.float32)
    raise InputError(f"embeddings: {model_path.name} has no float EmbedLayerNormalization (fused graph) to take "
                     f"the word table from", option="embeddings")


def onnx_embed_node(model_path: Path) -> list[str]:
    """The names of the EmbedLayerNormalization nodes (kept out of int8 quantization when they are compressed)."""
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type == "EmbedLayerNormalization"]


# --- OpenVINO --------------------------------------------------------------------------------------------


def ov_word_gather(model: Any, vocab_size: int) -> Any:
    """The Gather of the word table: its data input is [vocab_size, hidden]."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Gather":
            shape = op.input_value(0).get_partial_shape()
            if shape.is_static and len(shape) == 2 and shape[0].get_length() == vocab_size:
                return op
    raise InputError(f"embeddings: no Gather of a [{vocab_size}, hidden] table in the OpenVINO model",
                     option="embeddings")


def ov_word_table(xml: Path, vocab_size: int) -> np.ndarray:
    """The word table of an IR, as float32 (computed through its decompression ops, if any)."""
    import openvino as ov

    core = ov.Core()
    gather = ov_word_gather(core.read_model(str(xml)), vocab_size)
    sub = ov.Model([gather.input_value(0)], [], "table")
    return np.asarray(core.compile_model(sub, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({})[0], np.float32)


def _ov_constant(values: np.ndarray, bits: int) -> Any:
    """An OpenVINO Constant of `values`: u4 (packed) for 4 bits, else as they are (int8)."""
    import openvino as ov
    import openvino.opset13 as ops

    if bits != 4:
        return ops.constant(values)
    t = ov.Tensor(ov.Type.u4, ov.Shape(list(values.shape)))
    t.data[:] = pack_int4(values)[: t.data.size].reshape(t.data.shape)
    return ops.constant(t)


def compress_openvino(model: Any, scheme: str, group: int | None, table: np.ndarray,
                      q: Quantized | None = None) -> dict[str, Any]:
    """Give `model`'s word Gather a compressed table: Constant(u4|i8) -> Convert -> [Subtract zero point] ->
    Multiply(fp16 scales) -> Reshape (in place; `q`: `table` already quantized so); returns the manifest record."""
    import openvino as ov
    import openvino.opset13 as ops

    gather = ov_word_gather(model, table.shape[0])
    q = q or quantize_table(table, scheme, group_size(scheme, table.shape[1], group))
    rows, cols = q.q.shape
    shape = [rows, cols // q.group, q.group]
    values = ops.convert(_ov_constant(q.q.reshape(shape), q.bits), ov.Type.f16)
    if q.zero is not None:
        values = ops.subtract(values, ops.convert(_ov_constant(q.zero[..., None], 4), ov.Type.f16))
    dtype = gather.get_output_element_type(0)
    scaled = ops.multiply(values, ops.constant(q.scales[..., None]))
    table_out = ops.reshape(scaled, ops.constant(np.array([rows, cols], np.int64)), special_zero=False)
    if dtype != ov.Type.f16:
        table_out = ops.convert(table_out, dtype)
    gather.input(0).replace_source_output(table_out.output(0))
    model.validate_nodes_and_infer_types()
    return record(scheme, q, table.size * 4, f"OpenVINO Gather of a {q.bits}-bit decompression subgraph")
