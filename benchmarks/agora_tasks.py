"""Three real labelled tasks of different kinds for the Agora benchmark, split into disjoint files.

- ``topic``: six WordNet topics over glosses (``tests/data/wordnet_topics.tsv``, WordNet 3.0 licence).
- ``sentiment``: Pang & Lee's sentence polarity set as the gensim 4.4.0 wheel ships it
  (``gensim/test/test_data/pang_lee_polarity.cor``, Windows-1252 text, 100 positive and 100 negative
  movie-review sentences; the wheel is LGPL-2.1). Read from an installed gensim if there is one, else from the
  wheel that ``pip download`` fetches into ``~/.cache/bortconv/data`` (gensim is never imported).
- ``pair``: a sentence-pair task built from the WordNet glosses: are glosses A and B about the same topic? Each
  split pairs only glosses of its own share of the file, so no gloss is in two splits; half the pairs match.
- ``relation``: which relation holds between two words (``Athens``/``Greece``: capital; ``big``/``bigger``:
  comparative)? Word pairs from Mikolov's analogy questions as the same gensim wheel ships them
  (``gensim/test/test_data/questions-words.txt``, from word2vec, Apache-2.0): each question is two pairs of one
  relation. Twelve relations; the two capital sections are one relation, "family" is left out (23 pairs, too few
  for four splits), and a pair listed under two relations is dropped. Added after Agora's rules were fixed, as a
  task of a kind they were never developed on.

Every split is stratified per label and seeded; the teacher's split is disjoint from train, dev and test.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ROOT / "tests" / "data" / "wordnet_topics.tsv"
POLARITY_MEMBER = "gensim/test/test_data/pang_lee_polarity.cor"
ANALOGY_MEMBER = "gensim/test/test_data/questions-words.txt"
#: analogy sections -> relation label (sections not listed are left out)
RELATIONS = {
    "capital-common-countries": "capital", "capital-world": "capital", "currency": "currency",
    "city-in-state": "city-in-state", "gram1-adjective-to-adverb": "adverb", "gram2-opposite": "opposite",
    "gram3-comparative": "comparative", "gram4-superlative": "superlative",
    "gram5-present-participle": "participle", "gram6-nationality-adjective": "nationality",
    "gram7-past-tense": "past-tense", "gram8-plural": "plural", "gram9-plural-verbs": "plural-verb",
}
GENSIM = "gensim==4.4.0"
#: where downloaded data (the gensim wheel; trim_corpora.py's fortunes) is kept between runs
DATA_CACHE = Path.home() / ".cache" / "bortconv" / "data"
#: examples per label in each split
SPLITS = {
    "topic": {"train": 20, "dev": 25, "test": 60, "teacher": 80},
    "sentiment": {"train": 20, "dev": 20, "test": 30, "teacher": 30},
    "pair": {"train": 60, "dev": 50, "test": 120, "teacher": 200},
    "relation": {"train": 6, "dev": 6, "test": 10, "teacher": 7},
}
MAX_LENGTH = {"topic": 32, "sentiment": 48, "pair": 64, "relation": 16}


def polarity_lines() -> list[str]:
    """The 200 lines of the polarity set (``__label__pos text``)."""
    return gensim_test_data(POLARITY_MEMBER, "cp1252").splitlines()


def relation_pairs() -> list[tuple[str, str]]:
    """(relation, "word_a\tword_b") for every word pair of the analogy questions under exactly one relation."""
    seen: dict[tuple[str, str], set[str]] = {}
    section = ""
    for line in gensim_test_data(ANALOGY_MEMBER, "utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif section in RELATIONS and line.strip():
            a, b, c, d = line.split()
            for pair in ((a, b), (c, d)):
                seen.setdefault(pair, set()).add(RELATIONS[section])
    return [(next(iter(rel)), "\t".join(pair)) for pair, rel in sorted(seen.items()) if len(rel) == 1]


def gensim_test_data(member: str, encoding: str) -> str:
    """A file of the gensim 4.4.0 wheel's test data, from an installed gensim or the cached wheel."""
    spec = find_spec("gensim")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))).parent / member
        if path.is_file():
            return path.read_text(encoding=encoding)
    cache = DATA_CACHE
    wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", GENSIM, "-d", str(cache)],
                       check=True)
        wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        return zf.read(member).decode(encoding)


def _by_label(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label, text in rows:
        out.setdefault(label, []).append(text)
    return out


def stratified(by_label: dict[str, list[str]], counts: dict[str, int], seed: int) -> dict[str, list[tuple]]:
    """Disjoint per-label splits of `counts` items each (in `counts`' order), from one seeded permutation."""
    parts: dict[str, list[tuple]] = {k: [] for k in counts}
    rng = np.random.default_rng(seed)
    for label in sorted(by_label):
        texts, start = by_label[label], 0
        perm = rng.permutation(len(texts))
        for name, n in counts.items():
            parts[name] += [(label, texts[i]) for i in perm[start:start + n]]
            start += n
    return parts


def _pairs(items: list[tuple], n_per_label: int, rng: np.random.Generator) -> list[tuple]:
    """n_per_label 'same' and 'different' pairs of the glosses in `items` (each gloss used as A at most once)."""
    by = _by_label(items)
    labels = sorted(by)
    out: list[tuple] = []
    for k in range(2 * n_per_label):
        same = k % 2 == 0
        la = labels[int(rng.integers(len(labels)))]
        lb = la if same else labels[(labels.index(la) + 1 + int(rng.integers(len(labels) - 1))) % len(labels)]
        a, b = rng.choice(len(by[la])), rng.choice(len(by[lb]))
        if same and a == b:
            b = (b + 1) % len(by[lb])
        out.append(("same" if same else "different", by[la][a], by[lb][b]))
    return out


def write_task(task: str, out: Path, seed: int = 1234) -> dict[str, Path]:
    """Write train/dev/test/teacher TSV files of `task` into `out`; their paths."""
    if task == "sentiment":
        rows = [(ln.split(" ", 1)[0].removeprefix("__label__"), ln.split(" ", 1)[1].strip())
                for ln in polarity_lines() if ln.strip()]
        parts = stratified(_by_label(rows), SPLITS[task], seed)
    elif task == "relation":  # each item is "word_a\tword_b": written as text and text_b
        parts = stratified(_by_label(relation_pairs()), SPLITS[task], seed)
    else:
        rows = [tuple(ln.split("\t", 1)) for ln in TOPICS.read_text(encoding="utf-8").splitlines()[1:]]
        if task == "topic":
            parts = stratified(_by_label(rows), SPLITS[task], seed)
        else:  # pair: split the glosses like the topic task (35/40/60/65 per topic), then pair within each split
            gloss = stratified(_by_label(rows), {"train": 35, "dev": 40, "test": 60, "teacher": 65}, seed)
            rng = np.random.default_rng(seed + 1)
            parts = {name: _pairs(gloss[name], n, rng) for name, n in SPLITS[task].items()}
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, items in parts.items():
        paths[name] = out / f"{name}.tsv"
        head = "label\ttext\ttext_b\n" if task in ("pair", "relation") else "label\ttext\n"
        paths[name].write_text(head + "".join("\t".join(r) + "\n" for r in items), encoding="utf-8")
    return paths


def read_tsv(path: Path) -> tuple[list[str], list[str | None], list[str]]:
    """(texts, texts_b or Nones, labels) of a split file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pair = lines[0].count("\t") == 2
    rows = [ln.split("\t") for ln in lines[1:]]
    return [r[1] for r in rows], [r[2] if pair else None for r in rows], [r[0] for r in rows]
