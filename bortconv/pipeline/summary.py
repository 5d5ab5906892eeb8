"""The export summary a person reads: files, parity, how to load the artifact, the gate, speed and the options
measured on this machine (e.g. ``fp32 35 ms; bf16 15 ms (2.3x) passes the gate: --precision bf16``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bortconv.manifest import table_record
from bortconv.pipeline.export import ExportResult

#: a fresh process loads the artifact with bortconv's runtime and runs it once at BATCH x LENGTH: its RSS high-water
#: mark (VmHWM, reset by exec) after imports, after the load and after the first inference, and both times
_FOOTPRINT = """
import json, sys, time
from bortconv._util.memory import peak_rss_bytes
from bortconv.layout import OV_XML
from bortconv.measure import make_feeds
from bortconv.runtime.bort import open_session
path, threads, batch, length = sys.argv[1], int(sys.argv[2]) or None, int(sys.argv[3]), int(sys.argv[4])
__import__("openvino" if (__import__("pathlib").Path(path) / OV_XML).is_file() else "onnxruntime")
mb = lambda: (peak_rss_bytes() or 0) / 2**20
imports = mb()
t0 = time.perf_counter()
s = open_session(path, threads)
load_s, at_load = time.perf_counter() - t0, mb()
cfg = json.load(open(path + "/config.json"))
feeds = make_feeds([length] * batch, length, int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0), 0,
                   "token_type_ids" in s.input_names)
t1 = time.perf_counter()
s.run(feeds)
print(json.dumps({"imports_mb": imports, "load_s": load_s, "load_peak_rss_mb": at_load,
                  "first_inference_ms": (time.perf_counter() - t1) * 1e3, "peak_rss_mb": mb()}))
"""


def footprint(output_dir: str | Path, threads: int | None,
              shape: tuple[int, int] = (1, 128)) -> dict[str, float] | None:
    """Load the artifact in a fresh process (bortconv's runtime) and run it once at `shape` (batch, length; the
    export's timing shape, within the model's positions or its static shape): peak RSS at load
    and after the first inference, load time and first-inference latency (what `bortconv bench` also reports).
    None if the probe fails (the summary then says nothing about it)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FOOTPRINT, str(output_dir), str(threads or 0), *map(str, shape)],
                          capture_output=True, text=True, timeout=600)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (json.JSONDecodeError, IndexError):
        return None


def footprint_line(fp: dict[str, float], shape: tuple[int, int] = (1, 128)) -> str:
    return (f"  load in a fresh process: peak RSS {fp['load_peak_rss_mb']:.0f} MB at load ({fp['load_s']:.2f} s), "
            f"first inference ({shape[0]} x {shape[1]}) {fp['first_inference_ms']:.0f} ms, "
            f"peak RSS {fp['peak_rss_mb']:.0f} MB "
            f"after it (the interpreter and runtime library: {fp['imports_mb']:.0f} MB)")




def model_size_line(target: str, files: dict[str, int], manifest: dict[str, Any]) -> str:
    """The model files' total (what a deployment downloads and maps), and how the word table is stored."""
    from bortconv.layout import model_files

    total = sum(files.get(n, 0) for n in model_files(target)) / 1e6
    emb = table_record(manifest)
    line = f"  model files {total:.1f} MB"
    if emb.get("scheme") in ("int8", "int4"):
        line += (f"; word embeddings {emb['scheme']} (group {emb['group_size']}): {emb['table_bytes'] / 1e6:.1f} MB "
                 f"instead of {emb['table_bytes_fp32'] / 1e6:.1f} MB fp32")
    tried = (emb.get("choice") or {}).get("tried")
    if tried:  # --embeddings auto: what the gate was asked, smallest first
        line += "; auto tried " + ", ".join(f"{t['scheme']} group {t['group_size']} "
                                            f"{'pass' if t['passed'] else 'fail'}" for t in tried)
        line += "" if tried[-1]["passed"] else " (kept the int8 scheme's own table)"
    return line


def gate_lines(results: dict[str, Any]) -> list[str]:
    out = []
    for loader, v in results.items():
        m = v["metrics"]
        at = f" at {m['worst_at']}" if m.get("worst_at") else ""
        score = (f"sentence cosine mean {m['sentence_cosine_mean']:.5f}, worst {m['sentence_cosine_worst']:.5f}{at}"
                 if "sentence_cosine_mean" in m else
                 ", ".join(f"{k} {m[k]:.4f}" for k in ("label_agreement", "top1_agreement") if k in m))
        out.append(f"  {loader:<9} load ({v['inference_precision']}): {score} -> {'ok' if v['passed'] else 'FAIL'}")
    return out


def table_gate_lines(manifest: dict[str, Any]) -> list[str]:
    """The compressed word table's own gate (judged before the deployment gate), if the manifest has one."""
    gate = table_record(manifest).get("gate") or {}
    if not gate.get("results"):
        return []
    return [f"\nword-table gate (against {gate.get('reference', 'the fp32 table')})", *gate_lines(gate["results"])]


