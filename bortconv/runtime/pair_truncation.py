"""How a tokenizer cuts a pair that is too long: which rule, where it is recorded, and Bort's rule itself.

tokenizer.json can only say ``longest_first`` (Hugging Face's rule: on an odd budget the extra token goes to the
longer text, the second one on a tie). Bort was fine-tuned with alexa/bort's ``truncate_seqs_equal``, which gives
it to the *first* text whenever both are cut. With Bort's 512 tokens the pair budget is 509 (odd), so the two
differ by one token exactly when both texts have more than 254 tokens and the first is not the longer.

The rule travels with the tokenizer files: ``tokenizer_config.json`` key :data:`PAIR_TRUNCATION_KEY`, which the
Bort tokenizer writer sets to :data:`BORT_RULE`. Stock loaders ignore the key (they cut by tokenizer.json);
bortconv's runtime, in both tokenizer backends, and the OpenVINO pair-tokenizer IR follow it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bortconv.errors import InputError
from bortconv.layout import TOKENIZER_CONFIG_FILE

#: tokenizer_config.json key naming the pair rule; absent means tokenizer.json's own
PAIR_TRUNCATION_KEY = "bortconv_pair_truncation"
BORT_RULE = "truncate_seqs_equal"  # alexa/bort utils/finetune_utils.py, as gluonnlp 0.8.3 ran it
HF_RULE = "longest_first"  # tokenizer.json's truncation strategy
RULES = (BORT_RULE, HF_RULE)


def bort_truncated_lengths(lengths: Sequence[int], budget: int) -> list[int]:
    """Lengths alexa/bort's ``truncate_seqs_equal`` keeps for sequences of `lengths` within `budget` tokens.

    Short sequences that fit in an equal share are kept whole (shortest first, earliest on ties); the rest share
    what is left equally, the earliest ones taking the remainder one token each.
    """
    out = list(lengths)
    if sum(out) <= budget:
        return out
    active = sorted(range(len(out)), key=lambda i: (out[i], i))
    while active:
        share, extra = divmod(budget, len(active))
        if out[active[0]] <= share:
            budget -= out[active.pop(0)]
            continue
        for rank, i in enumerate(sorted(active)):
            out[i] = share + (rank < extra)
        break
    return out


def pair_rule(tokenizer_dir: str | Path) -> str:
    """The pair-truncation rule the tokenizer files in `tokenizer_dir` declare (:data:`HF_RULE` if none)."""
    path = Path(tokenizer_dir) / TOKENIZER_CONFIG_FILE
    if not path.is_file():
        return HF_RULE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    rule = config.get(PAIR_TRUNCATION_KEY, HF_RULE) if isinstance(config, dict) else HF_RULE
    if rule not in RULES:
        raise InputError(f"{path}: {PAIR_TRUNCATION_KEY} is {rule!r}; known: {', '.join(RULES)}")
    return rule
