"""Calibration rows for int8: token ids of the calibration part of the text (the split itself, and the held-out
part the gate reads, live in :mod:`bortconv.fidelity.text_split`), sentences and long passages."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from bortconv.fidelity.heldout import cut
from bortconv.fidelity.text_split import (DEFAULT_FILE, MAX_TOKENS, TextSplit, load_texts,  # noqa: F401
                                          load_tokenizer, split_texts)
from bortconv.runtime.bort import pad_batch

log = logging.getLogger(__name__)

CALIBRATION_SEED = 1  # random token ids for artifacts without a tokenizer


def rows_for(texts: tuple[str, ...], tokenizer: Any, vocab_size: int, seed: int,
             max_length: int = MAX_TOKENS) -> list[list[int]]:
    """Token-id rows of `texts`, at most MAX_TOKENS and the model's `max_length` positions long; seeded random ids
    of as many rows when there is no tokenizer."""
    cap = min(MAX_TOKENS, max_length)
    if tokenizer is None:
        return random_rows(len(texts), vocab_size, seed, cap)
    return token_rows(texts, tokenizer, cap)


def token_rows(texts: tuple[str, ...], tokenizer: Any, cap: int = MAX_TOKENS) -> list[list[int]]:
    rows = [e.ids[:cap] for e in tokenizer.encode_batch(list(texts))]
    return [r for r in rows if r]


def random_rows(n: int, vocab_size: int, seed: int, cap: int = MAX_TOKENS) -> list[list[int]]:
    """Token-id rows for models without a tokenizer (recorded as such in the manifest; a warning is logged), of 8
    to `cap` - 1 tokens (`cap`: MAX_TOKENS, or the model's positions when fewer)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min(8, cap - 1), cap, size=n)
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


def static_feeds(rows: list[list[int]], pad_id: int, with_types: bool,
                 shape: tuple[int, int]) -> list[dict[str, np.ndarray]]:
    """Model inputs for a static-shape artifact (B, L): `rows` cut to L (closing token kept), B at a time, padded to
    L; the last batch is filled with the first rows again (a static model takes no fewer than B rows)."""
    batch, length = shape
    fitted = [cut(r, length) for r in rows]
    if len(fitted) % batch:
        fitted += [fitted[i % len(fitted)] for i in range(batch - len(fitted) % batch)]
    return [pad_batch(fitted[i:i + batch], pad_id, length, with_types) for i in range(0, len(fitted), batch)]


def feeds_for(rows: list[list[int]], pad_id: int, with_types: bool, batch: int = 1) -> list[dict[str, np.ndarray]]:
    """Model inputs for `rows`, `batch` rows each, in a fixed order (so calibration is reproducible)."""
    return [pad_batch(rows[i:i + batch], pad_id, None, with_types) for i in range(0, len(rows), batch)]
