"""The public Python API: the facade over the stages. Each function is one step or a chain of them, returning a
value; options are frozen config objects (:mod:`bortconv.config`), with keyword facades for convenience.

    convert, inspect_checkpoint, write_tokenizer_dir   bortconv.converters.convert
    export, ExportResult                               bortconv.pipeline.export
    sha256_file                                        bortconv._hashing
"""

from __future__ import annotations

from typing import Any

from bortconv._hashing import sha256_file
from bortconv.converters.convert import (CheckpointInfo, ConversionResult, TensorInfo, convert, inspect_checkpoint,
                                         write_tokenizer_dir)
from bortconv.converters.hf_writer import WEIGHTS_FILE


def __getattr__(name: str) -> Any:  # the export pipeline imports torch-side modules only when it is asked for
    if name in ("export", "ExportResult"):
        from bortconv.pipeline import export as _export
        return getattr(_export, name)
    raise AttributeError(f"module 'bortconv.api' has no attribute {name!r}")


__all__ = ["CheckpointInfo", "ConversionResult", "TensorInfo", "convert", "export", "ExportResult",
           "inspect_checkpoint", "sha256_file", "write_tokenizer_dir", "WEIGHTS_FILE"]
