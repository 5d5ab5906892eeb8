"""Development of Agora's defaults, judged where no benchmark split looks: the topic task's spare glosses.

    python benchmarks/agora_devtest.py [--variants before,defaults] [--seeds 0,1,2] [--budget-minutes 3]

The topic task (benchmarks/agora_tasks.py) uses 185 of the 200 WordNet glosses per topic; the 15 left per topic
(90 in all) are this script's *devtest* split. bench_agora.py's test splits are never read here, so choosing
defaults by this table does not tune on them (and sentiment and pair, which this script never runs, judge the
choice on tasks of other kinds). Each variant is a set of `bortconv finetune` flags for Agora's generated data.

To judge what later rounds learn, not what the sign test lets through, Agora runs here with the switch threshold
at 1 (``bortconv.finetune.search.SWITCH_P``): its result is the last round's best model. The table gives that
model's devtest accuracy against plain's (same seed, sample and budget) and each later round's sign test on S,
which says whether the real rule (p <= 0.05) would have switched. benchmarks/results/agora_devtest.json gets the
table docs/finetune.md shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _models import minilm  # noqa: E402
from _result import add_result_option, table, write_result  # noqa: E402
from agora_tasks import MAX_LENGTH, TOPICS, read_tsv, write_task  # noqa: E402
from bench_agora import TEACHER_SPACE, finetune_flags, test_accuracy  # noqa: E402

#: name -> `bortconv finetune` flags. "before": the defaults until this script's first run; "defaults": today's
VARIANTS = {"before": "--synthetic-ratio 1 --synthetic-filter agree", "defaults": "",
            "agree-3x": "--synthetic-filter agree", "hard": "--teacher-targets hard"}


def devtest_split(paths: dict[str, Path], out: Path) -> Path:
    """The topic glosses no split of the task uses, as a TSV file."""
    used = {t for p in paths.values() for t in read_tsv(p)[0]}
    rows = [ln.split("\t", 1) for ln in TOPICS.read_text(encoding="utf-8").splitlines()[1:]]
    out.write_text("label\ttext\n" + "".join(f"{lab}\t{t}\n" for lab, t in rows if t not in used), encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="before,defaults")
    ap.add_argument("--seeds", default="0,1,2", type=lambda t: [int(x) for x in t.split(",")])
    ap.add_argument("--budget-minutes", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    add_result_option(ap, "agora_devtest")
    args = ap.parse_args()
    import bortconv.finetune.search as search
    from bortconv.finetune import finetune

    search.SWITCH_P = 1.0  # the last round's best is the result: what later rounds learnt, judged on devtest
    variants = args.variants.split(",")
    ml, t_all = MAX_LENGTH["topic"], time.perf_counter()
    common = dict(max_length=ml, threads=args.threads, progress=False, epochs=10)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="agora-devtest-") as tmp:
        root = Path(tmp)
        paths = write_task("topic", root / "data")
        devtest = devtest_split(paths, root / "data" / "devtest.tsv")
        finetune(minilm(), paths["teacher"], paths["dev"], root / "teacher", method="plain", candidates=1,
                 budget_minutes=30, space=TEACHER_SPACE, **common)
        teacher, n_devtest = test_accuracy(root / "teacher", devtest, ml), len(read_tsv(devtest)[0])
        for seed in args.seeds:
            finetune(minilm(), paths["train"], paths["dev"], root / f"plain-{seed}", method="plain", seed=seed,
                     budget_minutes=args.budget_minutes, **common)
            plain = test_accuracy(root / f"plain-{seed}", devtest, ml)
            for v in variants:
                opts = dataclasses.replace(finetune_flags(VARIANTS[v]), method="agora", teacher=str(root / "teacher"),
                                           seed=seed, budget_minutes=args.budget_minutes, **common)
                rec = finetune(minilm(), paths["train"], paths["dev"], root / f"{v}-{seed}", opts).record
                later = test_accuracy(root / f"{v}-{seed}", devtest, ml)
                rounds = rec["search"]["rounds"]
                rows.append({"variant": v, "flags": VARIANTS[v], "seed": seed, "plain": round(plain, 4),
                             "last_round": round(later, 4), "gain_points": round(100 * (later - plain), 1),
                             "rounds": len(rounds), "teacher": round(teacher, 4),
                             "vs_kept": [r["vs_kept"] for r in rounds if "vs_kept" in r],
                             "synthetic": [r.get("synthetic") for r in rounds]})
                print(f"done: {v} seed {seed}: plain {plain:.4f} last round {later:.4f}", file=sys.stderr, flush=True)
    cells = [[r["variant"], f"`{r['flags']}`" if r["flags"] else "(none)", r["seed"], f"{r['plain']:.4f}",
              f"{r['last_round']:.4f}", f"{r['gain_points']:+.1f}", r["rounds"],
              "; ".join(f"{t['wins']}-{t['losses']} (p {t['p']:.3g})" for t in r["vs_kept"]) or "none"]
             for r in rows]
    means = {v: sum(float(r["gain_points"]) for r in rows if r["variant"] == v) / max(1, len(args.seeds))
             for v in variants}
    caption = (f"all-MiniLM-L6-v2, topic task, {args.budget_minutes:g} min per run, {args.threads} thread(s); "
               f"accuracy on the {n_devtest} spare glosses (devtest), teacher "
               f"{teacher:.4f} there; mean gain of the last round per variant: "
               + ", ".join(f"{v} {m:+.1f}" for v, m in means.items()))
    write_result("agora_devtest", {"agora_devtest": table(
        ["variant", "flags", "seed", "plain (devtest)", "last round (devtest)", "gain (points)", "rounds",
         "later rounds vs kept on S"], cells, right=(2, 3, 4, 5, 6), caption=caption)},
        {"rows": rows, "wall_s": round(time.perf_counter() - t_all, 1)},
        {k: v for k, v in vars(args).items() if k != "result"}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
