"""One OpenVINO IR that takes text: the artifact's tokenizer IR connected in front of its model, and the
pooling BortRuntime applies after it, so a server that runs OpenVINO (OVMS builds in openvino_tokenizers)
serves strings directly::

    text [n] ─► tokenizer IR ─► input_ids, attention_mask (, token_type_ids) ─► model ─► hidden [n, L, H]
                                              │                                              │
                                              └──────────► masked mean over L ◄──────────────┘ ─► embedding [n, H]

feature-extraction gives ``embedding`` (the mean over each text's tokens, as ``BortRuntime.encode``);
text-classification ``logits`` [n, C]; fill-mask ``logits`` [n, L, V] (L: the longest text of the call).
The pair variant takes ``text`` and ``text_b`` through the pair tokenizer IR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bortconv.errors import InputError
from bortconv.layout import OV_TOKENIZER_PAIR_XML, OV_TOKENIZER_XML, OV_XML
from bortconv.runtime.bort import loading, tokenizer_core

#: output name of the text-in model, by task
OUTPUT_NAME = {"feature-extraction": "embedding", "text-classification": "logits", "fill-mask": "logits"}


def _masked_mean(hidden: Any, mask: Any) -> Any:
    import openvino as ov
    from openvino import opset13 as ops

    m = ops.unsqueeze(ops.convert(mask, ov.Type.f32), ops.constant([-1], ov.Type.i64))
    total = ops.reduce_sum(ops.multiply(hidden, m), ops.constant([1], ov.Type.i64), keep_dims=False)
    count = ops.reduce_sum(m, ops.constant([1], ov.Type.i64), keep_dims=False)
    return ops.divide(total, count)


def _drop_state(model: Any) -> None:
    """Replace each ReadValue (the tokenizer's "truncation enabled" variable) by its initial value.

    A server then sees a stateless model: truncation stays on, as the tokenizer IR's default has it."""
    for node in model.get_ordered_ops():
        if node.get_type_name() == "ReadValue" and node.get_input_size() == 1:
            for target in list(node.output(0).get_target_inputs()):
                target.replace_source_output(node.input_value(0))


def build_text_model(artifact_dir: Path, task: str, *, pair: bool = False) -> Any:
    """The text-in ov.Model of an OpenVINO artifact that carries the tokenizer IRs (nothing saved)."""
    import openvino as ov
    from openvino import opset13 as ops

    tok_file = OV_TOKENIZER_PAIR_XML if pair else OV_TOKENIZER_XML
    if not (artifact_dir / tok_file).is_file():
        raise InputError(f"{artifact_dir}: no {tok_file}; a text-in model needs the OpenVINO tokenizer")
    core = tokenizer_core()
    with loading(artifact_dir / tok_file):
        tok = core.read_model(str(artifact_dir / tok_file))
    with loading(artifact_dir / OV_XML):
        model = core.read_model(str(artifact_dir / OV_XML))
    # the values the tokenizer's Result nodes hold (a Result itself must not feed the model)
    produced = {o.get_any_name(): o.get_node().input_value(0) for o in tok.outputs}
    for param in model.get_parameters():
        name = param.output(0).get_any_name()
        if name not in produced:
            raise InputError(f"{artifact_dir}: the model takes {name!r}, which the tokenizer IR does not give")
        source = produced[name]
        if source.get_element_type() != param.get_element_type():
            source = ops.convert(source, param.get_element_type()).output(0)
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(source)
    out = model.outputs[0].get_node().input_value(0)  # the value the model's Result holds
    if task == "feature-extraction":
        out = _masked_mean(out, produced["attention_mask"]).output(0)
    result = ops.result(out)
    result.output(0).get_tensor().set_names({OUTPUT_NAME[task]})
    _drop_state(tok)
    text_model = ov.Model([result], tok.get_parameters(), f"{artifact_dir.name}_text")
    text_model.validate_nodes_and_infer_types()
    return text_model
