"""An OpenVINO Model Server repository: ``config.json`` (``model_config_list``) + ``NAME/1/model.xml/.bin``.

Where the artifact carries the OpenVINO tokenizer, the repository also holds the text-in variants
(:mod:`bortconv.package.ovms_text_models`), which OVMS serves directly since it builds in openvino_tokenizers:
``NAME_text`` (input ``text``, BYTES [n]) and, for text-classification, ``NAME_text_pair`` (``text`` and
``text_b``). ``base_path`` is relative to config.json (OVMS resolves it so), so the repository can move.
``plugin_config`` pins what bortconv's runtime compiles with: ``INFERENCE_PRECISION_HINT`` (the manifest's
``loading.inference_precision``, else f32: the CPU plugin would pick bf16 on CPUs that have it),
``PERFORMANCE_HINT`` LATENCY and the manifest's threads.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from bortconv.errors import InputError
from bortconv.layout import OV_BIN, OV_TOKENIZER_PAIR_XML, OV_TOKENIZER_XML, OV_XML
from bortconv.manifest import static_shape
from bortconv.package.signature import Signature
from bortconv.package.triton import VERSION
from bortconv.runtime.bort import openvino_config, pinned_precision

#: the text-in models' names: the model's name and these (each a model name too, so the name leaves room for them)
TEXT_SUFFIX, TEXT_PAIR_SUFFIX = "_text", "_text_pair"

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def plugin_config(artifact_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """OVMS plugin_config: what BortRuntime compiles the artifact with (its pinned precision, the manifest's
    threads)."""
    threads = manifest.get("threads") or manifest.get("parity_threads")
    return openvino_config(threads, precision=pinned_precision(artifact_dir))


def _entry(name: str, plugin: dict[str, Any]) -> dict[str, Any]:
    return {"config": {"name": name, "base_path": name, "target_device": "CPU", "plugin_config": plugin}}


def _text_variants(artifact_dir: Path, name: str, manifest: dict[str, Any], sig: Signature) -> list[tuple[str, bool]]:
    if not (artifact_dir / OV_TOKENIZER_XML).is_file():
        log.info("%s: no %s; the repository gets the token-id model only", artifact_dir, OV_TOKENIZER_XML)
        return []
    if not sig.batch_dynamic or static_shape(manifest):
        log.warning("%s: static shape; the text-in model (which pads to the longest text) is left out", artifact_dir)
        return []
    out = [(f"{name}{TEXT_SUFFIX}", False)]
    if manifest.get("task") == "text-classification" and (artifact_dir / OV_TOKENIZER_PAIR_XML).is_file():
        out.append((f"{name}{TEXT_PAIR_SUFFIX}", True))
    return out


def write_ovms(artifact_dir: Path, repo: Path, name: str, sig: Signature, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the OVMS repository into `repo`; returns what was written (models, files, config)."""
    import openvino as ov

    from bortconv.package.ovms_text_models import build_text_model

    if sig.runtime != "openvino":
        raise InputError(f"{artifact_dir}: --format ovms needs an OpenVINO artifact (export --target openvino); "
                         f"this one holds {sig.model_file}")
    plugin = plugin_config(artifact_dir, manifest)
    (repo / name / VERSION).mkdir(parents=True)
    shutil.copyfile(artifact_dir / OV_XML, repo / name / VERSION / "model.xml")
    shutil.copyfile(artifact_dir / OV_BIN, repo / name / VERSION / "model.bin")
    models = {name: {"files": [f"{name}/{VERSION}/model.xml", f"{name}/{VERSION}/model.bin"], "input": "token ids"}}
    entries = [_entry(name, plugin)]
    for text_name, pair in _text_variants(artifact_dir, name, manifest, sig):
        model = build_text_model(artifact_dir, manifest["task"], pair=pair)
        (repo / text_name / VERSION).mkdir(parents=True)
        ov.save_model(model, str(repo / text_name / VERSION / "model.xml"), compress_to_fp16=False)
        models[text_name] = {"files": [f"{text_name}/{VERSION}/model.xml", f"{text_name}/{VERSION}/model.bin"],
                             "input": "text pairs" if pair else "text"}
        entries.append(_entry(text_name, plugin))
    config = {"model_config_list": entries}
    (repo / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return {"models": models, "config": CONFIG_FILE, "plugin_config": plugin}
