"""Convert a Bort `.params` checkpoint into a Hugging Face BERT directory, or describe it: the converters' stage
as two calls, each a chain of steps returning a value."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bortconv._util.hashing import sha256_file
from bortconv._version import __version__
from bortconv._util.atomic import atomic_directory, check_output_dir
from bortconv._util.memory import memory_budget
from bortconv.config import BortVariant, ConvertOptions, DType, Head, as_path
from bortconv.converters.hf_writer import WEIGHTS_FILE, write_hf_model
from bortconv.converters.mapping import ConversionPlan, check_finite, count_nonfinite, plan_conversion
from bortconv.converters.params_reader import ParamsFile, read_params
from bortconv.errors import InputError
from bortconv.layout import CONFIG_FILE, CONVERSION_RECORD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    hf_key: str | None
    dtype: str
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`inspect_checkpoint` found in a `.params` file."""

    path: str
    variant: BortVariant
    head: Head
    num_labels: int | None
    dtype: str
    parameter_count: int
    file_size: int
    record_versions: tuple[str, ...]
    deduplicated: bool
    tensors: tuple[TensorInfo, ...]
    nonfinite: dict[str, int]  # stored name -> NaN/Inf count (convert refuses such a checkpoint)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["variant"] = self.variant.to_dict()
        d["head"] = self.head.value
        return d


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert` wrote."""

    output_dir: str
    source: str
    source_sha256: str
    variant: BortVariant
    head: Head
    num_labels: int | None
    dtype: DType
    source_dtype: str
    parameter_count: int
    files: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["variant"] = self.variant.to_dict()
        d["head"] = self.head.value
        d["dtype"] = self.dtype.value
        return d


def _options(**kwargs: object) -> ConvertOptions:
    if isinstance(kwargs.get("dtype"), str):
        try:
            kwargs["dtype"] = DType(kwargs["dtype"])
        except ValueError:
            raise InputError(f"--dtype: '{kwargs['dtype']}' is not one of fp32, fp16") from None
    return ConvertOptions(**{k: v for k, v in kwargs.items() if v is not None})


def _info(params: ParamsFile, plan: ConversionPlan) -> CheckpointInfo:
    by_source = {t.source_name: t.key for t in plan.tensors if t.source_name}
    tensors = tuple(TensorInfo(name=r.name or f"#{r.index}", hf_key=by_source.get(r.name), dtype=r.dtype,
                               shape=r.shape) for r in params.records)
    return CheckpointInfo(
        path=str(params.path), variant=plan.variant, head=plan.head, num_labels=plan.num_labels,
        dtype=plan.source_dtype, parameter_count=plan.parameter_count, file_size=params.size,
        record_versions=tuple(sorted({r.version for r in params.records})), deduplicated=plan.deduplicated,
        tensors=tensors, nonfinite=count_nonfinite(params, plan))


def inspect_checkpoint(checkpoint: str | os.PathLike[str], *, variant: str | None = None,
                       heads: int | None = None) -> CheckpointInfo:
    """Read a Bort `.params` file and describe it: variant, head, dtype, parameter count, tensors."""
    opts = _options(variant=variant, heads=heads)
    with read_params(as_path(checkpoint, "checkpoint")) as params:
        return _info(params, plan_conversion(params, opts))


def convert(checkpoint: str | os.PathLike[str], output_dir: str | os.PathLike[str], *,
            dtype: str | DType = DType.FLOAT32, variant: str | None = None, heads: int | None = None,
            decoder_layer_norm_eps: float | None = None, force: bool = False, vocab: str | os.PathLike[str] | None = None,
            merges: str | os.PathLike[str] | None = None,
            max_memory: int | str | None = None) -> ConversionResult:
    """Convert a Bort `.params` checkpoint into a Hugging Face BERT directory.

    The directory holds ``config.json`` (``model_type: bert``), ``model.safetensors`` and a conversion record;
    it loads with ``transformers.AutoModel*.from_pretrained``. With `vocab` (gluonnlp vocabulary JSON) and
    `merges` (GPT-2 BPE merges) Bort's tokenizer is written beside the model. Nothing is left at `output_dir`
    if any step fails. Raises a :class:`bortconv.errors.BortconvError` subclass on bad input. With `max_memory`
    (bytes or "1G") the run stops cleanly if its resident memory passes that budget (it streams: about 90 MB
    for the full-size Bort).
    """
    with memory_budget(max_memory, "convert"):
        opts = _options(dtype=dtype, variant=variant, heads=heads, decoder_layer_norm_eps=decoder_layer_norm_eps,
                        force=force)
        out, checkpoint = as_path(output_dir, "output_dir"), as_path(checkpoint, "checkpoint")
        check_output_dir(out, opts.force, reads=[checkpoint, vocab, merges])  # fail before reading anything
        if bool(vocab) != bool(merges):
            raise InputError("--vocab and --merges go together")
        with read_params(checkpoint) as params:
            plan = plan_conversion(params, opts)
            if opts.check_finite:
                check_finite(params, plan)
            tokenizer = _tokenizer_for(vocab, merges, plan.variant.vocab_size) if vocab and merges else None
            digest = sha256_file(params.path)
            record = {
                "tool": f"bortconv {__version__}",
                "source": str(Path(checkpoint).resolve()),
                "source_sha256": digest,
                "source_dtype": plan.source_dtype,
                "variant": plan.variant.to_dict(),
                "head": plan.head.value,
                "num_labels": plan.num_labels,
                "dtype": opts.dtype.value,
                "decoder_layer_norm_eps": opts.decoder_layer_norm_eps if plan.head is Head.MLM else None,
                "deduplicated_source": plan.deduplicated,
                "parameter_count": plan.parameter_count,
            }
            with atomic_directory(out, force=opts.force) as tmp:
                sizes = write_hf_model(tmp, params, plan, opts.dtype, opts.decoder_layer_norm_eps, record)
                if tokenizer is not None:
                    from bortconv.converters.tokenizer import write_tokenizer
                    for name, path in write_tokenizer(tokenizer[0], tmp, tokenizer[1]).items():
                        sizes[name] = path.stat().st_size
                sizes |= {name: (tmp / name).stat().st_size for name in (CONFIG_FILE, CONVERSION_RECORD)}
        return ConversionResult(
            output_dir=str(out), source=str(checkpoint), source_sha256=digest, variant=plan.variant,
            head=plan.head, num_labels=plan.num_labels, dtype=opts.dtype, source_dtype=plan.source_dtype,
            parameter_count=plan.parameter_count, files=sizes)


def _tokenizer_for(vocab: str | os.PathLike[str], merges: str | os.PathLike[str], rows: int) -> tuple[Any, Any]:
    """Read and check the tokenizer files before anything is written: (tokenizer, gluon vocab)."""
    from bortconv.converters.tokenizer import build_tokenizer, check_vocab_size, read_gluon_vocab
    gv = read_gluon_vocab(vocab)
    check_vocab_size(gv, rows, vocab)
    return build_tokenizer(vocab, merges), gv


def write_tokenizer_dir(vocab: str | os.PathLike[str], merges: str | os.PathLike[str],
                        output_dir: str | os.PathLike[str], *, max_length: int = 512,
                        force: bool = False) -> dict[str, int]:
    """Write Bort's tokenizer (tokenizer.json + transformers config) alone into a new directory."""
    from bortconv.converters.tokenizer import build_tokenizer, read_gluon_vocab, write_tokenizer
    tok = build_tokenizer(vocab, merges, max_length=max_length)  # checks max_length before reading the files
    gv = read_gluon_vocab(vocab)
    with atomic_directory(Path(output_dir), force=force, reads=[vocab, merges]) as tmp:
        written = write_tokenizer(tok, tmp, gv)
        return {name: path.stat().st_size for name, path in written.items()}


__all__ = ["CheckpointInfo", "ConversionResult", "TensorInfo", "convert", "inspect_checkpoint", "sha256_file",
           "write_tokenizer_dir", "WEIGHTS_FILE"]
