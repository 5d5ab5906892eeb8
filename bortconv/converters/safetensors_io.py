"""Stream tensors into a `.safetensors` file, converting dtype chunk by chunk.

`safetensors.numpy.save_file` builds the whole file in memory; for Bort that doubles peak RSS. The format is
simple enough to stream: u64 header length, a JSON header (dtype, shape, data_offsets per tensor, plus
``__metadata__``), then the raw little-endian data in header order.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                      "int64": "I64", "int32": "I32"}
CHUNK_ELEMENTS = 1 << 22  # 16 MB of float32 per write


@dataclass(frozen=True)
class TensorSource:
    """A tensor to write: its key, shape, and a function returning its values (any float dtype)."""

    key: str
    shape: tuple[int, ...]
    values: Callable[[], np.ndarray]
    done: Callable[[], None] = lambda: None  # called after the tensor is written (frees mapped pages)


def write_safetensors(path: Path, tensors: Sequence[TensorSource], dtype: str,
                      metadata: dict[str, str] | None = None) -> int:
    """Write `tensors` as `dtype` ("float32" or "float16") to `path`; returns the file size."""
    np_dtype = np.dtype(dtype).newbyteorder("<")
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for t in tensors:
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * np_dtype.itemsize
        header[t.key] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(t.shape),
                         "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data must start 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for t in tensors:
            values = t.values()
            if tuple(values.shape) != tuple(t.shape):
                raise ValueError(f"{t.key}: values have shape {values.shape}, header says {t.shape}")
            flat = values.reshape(-1)
            for start in range(0, flat.size, CHUNK_ELEMENTS):
                chunk = np.ascontiguousarray(flat[start:start + CHUNK_ELEMENTS], dtype=np_dtype)
                fh.write(memoryview(chunk).cast("B"))
                t.done()
            del values, flat
    return 8 + len(blob) + offset


def read_safetensors_header(path: Path) -> dict[str, object]:
    """The JSON header of a safetensors file (used to re-check what was written); ValueError if the file is shorter
    than its header or its tensors' data say (a cut download), before any tensor is read."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        first = fh.read(8)
        if len(first) < 8:
            raise ValueError(f"{size} bytes, shorter than a safetensors header")
        (n,) = struct.unpack("<Q", first)
        if 8 + n > size:
            raise ValueError(f"truncated: {size} bytes, but its header alone takes {8 + n}")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    try:
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        raise ValueError("its header has a tensor without data_offsets [begin, end]") from None
    if ends and 8 + n + max(ends) > size:
        raise ValueError(f"truncated: {size} bytes, but its tensors end at byte {8 + n + max(ends)}")
    return header
