"""What fine-tuning starts from: a Bort `.params` checkpoint (converted on the way) or a BERT-family Hugging Face
directory with a tokenizer; and the student model built on it (transformers imported lazily)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bortconv._util.hashing import sha256_file
from bortconv.converters.hf_model import transformers_quiet as quiet_transformers  # noqa: F401 (used by run, teacher)
from bortconv.errors import InputError, shown
from bortconv.layout import TOKENIZER_FILES, WEIGHT_FILES

log = logging.getLogger(__name__)

#: any of these makes a directory's tokenizer loadable by transformers
TOKENIZER_MARKERS = ("tokenizer.json", "vocab.txt", "vocab.json")


@dataclass(frozen=True)
class Source:
    """The resolved source: a Hugging Face directory, and what it holds."""

    path: Path  # what the user gave
    kind: str  # "params" (converted into model_dir) or "hf"
    model_dir: Path
    sha256: str | None  # of the .params file, or of the directory's weights
    has_mlm: bool
    has_pooler: bool
    classifier_labels: tuple[str, ...] | None  # a classifier source's id2label, in id order

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path.resolve()), "kind": self.kind, "sha256": self.sha256,
                "mlm_head": self.has_mlm, "pooler": self.has_pooler,
                "classifier_labels": list(self.classifier_labels) if self.classifier_labels else None}


def _hf_source(path: Path, given: Path, kind: str, sha: str | None) -> Source:
    from bortconv.converters import hf_model

    cfg = hf_model.read_config(path)
    if not any((path / m).is_file() for m in TOKENIZER_MARKERS):
        raise InputError(f"{given}: no tokenizer (tokenizer.json, vocab.txt or vocab.json); fine-tuning reads "
                         f"text{' -- pass --vocab and --merges' if kind == 'params' else ''}")
    keys = hf_model.weight_keys(path)
    labels = None
    if any(k.startswith("classifier.") for k in keys):
        id2label = cfg.get("id2label") or {}
        n = int(cfg.get("num_labels") or len(id2label) or 2)
        labels = tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n))
    if sha is None:
        weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
        sha = sha256_file(weights) if weights else None
    return Source(given, kind, path, sha, has_mlm=any(k.startswith("cls.predictions.") for k in keys),
                  has_pooler=any(k.endswith("pooler.dense.weight") for k in keys), classifier_labels=labels)


def resolve_source(source: str | os.PathLike[str], work: Path, *, vocab: str | os.PathLike[str] | None = None,
                   merges: str | os.PathLike[str] | None = None, variant: str | None = None,
                   heads: int | None = None) -> Source:
    """A Hugging Face directory as given, or a `.params` file converted into `work` (with its tokenizer)."""
    p = Path(source)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_dir():
        if vocab is not None or merges is not None:  # "" too: a given option is not dropped silently
            raise InputError(f"--vocab/--merges: {p} is a Hugging Face directory; it brings its own tokenizer")
        if variant is not None or heads is not None:
            flag = "--variant" if variant is not None else "--heads"
            raise InputError(f"{flag}: {p} is a Hugging Face directory, whose config.json gives its model; it "
                             f"applies to a Bort .params source")
        return _hf_source(p, p, "hf", None)
    if not (vocab and merges):
        raise InputError(f"{p}: a .params checkpoint needs --vocab and --merges (fine-tuning reads text)")
    from bortconv.converters.convert import convert

    res = convert(p, work / "source", vocab=vocab, merges=merges, variant=variant, heads=heads)
    return _hf_source(work / "source", p, "params", res.source_sha256)


def check_labels(src: Source, labels: Sequence[str], option: str = "SOURCE") -> tuple[str, ...]:
    """The label order to train with. A classifier source must have as many labels as the data; its own order is
    kept when its label names are the data's (so its head's rows keep their meaning)."""
    if src.classifier_labels is None:
        return tuple(labels)
    if len(src.classifier_labels) != len(labels):
        raise InputError(f"{option} {src.path}: a classifier with {len(src.classifier_labels)} labels, but the "
                         f"training data has {len(labels)} ({', '.join(shown(x, 30) for x in labels)})")
    if set(src.classifier_labels) == set(labels):
        return src.classifier_labels
    log.warning("%s: its label names %s are not the data's; its head's rows are taken in the data's label order",
                src.path, list(src.classifier_labels))
    return tuple(labels)


def load_tokenizer(model_dir: Path, given: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # transformers raises many kinds for a broken tokenizer directory
        raise InputError(f"{given}: its tokenizer does not load ({type(exc).__name__}: "
                         f"{shown(str(exc).splitlines()[0] if str(exc) else '', 100)})") from None


def build_template(src: Source, labels: Sequence[str]) -> tuple[Any, tuple[str, ...]]:
    """(BertForSequenceClassification with the source's weights, head parts the source lacked)."""
    import transformers

    from bortconv.converters import hf_model

    id2label = {i: lab for i, lab in enumerate(labels)}
    if src.classifier_labels is not None:
        model = hf_model.load_pytorch(src.model_dir, "text-classification", attn_implementation="sdpa")
        model.config.id2label, model.config.label2id = id2label, {v: k for k, v in id2label.items()}
        return model, ()
    base = hf_model.load_pytorch(src.model_dir, "feature-extraction", attn_implementation="sdpa")
    config = copy_config(base.config, id2label)
    with quiet_transformers(transformers):
        model = transformers.BertForSequenceClassification(config)
    missing, unexpected = model.bert.load_state_dict(base.state_dict(), strict=False)
    head = {k.split(".")[0] for k in missing}
    if head - {"pooler"} or unexpected:
        raise InputError(f"{src.path}: encoder weights do not fit BertForSequenceClassification "
                         f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    return model.float().eval(), tuple(sorted(head)) + ("classifier",)


def copy_config(config: Any, id2label: dict[int, str]) -> Any:
    """The source's BertConfig for sequence classification with the data's labels."""
    import copy

    cfg = copy.deepcopy(config)
    cfg.id2label, cfg.label2id = dict(id2label), {v: k for k, v in id2label.items()}
    cfg.num_labels = len(id2label)
    cfg.architectures = ["BertForSequenceClassification"]
    cfg._attn_implementation = "sdpa"
    return cfg


def load_mlm(src: Source) -> Any | None:
    """The source's own masked-LM model (for the MLM generator), or None when it has no MLM head."""
    if not src.has_mlm:
        return None
    from bortconv.converters import hf_model

    return hf_model.load_pytorch(src.model_dir, "fill-mask", attn_implementation="sdpa")


def tokenizer_files(model_dir: Path) -> list[Path]:
    """The tokenizer files to copy into the output, as the source has them (byte for byte)."""
    return [model_dir / n for n in TOKENIZER_FILES if (model_dir / n).is_file()]
