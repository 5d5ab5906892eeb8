"""Write MXNet `.params` files (V2 records, dense, named), the layout mxnet 1.x's `nd.save` writes.

The product never needs mxnet to *read* checkpoints; this writer exists so a Bort-shaped checkpoint can be
made without mxnet (the demo, benchmarks, fuzz seeds). Tests check that mxnet itself loads what it writes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bortconv.converters.params_reader import LIST_MAGIC, TYPE_FLAGS, V2_MAGIC

_FLAG = {TYPE_FLAGS[f][0]: f for f in TYPE_FLAGS if TYPE_FLAGS[f][0] != "bfloat16"}


def write_params(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> int:
    """Write named dense arrays as an mxnet 1.x `.params` file; returns its size in bytes."""
    p = Path(path)
    tmp = p.with_name(p.name + ".partial")
    try:
        with open(tmp, "wb") as fh:
            _write_records(fh, arrays)
        os.replace(tmp, p)
    except BaseException:  # a full disk, a bad dtype, Ctrl-C: no half-written .partial is left behind
        tmp.unlink(missing_ok=True)
        raise
    return p.stat().st_size


def _write_records(fh: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """The list header, one V2 record per array, then the names (mxnet 1.x's `nd.save` order)."""
    fh.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays)))
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        flag = _FLAG.get(arr.dtype.name)
        if flag is None:
            raise ValueError(f"{name}: dtype {arr.dtype} has no MXNet type flag")
        fh.write(struct.pack("<Iii", V2_MAGIC, 0, arr.ndim))
        fh.write(struct.pack(f"<{arr.ndim}q", *arr.shape))
        fh.write(struct.pack("<iii", 1, 0, flag))  # cpu(0), type flag
        fh.write(memoryview(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).cast("B"))
    fh.write(struct.pack("<Q", len(arrays)))
    for name in arrays:
        b = name.encode("utf-8")
        fh.write(struct.pack("<Q", len(b)) + b)
