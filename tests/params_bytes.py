"""Test helpers that write `.params` bytes directly: re-encode real mxnet-written records as V1 or pre-V1
(layouts mxnet 1.9 still reads but no longer writes), write dtypes mxnet cannot create (bfloat16, int16...),
and craft hostile headers. The re-encoded files are checked against mxnet's own loader in the tests."""

from __future__ import annotations

import struct

import numpy as np

from bortconv.converters.params_reader import TYPE_FLAGS, V1_MAGIC, V2_MAGIC, V3_MAGIC, read_params

FLAG_OF = {name: flag for flag, (name, _) in TYPE_FLAGS.items()}


def record(arr: np.ndarray, *, version: str = "V2", dtype: str | None = None) -> bytes:
    """One array record. `dtype` overrides the stored type name (e.g. "bfloat16" for raw uint16 data)."""
    dtype = dtype or arr.dtype.name
    shape = arr.shape
    ctx = struct.pack("<ii", 1, 0)
    flag = struct.pack("<i", FLAG_OF[dtype])
    data = np.ascontiguousarray(arr).tobytes()
    tshape = struct.pack("<i", len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
    if version in ("V2", "V3"):
        head = struct.pack("<Ii", V2_MAGIC if version == "V2" else V3_MAGIC, 0) + tshape
    elif version == "V1":
        head = struct.pack("<I", V1_MAGIC) + tshape
    elif version == "pre-V1":
        head = struct.pack(f"<I{len(shape)}I", len(shape), *shape)
    else:
        raise ValueError(version)
    return head + ctx + flag + data


def file_bytes(records: list[bytes], names: list[str] | None) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
    names = names or []
    out += struct.pack("<Q", len(names))
    for n in names:
        b = n.encode()
        out += struct.pack("<Q", len(b)) + b
    return out


def reencode(path: str, version: str) -> bytes:
    """The same arrays and names as a real file, with every record in another layout."""
    with read_params(path) as p:
        recs = [record(np.array(p.array_for(r)), version=version, dtype=r.dtype) for r in p.records]
        return file_bytes(recs, p.names() or None)
