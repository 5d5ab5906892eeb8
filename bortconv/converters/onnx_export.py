"""PyTorch task module -> ONNX, and ONNX -> the transformer-fused graph ONNX Runtime runs fastest on CPU.

Fusion (onnxruntime.transformers.optimizer, model_type "bert")::

    Gather(word) + Gather(pos) -> Add -> LayerNorm           =>  EmbedLayerNormalization
    MatMul(Q,K,V) -> Softmax(QK^T/sqrt(d) + mask) -> MatMul   =>  Attention            (one per layer)
    Add(residual) -> LayerNorm                                =>  kept as Add + LayerNormalization (see below)
    Add(bias) -> Gelu(erf)                                    =>  BiasGelu              (one per layer)

SkipLayerNormalization is *not* fused, and sessions are opened with ORT's own SkipLayerNormFusion disabled
(:data:`bortconv.runtime.bort.ORT_DISABLED_OPTIMIZERS`, recorded in the manifest): onnxruntime 1.32's CPU kernel
for it takes 0.26-0.30 ms per 128x1024 call against 0.05-0.08 ms for Add + Add + LayerNormalization, 12% of
Bort's time at batch 1, length 128 (profiled; fused graph 17.7 ms -> 15.9 ms in one interleaved run, parity unchanged).

Two traps handled here (../shared/docs/export-notes.md): transformers 5's SDPA attention does not fuse, so
the module is loaded with eager attention; and head size 128 confuses the optimizer's head detection, so
num_heads/hidden_size are passed explicitly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bortconv.errors import ExportError

log = logging.getLogger(__name__)

FUSED_OPS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "Gelu", "FastGelu",
             "LayerNormalization")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Tracer, exporter and quantizer chatter goes to the debug log, not the user's terminal: Python warnings,
    stdout, transformers' logger, and the root logger (onnxruntime.quantization logs its advice there at
    WARNING) unless bortconv runs with --debug.

    The root logger's handlers are put back as they were: onnxruntime.quantization logs through the module-level
    ``logging.warning()``, which gives a root logger without handlers one (``logging.basicConfig()``), and its
    matmul_nbits_quantizer module calls ``logging.basicConfig(level=INFO)`` when imported. A script calling
    bortconv's API would otherwise print every library's INFO lines from then on, and its own later
    ``basicConfig`` would do nothing."""
    buf = io.StringIO()
    tf_logging = sys.modules["transformers"].utils.logging if "transformers" in sys.modules else None
    level = tf_logging.get_verbosity() if tf_logging else None
    if tf_logging:
        tf_logging.set_verbosity_error()
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    if not log.isEnabledFor(logging.DEBUG):
        root.setLevel(logging.ERROR)
        if "onnxruntime" in sys.modules:  # the quantizer's own sessions print C++ warnings (unused initializers)
            sys.modules["onnxruntime"].set_default_logger_severity(3)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buf):
            warnings.simplefilter("always")
            yield
    finally:
        root.setLevel(root_level)
        root.handlers[:] = root_handlers
        if tf_logging:
            tf_logging.set_verbosity(level)
    for w in caught:
        log.debug("export warning: %s", w.message)
    if buf.getvalue().strip():
        log.debug("exporter output: %s", buf.getvalue().strip()[:2000])


def input_names(module: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if getattr(module, "uses_token_types", False):
        names.append("token_type_ids")
    return names


def example_inputs(module: Any, batch: int, length: int) -> dict[str, Any]:
    import torch
    ids = torch.randint(4, 100, (batch, length), dtype=torch.int64)
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(module, "uses_token_types", False):
        feeds["token_type_ids"] = torch.zeros_like(ids)
    return feeds


def export_onnx(module: Any, path: Path, *, output_name: str, opset: int,
                static_shape: tuple[int, int] | None) -> Path:
    """Trace `module` to a standard-ops ONNX graph with named, (by default) dynamic batch/sequence axes."""
    import torch

    b, length = static_shape or (2, 16)
    feeds = example_inputs(module, b, length)
    names = list(feeds)
    dynamic = None
    if static_shape is None:
        dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
        dynamic[output_name] = {0: "batch", 1: "sequence"} if _is_seq(module) else {0: "batch"}
    try:
        from bortconv._util.atomic import interrupts_deferred
        with interrupts_deferred(), _quiet(), torch.no_grad():  # Ctrl-C lands after the tracer, not inside it
            torch.onnx.export(module, (), str(path), kwargs=feeds, input_names=names, output_names=[output_name],
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    except Exception as exc:  # the exporter's own failure: report it as ours, one line
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") \
            from exc
    return path


def _is_seq(module: Any) -> bool:
    return type(module.model).__name__ != "BertForSequenceClassification"


#: Initializers at least this large are kept out of the optimizer's memory while it fuses (see fuse_for_cpu):
#: every weight matrix of a BERT. The few the fusions read (the Q/K/V weights, concatenated into one) are read
#: from the file when needed. On Bort the optimizer's peak drops from 1.8 GB (only the 206 MB embedding table
#: detached) to 1.4 GB, and the fused graph's bytes do not depend on this threshold.
DETACH_BYTES = 1 << 20


def fuse_for_cpu(plain: Path, fused: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Write the ORT transformer-fused graph of `plain` to `fused`; returns the fused-op counts.

    ORT's optimizer copies and serializes the model several times while it fuses (on Bort: +1.8 GB of peak RSS
    for a 300 MB graph). The word-embedding table is only referenced by the fusions, never read, so it is
    moved to an external file first and the optimizer works on a graph without it; its bytes are put back when
    the fused model is written as one self-contained file.
    """
    import gc

    import onnx
    from onnx.external_data_helper import load_external_data_for_model
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    detached = plain.with_name(plain.stem + ".detached.onnx")
    model = onnx.load(str(plain))
    onnx.save_model(model, str(detached), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=detached.name + ".data", size_threshold=DETACH_BYTES)
    del model
    gc.collect()
    light = onnx.load(str(detached), load_external_data=False)
    cwd = os.getcwd()
    # a fusion pattern check may read the table (numpy_helper.to_array resolves external data against the
    # working directory): it then reads it from the file, once, instead of copying it with the whole graph
    os.chdir(detached.parent)
    try:
        with _quiet():
            options = FusionOptions("bert")
            options.enable_skip_layer_norm = False  # slower on CPU than what it replaces (module docstring)
            opt = optimizer.optimize_model(light, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                           opt_level=0, use_gpu=False, optimization_options=options)
    finally:
        os.chdir(cwd)
    del light
    gc.collect()
    load_external_data_for_model(opt.model, str(detached.parent))
    for tensor in opt.model.graph.initializer:  # loading leaves data_location explicitly DEFAULT: drop the mark,
        if tensor.data_location == onnx.TensorProto.DEFAULT:  # so the bytes do not depend on what was detached
            tensor.ClearField("data_location")
    with _quiet():  # save_model_to_file also declares the com.microsoft opset the fused ops need
        opt.save_model_to_file(str(fused), use_external_data_format=False)
    del opt
    gc.collect()
    for p in (detached, detached.with_name(detached.name + ".data")):
        p.unlink(missing_ok=True)
    return op_counts(fused)


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each fused op type the graph holds (0s omitted)."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in FUSED_OPS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def to_fp16(src: Path, dst: Path) -> None:
    """Weights and compute in fp16, inputs/outputs unchanged (int64 ids in, fp32 out)."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with _quiet():
        model = OnnxModel(onnx.load(str(src)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(dst), use_external_data_format=False)
