"""Int8 quantization under the accuracy gate; ``bortconv.quantize(fp32_dir, out_dir, options)``."""

from __future__ import annotations

from bortconv._util.facade import make_callable  # noqa: E402

make_callable(__name__, "bortconv.quantize.pipeline:quantize")  # bortconv.quantize(...): the facade's function
