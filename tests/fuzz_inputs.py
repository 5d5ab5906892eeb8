"""Fuzzing the readers: seed files, structure-aware mutations (hypothesis strategies) and the oracle.

The oracle: feeding any byte string to a reader ends in success or in bortconv's own error type
(a :class:`BortconvError` with a one-line, printable message); never another exception, never a hang, and
never an allocation beyond the file's own size plus a small constant (tracemalloc peak).

Used by tests/test_fuzz.py (bounded budget) and benchmarks/fuzz_readers.py (long runs).
"""

from __future__ import annotations

import contextlib
import json
import signal
import struct
import tracemalloc
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from params_bytes import file_bytes, record

from bortconv.config import BortVariant, ConvertOptions, Head
from bortconv.converters.mapping import check_finite, plan_conversion
from bortconv.converters.params_reader import TYPE_FLAGS, V1_MAGIC, V2_MAGIC, V3_MAGIC, read_params
from bortconv.errors import BortconvError

#: the allowance beyond the file's size: the record table (at most MAX_ARRAYS records of ~300 bytes), the
#: mapping plan, messages, one chunk of the NaN scan
PARAMS_SLACK = 4 << 20
#: JSON becomes Python objects (a 4-byte `"a",` is a 50-byte str plus a list slot): linear, not constant
JSON_FACTOR, JSON_SLACK = 64, 1 << 20
#: a hard stop per example, beyond hypothesis' own deadline (which only reports after the example ends)
HARD_LIMIT_S = 10


# ---------------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    options: tuple[ConvertOptions, ...] = field(default=(ConvertOptions(),))


TINY = BortVariant(num_layers=2, num_heads=2, intermediate_size=12, hidden_size=8, vocab_size=20,
                   max_position_embeddings=6)


def _named(arrays: dict[str, np.ndarray], version: str = "V2", dtype: str | None = None) -> bytes:
    return file_bytes([record(a, version=version, dtype=dtype) for a in arrays.values()], list(arrays))


def synthetic_seeds() -> list[Seed]:
    """Small valid files of every record layout, head and dtype the reader knows (a few KB each)."""
    from bortconv.converters.demo import demo_arrays

    heads2 = (ConvertOptions(heads=2),)
    enc = demo_arrays(TINY, seed=1, dtype="float32", head=Head.ENCODER)
    mlm = demo_arrays(TINY, seed=2, dtype="float16", head=Head.MLM)
    cls = demo_arrays(TINY, seed=3, dtype="float32", head=Head.CLASSIFIER)
    bf16 = {k: (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16) for k, v in enc.items()}
    legacy = {"bertencoder0_position_weight": enc["encoder.position_weight"],
              "bortmodel0_word_embed_embedding0_weight": enc["word_embed.0.weight"],
              "bertencoder0_transformer0_proj_weight": enc["encoder.transformer_cells.0.proj.weight"]}
    dedup = {k: v for k, v in mlm.items() if k != "word_embed.0.weight"}
    classifier_prefixed = {("bort." + k if not k.startswith("classifier.") else k): v for k, v in cls.items()}
    return [
        Seed("tiny_enc_v2_fp32", _named(enc), heads2),
        Seed("tiny_enc_v1", _named(enc, "V1"), heads2),
        Seed("tiny_enc_prev1", _named(enc, "pre-V1"), heads2),
        Seed("tiny_enc_v3", _named(enc, "V3"), heads2),
        Seed("tiny_enc_bf16", file_bytes([record(a, dtype="bfloat16") for a in bf16.values()], list(bf16)),
             heads2),
        Seed("tiny_mlm_fp16", _named(mlm), heads2),
        Seed("tiny_mlm_dedup", _named(dedup), heads2),
        Seed("tiny_cls_prefixed", _named(classifier_prefixed), heads2),
        Seed("legacy_names", _named(legacy), heads2),
        Seed("list_save", file_bytes([record(a) for a in list(enc.values())[:4]], None), heads2),
        Seed("v3_scalar", file_bytes([record(np.array(1.5, np.float32), version="V3")], ["s"]), heads2),
    ]


# ---------------------------------------------------------------------------------------------- structure


