"""Benchmark: cold start of an OpenVINO artifact, without and with OpenVINO's compiled-model cache (CACHE_DIR).

    python benchmarks/bench_cold_start.py [ARTIFACT_DIR ...] [--runs 3] [--threads 2] [--json FILE] [--result FILE]

Without arguments: the full-size demo Bort built by benchmarks/bench_serve.py (cached in its --work directory)
and all-MiniLM-L6-v2 exported to OpenVINO (cached beside it). Every figure is a fresh process
(:func:`bortconv.bench.cold_start.measure_cold_start`): "no cache" `runs` times, then one process that fills an empty
cache, then `runs` processes that load from it. load = process start to a ready BortRuntime (imports included),
session = read + compile (or the cached blob's load), first inference = one 128-token call. Writes
benchmarks/results/cold_start.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402
from bench_serve import prepare_artifact  # noqa: E402


def minilm_artifact(work: Path, threads: int) -> Path:
    out = work / "minilm-openvino"
    if not (out / "manifest.json").is_file():
        src = minilm()
        print("exporting all-MiniLM-L6-v2 to OpenVINO ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "bortconv", "export", str(src), "--target", "openvino", "-o", str(out),
                        "--threads", str(threads), "--no-bench", "--quiet", "--force"], check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="*", metavar="ARTIFACT_DIR")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "bortconv" / "bench-serve"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the reports here")
    add_result_option(ap, "cold_start")
    args = ap.parse_args()

    from bortconv.bench.cold_start import measure_cold_start

    arts = [Path(a) for a in args.artifacts] or [prepare_artifact(Path(args.work), args.threads),
                                                 minilm_artifact(Path(args.work), args.threads)]
    reports, md = [], []
    print("| artifact | cache | load s | session s | first inference ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for art in arts:
        with tempfile.TemporaryDirectory(prefix="bortconv-ov-cache-") as cache:
            rep = measure_cold_start(art, cache_dir=Path(cache) / "c", threads=args.threads, runs=args.runs)
        reports.append(rep)
        for label, key in (("none", "no_cache"), ("filling (1st run)", "cache_fill"), ("hit", "cache_hit")):
            r = rep[key]
            print(f"| {art.name} | {label} | {r['load_s']:.2f} | {r['session_s']:.2f} | "
                  f"{r['first_inference_ms']:.1f} |")
            md.append([art.name, label, f"{r['load_s']:.2f}", f"{r['session_s']:.2f}", f"{r['first_inference_ms']:.1f}"])
        md.append([art.name, f"blob {rep['cache_bytes'] / 1e6:.0f} MB", "", f"{rep['load_speedup']:.1f}x faster on a hit",
                   ""])
        print(f"| {art.name} | blob {rep['cache_bytes'] / 1e6:.0f} MB | | session {rep['load_speedup']:.1f}x "
              f"faster on a hit | |")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")
    write_result("cold_start", {"cold_start": table(
        ["artifact", "cache", "load s", "session s", "first inference ms"], md, right=(2, 3, 4),
        caption=f"each figure a fresh process, median of {args.runs}; {args.threads} threads")},
        reports, {"runs": args.runs, "threads": args.threads}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
