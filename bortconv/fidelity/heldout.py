"""Held-out probes for the deployment gate: what an artifact is judged on before it ships, and again in `validate`.

Deployments see texts of every length from one token to the model's 512, alone and in padded batches, so the
gate does too, on real text the calibration never saw:

    text        each held-out sentence at its natural length, batch 1
    short       one- to three-word texts at their natural length (3-8 tokens), batch 1: queries, tags and
                one-word reviews are what users send, and int8 artifacts that pass every longer probe can
                fall apart there (a one-word review at 0.937 once)
    length      a held-out passage cut to exactly L tokens, for L = 8 and each multiple of 16 up to the
                model's maximum with its neighbours (L-1, L, L+1: the sizes where kernels change blocking;
                a length-32 int8 collapse under bf16 was found exactly there), batch 1. The "quick" sweep
                (config.GATE_SWEEP_ENV) keeps 8, the power-of-two multiples of 16 with their neighbours and
                the two longest
    padded      batches of 4 rows of different lengths, right-padded (what a batching server runs)

The shipped text is ``bortconv/data/heldout_en.txt``: WordNet 3.0 example sentences (WordNet licence,
bortconv/data/LICENSE-WordNet.txt) disjoint from the calibration set ``calibration_en.txt`` and from the
tests' own held-out text; the short texts are ``heldout_short_en.txt``: WordNet 3.0 example phrases of two
or three words (half of them exclamations and questions), "Scram!" and the 11 adjectives WordNet's sense
counts rank highest, disjoint from all of those. With ``--calibration FILE`` the held-out part of the user's file (the lines after
the calibration samples) replaces the sentences, so the gate never sees calibration text; the short texts stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import numpy as np

from bortconv.measure import pad_batch

HELDOUT_FILE = "heldout_en.txt"
SHORT_FILE = "heldout_short_en.txt"
#: one passage per length, cut from passages of at least this many tokens
PADDED_BATCH = 4
PROBE_SEED = 3  # random token ids for artifacts without a tokenizer


def sweep_lengths(max_length: int, sweep: str = "full") -> tuple[int, ...]:
    """8, and every multiple of 16 up to `max_length` with its neighbours, capped at `max_length` ("full").

    "quick" keeps, of those, 8, the power-of-two multiples of 16 with their neighbours (15-17, 31-33, ... 255-257:
    where kernels change blocking, the length-32 fault among them) and the two longest lengths. The lengths in
    between are most of the full sweep's work and have never failed where their neighbours passed; the text,
    short and padded probes all stay, so the gate's rates (label agreement, top-1) are still over more than 100
    rows and one flip weighs in both sweeps about as much."""
    lengths = {8}
    for m in range(16, max_length + 16, 16):
        lengths.update(x for x in (m - 1, m, m + 1) if 2 <= x <= max_length)
    full = tuple(sorted(lengths))
    if sweep == "full":
        return full
    blocking = {x for m in (16 << k for k in range(max_length.bit_length())) for x in (m - 1, m, m + 1)}
    return tuple(n for n in full if n == 8 or n in blocking or n in full[-2:])


def padded_lengths(max_length: int) -> tuple[tuple[int, ...], ...]:
    """Row lengths of the padded batches: long, one shorter, half, and short, at 32, 128 and the maximum."""
    out = []
    for top in sorted({min(32, max_length), min(128, max_length), max_length}):
        out.append(tuple(max(2, x) for x in (top, top - 1, top // 2 + 1, min(8, top))))
    return tuple(out)


@dataclass(frozen=True)
class Probe:
    """One batch the gate runs, and what each of its rows is (for the report's "worst at")."""

    kind: str  # "text", "length" or "padded"
    label: str  # e.g. "length 32", "text 17", "padded b4-l128 row 2" (the row is added per row)
    feeds: dict[str, np.ndarray]

    @property
    def length(self) -> int:
        return int(self.feeds["input_ids"].shape[1])


def shipped_texts(name: str = HELDOUT_FILE) -> list[str]:
    """The held-out sentences that ship with bortconv (or, with `SHORT_FILE`, its one- to three-word texts)."""
    text = resources.files("bortconv.data").joinpath(name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


T = TypeVar("T")


def cut(ids: Sequence[T], n: int, special_last: bool = True) -> list[T]:
    """The first `n` items of an encoding (ids or token strings), keeping its closing special token (</s>, [SEP])
    last when `special_last`: how a tokenizer truncates, and the one rule for every cut to a length."""
    if len(ids) <= n:
        return list(ids)
    return [*ids[:n - 1], ids[-1]] if special_last else list(ids[:n])


def passages(texts: list[str], tokenizer: Any, min_tokens: int) -> list[tuple[list[int], bool]]:
    """Consecutive held-out sentences joined into passages of at least `min_tokens` tokens (ids, ends in a
    special token). A passage starts at every 7th sentence, so lengths are cut from different text."""
    out = []
    for start in range(0, len(texts), 7):
        words: list[str] = []
        enc = None
        for t in texts[start:] + texts[:start]:
            words.append(t if t.endswith((".", "!", "?")) else t + ".")
            if len(words) % 8 == 0 or len(words) == len(texts):
                enc = tokenizer.encode(" ".join(words))
                if len(enc.ids) >= min_tokens:
                    break
        if enc is None:
            enc = tokenizer.encode(" ".join(words))
        out.append((list(enc.ids), bool(enc.special_tokens_mask and enc.special_tokens_mask[-1])))
        if len(out) >= 16:
            break
    return out


def probes(texts: list[str], tokenizer: Any, *, vocab_size: int, pad_id: int, with_types: bool,
           max_length: int, max_texts: int = 48, static_shape: tuple[int, int] | None = None,
           sweep: str = "full") -> list[Probe]:
    """The gate's probes over `texts` (held-out, never calibration), cut to the model's `max_length`; for a
    static-shape artifact (B, L), every probe of at most L tokens, padded to L and repeated to B rows."""
    if static_shape:
        return _fit_static(probes(texts, tokenizer, vocab_size=vocab_size, pad_id=pad_id, with_types=with_types,
                                  max_length=min(max_length, static_shape[1]), max_texts=max_texts,
                                  sweep=sweep),
                           static_shape, pad_id, with_types)
    found = _full_probes(texts, tokenizer, vocab_size=vocab_size, pad_id=pad_id, with_types=with_types,
                         max_length=max_length, max_texts=max_texts)
    if sweep == "full":
        return found
    # a subset of the full sweep's very probes (same rows, same random ids), so the sweeps never disagree on
    # a probe, only on how many there are
    keep = {f"length {n}" for n in sweep_lengths(max_length, sweep)}
    return [p for p in found if p.kind != "length" or p.label in keep]


def _full_probes(texts: list[str], tokenizer: Any, *, vocab_size: int, pad_id: int, with_types: bool,
                 max_length: int, max_texts: int) -> list[Probe]:
    lengths = sweep_lengths(max_length)
    if tokenizer is None:
        return _random_probes(lengths, vocab_size=vocab_size, pad_id=pad_id, with_types=with_types,
                              max_length=max_length)
    out = []
    for kind, found in (("text", texts[:max_texts]), ("short", shipped_texts(SHORT_FILE))):
        for i, t in enumerate(found):
            ids = list(tokenizer.encode(t).ids)[:max_length]
            if ids:
                out.append(Probe(kind, f"{kind} {i}", pad_batch([ids], pad_id, None, with_types)))
    pool = passages(texts, tokenizer, max_length)
    for k, n in enumerate(lengths):
        ids, special_last = pool[k % len(pool)]
        out.append(Probe("length", f"length {n}", pad_batch([cut(ids, n, special_last)], pad_id, None, with_types)))
    for k, rows in enumerate(padded_lengths(max_length)):
        picked = [pool[(k + j) % len(pool)] for j in range(len(rows))]
        batch = [cut(ids, n, special_last) for (ids, special_last), n in zip(picked, rows)]
        out.append(Probe("padded", f"padded b{len(rows)}-l{rows[0]}", pad_batch(batch, pad_id, None, with_types)))
    return out


def _fit_static(found: list[Probe], shape: tuple[int, int], pad_id: int, with_types: bool) -> list[Probe]:
    batch, length = shape
    out = []
    for p in found:
        mask = p.feeds["attention_mask"].astype(bool)
        rows = [p.feeds["input_ids"][i][mask[i]].tolist() for i in range(len(mask))]
        rows = [r for r in rows if len(r) <= length]
        if rows:
            rows = (rows * batch)[:batch]
            out.append(Probe(p.kind, p.label, pad_batch(rows, pad_id, length, with_types)))
    return out


def _random_probes(lengths: tuple[int, ...], *, vocab_size: int, pad_id: int, with_types: bool,
                   max_length: int) -> list[Probe]:
    """Seeded random ids at the same lengths, for artifacts without a tokenizer (said so in the manifest)."""
    rng = np.random.default_rng(PROBE_SEED)

    def row(n: int) -> list[int]:
        return [0] + rng.integers(min(4, vocab_size - 1), vocab_size, size=max(0, n - 2)).tolist() + [2][:n - 1]

    out = [Probe("length", f"length {n}", pad_batch([row(n)], pad_id, None, with_types)) for n in lengths]
    out += [Probe("padded", f"padded b{len(r)}-l{r[0]}", pad_batch([row(n) for n in r], pad_id, None, with_types))
            for r in padded_lengths(max_length)]
    return out
