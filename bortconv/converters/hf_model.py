"""Load a converted directory as a PyTorch model (needs the `torch` extra; imported lazily)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bortconv.errors import InputError, MissingDependencyError

AUTO_CLASSES = {
    "BertModel": "AutoModel",
    "BertForMaskedLM": "AutoModelForMaskedLM",
    "BertForSequenceClassification": "AutoModelForSequenceClassification",
}


def load_pytorch(model_dir: str | os.PathLike[str], *, attn_implementation: str = "eager") -> Any:
    """Load a Hugging Face BERT directory as the model Bort computes, in eval mode.

    Unlike a bare ``AutoModel.from_pretrained`` this drops the pooler a Bort encoder does not have and sets
    the MLM decoder's own LayerNorm epsilon recorded at conversion. Raises if any weight is missing or unused.
    """
    d = Path(model_dir)
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{d}: not a Hugging Face model directory (no config.json)")
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("loading PyTorch models needs: pip install 'bortconv[torch]'") from None
    cfg = json.loads(cfg_path.read_text())
    arch = (cfg.get("architectures") or ["BertModel"])[0]
    auto = getattr(transformers, AUTO_CLASSES.get(arch, "AutoModel"))
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation, "output_loading_info": True}
    if arch == "BertModel" and cfg.get("bort_variant"):
        kwargs["add_pooling_layer"] = False  # Bort has no pooler
    model, info = auto.from_pretrained(str(d), **kwargs)
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if problems:
        raise InputError(f"{d}: weights do not match the architecture {arch}: {problems}")
    eps = cfg.get("decoder_layer_norm_eps")
    if eps is not None and hasattr(model, "cls"):
        model.cls.predictions.transform.LayerNorm.eps = float(eps)
    return model.eval()
