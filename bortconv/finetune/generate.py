"""Data-generating (transformation) functions: new points near given ones, for the teacher to label.

A generator is any callable ``generator(examples, per_example, rng) -> list[Example]`` (:class:`Generator`): it
returns up to `per_example` new, unlabelled examples per input (fewer when it cannot make distinct ones), drawing
all randomness from `rng` so a seeded run repeats. For a pair it changes one of the two texts and keeps the other.

Defaults:

- :class:`MaskedLMSubstitution`: mask 15% of a text's tokens (at least one) and put back a token sampled from the
  source's own MLM head (top 20, the original token excluded), all masks of a variant filled in one forward pass.
  It shares the student's vocabulary, which is why it is the natural choice for Bort.
- :class:`TokenOperations`: word-level edits (delete, swap, insert a word of the text again, substitute a word
  drawn from the training texts, crop to a contiguous span); one or two per variant. Cheap; the fallback when
  the source has no MLM head (all-MiniLM-L6-v2 is a bare encoder). Negation words (:data:`NEGATIONS`) are never
  deleted, substituted, inserted or cropped away, so an edit cannot flip a sentence's polarity by its negation.
- :class:`Mixture`: both, alternating, when the source has an MLM head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bortconv.finetune.data import Example

log = logging.getLogger(__name__)


@runtime_checkable
class Generator(Protocol):
    """What Agora calls to make new points near the best candidate's dev mistakes."""

    def __call__(self, examples: Sequence[Example], per_example: int, rng: np.random.Generator) -> list[Example]:
        ...


def generator_name(gen: Any) -> str:
    return str(getattr(gen, "name", None) or getattr(gen, "__qualname__", None) or type(gen).__name__)


#: words whose loss or gain flips a sentence's polarity; token operations keep them as they are
NEGATIONS = frozenset({"not", "no", "never", "nor", "neither", "nobody", "nothing", "none", "nowhere", "without",
                       "cannot", "n't", "hardly", "barely", "scarcely"})


def is_negation(word: str) -> bool:
    w = word.lower().strip(".,;:!?\"'()")
    return w in NEGATIONS or w.endswith("n't")


def negation_words(example: Example) -> list[str]:
    """The negation words of an example, in order (what an edit must not change)."""
    words = example.text.split() + (example.text_b.split() if example.text_b else [])
    return [w.lower() for w in words if is_negation(w)]


def _vary(example: Example, text: str, second: bool) -> Example:
    return Example(example.text, text, None) if second else Example(text, example.text_b, None)


class TokenOperations:
    """Word-level edits of the text (EDA-style); words to substitute come from `vocabulary` (training texts)."""

    name = "token-operations"
    OPS = ("delete", "swap", "insert", "substitute", "crop")

    def __init__(self, vocabulary: Sequence[str] = (), rate: float = 0.15) -> None:
        self.vocabulary = sorted({w for w in vocabulary if not is_negation(w)})  # never substitute a negation in
        self.rate = rate

    def edit(self, words: list[str], rng: np.random.Generator) -> list[str]:
        for op in rng.choice(self.OPS, size=int(rng.integers(1, 3)), replace=False):
            n = len(words)
            k = max(1, int(round(self.rate * n)))
            free = [i for i, w in enumerate(words) if not is_negation(w)]  # positions an edit may change
            if op == "delete" and len(free) > 2:
                drop = set(rng.choice(free, size=min(k, len(free) - 1), replace=False).tolist())
                words = [w for i, w in enumerate(words) if i not in drop]
            elif op == "swap" and len(free) > 1:  # negations stay where they are (their scope too)
                for _ in range(k):
                    i, j = rng.choice(free, size=2, replace=False)
                    words[i], words[j] = words[j], words[i]
            elif op == "insert" and free:
                plain = [words[i] for i in free]  # never a negation: it would add one
                for _ in range(k):
                    words.insert(int(rng.integers(0, len(words) + 1)), plain[int(rng.integers(len(plain)))])
            elif op == "substitute" and self.vocabulary and free:
                for i in rng.choice(free, size=min(k, len(free)), replace=False):
                    words[int(i)] = self.vocabulary[int(rng.integers(0, len(self.vocabulary)))]
            elif op == "crop" and n > 3:
                size = int(rng.integers(max(2, int(0.6 * n)), n))
                start = int(rng.integers(0, n - size + 1))
                neg = [i for i in range(n) if i not in free]
                if all(start <= i < start + size for i in neg):  # a crop that keeps every negation
                    words = words[start:start + size]
        return words

    def __call__(self, examples: Sequence[Example], per_example: int, rng: np.random.Generator) -> list[Example]:
        out: list[Example] = []
        for ex in examples:
            second = ex.text_b is not None and bool(rng.integers(0, 2))
            original = ex.text_b if second else ex.text
            seen = {original}
            for _ in range(3 * per_example):  # a few tries: a short text has few distinct edits
                if len(seen) > per_example:
                    break
                text = " ".join(self.edit(str(original).split(), rng))
                if text and text not in seen:
                    seen.add(text)
                    out.append(_vary(ex, text, second))
        return out


