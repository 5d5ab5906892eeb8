"""Per-label, disjoint, seeded splits of the WordNet topics file (tests/data/wordnet_topics.tsv) as TSV files:
the fine-tuning tests' tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "wordnet_topics.tsv"


def write_topic_splits(dest: Path, sizes: dict[str, int], seed: int, n_labels: int | None = None) -> dict[str, Path]:
    """split name -> TSV file (``label<TAB>text``) under `dest`: for each of the first `n_labels` labels (sorted;
    all by default), one seeded permutation of its texts cut into consecutive slices of `sizes`, in order."""
    by_label: dict[str, list[str]] = {}
    for line in DATA.read_text(encoding="utf-8").splitlines()[1:]:
        label, text = line.split("\t", 1)
        by_label.setdefault(label, []).append(text)
    parts: dict[str, list[tuple[str, str]]] = {k: [] for k in sizes}
    rng = np.random.default_rng(seed)
    for label in sorted(by_label)[:n_labels]:
        texts, start = by_label[label], 0
        perm = rng.permutation(len(texts))
        for name, n in sizes.items():
            parts[name] += [(label, texts[i]) for i in perm[start:start + n]]
            start += n
    out = {}
    for name, items in parts.items():
        out[name] = dest / f"{name}.tsv"
        out[name].write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in items), encoding="utf-8")
    return out