def structural_fields(data: bytes) -> list[tuple[int, str, str]]:
    """(offset, struct format, what) of every header field of a *valid* file: counts, magics, ranks, dims,
    contexts, type flags, name lengths. Independent of the reader, so mutations aim where parsers go wrong."""
    out = [(0, "<Q", "file magic"), (8, "<Q", "reserved"), (16, "<Q", "array count")]
    (n,) = struct.unpack_from("<Q", data, 16)
    pos = 24
    for _ in range(n):
        (magic,) = struct.unpack_from("<I", data, pos)
        if magic in (V2_MAGIC, V3_MAGIC, V1_MAGIC):
            out.append((pos, "<I", "record magic"))
            pos += 4
            if magic != V1_MAGIC:
                out.append((pos, "<i", "storage type"))
                pos += 4
            (ndim,) = struct.unpack_from("<i", data, pos)
            out.append((pos, "<i", "rank"))
            pos += 4
            dims = struct.unpack_from(f"<{ndim}q", data, pos)
            out += [(pos + 8 * j, "<q", "dim") for j in range(ndim)]
            pos += 8 * ndim
            if ndim == 0 and magic != V3_MAGIC:
                continue
        else:
            ndim = magic
            out.append((pos, "<I", "pre-V1 rank"))
            pos += 4
            dims = struct.unpack_from(f"<{ndim}I", data, pos)
            out += [(pos + 4 * j, "<I", "pre-V1 dim") for j in range(ndim)]
            pos += 4 * ndim
        out += [(pos, "<i", "device type"), (pos + 4, "<i", "device id"), (pos + 8, "<i", "type flag")]
        (flag,) = struct.unpack_from("<i", data, pos + 8)
        pos += 12 + TYPE_FLAGS[flag][1].itemsize * int(np.prod(dims, dtype=np.int64))
    out.append((pos, "<Q", "name count"))
    (k,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    for _ in range(k):
        out.append((pos, "<Q", "name length"))
        (ln,) = struct.unpack_from("<Q", data, pos)
        out.append((pos + 8, "<B", "name byte"))
        pos += 8 + ln
    assert pos == len(data), "structural_fields walked a file that is not valid"
    return out


_WIDTH_MASK = {"<Q": (1 << 64) - 1, "<q": (1 << 64) - 1, "<I": (1 << 32) - 1, "<i": (1 << 32) - 1, "<B": 0xFF}
_UNSIGNED = {"<Q": "<Q", "<q": "<Q", "<I": "<I", "<i": "<I", "<B": "<B"}
INTERESTING = [0, 1, 2, 3, 7, 12, 13, 31, 32, 33, 255, 0x112, 2**15, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
               2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -1, -2, -5, V1_MAGIC, V2_MAGIC, V3_MAGIC, ord("\n"),
               0x1B, 0x80, 0xC0, 0xFF]


RESHAPE_DIMS = [0, 1, 2, 3, 8, 2**16, 2**31, 2**32 - 1, 2**40, 2**61, 2**62, 2**63 - 1]
HOSTILE_NAMES = [
    "", ".", "bort.", "arg:", "aux:", "encoder.transformer_cells.99999999999999.proj.weight",
    "encoder.transformer_cells." + "9" * 5000 + ".proj.weight", "encoder.transformer_cells.\u00b2.proj.weight",
    "encoder.transformer_cells.\u0661.proj.weight", "encoder.transformer_cells.-1.proj.weight",
    "encoder.transformer_cells..proj.weight", "encoder.transformer_cells", "decoder.3.weight", "classifier.3.weight",
    "classifier.3.bias", "word_embed.0.weight", "encoder.position_weight", "bort.word_embed.0.weight",
    "arg:encoder.layer_norm.gamma", "bertencoder0_transformer7_proj_weight", "x\n\x1b[31mred", "\u202e\u0000",
    "a" * 3000, "bortmodel0_word_embed_embedding0_weight", "bortclassifier0_dense1_weight",
    "bertencoder0_" * 200 + "position_weight",
]


def _rename(data: bytes, draw: st.DrawFn, seeds: list[Seed]) -> bytes:
    """The same file with one array renamed (to a hostile or another seed's name): the names are last."""
    fields = structural_fields(data)
    lengths = [off for off, _fmt, what in fields if what == "name length"]
    if not lengths:
        return data
    i = draw(st.integers(0, len(lengths) - 1), label="name index")
    off = lengths[i]
    (ln,) = struct.unpack_from("<Q", data, off)
    new = draw(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=40)), label="name")
    b = new.encode("utf-8", "surrogatepass")
    return data[:off] + struct.pack("<Q", len(b)) + b + data[off + 8 + ln:]


