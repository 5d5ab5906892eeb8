"""Cold start of an OpenVINO artifact: load time and first-inference latency, each in a fresh process, without
and with OpenVINO's compiled-model cache (what `bench --cold-start` and benchmarks/bench_cold_start.py report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError
from bortconv.layout import OV_XML


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from bortconv.runtime.bort import BortRuntime
rt = BortRuntime(sys.argv[1], threads=int(sys.argv[2]) or None, cache_dir=sys.argv[3] or None)
load = time.perf_counter() - t0
t1 = time.perf_counter()
rt.run_ids([[0] + [5] * int(sys.argv[4]) + [2]])
first = time.perf_counter() - t1
print(json.dumps({"load_s": load, "session_s": rt.load_seconds, "first_inference_ms": first * 1e3}))
"""


def _probe(artifact_dir: Path, threads: int | None, cache_dir: Path | None, length: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(artifact_dir), str(threads or 0),
                           str(cache_dir or ""), str(length)], capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise InputError(f"{artifact_dir}: the cold-start probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_cold_start(artifact_dir: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str],
                       threads: int | None = None, runs: int = 3, length: int = 126) -> dict[str, Any]:
    """Load time and first-inference latency of an OpenVINO artifact, each in a fresh process, without and
    with the compiled-model cache.

    `cache_dir` must be empty or absent: the first cached run fills it ("cache_fill"), the following `runs`
    read it ("cache_hit"); "no_cache" is `runs` processes without it. Each row: medians of ``load_s`` (process
    start to a ready BortRuntime, imports included), ``session_s`` (read + compile, or blob load) and
    ``first_inference_ms`` (one text of `length` + 2 tokens).
    """
    d, cache = Path(artifact_dir), Path(cache_dir)
    if not (d / OV_XML).is_file():
        raise InputError(f"{d}: the compiled-model cache applies to OpenVINO artifacts ({OV_XML})")
    if cache.exists() and any(cache.iterdir()):
        raise InputError(f"{cache}: the cache directory must start empty, to measure filling it")

    def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
        return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}

    no_cache = median_row([_probe(d, threads, None, length) for _ in range(runs)])
    fill = _probe(d, threads, cache, length)
    hit = median_row([_probe(d, threads, cache, length) for _ in range(runs)])
    blob = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    return {"artifact": str(d), "runs": runs, "threads": threads, "no_cache": no_cache, "cache_fill": fill,
            "cache_hit": hit, "cache_bytes": blob,
            "load_speedup": no_cache["session_s"] / hit["session_s"] if hit["session_s"] else None}
