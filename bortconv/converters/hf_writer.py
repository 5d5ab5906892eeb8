"""Write a converted Bort model as a Hugging Face BERT directory (config.json + model.safetensors + record)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from bortconv.config import FORMAT_VERSION, DType, Head
from bortconv.converters.gluon_names import HF_ARCHITECTURES
from bortconv.converters.mapping import ConversionPlan
from bortconv.converters.params_reader import ParamsFile
from bortconv.converters.safetensors_io import TensorSource, read_safetensors_header, write_safetensors
from bortconv.layout import CONFIG_FILE, CONVERSION_RECORD, WEIGHT_FILES

log = logging.getLogger(__name__)

WEIGHTS_FILE = WEIGHT_FILES[0]  # what a conversion writes

# Bort's special-token ids in its gluonnlp vocabulary: <s>=0, <pad>=1, </s>=2.
BOS_ID, PAD_ID, EOS_ID = 0, 1, 2


def hf_config(plan: ConversionPlan, dtype: DType, decoder_layer_norm_eps: float) -> dict[str, object]:
    """The config.json of the Hugging Face BERT model that computes what the Bort checkpoint computes."""
    v = plan.variant
    cfg: dict[str, object] = {
        "architectures": [HF_ARCHITECTURES[plan.head.value]],
        "model_type": "bert",
        "vocab_size": v.vocab_size,
        "hidden_size": v.hidden_size,
        "num_hidden_layers": v.num_layers,
        "num_attention_heads": v.num_heads,
        "intermediate_size": v.intermediate_size,
        "hidden_act": "gelu",  # exact erf GELU, as MXNet's; gelu_new would cost 1e-3 of parity
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": v.max_position_embeddings,
        "type_vocab_size": 1,  # Bort has no token types; the single row is zeros
        "initializer_range": 0.02,
        "layer_norm_eps": v.layer_norm_eps,
        "pad_token_id": PAD_ID,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "dtype": dtype.numpy,
        "bort_variant": v.name,
    }
    if plan.head is Head.MLM:
        # HF's BERT uses layer_norm_eps for the MLM transform too; Bort's decoder used its own. Recorded so
        # bortconv's loaders can set it (the difference is below 1e-4 on logits either way).
        cfg["decoder_layer_norm_eps"] = decoder_layer_norm_eps
    if plan.head is Head.CLASSIFIER:
        n = plan.num_labels or 0
        cfg["num_labels"] = n
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
        cfg["label2id"] = {f"LABEL_{i}": i for i in range(n)}
    return cfg


def tensor_sources(params: ParamsFile, plan: ConversionPlan) -> list[TensorSource]:
    """Lazy value providers in the plan's order; nothing is read until the writer asks."""
    def provider(t):  # noqa: ANN001, ANN202 - closure over one TargetTensor
        if t.source is None:
            return lambda: np.zeros(t.shape, np.float32)
        return lambda: params.array_for(t.source, upcast=t.source.dtype == "bfloat16")
    return [TensorSource(key=t.key, shape=t.shape, values=provider(t), done=params.release) for t in plan.tensors]


def write_hf_model(out_dir: Path, params: ParamsFile, plan: ConversionPlan, dtype: DType,
                   decoder_layer_norm_eps: float, record: dict[str, object]) -> dict[str, int]:
    """Write config.json, model.safetensors and the conversion record into `out_dir`; returns file sizes."""
    cfg = hf_config(plan, dtype, decoder_layer_norm_eps)
    weights = out_dir / WEIGHTS_FILE
    sources = tensor_sources(params, plan)
    size = write_safetensors(weights, sources, dtype.numpy, metadata={"format": "pt"})
    header = read_safetensors_header(weights)  # re-read what was written
    written = {k for k in header if k != "__metadata__"}
    if written != {s.key for s in sources}:
        raise OSError(f"{weights}: header does not list the tensors that were written")
    (out_dir / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    full_record = {"format_version": FORMAT_VERSION} | record
    (out_dir / CONVERSION_RECORD).write_text(json.dumps(full_record, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s (%d tensors, %.1f MB)", weights, len(sources), size / 1e6)
    return {WEIGHTS_FILE: size}
