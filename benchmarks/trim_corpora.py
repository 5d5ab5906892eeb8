"""Domain corpora for `bortconv trim`'s benchmark besides the docstrings (tests/docstring_corpus.py), each of
another kind, each fixed before any trim ran on it:

    python benchmarks/trim_corpora.py NAME FILE      (NAME: news, fortunes-computing, fortunes-quotes)

- ``news``: gensim 4.4.0's wheel ships ``gensim/test/test_data/lee_background.cor``: 300 news stories, one per line,
  the background corpus of Lee, Pincombe & Welsh (2005) (the wheel is LGPL-2.1). Read as
  ``benchmarks/agora_tasks.py`` reads the wheel's other test data (gensim is never imported). Each story is cut
  into sentences after a full stop, question or exclamation mark followed by a space and a capital letter or a
  quote. Fixed in commit 5c52a7e, before any run on it.
- ``fortunes-computing`` and ``fortunes-quotes``: Debian bookworm's ``fortunes`` package (1:1.99.1-7.3, the
  fortune-mod collection; BSD-licensed), fetched with ``apt-get download`` into ``~/.cache/bortconv/data`` and
  unpacked with ``dpkg-deb``, never installed. A fortune (the text between ``%`` lines) becomes one line, its
  whitespace collapsed, its attribution kept. computing: the files computers, linux, linuxcookie, perl and
  debian; quotes: people and politics. Fixed before any run on them (the commit that added them says what was to
  be judged).

Each corpus is the first :data:`LINES` texts (at least :data:`MIN_LINES`) of :data:`MIN_WORDS` to
:data:`MAX_WORDS` words and no control character (some fortunes overstrike with backspaces), in source order, each
once. `bortconv trim` then holds 300 of them out by its own seeded split.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agora_tasks import DATA_CACHE as CACHE, gensim_test_data  # noqa: E402

LINES, MIN_LINES = 1800, 1500
MIN_WORDS, MAX_WORDS = 4, 60
NEWS_MEMBER = "gensim/test/test_data/lee_background.cor"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
FORTUNES = "fortunes=1:1.99.1-7.3"
FORTUNE_FILES = {"fortunes-computing": ("computers", "linux", "linuxcookie", "perl", "debian"),
                 "fortunes-quotes": ("people", "politics")}


def _first(texts: Iterable[str], where: str) -> list[str]:
    """The first LINES texts of MIN_WORDS..MAX_WORDS words and no control character, whitespace collapsed, each
    once."""
    seen: dict[str, None] = {}
    for text in texts:
        text = " ".join(text.split())
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS and text.isprintable():
            seen.setdefault(text, None)
    lines = list(seen)
    if len(lines) < MIN_LINES:
        raise SystemExit(f"{where}: {len(lines)} texts of {MIN_WORDS}-{MAX_WORDS} words; need {MIN_LINES}")
    return lines[:LINES]


def news() -> list[str]:
    """News sentences of the Lee background corpus, in story order."""
    stories = gensim_test_data(NEWS_MEMBER, "utf-8").splitlines()
    return _first((s for story in stories for s in SENTENCE_END.split(" ".join(story.split()))), NEWS_MEMBER)


def fortunes_dir() -> Path:
    """The unpacked fortunes package's text directory (downloaded and unpacked once into CACHE)."""
    out = CACHE / "fortunes-1.99.1-7.3"
    text = out / "usr" / "share" / "games" / "fortunes"
    if not text.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            try:
                subprocess.run(["apt-get", "download", "-q", FORTUNES], cwd=tmp, check=True, capture_output=True,
                               text=True)
            except (OSError, subprocess.CalledProcessError) as e:
                detail = getattr(e, "stderr", "") or str(e)
                raise SystemExit(f"apt-get download {FORTUNES} failed (a Debian machine with apt's package lists "
                                 f"is needed; `apt-get update` first): {detail.strip().splitlines()[-1]}") from None
            deb = next(Path(tmp).glob("fortunes_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            (Path(tmp) / "x").rename(out)
    return text


def fortunes(name: str) -> list[str]:
    """The fortunes of FORTUNE_FILES[name], file by file, each fortune one text."""
    d = fortunes_dir()
    texts = [t for f in FORTUNE_FILES[name] for t in (d / f).read_text(encoding="latin-1").split("\n%\n")]
    return _first(texts, f"fortunes {', '.join(FORTUNE_FILES[name])}")


CORPORA = {"news": news, **{name: (lambda n=name: fortunes(n)) for name in FORTUNE_FILES}}


def write_corpus(name: str, path: Path) -> Path:
    """Write corpus `name` to `path`, one text per line."""
    path.write_text("\n".join(CORPORA[name]()) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    write_corpus(sys.argv[1], Path(sys.argv[2]))