@st.composite
def mutated_params(draw: st.DrawFn, seeds: list[Seed]) -> tuple[Seed, bytes]:
    """A seed file after 1-4 mutations: header-field rewrites, bit flips, byte overwrites, truncation,
    insertion, deletion, or a splice with another seed."""
    seed = draw(st.sampled_from(seeds), label="seed")
    base = seed.data
    if draw(st.integers(0, 3), label="rename?") == 0:
        base = _rename(base, draw, seeds)
    fields = structural_fields(base)
    if draw(st.integers(0, 3), label="reshape?") == 0:
        rank_fields = [i for i, f in enumerate(fields) if f[2] in ("rank", "pre-V1 rank")]
        if rank_fields:
            i = draw(st.sampled_from(rank_fields), label="record")
            off, fmt, what = fields[i]
            ndim = struct.unpack_from(fmt, base, off)[0]
            dim_fmt = "<q" if what == "rank" else "<I"
            new = draw(st.lists(st.sampled_from(RESHAPE_DIMS), min_size=ndim, max_size=ndim), label="dims")
            buf = bytearray(base)
            for j, d in enumerate(new):
                struct.pack_into(_UNSIGNED[dim_fmt], buf, off + 4 + struct.calcsize(dim_fmt) * j,
                                 d & _WIDTH_MASK[dim_fmt])
            base = bytes(buf)
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4), label="mutations")):
        n = len(data)
        op = draw(st.sampled_from(["field", "field", "field", "flip", "overwrite", "truncate", "splice",
                                   "insert", "delete"]), label="op")
        if op == "field":
            off, fmt, _what = draw(st.sampled_from(fields), label="field")
            size = struct.calcsize(fmt)
            if off + size > n:
                continue
            old = struct.unpack_from(_UNSIGNED[fmt], data, off)[0]
            value = draw(st.one_of(st.sampled_from(INTERESTING),
                                   st.sampled_from([old + 1, old - 1, old * 2, old + n, old ^ 0x80000000]),
                                   st.integers(-(2**63), 2**64 - 1)), label="value")
            struct.pack_into(_UNSIGNED[fmt], data, off, value & _WIDTH_MASK[fmt])
        elif op == "flip" and n:
            pos = draw(st.integers(0, n - 1), label="pos")
            data[pos] ^= 1 << draw(st.integers(0, 7), label="bit")
        elif op == "overwrite" and n:
            pos = draw(st.integers(0, n - 1), label="pos")
            chunk = draw(st.binary(min_size=1, max_size=16), label="bytes")
            data[pos:pos + len(chunk)] = chunk
        elif op == "truncate":
            data = data[:draw(st.integers(0, n), label="cut")]
        elif op == "insert":
            pos = draw(st.integers(0, n), label="pos")
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32), label="bytes")
        elif op == "delete" and n:
            a = draw(st.integers(0, n - 1), label="pos")
            del data[a:a + draw(st.integers(1, 64), label="len")]
        elif op == "splice":
            other = draw(st.sampled_from(seeds), label="other").data
            a = draw(st.integers(0, n), label="at")
            b = draw(st.integers(0, len(other)), label="from")
            c = draw(st.integers(b, len(other)), label="to")
            tail = draw(st.booleans(), label="replace tail")
            data = data[:a] + other[b:c] + (bytearray() if tail else data[a:])
    return seed, bytes(data)


# ---------------------------------------------------------------------------------------------- vocab


