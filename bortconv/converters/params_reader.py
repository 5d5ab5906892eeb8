"""Read MXNet 1.x `.params` files (NDArray list/dict saves) with numpy alone.

The file is memory-mapped, never read whole: every tensor comes back as a read-only view into the map, so a
255 MB checkpoint costs 255 MB of (shared, file-backed) pages and nothing more. Every count, rank, dimension
and byte length is checked against what is left of the file *before* anything is allocated, so a hostile
header cannot make the reader allocate more than the file holds.

Layout (little-endian; see ../shared/docs/bort-facts.md)::

    u64 0x112 | u64 reserved | u64 N | N x record | u64 K | K x (u64 len, utf-8 name)
    record V2/V3: u32 magic | i32 stype | TShape | i32 dev_type, i32 dev_id | i32 type_flag | data
    record V1:    u32 magic | TShape | context | type_flag | data
    pre-V1:       u32 ndim  | ndim x u32 dims | context | type_flag | data
    TShape = i32 ndim | ndim x i64 dims
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bortconv.errors import CheckpointFormatError, InputError, shown

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
MAX_NDIM = 32  # mxnet's own limit; a larger rank is a corrupt header, not a tensor
#: Bort writes 42 to 74 arrays. Each parsed record costs ~300 bytes of Python objects, and a "none" array takes
#: only 4 bytes of file, so without a cap a hostile header could make the table ~70x the file's size.
MAX_ARRAYS = 1 << 13
#: numpy's limit on an array's byte size (a shape with a 0 dimension may still claim more than this)
MAX_ARRAY_BYTES = np.iinfo(np.intp).max

#: MXNet type flag -> (name, numpy storage dtype). bfloat16 is stored as raw uint16.
TYPE_FLAGS: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("float64", np.dtype("<f8")),
    2: ("float16", np.dtype("<f2")),
    3: ("uint8", np.dtype("u1")),
    4: ("int32", np.dtype("<i4")),
    5: ("int8", np.dtype("i1")),
    6: ("int64", np.dtype("<i8")),
    7: ("bool", np.dtype("?")),
    8: ("int16", np.dtype("<i2")),
    9: ("uint16", np.dtype("<u2")),
    10: ("uint32", np.dtype("<u4")),
    11: ("uint64", np.dtype("<u8")),
    12: ("bfloat16", np.dtype("<u2")),
}
STORAGE_TYPES = {0: "dense", 1: "row_sparse", 2: "csr"}
FLOAT_TYPES = frozenset({"float32", "float64", "float16", "bfloat16"})


@dataclass(frozen=True)
class TensorRecord:
    """Where one array lives in the file and what it is."""

    index: int
    name: str | None
    dtype: str  # MXNet's name for the stored type, e.g. "float16", "bfloat16"
    shape: tuple[int, ...] | None  # None for a "none" (empty placeholder) array
    offset: int  # byte offset of the data in the file
    version: str  # "V1", "V2", "V3" or "pre-V1"

    @property
    def nbytes(self) -> int:
        if self.shape is None:
            return 0
        return TYPE_FLAGS_BY_NAME[self.dtype].itemsize * _prod(self.shape)

    @property
    def size(self) -> int:
        return 0 if self.shape is None else _prod(self.shape)


TYPE_FLAGS_BY_NAME = {name: dt for name, dt in TYPE_FLAGS.values()}


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class ParamsFile:
    """A parsed `.params` file: the record table plus a read-only memory map of the data.

    Use :func:`read_params` to open one. Arrays returned by :meth:`array` are views into the map and stay
    valid while this object is alive.
    """

    def __init__(self, path: Path, records: tuple[TensorRecord, ...], has_names: bool,
                 mm: mmap.mmap, size: int) -> None:
        self.path = path
        self._mmap = mm
        self.records = records
        self.has_names = has_names
        self._buffer = np.frombuffer(mm, dtype=np.uint8)
        self.size = size
        self._by_name = {r.name: r for r in records if r.name is not None}

    def __len__(self) -> int:
        return len(self.records)

    def names(self) -> list[str]:
        """The names of the arrays, in file order (empty for an unnamed list save)."""
        return [r.name for r in self.records if r.name is not None]

    def record(self, name: str) -> TensorRecord:
        return self._by_name[name]

    def array(self, key: str | int, *, upcast: bool = False) -> np.ndarray:
        """The array named `key` (or at index `key`), as a read-only view when no conversion is needed.

        With ``upcast=True`` float16 and bfloat16 come back as float32 (a new array).
        """
        rec = self.records[key] if isinstance(key, int) else self._by_name[key]
        return self.array_for(rec, upcast=upcast)

    def array_for(self, rec: TensorRecord, *, upcast: bool = False) -> np.ndarray:
        if rec.shape is None:
            raise CheckpointFormatError(
                f"{self.path}: array {shown(rec.name) if rec.name else rec.index} is empty (a 'none' array)")
        storage = TYPE_FLAGS_BY_NAME[rec.dtype]
        raw = self._buffer[rec.offset: rec.offset + rec.nbytes].view(storage).reshape(rec.shape)
        if rec.dtype == "bfloat16":
            # bfloat16 is the top half of a float32: shift the bits into place.
            return (raw.astype(np.uint32) << 16).view(np.float32) if upcast else raw
        if upcast and rec.dtype == "float16":
            return raw.astype(np.float32)
        return raw

    def release(self) -> None:
        """Drop the mapped pages from this process's resident set (they stay in the page cache).

        Called between tensors so peak RSS stays near one tensor, not the whole checkpoint."""
        if hasattr(mmap, "MADV_DONTNEED") and not self._mmap.closed:
            self._mmap.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        self._buffer = np.empty(0, np.uint8)  # views handed out keep the map alive until they go

    def __enter__(self) -> "ParamsFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Cursor:
    """Bounds-checked little-endian reads from a byte buffer; every overrun is a CheckpointFormatError."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.path = path

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, fmt: str, what: str) -> tuple[int, ...]:
        n = struct.calcsize(fmt)
        if self.remaining() < n:
            raise CheckpointFormatError(
                f"{self.path}: file is truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"only {self.remaining()} left")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return vals

    def u32(self, what: str) -> int:
        return self.take("<I", what)[0]

    def i32(self, what: str) -> int:
        return self.take("<i", what)[0]

    def u64(self, what: str) -> int:
        return self.take("<Q", what)[0]

    def skip(self, n: int, what: str) -> int:
        if n < 0 or self.remaining() < n:
            raise CheckpointFormatError(
                f"{self.path}: file is truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"only {self.remaining()} left")
        start = self.pos
        self.pos += n
        return start


def _read_tshape(cur: _Cursor, what: str, legacy_u32: int | None = None) -> tuple[int, ...] | None:
    """Read a TShape; returns None for ndim -1 (unknown shape). `legacy_u32` is a pre-V1 ndim already read."""
    if legacy_u32 is not None:
        ndim = legacy_u32
        if ndim > MAX_NDIM:
            raise CheckpointFormatError(f"{cur.path}: {what}: rank {ndim} is not a tensor rank (header is corrupt)")
        dims = cur.take(f"<{ndim}I", f"{what} dims") if ndim else ()
        return tuple(dims)
    ndim = cur.i32(f"{what} rank")
    if ndim == -1:
        return None
    if ndim < 0 or ndim > MAX_NDIM:
        raise CheckpointFormatError(f"{cur.path}: {what}: rank {ndim} is not a tensor rank (header is corrupt)")
    dims = cur.take(f"<{ndim}q", f"{what} dims") if ndim else ()
    for d in dims:
        if d < 0:
            raise CheckpointFormatError(f"{cur.path}: {what}: negative dimension {d} in shape {tuple(dims)}")
    return tuple(dims)


def _read_record(cur: _Cursor, index: int) -> tuple[str, str, tuple[int, ...] | None, int]:
    """Parse one array record; returns (version, dtype name, shape or None, data offset)."""
    what = f"array #{index}"
    start = cur.pos
    magic = cur.u32(f"{what} magic")
    if magic in (V2_MAGIC, V3_MAGIC):
        version = "V2" if magic == V2_MAGIC else "V3"
        stype = cur.i32(f"{what} storage type")
        if stype != 0:
            kind = STORAGE_TYPES.get(stype, f"unknown storage type {stype}")
            raise CheckpointFormatError(
                f"{cur.path}: {what} (offset {start}) is stored {kind}; bortconv reads dense tensors only")
        shape = _read_tshape(cur, what)
        if shape is None or (version == "V2" and len(shape) == 0):
            return version, "float32", None, cur.pos
    elif magic == V1_MAGIC:
        version = "V1"
        shape = _read_tshape(cur, what)
        if shape is None or len(shape) == 0:
            return version, "float32", None, cur.pos
    else:
        version = "pre-V1"
        if magic > MAX_NDIM:
            raise CheckpointFormatError(
                f"{cur.path}: {what} (offset {start}) starts with 0x{magic:08X}, which is neither an NDArray "
                f"magic nor a rank: the file is corrupt")
        shape = _read_tshape(cur, what, legacy_u32=magic)
        if not shape:
            return version, "float32", None, cur.pos
    dev_type, _dev_id = cur.take("<ii", f"{what} context")
    if dev_type not in (1, 2, 3, 5):  # cpu, gpu, cpu_pinned, cpu_shared
        raise CheckpointFormatError(f"{cur.path}: {what}: unknown device type {dev_type} (header is corrupt)")
    flag = cur.i32(f"{what} type flag")
    if flag not in TYPE_FLAGS:
        raise CheckpointFormatError(f"{cur.path}: {what}: unknown type flag {flag}")
    dtype, storage = TYPE_FLAGS[flag]
    nbytes = storage.itemsize * _prod(shape)
    if storage.itemsize * _prod(tuple(d for d in shape if d)) > MAX_ARRAY_BYTES:  # e.g. (0, 2**62): empty, but
        raise CheckpointFormatError(                                                # numpy cannot even index it
            f"{cur.path}: {what}: shape {shape} of {dtype} is too large to be an array (header is corrupt)")
    if nbytes > cur.remaining():
        raise CheckpointFormatError(
            f"{cur.path}: {what} claims shape {shape} of {dtype} ({nbytes} bytes) but only "
            f"{cur.remaining()} bytes are left in the file")
    offset = cur.skip(nbytes, f"{what} data")
    return version, dtype, shape, offset


def read_params(path: str | os.PathLike[str]) -> ParamsFile:
    """Open an MXNet `.params` file and parse its record table without copying any tensor data.

    Raises :class:`InputError` for a missing or unreadable path and :class:`CheckpointFormatError` for
    anything that is not a complete, well-formed NDArray file (empty, text, truncated, wrong magic, sizes that
    exceed the file, sparse tensors, trailing garbage).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a .params file")
    try:
        size = p.stat().st_size
        fh = open(p, "rb")
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror})") from None
    with fh:
        if size < 32:
            raise CheckpointFormatError(
                f"{p}: {size} bytes is too short to be an MXNet .params file (header alone is 24 bytes)")
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        records, has_names = _parse(mm, p)
    except BaseException:
        mm.close()
        raise
    return ParamsFile(p, records, has_names, mm, size)


def _parse(mm: mmap.mmap, p: Path) -> tuple[tuple[TensorRecord, ...], bool]:
    cur = _Cursor(mm, p)
    magic = cur.u64("file magic")
    if magic != LIST_MAGIC:
        head = bytes(mm[:8])
        hint = " (it looks like text)" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else ""
        raise CheckpointFormatError(
            f"{p}: not an MXNet .params file: magic 0x{magic:X}, expected 0x{LIST_MAGIC:X}{hint}")
    cur.u64("reserved field")
    n = cur.u64("array count")
    # Each record takes at least 4 bytes (a pre-V1 rank-0 record), so a count larger than that is a lie.
    if n > cur.remaining() // 4:
        raise CheckpointFormatError(f"{p}: header claims {n} arrays, more than the file's {cur.end} bytes can hold")
    if n > MAX_ARRAYS:
        raise CheckpointFormatError(
            f"{p}: header claims {n} arrays; bortconv reads at most {MAX_ARRAYS} (a Bort checkpoint has 42 to 74)")
    parsed = [_read_record(cur, i) for i in range(n)]
    k = cur.u64("name count")
    if k not in (0, n):
        raise CheckpointFormatError(f"{p}: {n} arrays but {k} names (must be 0 or {n})")
    if k > cur.remaining() // 8:
        raise CheckpointFormatError(f"{p}: header claims {k} names, more than the file can hold")
    names: list[str | None] = []
    for i in range(k):
        ln = cur.u64(f"name #{i} length")
        start = cur.skip(ln, f"name #{i}")
        try:
            names.append(bytes(mm[start:start + ln]).decode("utf-8"))
        except UnicodeDecodeError:
            raise CheckpointFormatError(f"{p}: name #{i} is not valid UTF-8") from None
    if cur.remaining():
        raise CheckpointFormatError(
            f"{p}: {cur.remaining()} unexpected bytes after the last name (offset {cur.pos}); file is corrupt")
    if k and len(set(names)) != len(names):
        dup = sorted(x for x, c in Counter(names).items() if c > 1)
        raise CheckpointFormatError(f"{p}: duplicate array names: {', '.join(shown(str(d)) for d in dup[:5])}")
    if not k:
        names = [None] * n
    records = tuple(
        TensorRecord(index=i, name=names[i], dtype=dt, shape=shape, offset=off, version=ver)
        for i, (ver, dt, shape, off) in enumerate(parsed))
    return records, bool(k)
