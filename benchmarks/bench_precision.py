"""Benchmark: OpenVINO bf16 vs fp32 (and int8) inference of full-size Bort, interleaved in one run.

Builds the demo bort_4_8_768_1024 checkpoint, exports it to OpenVINO fp32 and with --precision bf16 (and
int8 with --int8), then times, round by round in one process: the fp32 IR pinned to f32 (what bortconv's
runtime runs for fp32), the bf16 artifact pinned to bf16, the fp32 IR as a stock `compile_model(xml, "CPU")`
loads it (in whatever precision OpenVINO's CPU plugin picks on this CPU: the result records it), and int8.
Batch 1, length 128 (and 512), 2 threads. Writes benchmarks/results/precision.json (benchmarks/_result.py).

    python benchmarks/bench_precision.py [--threads 2] [--work DIR] [--int8] [--json FILE] [--result FILE]

Targets checked (exit 1 if missed): on a CPU with AMX, bf16 >= 1.8x fp32 at length 128; on a CPU with only
AVX512_BF16, bf16 faster than fp32. A CPU without native bf16 cannot build the bf16 artifact: reported, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import add_result_option, table, write_result  # noqa: E402


def _export(src: Path, out: Path, threads: int, precision: str) -> float:
    import bortconv
    t0 = time.perf_counter()
    bortconv.export(src, out, target="openvino", precision=precision, threads=threads, bench=False, progress=False,
                    force=True)
    return time.perf_counter() - t0


def _stock(xml: Path):
    import openvino as ov
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    return lambda f: request.infer({k: f[k] for k in names})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--int8", action="store_true", help="also export and time OpenVINO int8")
    ap.add_argument("--json", type=Path, default=None)
    add_result_option(ap, "precision")
    args = ap.parse_args(argv)
    from bortconv.runtime.cpu import cpu_features
    from bortconv.converters.demo import write_demo_checkpoint
    from bortconv.runtime.loaders import native_bf16, stock_precision
    from bortconv.measure import interleaved, make_feeds
    from bortconv.runtime.bort import open_session

    cpu = cpu_features()
    work = args.work or Path(tempfile.mkdtemp(prefix="bortconv-bench-precision-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "bort-demo.params"
    if not src.exists():
        write_demo_checkpoint(src)
    native, have = native_bf16()
    precisions = ["fp32"] + (["bf16"] if native else []) + (["int8"] if args.int8 else [])
    export_s = {p: _export(src, work / f"ov-{p}", args.threads, p) for p in precisions}
    runners = {"fp32 (pinned f32)": open_session(work / "ov-fp32", args.threads).run,
               f"fp32 IR, stock load ({stock_precision()} here)": _stock(work / "ov-fp32" / "openvino_model.xml")}
    if native:
        runners["bf16 (pinned bf16)"] = open_session(work / "ov-bf16", args.threads).run
    if args.int8:
        runners["int8"] = open_session(work / "ov-int8", args.threads).run
    rows, checks = [], []
    for length in (128, 512):
        feeds = make_feeds([length], length, 50265, 1, 0, False)
        lat = interleaved(runners, feeds, rounds=6, runs_per_round=4)
        base = lat["fp32 (pinned f32)"].median_ms
        for name, la in lat.items():
            rows.append({"length": length, "candidate": name, "median_ms": round(la.median_ms, 2),
                         "p90_ms": round(la.p90_ms, 2), "vs_fp32": round(base / la.median_ms, 2)})
        if native and length == 128:
            ratio = base / lat["bf16 (pinned bf16)"].median_ms
            want = 1.8 if cpu["amx"] else 1.0
            checks.append((f"bf16 >= {want}x fp32 at 1x128 ({'AMX' if cpu['amx'] else 'AVX512_BF16 only'})",
                           ratio >= want, round(ratio, 2)))
    sizes = {p: round((work / f"ov-{p}" / "openvino_model.bin").stat().st_size / 1e6, 1) for p in precisions}
    print(f"CPU: {cpu['model']} (AMX {cpu['amx']}, native bf16: {have}), {args.threads} threads; "
          f"OpenVINO stock precision here: {stock_precision()}\n")
    print("| length | candidate | median ms | p90 ms | vs fp32 |\n|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['length']} | {r['candidate']} | {r['median_ms']} | {r['p90_ms']} | {r['vs_fp32']}x |")
    print("\nmodel .bin MB: " + ", ".join(f"{p} {mb}" for p, mb in sizes.items())
          + "; export s: " + ", ".join(f"{p} {s:.0f}" for p, s in export_s.items()))
    if not native:
        print(f"\nbf16 not built: this CPU has no native bf16 ({have})")
    for what, ok, value in checks:
        print(f"{'ok  ' if ok else 'MISS'} {what}: {value}x")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "rows": rows, "sizes_mb": sizes, "export_s": export_s,
                                         "checks": checks}, indent=2))
    _write(args, rows, sizes, export_s, checks, have, stock_precision())
    if not args.work:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok for _, ok, _ in checks) else 1


def _write(args: argparse.Namespace, rows: list[dict], sizes: dict, export_s: dict, checks: list, have: str,
           stock: str) -> None:
    md = [[str(r["length"]), r["candidate"], f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['vs_fp32']:.2f}x"]
          for r in rows]
    caption = (f"batch 1, {args.threads} threads, one interleaved run; OpenVINO's stock precision here: {stock}; "
               f"native bf16: {have}; model .bin MB: " + ", ".join(f"{p} {mb}" for p, mb in sizes.items()))
    write_result("precision", {"precision": table(["length", "candidate", "median ms", "p90 ms", "vs fp32 pinned"],
                                                  md, right=(0, 2, 3, 4), caption=caption)},
                 {"rows": rows, "sizes_mb": sizes, "export_s": export_s, "checks": checks, "stock_precision": stock,
                  "native_bf16": have}, {"threads": args.threads, "int8": args.int8}, args.result)


if __name__ == "__main__":
    sys.exit(main())
