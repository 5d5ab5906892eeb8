"""Load a Hugging Face BERT-family directory as the PyTorch module an export traces (torch imported lazily).

Sources: a `bortconv convert` output, `amazon/bort` as downloaded from the Hub (``model_type`` "bort" or
"bert"), BERT-large, all-MiniLM-L6-v2... Weights come from safetensors, or from ``pytorch_model.bin`` read with
``torch.load(weights_only=True)`` only: nothing is unpickled beyond plain tensors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bortconv.config import Task
from bortconv.errors import InputError, MappingError, MissingDependencyError, shown
from bortconv.layout import CONFIG_FILE, MANIFEST_FILE
from bortconv.measure import Runner

log = logging.getLogger(__name__)

BERT_TYPES = {"bert", "bort"}
TASK_CLASS = {Task.FEATURE_EXTRACTION: "BertModel", Task.FILL_MASK: "BertForMaskedLM",
              Task.TEXT_CLASSIFICATION: "BertForSequenceClassification"}
ARCH_TASK = {"BertForMaskedLM": Task.FILL_MASK, "BertForSequenceClassification": Task.TEXT_CLASSIFICATION}


#: config.json's sizes: each a positive integer where given
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size")


def read_config(model_dir: Path) -> dict[str, Any]:
    cfg_path = model_dir / CONFIG_FILE
    if not cfg_path.is_file():
        raise InputError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    from bortconv._util.jsonfile import read_json
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise InputError(f"{cfg_path}: not a model configuration (not a JSON object)")
    if cfg.get("model_type") not in BERT_TYPES:
        raise InputError(f"{cfg_path}: model_type '{cfg.get('model_type')}' is not a BERT-family encoder")
    for key in SIZE_FIELDS:  # transformers' own refusal of these is a multi-line dataclass report
        value = cfg.get(key)
        if key in cfg and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{cfg_path}: {key} is {shown(json.dumps(value), 40)}; it must be a positive integer")
    return cfg


def weight_keys(model_dir: Path) -> set[str]:
    """Tensor names of the directory's weights (header only for safetensors)."""
    st = model_dir / "model.safetensors"
    if st.is_file():
        from bortconv.converters.safetensors_io import read_safetensors_header
        try:
            return {k for k in read_safetensors_header(st) if k != "__metadata__"}
        except (ValueError, OSError) as exc:
            raise InputError(f"{st}: not a readable safetensors file ({exc})") from None
    binf = model_dir / "pytorch_model.bin"
    if binf.is_file():
        return set(_load_bin(binf))
    if (model_dir / MANIFEST_FILE).is_file():
        raise InputError(f"{model_dir}: a bortconv artifact ({MANIFEST_FILE}), not a Hugging Face model directory; "
                         f"give the .params file or directory it was exported from")
    raise InputError(f"{model_dir}: no model.safetensors or pytorch_model.bin")


def check_weights(model_dir: Path) -> None:
    """The weights are there and model.safetensors is whole (its header and size), before any work; a
    pytorch_model.bin is only read when it loads (reading it here would load it twice)."""
    if (model_dir / "model.safetensors").is_file() or not (model_dir / "pytorch_model.bin").is_file():
        weight_keys(model_dir)


def _load_bin(path: Path) -> dict[str, Any]:
    import torch
    import warnings
    try:  # weights_only: tensors and plain containers only; any other pickled object is refused unexecuted
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols; the refusal says enough
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # hostile or corrupt: torch's restricted unpickler raises errors of every kind
        raise InputError(f"{path}: refused: not a plain tensor checkpoint ({_load_failure(exc)}); nothing in it "
                         f"was run") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items()):
        raise InputError(f"{path}: refused: holds a {type(obj).__name__} that is not a state dict of named tensors")
    return obj


def _load_failure(exc: Exception) -> str:
    """One line on why torch.load(weights_only=True) refused a file (never its advice to set it False)."""
    import re
    text = str(exc)
    m = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"its pickle calls {m.group(1) or m.group(2)}, which is not tensor data"
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation")  # torch's boilerplate
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(skip)]
    return f"{type(exc).__name__}: {shown(lines[0].split('. ')[0], 160) if lines else 'unreadable'}"


def available_tasks(model_dir: Path) -> list[Task]:
    """The tasks a directory can be exported for: features always, the others if their head is there."""
    keys = weight_keys(model_dir)
    tasks = [Task.FEATURE_EXTRACTION]
    if any(k.startswith("cls.predictions.") for k in keys):
        tasks.append(Task.FILL_MASK)
    if any(k.startswith("classifier.") for k in keys):
        tasks.append(Task.TEXT_CLASSIFICATION)
    return tasks


def default_task(model_dir: Path) -> Task:
    """text-classification when the checkpoint has a classifier head, otherwise feature-extraction."""
    return Task.TEXT_CLASSIFICATION if Task.TEXT_CLASSIFICATION in available_tasks(model_dir) else \
        Task.FEATURE_EXTRACTION