def vocab_seeds() -> list[bytes]:
    """gluonnlp Vocab JSON in both layouts (identifiers_to_tokens; pre-0.7 top-level specials)."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "Ġthe", "Ġa", "Hello", "Ġworld", "é", "<mask>"]
    t2i = {t: i for i, t in enumerate(tokens)}
    modern = {"idx_to_token": tokens, "token_to_idx": t2i, "reserved_tokens": ["<mask>", "<pad>", "<s>", "</s>"],
              "unknown_token": "<unk>", "identifiers_to_tokens": {"mask_token": "<mask>", "padding_token": "<pad>",
                                                                  "bos_token": "<s>", "eos_token": "</s>"}}
    legacy = {k: v for k, v in modern.items() if k != "identifiers_to_tokens"}
    legacy |= {"padding_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
    return [json.dumps(modern).encode(), json.dumps(legacy).encode(),
            json.dumps(modern, ensure_ascii=False, indent=1).encode()]


HOSTILE_JSON = ["[" * 100_000, "{\"a\":" * 50_000, "1" * 5000, "-" + "9" * 4400, "1e99999", "NaN", "Infinity",
                "\"\\ud800\"", "\"\\udfff\\ud800\"", "null", "true", "[]", "{}", "\"\"", "0", "-0", "1.5"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


@st.composite
def mutated_vocab(draw: st.DrawFn) -> bytes:
    """A vocab JSON with a key replaced by a hostile value or raw text, then maybe byte-mutated."""
    text = draw(st.sampled_from(vocab_seeds()), label="seed").decode()
    doc = json.loads(text)
    if draw(st.booleans(), label="structural"):
        keys = [*doc, "identifiers_to_tokens.bos_token", "token_to_idx.<s>", "idx_to_token.0", "new_key"]
        key = draw(st.sampled_from(keys), label="key")
        raw = draw(st.one_of(st.sampled_from(HOSTILE_JSON), json_values.map(json.dumps)), label="value")
        marker = "\"@@VALUE@@\""
        if "." in key:
            top, sub = key.split(".", 1)
            if isinstance(doc.get(top), list):
                doc[top][int(sub)] = "@@VALUE@@"
            elif isinstance(doc.get(top), dict):
                doc[top][sub] = "@@VALUE@@"
        elif draw(st.booleans(), label="drop"):
            doc.pop(key, None)
            marker = None
        else:
            doc[key] = "@@VALUE@@"
        text = json.dumps(doc, ensure_ascii=draw(st.booleans(), label="ascii"))
        if marker:
            text = text.replace(marker, raw, 1)
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.integers(0, 3), label="byte mutations")):
        n = len(data)
        op = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert"]), label="op")
        pos = draw(st.integers(0, max(n - 1, 0)), label="pos")
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7), label="bit")
        elif op == "overwrite":
            data[pos:pos + 4] = draw(st.binary(min_size=1, max_size=4), label="bytes")
        elif op == "truncate":
            data = data[:pos]
        else:
            data[pos:pos] = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\"", b"[", b"{", b",", b"\\u"]),
                                 label="bytes")
    return bytes(data)


# ---------------------------------------------------------------------------------------------- oracle


class HardTimeout(Exception):
    pass


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Interrupt a hang (an infinite loop never reaches hypothesis' deadline check)."""
    def fire(signum: int, frame: object) -> None:
        raise HardTimeout(f"no result after {seconds} s: the reader hangs")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def allocation_meter() -> Iterator[list[int]]:
    """Yields a list that receives the peak bytes allocated (tracemalloc) inside the block."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    out: list[int] = []
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1] - base)
        if started:
            tracemalloc.stop()


def check_message(err: BortconvError) -> None:
    msg = str(err)
    assert msg and msg == err.message, f"empty or inconsistent message: {err!r}"
    bad = [c for c in msg if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")]
    assert not bad, f"message is not one printable line (contains {bad[:3]!r}): {msg!r}"


def params_outcome(path: Path, options: tuple[ConvertOptions, ...]) -> str:
    """Run every reader entry point on `path`; returns what happened ("ok" or the error class names).

    Anything but BortconvError propagates, as does a non-printable or multi-line message."""
    outcome = []
    try:
        params = read_params(path)
    except BortconvError as exc:
        check_message(exc)
        return type(exc).__name__
    with params:
        for rec in params.records:  # every record's data is reachable (upcast copies: small ones only)
            for upcast in (False, True) if rec.nbytes <= 1 << 16 else (False,):
                try:
                    arr = params.array_for(rec, upcast=upcast)
                    assert arr.nbytes <= params.size * (4 if upcast else 1)
                except BortconvError as exc:
                    check_message(exc)
        for opts in options:
            try:
                plan = plan_conversion(params, opts)
                check_finite(params, plan)
                outcome.append("ok")
            except BortconvError as exc:
                check_message(exc)
                outcome.append(type(exc).__name__)
    return ",".join(outcome)


def check_params_bytes(data: bytes, path: Path, options: tuple[ConvertOptions, ...]) -> str:
    """The oracle for one `.params` byte string; returns the outcome."""
    path.write_bytes(data)
    with hard_limit(HARD_LIMIT_S), allocation_meter() as peak:
        outcome = params_outcome(path, options)
    assert peak[0] <= len(data) + PARAMS_SLACK, \
        f"allocated {peak[0]} bytes reading a {len(data)}-byte file ({outcome})"
    return outcome


def check_vocab_bytes(data: bytes, path: Path) -> str:
    from bortconv.converters.tokenizer import read_gluon_vocab
    path.write_bytes(data)
    with hard_limit(HARD_LIMIT_S), allocation_meter() as peak:
        try:
            vocab = read_gluon_vocab(path)
            outcome = f"ok ({len(vocab)} tokens)"
        except BortconvError as exc:
            check_message(exc)
            outcome = type(exc).__name__
    assert peak[0] <= JSON_FACTOR * len(data) + JSON_SLACK, \
        f"allocated {peak[0]} bytes reading a {len(data)}-byte vocabulary ({outcome})"
    return outcome
