"""bortconv: take Bort out of MXNet checkpoints into Hugging Face, ONNX and OpenVINO.

Importing this package is cheap: numpy is the only heavy import, and only when a function is called.
"""

from __future__ import annotations

from typing import Any

from bortconv._version import __version__

_API = {"convert", "inspect_checkpoint", "ConversionResult", "CheckpointInfo", "sha256_file", "write_tokenizer_dir"}


def __getattr__(name: str) -> Any:  # lazy: `import bortconv` must stay light (tests/test_cli.py::test_lean_import)
    if name in _API:
        from bortconv import api
        return getattr(api, name)
    if name == "export":
        from bortconv.pipeline.export import export
        return export
    if name == "read_params":
        from bortconv.converters.params_reader import read_params
        return read_params
    raise AttributeError(f"module 'bortconv' has no attribute {name!r}")


__all__ = sorted(_API | {"export", "read_params", "__version__"})
