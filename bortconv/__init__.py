"""bortconv: take Bort out of MXNet checkpoints into Hugging Face, ONNX and OpenVINO, with proof.

The flat API (each function takes one options object, or the keywords that build it; the CLI's flags are the
same names with dashes)::

    bortconv.convert(ckpt, out_dir)                      -> ConversionResult (a Hugging Face BERT directory)
    bortconv.export(src, out_dir, target="openvino")     -> ExportResult      (ExportOptions)
    bortconv.trim(hf_dir, out_dir, corpus="domain.txt")  -> TrimResult        (TrimOptions)
    bortconv.quantize(fp32_dir, out_dir)                 -> manifest          (Int8Options)
    bortconv.validate(artifact_dir)                      -> ValidationReport
    bortconv.bench([artifact_dir, ...])                  -> BenchReport
    bortconv.finetune(src, train, dev, out_dir)          -> FinetuneResult    (FinetuneOptions)
    bortconv.package(artifact_dir, repo, fmt="triton")   -> dict
    bortconv.serve(artifact_dir, port=8080)              -> exit code
    bortconv.BortRuntime(artifact_dir).encode(texts)     -> torch-free inference
    bortconv.load_pytorch(hf_dir)                        -> the PyTorch model and its task

Importing this package is cheap: nothing heavy is imported until a function is called
(tests/test_cli.py::test_lean_import).
"""

from __future__ import annotations

import importlib
from typing import Any

from bortconv._version import __version__

#: public name -> "module:attribute" (a stage package that is itself callable: "module:")
_API: dict[str, str] = {
    "convert": "bortconv.converters.convert:convert",
    "inspect_checkpoint": "bortconv.converters.convert:inspect_checkpoint",
    "write_tokenizer_dir": "bortconv.converters.convert:write_tokenizer_dir",
    "ConversionResult": "bortconv.converters.convert:ConversionResult",
    "CheckpointInfo": "bortconv.converters.convert:CheckpointInfo",
    "read_params": "bortconv.converters.params_reader:read_params",
    "load_pytorch": "bortconv.converters.hf_model:load_pytorch",
    "export": "bortconv.pipeline.export:export",
    "ExportResult": "bortconv.pipeline.export:ExportResult",
    "ExportOptions": "bortconv.config:ExportOptions",
    "Int8Options": "bortconv.config:Int8Options",
    "Precision": "bortconv.config:Precision",
    "trim": "bortconv.pipeline.trim:trim",
    "TrimResult": "bortconv.pipeline.trim:TrimResult",
    "TrimOptions": "bortconv.config:TrimOptions",
    "bench": "bortconv.bench:",
    "BortRuntime": "bortconv.runtime.bort:BortRuntime",
    "quantize": "bortconv.quantize:",
    "validate": "bortconv.validate:",
    "finetune": "bortconv.finetune:",
    "package": "bortconv.package:",
    "serve": "bortconv.serve:",
}


def __getattr__(name: str) -> Any:  # lazy: `import bortconv` must stay light
    if name not in _API:
        raise AttributeError(f"module 'bortconv' has no attribute {name!r}")
    where, attr = _API[name].split(":")
    module = importlib.import_module(where)
    return getattr(module, attr) if attr else module


__all__ = sorted(_API) + ["__version__"]
