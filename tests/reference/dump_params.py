"""Reference reader: load `.params` files with mxnet's own loader and write what it sees to an npz.

Usage: python dump_params.py OUT.npz FILE.params [FILE.params ...]. Keys are "<file index>/<name or #i>".
Runs in the reference environment only.
"""

import sys
import warnings

warnings.filterwarnings("ignore")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

out, files = sys.argv[1], sys.argv[2:]
arrays = {}
for i, f in enumerate(files):
    with open(f, "rb") as fh:
        v3 = fh.read(28)[24:28] == bytes.fromhex("cafa93f9")
    if v3:
        mx.npx.set_np()
        loaded = mx.npx.load(f)
        mx.npx.reset_np()
    else:
        loaded = mx.nd.load(f)
    items = loaded.items() if isinstance(loaded, dict) else ((f"#{j}", a) for j, a in enumerate(loaded))
    for name, a in items:
        arrays[f"{i}/{name}"] = a.asnumpy()
np.savez(out, **arrays)
