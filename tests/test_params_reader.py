"""The pure-numpy `.params` reader against mxnet's own loader, on real files and every record layout."""

from __future__ import annotations

import struct
import subprocess
import tracemalloc

import numpy as np
import pytest
from conftest import run_reference
from params_bytes import file_bytes, record, reencode
from reference import refenv

from bortconv.converters.params_reader import read_params
from bortconv.errors import CheckpointFormatError, InputError

# (reference case, layout to re-encode into or None for the file as mxnet wrote it, expected record version)
LAYOUTS = [
    ("bort4_mlm_fp32", None, "V2"),
    ("bort2_cls_fp16", None, "V2"),
    ("bort2_mlm_npx", None, "V3"),
    ("bort4_mlm_legacy", None, "V2"),
    ("bort4_mlm_dedup", None, "V2"),
    ("custom_enc_fp32", "V1", "V1"),
    ("custom_enc_fp32", "pre-V1", "pre-V1"),
    ("broken_nan", "V1", "V1"),
]


@pytest.fixture(scope="module")
def mxnet_view(reference, tmp_path_factory):
    """Every LAYOUTS file, and what mxnet's own loader reads from it (one reference process for all)."""
    d = tmp_path_factory.mktemp("layouts")
    files = []
    for i, (case, layout, _) in enumerate(LAYOUTS):
        src = reference[case].params
        if layout is None:
            files.append(src)
        else:
            p = d / f"{i}_{case}_{layout}.params"
            p.write_bytes(reencode(str(src), layout))
            files.append(p)
    out = d / "mx.npz"
    run_reference("dump_params.py", str(out), *map(str, files))
    with np.load(out) as z:
        seen = {k: z[k] for k in z.files}
    return files, seen


@pytest.mark.parametrize("row", range(len(LAYOUTS)), ids=[f"{c}-{lay or 'as-saved'}" for c, lay, _ in LAYOUTS])
def test_reader_matches_mxnet_bit_for_bit(mxnet_view, row):
    files, seen = mxnet_view
    expected = {k.split("/", 1)[1]: v for k, v in seen.items() if k.startswith(f"{row}/")}
    with read_params(files[row]) as p:
        assert {r.version for r in p.records} == {LAYOUTS[row][2]}
        assert sorted(p.names()) == sorted(expected), "names differ from what mxnet loads"
        for name, want in expected.items():
            got = p.array(name)
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert np.array_equal(got, want, equal_nan=True), name


def test_published_name_counts(reference):
    """bort-facts: a 4_8 MLM save writes 74 names, 2_16 writes 42; deduplicate drops the word embedding."""
    counts = {c: len(read_params(reference[c].params).names())
              for c in ("bort4_mlm_fp32", "bort2_mlm_fp32", "bort4_mlm_dedup")}
    assert counts == {"bort4_mlm_fp32": 74, "bort2_mlm_fp32": 42, "bort4_mlm_dedup": 73}


DTYPES = [  # (stored type, values); bfloat16 data is raw bits
    ("float32", np.array([[1.5, -2.25, 3.0]], np.float32)),
    ("float64", np.array([1e-300, 2.0], np.float64)),
    ("float16", np.array([0.1, -65504.0], np.float16)),
    ("uint8", np.array([0, 255], np.uint8)),
    ("int32", np.array([-(2**31), 7], np.int32)),
    ("int8", np.array([-128, 127], np.int8)),
    ("int64", np.array([-(2**62), 3], np.int64)),
    ("bool", np.array([True, False])),
    ("int16", np.array([-32768, 5], np.int16)),
    ("uint16", np.array([65535, 1], np.uint16)),
    ("uint32", np.array([2**32 - 1, 0], np.uint32)),
    ("uint64", np.array([2**64 - 1, 0], np.uint64)),
]


@pytest.mark.parametrize("version", ["V2", "V1", "pre-V1"])
@pytest.mark.parametrize("dtype,values", DTYPES, ids=[d for d, _ in DTYPES])
def test_every_type_flag(tmp_path, dtype, values, version):
    f = tmp_path / "t.params"
    f.write_bytes(file_bytes([record(values, version=version)], ["x"]))
    with read_params(f) as p:
        got = p.array("x")
        assert p.record("x").dtype == dtype
        assert got.dtype == values.dtype and np.array_equal(got, values)


def test_bfloat16_and_float16_upcast(tmp_path):
    want = np.array([1.5, -2.25, 3.0, 0.1, 100.0, -0.0], np.float32)
    bf16_bits = (want.view(np.uint32) >> 16).astype(np.uint16)  # truncation is exact for these but 0.1
    f = tmp_path / "bf.params"
    f.write_bytes(file_bytes([record(bf16_bits, dtype="bfloat16"), record(want.astype(np.float16))],
                             ["bf", "h"]))
    with read_params(f) as p:
        assert p.array("bf").dtype == np.uint16  # raw unless asked
        up = p.array("bf", upcast=True)
        assert up.dtype == np.float32
        np.testing.assert_allclose(up, want, rtol=2**-7)  # bf16 keeps 8 bits of mantissa
        assert up[0] == 1.5 and up[4] == 100.0
        h = p.array("h", upcast=True)
        assert h.dtype == np.float32 and np.abs(h - want).max() < 0.05