def int8_speed_line(sp: dict[str, Any]) -> str:
    """int8 against fp32 at the timing shape: as bortconv pins fp32, and as a stock load runs it where that
    differs (OpenVINO's default where the plugin reports other than f32, e.g. bf16)."""
    if sp.get("measured") is False:
        return f"  int8 speed: not measured ({sp['why']})"
    b, length = sp["shape"]
    line = (f"  int8 speed (batch {b}, length {length}): fp32 {sp['fp32_ms']:.1f} ms, int8 {sp['int8_ms']:.1f} ms "
            f"-> {sp['speedup']:.2f}x")
    stock = sp.get("fp32_stock")
    if stock:
        line += (f"; fp32 under stock loading ({stock['inference_precision']}) {stock['median_ms']:.1f} ms "
                 f"-> {stock['speedup']:.2f}x")
    return line


def device_gate_line(dg: dict[str, Any]) -> str:
    """An artifact for another CPU family: its gate on that family's kernels is still to run."""
    return f"  gate on {dg['arch']} kernels: {dg['status']}: {dg['how']} ({dg['note']})"


def _loading_lines(loading: dict[str, Any]) -> list[str]:
    stock = loading.get("stock", {})
    lines = [f"\nloading ({loading['runtime']}): weights {loading['weights']}, bortconv's runtime infers in "
             f"{loading['inference_precision']} with {loading['config']}"]
    if stock:
        lines.append(f"  stock {stock['call']} infers in {stock['inference_precision_here']} on this CPU"
                     + (f"; {stock['note']}" if stock.get("note") else ""))
    return lines


def _speed_lines(sp: dict[str, Any], precision: str) -> list[str]:
    b, length = sp["shape"]
    lines = [f"\nspeed (batch {b}, length {length}, {sp['threads'] or 'default'} threads): artifact "
             f"{sp['artifact']['median_ms']:.1f} ms, PyTorch eager {sp['pytorch_eager']['median_ms']:.1f} ms "
             f"-> {sp['speedup_vs_pytorch']:.2f}x"]
    bf16 = sp.get("options", {}).get("bf16")
    if bf16:
        verdict = "passes the gate: --precision bf16" if bf16["passes_gate"] else "fails the bf16 gate here"
        lines.append(f"options measured here: {precision} {sp['artifact']['median_ms']:.1f} ms; bf16 "
                     f"{bf16['median_ms']:.1f} ms ({bf16['speedup_vs_fp32']:.1f}x) {verdict}")
    return lines


def summary(result: ExportResult, load_footprint: bool = True) -> str:
    """The human-readable summary of an export; with `load_footprint` and a timed export (not --no-bench), the
    artifact's memory and first inference in a fresh process (:func:`footprint`, a few seconds)."""
    m = result.manifest
    lines = [f"\n{result.output_dir}: {result.target} {result.precision} {result.task}"
             + (f" (OpenVINO IR converted from {result.openvino_source})" if result.openvino_source else "")]
    lines += [f"  {name:<28} {size / 1e6:>9.1f} MB" for name, size in sorted(result.files.items())]
    lines.append(model_size_line(result.target, result.files, m))
    shape = tuple((result.speed or {}).get("shape") or (1, 128))
    fp = footprint(result.output_dir, (result.speed or {}).get("threads"), shape) if load_footprint and result.speed \
        else None
    if fp:
        lines.append(footprint_line(fp, shape))
    if result.fused_ops:
        lines.append("  fused ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(result.fused_ops.items())))
    lines.append("\nparity vs PyTorch (max abs diff at valid positions)")
    for rep in result.parity:
        lines += [f"  {rep['output']:<18} {r['shape']:<16} {r['max_abs_diff']:>10.2e}  tol {r['tolerance']:.0e}  "
                  f"{'ok' if r['passed'] else 'FAIL'}" for r in rep["rows"]]
    lines += table_gate_lines(m)
    if m.get("loading"):
        lines += _loading_lines(m["loading"])
    gate = m.get("deployment_gate") or m.get("int8", {}).get("gate", {})
    if gate.get("results"):
        sweep = gate["heldout"].get("sweep", "full")
        lines.append(f"\ndeployment gate ({'quick sweep, ' if sweep == 'quick' else ''}"
                     f"{gate['heldout']['probes']} held-out probes, lengths "
                     f"{'-'.join(map(str, gate['heldout']['lengths']))}; {gate['heldout']['text'].split(' (')[0]})")
        lines += gate_lines(gate["results"])
        if m.get("int8", {}).get("speed_vs_fp32"):
            lines.append(int8_speed_line(m["int8"]["speed_vs_fp32"]))
        if m.get("int8", {}).get("device_gate"):
            lines.append(device_gate_line(m["int8"]["device_gate"]))
    elif gate.get("ran") is False:
        lines.append(f"\ndeployment gate: not run ({gate['why']})")
    if result.speed:
        lines += _speed_lines(result.speed, result.precision)
    if result.peak_rss_mb is not None:
        lines.append(f"\npeak resident memory {result.peak_rss_mb:.0f} MB (--max-memory {result.max_memory_mb:.0f} MB)")
    return "\n".join(lines)
