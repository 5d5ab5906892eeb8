"""Hostile checkpoints and vocabularies: the readers end in success or a BortconvError, nothing else.

Property tests mutate valid files (header fields, bit flips, byte overwrites, truncation, splices, renames)
and run every entry point: `read_params`, every record's data, `plan_conversion` + `check_finite`, and the
gluonnlp vocabulary reader. Each example must finish (hypothesis deadline plus a hard alarm), raise nothing
but BortconvError with a one-line printable message, and allocate no more than the file's size plus a small
constant (tracemalloc). CI runs a bounded budget; `python benchmarks/fuzz_readers.py --examples N` runs longer.

Every crash the fuzzing found is a row of the regression tables below, as the smallest input that shows it.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import struct
from datetime import timedelta

import numpy as np
import pytest
from fuzz_inputs import (
    JSON_FACTOR,
    JSON_SLACK,
    PARAMS_SLACK,
    TINY,
    Seed,
    check_params_bytes,
    check_vocab_bytes,
    mutated_params,
    mutated_vocab,
    structural_fields,
    synthetic_seeds,
    vocab_seeds,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from params_bytes import file_bytes, record

from bortconv.config import ConvertOptions, Head
from bortconv.converters import tokenizer as _tokenizer
from bortconv.converters.params_reader import MAX_ARRAYS

#: CI budget; benchmarks/fuzz_readers.py raises it (and picks a random seed) through these variables
EXAMPLES = int(os.environ.get("BORTCONV_FUZZ_EXAMPLES", "1000"))
RANDOM_SEED = os.environ.get("BORTCONV_FUZZ_SEED")
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), derandomize=RANDOM_SEED is None,
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def seeds(reference) -> list[Seed]:
    heads4 = (ConvertOptions(heads=4),)
    real = [Seed(name, reference[name].params.read_bytes(), heads4) for name in ("custom_enc_fp32", "broken_nan")]
    return synthetic_seeds() + real


# What every seed gives untouched: the fuzz starts from files whose outcome is known.
SEED_OUTCOMES = {
    "tiny_enc_v2_fp32": "ok", "tiny_enc_v1": "ok", "tiny_enc_prev1": "ok", "tiny_enc_v3": "ok",
    "tiny_enc_bf16": "ok", "tiny_mlm_fp16": "ok", "tiny_mlm_dedup": "ok", "tiny_cls_prefixed": "ok",
    "legacy_names": "MappingError",  # three legacy-named tensors: a valid file, not a whole model
    "list_save": "MappingError",  # unnamed arrays
    "v3_scalar": "MappingError",  # a real V3 scalar, not a Bort tensor
    "custom_enc_fp32": "ok", "broken_nan": "BadWeightsError",
}


def test_seeds_have_known_outcomes(seeds, tmp_path):
    assert {s.name for s in seeds} == set(SEED_OUTCOMES)
    for s in seeds:
        assert structural_fields(s.data)[-1][0] < len(s.data)  # the field walker understands every seed
        assert check_params_bytes(s.data, tmp_path / f"{s.name}.params", s.options) == SEED_OUTCOMES[s.name], s.name


def test_fuzz_params_readers(seeds, tmp_path):
    outcomes: collections.Counter[str] = collections.Counter()

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        seed, blob = data.draw(mutated_params(seeds))
        outcome = check_params_bytes(blob, tmp_path / "fuzz.params", seed.options)
        event(outcome)
        outcomes[outcome] += 1

    if RANDOM_SEED is not None:
        run = __import__("hypothesis").seed(int(RANDOM_SEED))(run)
    run()
    # the mutations reach every stage: the reader's refusals, the mapping's, the NaN check, and success
    reached = {o for k in outcomes for o in k.split(",")}
    assert {"CheckpointFormatError", "MappingError", "ok"} <= reached, outcomes


def test_fuzz_vocab_reader(tmp_path):
    outcomes: collections.Counter[str] = collections.Counter()

    @FUZZ
    @given(blob=mutated_vocab())
    def run(blob: bytes) -> None:
        outcome = check_vocab_bytes(blob, tmp_path / "vocab.json")
        event(outcome.split(" (")[0])
        outcomes[outcome.split(" (")[0]] += 1

    if RANDOM_SEED is not None:
        run = __import__("hypothesis").seed(int(RANDOM_SEED))(run)
    run()
    assert {"ok", "TokenizerError"} <= set(outcomes), outcomes


# ---------------------------------------------------------------------------------------------- regressions
# Crashes found by the fuzzing, each as the smallest input that showed it, and what bortconv now does.


def _named(*items: tuple[str, bytes]) -> bytes:
    return file_bytes([rec for _, rec in items], [name for name, _ in items])


F1 = record(np.ones((1, 1), np.float32))
BACKBONE = (("word_embed.0.weight", F1), ("encoder.position_weight", F1))
HEADS1 = ConvertOptions(heads=1)

# (id, bytes, convert options, outcome, words the message must contain, what the bug was)
PARAMS_REGRESSIONS = [
    ("huge-layer-index", _named(*BACKBONE, ("encoder.transformer_cells.99999999999999.ffn.ffn_1.weight", F1)),
     HEADS1, "MappingError", "cannot hold that many layers",
     "planned 10^14 layers: hung in expected_shapes"),
    ("5000-digit-layer-index", _named(*BACKBONE, ("encoder.transformer_cells." + "9" * 5000 + ".proj.weight", F1)),
     HEADS1, "MappingError", "cannot hold that many layers",
     "ValueError: Exceeds the limit (4300 digits) for integer string conversion"),
    ("superscript-layer-index", _named(*BACKBONE, ("encoder.transformer_cells.0.ffn.ffn_1.weight", F1),
                                       ("encoder.transformer_cells.\u00b2.proj.weight", F1)),
     HEADS1, "MappingError", "unused tensors",
     "ValueError: invalid literal for int() with base 10: '\u00b2' (str.isdigit accepts it)"),
    ("scalar-classifier", _named(("classifier.3.weight", record(np.array(1.0, np.float32), version="V3"))),
     HEADS1, "MappingError", "must be (classes, units)",
     "IndexError: tuple index out of range (num_labels = shape[0] of a V3 scalar)"),
    ("empty-but-huge-shape", file_bytes([struct.pack("<Iii2q", 0xF993FAC9, 0, 2, 0, 2**62)
                                         + struct.pack("<iii", 1, 0, 0)], ["x"]),
     HEADS1, "CheckpointFormatError", "too large to be an array",
     "ValueError: array is too big (numpy cannot reshape a (0, 2**62) view)"),
    ("newline-escape-name", _named(("x\n\x1b[31mred", F1)), HEADS1, "MappingError", r"'x\n\x1b[31mred'",
     "the name went into the one-line message raw: a newline and a terminal colour escape"),
    ("bidi-override-name", _named(("\u202eexe_gnp", F1)), HEADS1, "MappingError", r"'\u202eexe_gnp'",
     "a right-to-left override in a name reversed the rest of the message on the terminal"),
    ("many-none-arrays", struct.pack("<QQQ", 0x112, 0, 100_000) + b"\0" * 400_000 + struct.pack("<Q", 0),
     HEADS1, "CheckpointFormatError", "reads at most",
     "28 MB allocated for a 400 kB file: each 4-byte 'none' record became a ~300-byte Python object"),
]


@pytest.mark.parametrize("row", PARAMS_REGRESSIONS, ids=[r[0] for r in PARAMS_REGRESSIONS])
def test_params_regressions(tmp_path, row):
    name, blob, options, outcome, words, _bug = row
    path = tmp_path / "r.params"
    assert check_params_bytes(blob, path, (options,)) == outcome
    from bortconv.converters.mapping import plan_conversion
    from bortconv.converters.params_reader import read_params
    from bortconv.errors import BortconvError
    with pytest.raises(BortconvError) as err:
        with read_params(path) as p:
            plan_conversion(p, options)
    assert words in err.value.message and "\n" not in err.value.message


def test_most_arrays_allowed_stays_within_the_allowance(tmp_path):
    """The cap's worst case: MAX_ARRAYS 'none' records (4 bytes each) parse within file size + PARAMS_SLACK."""
    blob = struct.pack("<QQQ", 0x112, 0, MAX_ARRAYS) + b"\0" * 4 * MAX_ARRAYS + struct.pack("<Q", 0)
    assert check_params_bytes(blob, tmp_path / "many.params", (HEADS1,)) == "MappingError"  # a list save