class MaskedLMSubstitution:
    """Replace ~15% of a text's tokens with samples from a masked-LM head (BertForMaskedLM + its tokenizer)."""

    name = "masked-lm-substitution"

    def __init__(self, mlm: Any, tokenizer: Any, *, rate: float = 0.15, top_k: int = 20, max_length: int = 128,
                 batch_size: int = 32) -> None:
        self.mlm, self.tokenizer = mlm, tokenizer
        self.rate, self.top_k, self.max_length, self.batch_size = rate, top_k, max_length, batch_size
        self.mask_id = tokenizer.mask_token_id
        self.special = set(tokenizer.all_special_ids)

    def _masked(self, text: str, rng: np.random.Generator) -> tuple[list[int], list[int]] | None:
        ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        free = [i for i, t in enumerate(ids) if t not in self.special]
        if not free:
            return None
        k = max(1, int(round(self.rate * len(free))))
        where = sorted(rng.choice(free, size=min(k, len(free)), replace=False).tolist())
        return ids, where

    def _fill(self, rows: list[tuple[list[int], list[int]]], rng: np.random.Generator) -> list[str]:
        import torch

        out: list[str] = []
        pad = self.tokenizer.pad_token_id or 0
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s:s + self.batch_size]
            n = max(len(ids) for ids, _ in chunk)
            ids_t = torch.full((len(chunk), n), pad, dtype=torch.long)
            mask_t = torch.zeros((len(chunk), n), dtype=torch.long)
            for r, (ids, where) in enumerate(chunk):
                row = torch.tensor(ids)
                row[where] = self.mask_id
                ids_t[r, :len(ids)], mask_t[r, :len(ids)] = row, 1
            rows_at = [(r, pos) for r, (_, where) in enumerate(chunk) for pos in where]
            with torch.no_grad():  # the vocabulary-wide decoder only at the masked positions, not every token
                hidden = self.mlm.bert(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                picked = hidden[[r for r, _ in rows_at], [p for _, p in rows_at]]
                logits = self.mlm.cls(picked)
            at = {key: i for i, key in enumerate(rows_at)}
            for r, (ids, where) in enumerate(chunk):
                new = list(ids)
                for pos in where:
                    scores = logits[at[(r, pos)]].clone()
                    scores[list(self.special | {ids[pos]})] = -float("inf")
                    top = torch.topk(scores, self.top_k)
                    p = torch.softmax(top.values, -1).double().numpy()
                    new[pos] = int(top.indices[int(rng.choice(len(p), p=p / p.sum()))])
                out.append(self.tokenizer.decode(new, skip_special_tokens=True).strip())
        return out

    def __call__(self, examples: Sequence[Example], per_example: int, rng: np.random.Generator) -> list[Example]:
        rows, owners = [], []
        for ex in examples:
            second = ex.text_b is not None and bool(rng.integers(0, 2))
            for _ in range(per_example):
                m = self._masked(str(ex.text_b if second else ex.text), rng)
                if m is not None:
                    rows.append(m)
                    owners.append((ex, second))
        out, seen = [], set()
        for (ex, second), text in zip(owners, self._fill(rows, rng)):
            original = ex.text_b if second else ex.text
            key = (ex.text, ex.text_b, second, text)
            if text and text != original and key not in seen:
                seen.add(key)
                out.append(_vary(ex, text, second))
        return out


class Mixture:
    """Half of each example's variants from each generator (the first takes the odd one)."""

    def __init__(self, *generators: Generator) -> None:
        self.generators = generators
        self.name = "+".join(generator_name(g) for g in generators)

    def __call__(self, examples: Sequence[Example], per_example: int, rng: np.random.Generator) -> list[Example]:
        out: list[Example] = []
        share, extra = divmod(per_example, len(self.generators))
        for i, gen in enumerate(self.generators):
            n = share + (i < extra)
            if n:
                out += gen(examples, n, rng)
        return out


def default_generator(mlm: Any | None, tokenizer: Any, vocabulary: Sequence[str], max_length: int) -> Generator:
    """MLM substitution plus token operations where the source has an MLM head; token operations otherwise."""
    ops = TokenOperations(vocabulary)
    if mlm is None or tokenizer.mask_token_id is None:
        return ops
    return Mixture(MaskedLMSubstitution(mlm, tokenizer, max_length=max_length), ops)


def corpus_words(examples: Sequence[Example]) -> list[str]:
    """Words of the training texts (what TokenOperations substitutes)."""
    words: set[str] = set()
    for e in examples:
        words.update(e.text.split())
        if e.text_b:
            words.update(e.text_b.split())
    return sorted(words)
