"""Model repositories for serving engines: `bortconv package ARTIFACT --format triton|ovms -o REPO`.

- :mod:`bortconv.package.triton`: Triton ``config.pbtxt`` + version directory (ONNX Runtime or OpenVINO backend);
- :mod:`bortconv.package.ovms`: OpenVINO Model Server ``config.json``, with text-in models
  (:mod:`bortconv.package.ovms_text_models`) where the artifact carries the OpenVINO tokenizer;
- :mod:`bortconv.package.signature`: the model file's real inputs and outputs;
- :mod:`bortconv.package.ovms_schema`: OVMS's own config schema, to check against.

Torch-free: uses only bortconv's runtime, layout, manifest and atomic writes (plus onnxruntime/openvino).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMATS", "package_artifact"]


def __getattr__(name: str) -> Any:  # lazy: `bortconv package --help` must not import openvino or numpy
    if name in __all__:
        from bortconv.package import repository
        return getattr(repository, name)
    raise AttributeError(f"module 'bortconv.package' has no attribute {name!r}")

from bortconv._util.facade import make_callable  # noqa: E402

make_callable(__name__, "bortconv.package.repository:package_artifact")  # bortconv.package(...): the facade's function
