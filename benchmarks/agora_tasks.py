"""Three real labelled tasks of different kinds for the Agora benchmark, split into disjoint files.

- ``topic``: six WordNet topics over glosses (``tests/data/wordnet_topics.tsv``, WordNet 3.0 licence).
- ``sentiment``: Pang & Lee's sentence polarity set as the gensim 4.4.0 wheel ships it
  (``gensim/test/test_data/pang_lee_polarity.cor``, Windows-1252 text, 100 positive and 100 negative
  movie-review sentences; the wheel is LGPL-2.1). Read from an installed gensim if there is one, else from the
  wheel that ``pip download`` fetches into ``~/.cache/bortconv/data`` (gensim is never imported).
- ``pair``: a sentence-pair task built from the WordNet glosses: are glosses A and B about the same topic? Each
  split pairs only glosses of its own share of the file, so no gloss is in two splits; half the pairs match.

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
GENSIM = "gensim==4.4.0"
#: examples per label in each split
SPLITS = {
    "topic": {"train": 20, "dev": 25, "test": 60, "teacher": 80},
    "sentiment": {"train": 20, "dev": 20, "test": 30, "teacher": 30},
    "pair": {"train": 60, "dev": 50, "test": 120, "teacher": 200},
}
MAX_LENGTH = {"topic": 32, "sentiment": 48, "pair": 64}


def polarity_lines() -> list[str]:
    """The 200 lines of the polarity set (``__label__pos text``)."""
    spec = find_spec("gensim")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / "pang_lee_polarity.cor"
        if path.is_file():
            return path.read_text(encoding="cp1252").splitlines()
    cache = Path.home() / ".cache" / "bortconv" / "data"
    wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", GENSIM, "-d", str(cache)],
                       check=True)
        wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        return zf.read(POLARITY_MEMBER).decode("cp1252").splitlines()


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
        head = "label\ttext\ttext_b\n" if task == "pair" else "label\ttext\n"
        paths[name].write_text(head + "".join("\t".join(r) + "\n" for r in items), encoding="utf-8")
    return paths


def read_tsv(path: Path) -> tuple[list[str], list[str | None], list[str]]:
    """(texts, texts_b or Nones, labels) of a split file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pair = lines[0].count("\t") == 2
    rows = [ln.split("\t") for ln in lines[1:]]
    return [r[1] for r in rows], [r[2] if pair else None for r in rows], [r[0] for r in rows]
