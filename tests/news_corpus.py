"""A second domain corpus for `bortconv trim`: sentences of news stories, a register unlike the docstrings'.

    python tests/news_corpus.py FILE

gensim 4.4.0's wheel ships ``gensim/test/test_data/lee_background.cor``: 300 news stories, one per line, the
background corpus of Lee, Pincombe & Welsh (2005) (the wheel is LGPL-2.1). It is read as
``benchmarks/agora_tasks.py`` reads the wheel's other test data: from an installed gensim, else from the wheel
``pip download`` fetches into ``~/.cache/bortconv/data`` (gensim is never imported). Each story is cut into
sentences after a full stop, question or exclamation mark followed by a space and a capital letter or a quote;
the corpus is the first :data:`LINES` sentences of :data:`MIN_WORDS` to :data:`MAX_WORDS` words, in story order,
each once. `bortconv trim` then holds 300 of them out by its own seeded split.

This corpus was fixed, and the trim rule it judges committed, before any trim ran on it (the commit message that
added this file says what was to be judged on it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from agora_tasks import gensim_test_data  # noqa: E402

MEMBER = "gensim/test/test_data/lee_background.cor"
LINES = 1800
MIN_WORDS, MAX_WORDS = 4, 60
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def news_corpus() -> list[str]:
    """The corpus's lines: news sentences of MIN_WORDS..MAX_WORDS words, in story order, each once."""
    seen: dict[str, None] = {}
    for story in gensim_test_data(MEMBER, "utf-8").splitlines():
        for sentence in SENTENCE_END.split(" ".join(story.split())):
            if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                seen.setdefault(sentence, None)
    lines = list(seen)
    if len(lines) < LINES:
        raise SystemExit(f"{MEMBER}: {len(lines)} sentences of {MIN_WORDS}-{MAX_WORDS} words; expected {LINES}")
    return lines[:LINES]


def write_corpus(path: Path) -> Path:
    """Write the corpus to `path`, one sentence per line."""
    path.write_text("\n".join(news_corpus()) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    write_corpus(Path(sys.argv[1]))
