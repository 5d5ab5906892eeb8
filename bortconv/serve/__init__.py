"""`bortconv serve`: an artifact behind KServe's model server, Open Inference Protocol (v2) over REST.

- :mod:`bortconv.serve.server`: the server (host binding, logging, clean SIGTERM);
- :mod:`bortconv.serve.model`: the kserve.Model: request parsing, outputs by task;
- :mod:`bortconv.serve.batcher`: the async batcher that merges concurrent requests, sorted by length;
- :mod:`bortconv.serve.body`: a request body before kserve reads it (the size bound, JSON unless binary);
- :mod:`bortconv.serve.cli`: the command's arguments.

Torch-free: uses only bortconv's runtime (plus kserve, onnxruntime/openvino). Nothing heavy is imported
until a server starts.
"""

from __future__ import annotations

from bortconv._util.facade import make_callable  # noqa: E402

make_callable(__name__, "bortconv.serve.server:serve")  # bortconv.serve(...): the facade's function