def test_bfloat16_nan_scan_allocates_no_copy(tmp_path):
    """check_finite used to upcast a whole bfloat16 tensor (8 bytes per stored 2): 16 MB for a 4 MB file.

    Also checks the raw-bits test finds exactly the NaN/Inf values the float32 view holds."""
    from bortconv.converters.demo import demo_arrays
    from bortconv.converters.mapping import count_nonfinite, plan_conversion
    from bortconv.converters.params_reader import read_params
    big = dataclasses.replace(TINY, vocab_size=1 << 18)
    arrays = demo_arrays(big, seed=5, dtype="float32", head=Head.ENCODER)
    arrays["word_embed.0.weight"][[3, 70000, 200000], [1, 2, 7]] = [np.nan, np.inf, -np.inf]
    arrays["encoder.layer_norm.gamma"][0] = np.nan
    bits = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in arrays.items()}
    blob = file_bytes([record(b, dtype="bfloat16") for b in bits.values()], list(bits))
    assert len(blob) > 4 << 20
    assert check_params_bytes(blob, tmp_path / "bf16.params", (ConvertOptions(heads=2),)) == "BadWeightsError"
    with read_params(tmp_path / "bf16.params") as p:
        bad = count_nonfinite(p, plan_conversion(p, ConvertOptions(heads=2)))
    assert bad == {"word_embed.0.weight": 3, "encoder.layer_norm.gamma": 1}


VOCAB_REGRESSIONS = [  # (id, bytes, words, what the bug was)
    ("deep-nesting", b"[" * 100_000, "refuses", "RecursionError escaped json.loads"),
    ("5000-digit-number", b'{"idx_to_token": [], "token_to_idx": {}, "x": ' + b"1" * 5000 + b"}", "refuses",
     "ValueError: Exceeds the limit (4300 digits) escaped json.loads"),
]


@pytest.mark.parametrize("row", VOCAB_REGRESSIONS, ids=[r[0] for r in VOCAB_REGRESSIONS])
def test_vocab_regressions(tmp_path, row):
    name, blob, words, _bug = row
    assert check_vocab_bytes(blob, tmp_path / "v.json") == "TokenizerError"
    from bortconv.errors import TokenizerError
    with pytest.raises(TokenizerError, match=words):
        _tokenizer.read_gluon_vocab(tmp_path / "v.json")


def test_vocab_seeds_read(tmp_path):
    for i, blob in enumerate(vocab_seeds()):
        assert check_vocab_bytes(blob, tmp_path / f"{i}.json") == "ok (10 tokens)"


def test_allowances_are_small():
    """The constants the oracle allows are what the module docstrings promise, not a loophole."""
    assert PARAMS_SLACK <= 4 << 20 and JSON_SLACK <= 1 << 20 and JSON_FACTOR <= 64
    assert MAX_ARRAYS * 300 < PARAMS_SLACK
