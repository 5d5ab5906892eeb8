"""Convert real mxnet-built Bort checkpoints and check the Hugging Face model computes what MXNet computed.

Every row of tests/cases.py PARITY_CASES: both published shapes, MLM / classifier / bare-encoder heads, saved
fp32, cast to fp16, deduplicated, numpy-semantics (V3) and legacy prefixed names, plus one full-size
bort_4_8_768_1024. Compared at valid positions of right-padded batches with several valid lengths.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cases import PARITY_CASES
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

import bortconv
from bortconv.converters.hf_model import load_pytorch

# max abs diff, fp32 output (the floor). fp16 output: weights rounded to fp16 a second time.
TOL = {"hidden": 1e-4, "mlm_logits": 2e-4, "cls_logits": 1e-4}
TOL_FP16_OUT = {"hidden": 2e-2, "mlm_logits": 5e-2, "cls_logits": 2e-2}
AUTO = {"mlm": AutoModelForMaskedLM, "classifier": AutoModelForSequenceClassification, "encoder": AutoModel}
ARCH = {"mlm": "BertForMaskedLM", "classifier": "BertForSequenceClassification", "encoder": "BertModel"}


def torch_outputs(model, ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ids = torch.from_numpy(ref["input_ids"].astype(np.int64))
    valid = torch.from_numpy(ref["valid_length"].astype(np.int64))
    mask = (torch.arange(ids.shape[1])[None, :] < valid[:, None]).long()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    got = {"hidden": out.hidden_states[-1].float().numpy()}
    if "mlm_logits" in ref:
        got["mlm_logits"] = out.logits.float().numpy()
    if "cls_logits" in ref:
        got["cls_logits"] = out.logits.float().numpy()
    return got


def max_diffs(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs diff per output; sequence outputs only at valid positions (MXNet zeroes the rest)."""
    diffs = {}
    for key, val in got.items():
        if key == "cls_logits":
            diffs[key] = float(np.abs(val - ref[key]).max())
            continue
        diffs[key] = max(float(np.abs(val[r, :n] - ref[key][r, :n]).max())
                         for r, n in enumerate(ref["valid_length"]))
    return diffs


def heads_for(case: dict) -> int | None:
    return case["heads"] if case["name"].startswith("custom") else None


@pytest.mark.parametrize("case", PARITY_CASES, ids=[c["name"] for c in PARITY_CASES])
def test_converted_model_matches_mxnet(reference, tmp_path, case):
    ref_case = reference[case["name"]]
    out = tmp_path / "hf"
    result = bortconv.convert(ref_case.params, out, heads=heads_for(case))
    assert result.head.value == case["head"]
    v = result.variant
    assert (v.num_layers, v.num_heads, v.intermediate_size, v.hidden_size, v.vocab_size) == (
        case["layers"], case["heads"], case["ffn"], case["units"], case["vocab"])

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["architectures"] == [ARCH[case["head"]]]
    assert cfg["type_vocab_size"] == 1 and cfg["pad_token_id"] == 1 and cfg["layer_norm_eps"] == 1e-5

    # Stock transformers, offline, with the matching Auto class: no missing or unused weights.
    kwargs = {"add_pooling_layer": False} if case["head"] == "encoder" else {}
    model, info = AUTO[case["head"]].from_pretrained(out, output_loading_info=True, **kwargs)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref = ref_case.outputs()
    diffs = max_diffs(torch_outputs(model.eval(), ref), ref)
    for key, diff in diffs.items():
        assert diff <= TOL[key], f"{case['name']} {key}: max abs diff {diff:.3g} > {TOL[key]}"

    # bortconv's loader also restores the decoder's own LayerNorm epsilon: MLM logits get closer still.
    if case["head"] == "mlm":
        exact = max_diffs(torch_outputs(load_pytorch(out), ref), ref)
        assert exact["mlm_logits"] <= 1e-4, exact


@pytest.mark.parametrize("name", ["bort2_cls_fp16", "bort4_mlm_fp32"])
def test_fp16_output(reference, tmp_path, name):
    ref_case = reference[name]
    out = tmp_path / "hf16"
    result = bortconv.convert(ref_case.params, out, dtype="fp16")
    assert result.dtype.value == "fp16"
    from safetensors import safe_open
    with safe_open(out / "model.safetensors", "np") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {np.dtype("float16")}
    model = load_pytorch(out).float()
    ref = ref_case.outputs()
    diffs = max_diffs(torch_outputs(model, ref), ref)
    for key, diff in diffs.items():
        assert diff <= TOL_FP16_OUT[key], f"{name} fp16 {key}: {diff:.3g}"


def test_fp16_source_is_exact_in_fp32(reference, tmp_path):
    """An fp16 checkpoint converted to fp32 holds exactly the fp16 values (no rounding on the way)."""
    from safetensors.numpy import load_file

    from bortconv.converters.params_reader import read_params
    ref_case = reference["bort2_enc_fp16"]
    bortconv.convert(ref_case.params, tmp_path / "o")
    weights = load_file(tmp_path / "o" / "model.safetensors")
    with read_params(ref_case.params) as p:
        src = p.array("encoder.transformer_cells.1.ffn.ffn_2.weight")
        assert np.array_equal(weights["encoder.layer.1.output.dense.weight"], src.astype(np.float32))
    assert not weights["embeddings.token_type_embeddings.weight"].any()