def load_pytorch(model_dir: str | os.PathLike[str], task: Task | str | None = None, *,
                 attn_implementation: str = "eager", named: str | os.PathLike[str] | None = None) -> Any:
    """Load the directory as the model for `task` (default: its own architecture), in eval mode, fp32. `named`:
    what a refusal of the task calls the source (the .params file a temporary directory was converted from).

    Fails if a weight the task needs is missing (never a randomly initialized head). Drops the pooler a Bort
    encoder does not have and sets the MLM decoder's own LayerNorm epsilon recorded at conversion.
    """
    d = Path(model_dir)
    cfg = read_config(d)
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("loading PyTorch models needs: pip install 'bortconv[torch]'") from None
    if task is None:
        arch = (cfg.get("architectures") or ["BertModel"])[0]
        task = ARCH_TASK.get(arch, Task.FEATURE_EXTRACTION)
    task = Task(task)
    if task not in available_tasks(d):
        have = ", ".join(t.value for t in available_tasks(d))
        raise InputError(f"{named or d}: --task {task.value} needs a head the checkpoint does not have (it has: "
                         f"{have})")
    with transformers_quiet(transformers):
        return _load(d, cfg, task, transformers, attn_implementation)


@contextlib.contextmanager
def transformers_quiet(transformers: Any) -> Iterator[None]:
    """transformers' load report and progress bars are for its own users; bortconv reports its own."""
    logging_mod = transformers.utils.logging
    level = logging_mod.get_verbosity()
    logging_mod.set_verbosity_error()
    logging_mod.disable_progress_bar()
    try:
        yield
    finally:
        logging_mod.set_verbosity(level)
        logging_mod.enable_progress_bar()


def _load(d: Path, cfg: dict[str, Any], task: Task, transformers: Any, attn_implementation: str) -> Any:
    keys = weight_keys(d)
    config = transformers.BertConfig.from_dict({**cfg, "model_type": "bert"})
    config._attn_implementation = attn_implementation
    cls = getattr(transformers, TASK_CLASS[task])
    kwargs: dict[str, Any] = {}
    if task is Task.FEATURE_EXTRACTION:
        has_pooler = any(k.split("pooler.", 1)[0] in ("", "bert.") and "pooler." in k for k in keys)
        kwargs["add_pooling_layer"] = has_pooler
    if (d / "model.safetensors").is_file():
        model, info = cls.from_pretrained(str(d), config=config, output_loading_info=True, use_safetensors=True,
                                          **kwargs)
    else:
        model, info = cls.from_pretrained(None, config=config, state_dict=_load_bin(d / "pytorch_model.bin"),
                                          output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or [])
    if missing or info.get("mismatched_keys"):
        raise MappingError(f"{d}: weights missing for {TASK_CLASS[task]}: {', '.join(missing[:10])}"
                           f"{' ...' if len(missing) > 10 else ''} {sorted(info.get('mismatched_keys') or [])}")
    if info.get("unexpected_keys"):
        log.info("%s: weights not used by %s: %s", d, task.value, sorted(info["unexpected_keys"])[:10])
    eps = cfg.get("decoder_layer_norm_eps")
    if eps is not None and task is Task.FILL_MASK:
        model.cls.predictions.transform.LayerNorm.eps = float(eps)
    return model.float().eval()


def task_module(model: Any, task: Task) -> Any:
    """Wrap `model` in a module taking keyword tensors and returning the task's one output.

    Keyword calls avoid transformers 5's positional-argument trap in torch.onnx.export, and a single tensor
    output gives ONNX/OpenVINO a stable output name.
    """
    import torch

    uses_types = int(getattr(model.config, "type_vocab_size", 1)) > 1

    class TaskModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.uses_token_types = uses_types

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.uses_token_types and token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            out = self.model(**kw, return_dict=True)
            return out.last_hidden_state if task is Task.FEATURE_EXTRACTION else out.logits

    return TaskModule().eval()


def torch_runner(module: Any, threads: int | None = None) -> Runner:
    """The one PyTorch runner: `module` (a :func:`task_module`) as feeds -> numpy output, fp32, no autograd.

    Export's reference, validate's reference, `bench`'s eager baseline and the memory probe all run PyTorch
    through it, so they time and compare the same thing.
    """
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
            return out.float().numpy()  # type: ignore[no-any-return]
    return run


def pytorch_runner(model_dir: str | os.PathLike[str], task: Task | str, *, threads: int | None = None,
                   attn_implementation: str = "eager") -> Runner:
    """:func:`torch_runner` of the task model loaded from `model_dir` (the model export traces, by default)."""
    task = Task(task)
    model = load_pytorch(model_dir, task, attn_implementation=attn_implementation)
    return torch_runner(task_module(model, task), threads)
