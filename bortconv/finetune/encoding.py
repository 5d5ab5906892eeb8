"""Examples as token ids and targets, and batches of them (torch imported lazily).

Texts are tokenized once with the student's own tokenizer (for a Bort source: Bort's ``<s> A </s> B </s>``; for a
BERT source its ``[CLS] A [SEP] B [SEP]`` with token types) and cut to ``max_length``, pairs by the rule the
tokenizer files declare (:mod:`bortconv.runtime.pair_truncation`), as the deployed runtime cuts them. Batches are padded to their
longest row only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.finetune.data import Example
from bortconv.layout import TOKENIZER_FILE
from bortconv.runtime.pair_truncation import BORT_RULE, HF_RULE, pair_rule
from bortconv.runtime.bort import bort_cut_pairs, cutting_nothing


@dataclass
class Encoded:
    """Token ids per example and a target distribution per example (one-hot for labelled data)."""

    ids: list[list[int]]
    types: list[list[int]] | None
    targets: np.ndarray  # (n, num_labels) float32

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hard_labels(self) -> np.ndarray:
        return self.targets.argmax(1)

    def extend(self, other: Encoded) -> None:
        self.ids += other.ids
        if self.types is not None and other.types is not None:
            self.types += other.types
        self.targets = np.concatenate([self.targets, other.targets])


class TextEncoder:
    """The student's tokenizer, fixed to a maximum length."""

    def __init__(self, tokenizer: Any, max_length: int, tokenizer_dir: Path | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.uses_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        #: the pair rule the tokenizer files declare (bortconv.runtime.pair_truncation); Bort's for a Bort source
        self.pair_rule = pair_rule(tokenizer_dir) if tokenizer_dir is not None else HF_RULE
        self._whole: Any = None
        if self.pair_rule == BORT_RULE and tokenizer_dir is not None:
            # tokenizer.json itself: transformers' backend tokenizer matches "<s>" typed in text as a special
            from tokenizers import Tokenizer

            self._whole = cutting_nothing(Tokenizer.from_file(str(tokenizer_dir / TOKENIZER_FILE)))

    def encode(self, examples: Sequence[Example], targets: np.ndarray) -> Encoded:
        if not examples:
            return Encoded([], [] if self.uses_types else None, targets)
        a = [e.text for e in examples]
        b = [e.text_b for e in examples] if examples[0].text_b is not None else None
        if b is not None and self._whole is not None:  # cut as the deployed runtime will cut them
            encs = bort_cut_pairs(self._whole, list(zip(a, b)), self.max_length)
            types = [list(e.type_ids) for e in encs] if self.uses_types else None
            return Encoded([list(e.ids) for e in encs], types, targets.astype(np.float32))
        enc = self.tokenizer(a, b, truncation=True, max_length=self.max_length, padding=False,
                             return_token_type_ids=self.uses_types, return_attention_mask=False)
        types = [list(t) for t in enc["token_type_ids"]] if self.uses_types else None
        return Encoded([list(i) for i in enc["input_ids"]], types, targets.astype(np.float32))


def one_hot(labels: Sequence[str], label_ids: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(labels), len(label_ids)), np.float32)
    out[np.arange(len(labels)), [label_ids[lab] for lab in labels]] = 1.0
    return out


def batch_tensors(data: Encoded, index: Sequence[int], pad_id: int) -> dict[str, Any]:
    """input_ids / attention_mask (/ token_type_ids) for the rows `index`, right-padded to their longest."""
    import torch

    n = max(len(data.ids[i]) for i in index)
    ids = np.full((len(index), n), pad_id, np.int64)
    mask = np.zeros((len(index), n), np.int64)
    types = np.zeros((len(index), n), np.int64) if data.types is not None else None
    for r, i in enumerate(index):
        row = data.ids[i]
        ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
        if types is not None and data.types is not None:
            types[r, :len(row)] = data.types[i]
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        out["token_type_ids"] = torch.from_numpy(types)
    return out


def length_batches(data: Encoded, batch_size: int) -> list[list[int]]:
    """Row indices grouped by length (for scoring: little padding, same result as any other grouping)."""
    order = sorted(range(len(data)), key=lambda i: (len(data.ids[i]), i))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
