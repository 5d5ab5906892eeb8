"""Calibration and held-out text: the shipped default (WordNet example sentences, WordNet 3.0 licence, see
bortconv/data/LICENSE-WordNet.txt) or the user's file, split so the gate never sees calibration text."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError
from bortconv.runtime import pad_batch

log = logging.getLogger(__name__)

DEFAULT_FILE = "calibration_en.txt"
MAX_TOKENS = 128  # calibration and gate sequences are cut here: longer ones add time, not information


@dataclass(frozen=True)
class TextSplit:
    source: str
    calibration: tuple[str, ...]
    heldout: tuple[str, ...]


def load_texts(path: str | os.PathLike[str] | None) -> tuple[str, list[str]]:
    """(description of the source, non-empty lines)."""
    if path is None:
        text = resources.files("bortconv.data").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
        source = f"bortconv/data/{DEFAULT_FILE} (WordNet 3.0 example sentences)"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"calibration: {p}: no such file", option="calibration")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"calibration: {p}: not UTF-8 text", option="calibration") from None
        source = str(p.resolve())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 8:
        raise InputError(f"calibration: {source}: {len(lines)} lines; need at least 8 (calibration + held-out)",
                         option="calibration")
    return source, lines


def split_texts(path: str | os.PathLike[str] | None, samples: int | None) -> TextSplit:
    """The first `samples` lines (default 3/4 of the file, at most 300) calibrate; the rest, up to 200, gate."""
    source, lines = load_texts(path)
    n = samples if samples is not None else min(300, (len(lines) * 3) // 4)
    if n <= 0 or n >= len(lines):
        raise InputError(f"samples {n}: must be between 1 and {len(lines) - 1} for {source}", option="samples")
    return TextSplit(source, tuple(lines[:n]), tuple(lines[n:n + 200]))


CALIBRATION_SEED = 1  # random token ids for artifacts without a tokenizer


def load_tokenizer(directory: Path) -> Any:
    """The artifact's tokenizer.json (no padding or truncation: rows are cut at MAX_TOKENS), or None."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def rows_for(texts: tuple[str, ...], tokenizer: Any, vocab_size: int, seed: int) -> list[list[int]]:
    """Token-id rows of `texts`; seeded random ids of as many rows when there is no tokenizer."""
    return token_rows(texts, tokenizer) if tokenizer is not None else random_rows(len(texts), vocab_size, seed)


def token_rows(texts: tuple[str, ...], tokenizer: Any) -> list[list[int]]:
    rows = [e.ids[:MAX_TOKENS] for e in tokenizer.encode_batch(list(texts))]
    return [r for r in rows if r]


def random_rows(n: int, vocab_size: int, seed: int) -> list[list[int]]:
    """Token-id rows for models without a tokenizer (recorded as such in the manifest; a warning is logged)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, MAX_TOKENS, size=n)
    return [[0] + rng.integers(4, vocab_size, size=int(k) - 2).tolist() + [2] for k in lengths]


#: long calibration rows (passages of calibration sentences) added to the short ones: activations at 512 tokens
#: range wider than at 20, and int8 calibrated on short sentences alone lost 0.02 of sentence cosine there
LONG_ROWS = 24


def long_rows(texts: tuple[str, ...], tokenizer: Any, vocab_size: int, max_length: int, seed: int) -> list[list[int]]:
    """Rows of MAX_TOKENS+1 .. `max_length` tokens cut from the calibration sentences run together (never held-out
    text), each closed by the tokenizer's own special tokens; seeded random ids without a tokenizer."""
    if max_length <= MAX_TOKENS:
        return []
    lengths = np.linspace(MAX_TOKENS + 1, max_length, LONG_ROWS).astype(int).tolist()
    rng = np.random.default_rng(seed)
    if tokenizer is None:
        return [[0] + rng.integers(4, vocab_size, size=n - 2).tolist() + [2] for n in lengths]
    whole = tokenizer.encode(" ".join(texts))
    ids, special = list(whole.ids), list(whole.special_tokens_mask)
    first = ids[:1] if special[:1] == [1] else []
    last = ids[-1:] if special[-1:] == [1] else []
    body = ids[len(first):len(ids) - len(last)]
    rows = []
    for n in lengths:
        k = n - len(first) - len(last)
        off = int(rng.integers(0, max(1, len(body) - k)))
        rows.append(first + body[off:off + k] + last)
    return rows


def feeds_for(rows: list[list[int]], pad_id: int, with_types: bool, batch: int = 1) -> list[dict[str, np.ndarray]]:
    """Model inputs for `rows`, `batch` rows each, in a fixed order (so calibration is reproducible)."""
    return [pad_batch(rows[i:i + batch], pad_id, None, with_types) for i in range(0, len(rows), batch)]
