"""Benchmark: convert the full-size fp16 Bort checkpoint; wall time and peak RSS of the `bortconv convert`
process. Targets (issue 2): under 20 s on 2 cores, peak RSS under 2x the checkpoint's size.

    python benchmarks/bench_convert.py [CHECKPOINT] [--repeat 3] [--json] [--result FILE]

Without CHECKPOINT it writes the demo bort_4_8_768_1024 fp16 checkpoint (same layout and size as the released
bort.params). Writes benchmarks/results/convert.json (benchmarks/_result.py). Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import add_result_option, table, write_result  # noqa: E402

TIME_TARGET_S = 20.0
RSS_TARGET_RATIO = 2.0


def run_once(ckpt: Path, out: Path, dtype: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one conversion in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bortconv", "convert", str(ckpt), "-o", str(out), "--force",
                             "--dtype", dtype], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"bortconv convert failed with {status}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    add_result_option(ap, "convert")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
        else:
            # In a child process: Linux children inherit the parent's peak RSS at fork, so the parent must
            # never hold the checkpoint's arrays itself.
            ckpt = work / "bort_4_8_768_1024.fp16.params"
            subprocess.run([sys.executable, "-c", "import sys; from bortconv.converters.demo import write_demo_checkpoint; "
                            "write_demo_checkpoint(sys.argv[1])", str(ckpt)], check=True)
        size = ckpt.stat().st_size
        rows = []
        for dtype in ("fp32", "fp16"):
            runs = [run_once(ckpt, work / f"out-{dtype}", dtype) for _ in range(args.repeat)]
            rows.append({"dtype": dtype, "median_s": statistics.median(t for t, _ in runs),
                         "max_s": max(t for t, _ in runs), "peak_rss_mb": max(r for _, r in runs) / 1e6,
                         "rss_ratio": max(r for _, r in runs) / size,
                         "output_mb": (work / f"out-{dtype}" / "model.safetensors").stat().st_size / 1e6})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r["max_s"] < TIME_TARGET_S and r["rss_ratio"] < RSS_TARGET_RATIO for r in rows)
    result = {"checkpoint_mb": size / 1e6, "cpus": os.cpu_count(), "rows": rows, "targets_met": ok}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"checkpoint {size / 1e6:.1f} MB, {os.cpu_count()} CPUs, {args.repeat} runs each")
        print(f"{'output':<7} {'median s':>9} {'max s':>7} {'peak RSS MB':>12} {'RSS/ckpt':>9} {'written MB':>11}")
        for r in rows:
            print(f"{r['dtype']:<7} {r['median_s']:>9.2f} {r['max_s']:>7.2f} {r['peak_rss_mb']:>12.1f} "
                  f"{r['rss_ratio']:>9.2f} {r['output_mb']:>11.1f}")
        print(f"targets (< {TIME_TARGET_S:.0f} s, RSS < {RSS_TARGET_RATIO}x checkpoint): "
              f"{'met' if ok else 'MISSED'}")
    source = Path(args.checkpoint).name if args.checkpoint else "demo bort_4_8_768_1024 fp16"
    rows_md = [[f"{source} ({size / 1e6:.0f} MB) -> {r['dtype']}", f"{r['median_s']:.2f}", f"{r['max_s']:.2f}",
                f"{r['peak_rss_mb']:.0f}", f"{r['rss_ratio']:.2f}x", f"{r['output_mb']:.0f}"] for r in rows]
    write_result("convert", {"convert": table(
        ["conversion", "median s", "max s", "peak RSS MB", "peak RSS / checkpoint", "model.safetensors MB"],
        rows_md, right=range(1, 6), caption=f"median of {args.repeat} fresh `bortconv convert` processes; targets "
        f"< {TIME_TARGET_S:.0f} s and peak RSS < {RSS_TARGET_RATIO}x the checkpoint: {'met' if ok else 'missed'}")},
        result, {"repeat": args.repeat}, args.result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