def test_unnamed_list_save_reads(tmp_path):
    f = tmp_path / "list.params"
    f.write_bytes(file_bytes([record(np.ones(3, np.float32)), record(np.zeros((2, 2), np.float16))], None))
    with read_params(f) as p:
        assert not p.has_names and len(p) == 2
        assert p.array(1).shape == (2, 2)


def _header(n: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, n)


HOSTILE = [  # (description, bytes, words the one-line message must contain)
    ("huge shape", _header(1) + struct.pack("<Iii2q", 0xF993FAC9, 0, 2, 2**20, 2**20) + struct.pack("<iii", 1, 0, 0),
     "bytes are left"),
    ("shape beyond any array", _header(1) + struct.pack("<Iii2q", 0xF993FAC9, 0, 2, 2**31, 2**31)
     + struct.pack("<iii", 1, 0, 0), "too large to be an array"),
    ("huge count", _header(2**60) + b"\0" * 16, "arrays"),
    ("rank 1000", _header(1) + struct.pack("<Iii", 0xF993FAC9, 0, 1000) + b"\0" * 64, "rank"),
    ("negative dim", _header(1) + struct.pack("<Iiiq", 0xF993FAC9, 0, 1, -5) + b"\0" * 64, "negative"),
    ("sparse", _header(1) + struct.pack("<Ii", 0xF993FAC9, 1) + b"\0" * 64, "row_sparse"),
    ("bad type flag", _header(1) + struct.pack("<Iiiqiii", 0xF993FAC9, 0, 1, 1, 1, 0, 99) + b"\0" * 8, "type flag"),
    ("trailing bytes", _header(0) + struct.pack("<Q", 0) + b"\0" * 8, "unexpected bytes"),
    ("names mismatch", _header(1) + record(np.ones(1, np.float32)) + struct.pack("<Q", 5), "names"),
    ("name too long", _header(1) + record(np.ones(1, np.float32)) + struct.pack("<QQ", 1, 2**40), "truncated"),
    ("garbage record", _header(1) + b"\xff" * 40, "magic"),
]


@pytest.mark.parametrize("desc,blob,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_headers_fail_cleanly_without_allocating(tmp_path, desc, blob, words):
    f = tmp_path / "evil.params"
    f.write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointFormatError) as err:
            read_params(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in str(err.value) and str(f) in str(err.value)
    assert "\n" not in str(err.value)
    assert peak < 1 << 20, f"reader allocated {peak} bytes on a {len(blob)}-byte file"


def test_sparse_record_written_by_mxnet_is_refused(tmp_path):
    f = tmp_path / "sparse.params"
    snippet = ("import mxnet as mx, numpy as np, sys; "
               "mx.nd.save(sys.argv[1], {'s': mx.nd.sparse.row_sparse_array((np.ones((1,3)), [1]), shape=(4,3))})")
    subprocess.run([str(refenv.python()), "-c", snippet, str(f)], check=True, capture_output=True)
    with pytest.raises(CheckpointFormatError, match="row_sparse"):
        read_params(f)


@pytest.mark.parametrize("cut", [0, 7, 24, 100, -1])
def test_truncated_real_file(reference, tmp_path, cut):
    data = reference["custom_enc_fp32"].params.read_bytes()
    f = tmp_path / "cut.params"
    f.write_bytes(data[:cut] if cut >= 0 else data[:-1])
    with pytest.raises(CheckpointFormatError):
        read_params(f)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_params(tmp_path / "nope.params")
    with pytest.raises(InputError, match="directory"):
        read_params(tmp_path)


def test_views_are_not_copies(reference):
    """Large tensors come back as views into the memory map (no second copy of the checkpoint)."""
    with read_params(reference["bort4_mlm_full_fp16"].params) as p:
        a = p.array("word_embed.0.weight")
        assert a.dtype == np.float16 and a.shape == (50265, 1024)
        assert not a.flags.owndata and not a.flags.writeable


def test_writer_output_is_what_mxnet_loads(tmp_path):
    """bortconv's own writer (demo checkpoints, benchmarks) writes files mxnet's loader reads identically."""
    from bortconv.config import BortVariant
    from bortconv.converters.params_writer import write_params
    from bortconv.converters.demo import demo_arrays
    arrays = demo_arrays(BortVariant(2, 2, 32, 16, 50, max_position_embeddings=8), seed=3)
    f = tmp_path / "w.params"
    write_params(f, arrays)
    out = tmp_path / "mx.npz"
    run_reference("dump_params.py", str(out), str(f))
    with np.load(out) as z:
        seen = {k.split("/", 1)[1]: z[k] for k in z.files}
    assert sorted(seen) == sorted(arrays)
    for k, v in arrays.items():
        assert seen[k].dtype == v.dtype and np.array_equal(seen[k], v), k
