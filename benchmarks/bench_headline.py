"""Benchmark: the README's headline table, from scratch. Bort (fused ONNX and OpenVINO, fp32 and int8) vs
BERT-large (PyTorch eager, and through the same fused-ONNX fp32 and int8 pipeline), batch 1, sequence 128, 2 threads; target (issue 6): the best Bort artifact at least 30x faster than BERT-large
PyTorch eager fp32.

    python benchmarks/bench_headline.py [--rounds 10] [--threads 2] [--work DIR] [--json FILE] [--result FILE]

Writes the demo bort_4_8_768_1024 checkpoint (released layout and size, random weights) in a child process,
exports it with `bortconv export` (fused ONNX, OpenVINO; fp32 and --int8) in child processes, builds the random-weight
BERT-large baseline once (cached under ~/.cache/bortconv/bench: first run takes minutes), then measures
everything interleaved in one process with `bortconv bench`'s harness. Prints the machine (lscpu model name,
avx2/avx512/vnni/amx) and the table, and writes benchmarks/results/headline.json (benchmarks/_result.py), whose
table README.md shows. Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import add_result_option, table, write_result  # noqa: E402

TARGET_VS_EAGER = 30.0
BATCH, SEQ = 1, 128


def sh(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)


def prepare(work: Path, threads: int) -> dict[str, Path]:
    """Demo checkpoint and its two fp32 artifacts (kept in `work` and reused if already there)."""
    ckpt = work / "bort_4_8_768_1024.fp16.params"
    if not ckpt.exists():  # a child process: this one stays small, as a deployment would
        sh("-c", "import sys; from bortconv.converters.demo import write_demo_checkpoint; write_demo_checkpoint(sys.argv[1])",
           str(ckpt))
    arts = {"Bort fused ONNX fp32": (work / "bort-onnx", "onnx", []),
            "Bort OpenVINO fp32": (work / "bort-openvino", "openvino", []),
            "Bort ONNX Runtime int8": (work / "bort-onnx-int8", "onnx", ["--int8"]),
            "Bort OpenVINO int8": (work / "bort-openvino-int8", "openvino", ["--int8"])}
    for label, (out, target, extra) in arts.items():
        if not (out / "manifest.json").is_file():
            print(f"exporting {label} ...", file=sys.stderr, flush=True)
            sh("-m", "bortconv", "export", str(ckpt), "--target", target, "-o", str(out), "--threads", str(threads),
               "--no-bench", "--quiet", "--force", *extra)
    return {label: v[0] for label, v in arts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", help="keep the checkpoint and artifacts here (default: a temporary directory)")
    ap.add_argument("--json", help="write the full bench report here")
    add_result_option(ap, "headline")
    args = ap.parse_args()

    from bortconv.bench.baselines import bench
    from bortconv.validate.report import markdown_table, write_json

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-headline-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        arts = prepare(work, args.threads)
        print("building / loading the BERT-large baseline and measuring ...", file=sys.stderr, flush=True)
        rep = bench([arts[k] for k in arts], baseline="bert-large", seq_lens=[SEQ], batches=[BATCH],
                    threads=args.threads, rounds=args.rounds, runs_per_round=4, warmup=2, budget_s=600)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        write_json(rep.to_dict(), args.json)

    names = {c.name: c for c in rep.candidates}
    label = {c.name: lbl for lbl, p in arts.items() for c in rep.candidates if Path(c.path) == p}
    label |= {"bert-large (PyTorch eager)": "BERT-large PyTorch eager fp32",
              "bert-large (fused ONNX)": "BERT-large fused ONNX fp32 (same pipeline)",
              "bert-large (fused ONNX int8)": "BERT-large ONNX Runtime int8 (same pipeline)"}
    eager, fused = "bert-large (PyTorch eager)", "bert-large (fused ONNX)"
    e_ms = rep.result(eager, BATCH, SEQ).p50_ms  # type: ignore[union-attr]
    # "same pipeline": fp32 artifacts against BERT-large through the fused fp32 graph, int8 ones against its
    # int8 graph: the ratio the architecture alone explains
    same = {"fp32": fused, "int8": "bert-large (fused ONNX int8)"}
    rows = []
    for name in [c.name for c in rep.baselines()] + [c.name for c in rep.artifacts()]:
        m = rep.result(name, BATCH, SEQ)
        c = names[name]
        base = rep.result(same.get(c.precision, fused), BATCH, SEQ)
        rows.append([label.get(name, name), f"{m.p50_ms:.1f}", f"{m.p90_ms:.1f}", f"{e_ms / m.p50_ms:.1f}x",
                     f"{base.p50_ms / m.p50_ms:.1f}x" if base else "-", f"{c.size_bytes / 1e6:.0f}",
                     "-" if c.peak_rss_mb is None else f"{c.peak_rss_mb:.0f}"])
    mach = rep.machine
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in mach["features"].items())
    best = rep.best_artifact(BATCH, SEQ)
    best_x = e_ms / best.p50_ms  # type: ignore[union-attr]
    ok = best_x >= TARGET_VS_EAGER
    print(f"machine: {mach['cpu']}, {mach['cpus']} CPUs ({flags})")
    print(f"batch {BATCH}, sequence {SEQ}, {rep.settings['threads']} threads, median of {args.rounds} interleaved "
          f"rounds; random weights of the real shapes; {time.perf_counter() - t0:.0f} s in all\n")
    print(markdown_table(["configuration", "p50 ms", "p90 ms", "vs BERT-large eager", "vs BERT-large same pipeline",
                          "model MB", "peak RSS MB"], rows, right=(1, 2, 3, 4, 5, 6)))
    for note in rep.notes:
        print(f"- {note}")
    print(f"\nbest Bort artifact ({label.get(best.candidate, best.candidate)}) vs BERT-large eager: "  # type: ignore[union-attr]
          f"{best_x:.1f}x (target >= {TARGET_VS_EAGER:.0f}x): {'met' if ok else 'MISSED'}")
    print(json.dumps({"best_vs_eager": round(best_x, 2), "target": TARGET_VS_EAGER, "met": ok}))
    columns = ["configuration", "p50 ms", "p90 ms", "vs BERT-large eager", "vs BERT-large same pipeline", "model MB",
               "peak RSS MB"]
    caption = (f"batch {BATCH}, sequence {SEQ}, {rep.settings['threads']} threads, median of {args.rounds} "
               f"interleaved rounds; random weights of the real shapes; best Bort artifact vs BERT-large eager "
               f"{best_x:.1f}x (target >= {TARGET_VS_EAGER:.0f}x: {'met' if ok else 'missed'})")
    write_result("headline", {"headline": table(columns, rows, right=range(1, 7), caption=caption)},
                 {"report": rep.to_dict(), "best_vs_eager": round(best_x, 2), "target": TARGET_VS_EAGER, "met": ok},
                 {"rounds": args.rounds, "threads": args.threads, "batch": BATCH, "seq": SEQ}, args.result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
