"""`bortconv export`: a Bort checkpoint (or a BERT-family HF directory) -> a checked CPU artifact directory.

Pipeline: [convert .params] -> load PyTorch task model -> ONNX -> (fused ONNX | OpenVINO IR) -> parity
against the PyTorch model -> config, tokenizer, manifest. Everything is built in a temporary directory beside
OUT_DIR and renamed into place only after parity passed.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortconv._atomic import atomic_directory, check_output_dir
from bortconv._memory import active_budget, fit_budget, memory_budget, release
from bortconv._progress import Progress
from bortconv.config import ExportOptions, OpenVinoRoute, Target, Task, parse_enum, parse_static_shape
from bortconv.errors import InputError, ParityError
from bortconv.runtime import ORT_DISABLED_OPTIMIZERS

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt")
CARRIED_FILES = ("config.json", "bortconv_conversion.json") + TOKENIZER_FILES
WORK = ".work"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and measured."""

    output_dir: str
    target: str
    task: str
    precision: str
    files: dict[str, int]
    fused_ops: dict[str, int]
    parity: list[dict[str, Any]]
    speed: dict[str, Any]
    openvino_source: str | None
    timings: dict[str, float]
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)
    #: with max_memory: the kernel's high-water mark of the run's resident memory, MB
    peak_rss_mb: float | None = None
    max_memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "manifest"}


def _resolve_source(source: Path) -> str:
    if not source.exists():
        raise InputError(f"{source}: no such file or directory")
    if source.is_dir():
        if not (source / "config.json").is_file():
            raise InputError(f"{source}: directory has no config.json; expected a Hugging Face model directory")
        return "hf"
    return "params"


def _torch_runner(module: Any, threads: int | None) -> Any:
    import torch
    if threads:
        torch.set_num_threads(threads)

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).float().numpy()
    return run


def export(source: str | os.PathLike[str], output_dir: str | os.PathLike[str], *, target: str | Target,
           task: str | Task | None = None, opset: int = 17, fp16: bool = False,
           static_shape: str | tuple[int, int] | None = None, threads: int | None = None, portable: bool = False,
           force: bool = False, vocab: str | None = None, merges: str | None = None,
           int8: bool = False, calibration: str | None = None, samples: int | None = None,
           int8_scheme: str | None = None, int8_gate: dict[str, float] | None = None, bench: bool = True,
           progress: bool = True, openvino_from: str | OpenVinoRoute = OpenVinoRoute.AUTO,
           max_memory: int | str | None = None) -> ExportResult:
    """Export `source` (a Bort `.params` file or a BERT-family Hugging Face directory) for CPU inference.

    Writes ``model.onnx`` (target onnx) or ``openvino_model.xml/.bin`` (target openvino), plus config,
    tokenizer and ``manifest.json``. Parity against the PyTorch model is checked before anything is kept;
    a failing artifact raises :class:`bortconv.errors.ParityError` and leaves nothing at `output_dir`.
    With `int8`, the checked fp32 artifact is then quantized under the accuracy gate (see
    :mod:`bortconv.quantize.pipeline`), calibrated on `calibration` (default: the shipped English set).
    With `max_memory` (bytes, or a size such as "1.5G") the run is planned to fit that resident-memory budget,
    refused up front if it cannot, and stopped cleanly (:class:`bortconv.errors.MemoryBudgetError`) if it
    passes it anyway.
    """
    opts = ExportOptions(target=parse_enum(Target, target, "--target"),  # type: ignore[arg-type]
                         task=None if task is None else parse_enum(Task, task, "--task"),  # type: ignore[arg-type]
                         opset=opset, fp16=fp16, static_shape=parse_static_shape(static_shape), threads=threads,
                         portable=portable, force=force,
                         openvino_from=parse_enum(OpenVinoRoute, openvino_from,  # type: ignore[arg-type]
                                                  "--openvino-from"))
    if opts.portable and opts.target is not Target.ONNX:
        raise InputError("--portable applies to --target onnx only")
    if int8 and opts.fp16:
        raise InputError("--int8 and --fp16 exclude each other")
    if not int8 and (calibration or samples or int8_scheme):
        raise InputError("--calibration, --samples and --int8-scheme need --int8")
    from bortconv.quantize.gate import GateThresholds
    from bortconv.quantize.pipeline import Int8Options
    int8_opts = Int8Options(calibration=calibration, samples=samples, scheme=int8_scheme, threads=threads,
                            thresholds=GateThresholds(**(int8_gate or {}))) if int8 else None
    src = Path(source)
    kind = _resolve_source(src)
    out = Path(output_dir)
    check_output_dir(out, opts.force)
    precision = "fp16" if opts.fp16 else "int8" if int8 else "fp32"
    prog = Progress((5 if kind == "params" else 4) + int(bench) + int(int8), enabled=progress)
    with memory_budget(max_memory, "export") as budget, atomic_directory(out, force=opts.force) as tmp:
        work = tmp / WORK
        work.mkdir()
        result = _export_into(src, kind, tmp, work, opts, prog, vocab, merges, bench, int8_opts)
        shutil.rmtree(work)
        from bortconv.manifest import write_manifest
        manifest = write_manifest(tmp, result)
    files = {name: int(info["bytes"]) for name, info in manifest["files"].items()}  # type: ignore[index]
    return ExportResult(output_dir=str(out), target=opts.target.value, task=str(result["task"]),
                        precision=precision, files=files, fused_ops=result["fused_ops"],
                        parity=result["parity"], speed=result["speed_at_export"],
                        openvino_source=result.get("openvino_source"),
                        timings=prog.timings, manifest=manifest,
                        peak_rss_mb=round(budget.peak / 2**20) if budget else None,
                        max_memory_mb=round(budget.limit / 2**20) if budget else None)


def _export_into(src: Path, kind: str, tmp: Path, work: Path, opts: ExportOptions, prog: Progress,
                 vocab: str | None, merges: str | None, bench: bool, int8: Any) -> dict[str, Any]:
    from bortconv.api import convert, sha256_file
    from bortconv.converters import hf_model
    from bortconv.validate.parity import TOLERANCES, check_parity, make_feeds, parity_shapes, record_reference

    precision = "fp16" if opts.fp16 else "fp32"  # of the artifact parity checks; int8 is gated afterwards

    if kind == "params":
        with prog.step(f"converting {src.name}"):
            conv = convert(src, work / "hf")
        hf_dir = work / "hf"
        source_sha = conv.source_sha256
    else:
        hf_dir = src
        weights = next((hf_dir / f for f in hf_model.WEIGHT_FILES if (hf_dir / f).is_file()), None)
        source_sha = sha256_file(weights) if weights else None
    if vocab or merges:
        if not (vocab and merges):
            raise InputError("--vocab and --merges go together")
        from bortconv.converters import tokenizer as tok
        gv = tok.read_gluon_vocab(vocab)
        cfg_vocab = hf_model.read_config(hf_dir)["vocab_size"]
        tok.check_vocab_size(gv, int(cfg_vocab), vocab)
        tok.write_tokenizer(tok.build_tokenizer(vocab, merges), work / "tok", gv)
    task = opts.task or hf_model.default_task(hf_dir)

    with prog.step(f"loading PyTorch model ({task.value})"):
        model = hf_model.load_pytorch(hf_dir, task)
        module = hf_model.task_module(model, task)
    cfg = model.config
    output = task.output_name
    route = opts.openvino_from.value
    budget = active_budget()
    if budget is not None:  # plan to fit --max-memory before the heavy stages, or refuse now
        weights = 4 * sum(p.numel() for p in model.parameters())
        route = fit_budget(budget.limit, weights, target=opts.target.value, int8=int8 is not None,
                           route=route, fill_mask=task is Task.FILL_MASK)

    from bortconv.converters import onnx_export as ox
    fused_ops: dict[str, int] = {}
    ov_info: dict[str, Any] = {}
    names = ox.input_names(module)
    with_types = "token_type_ids" in names
    pad_id = cfg.pad_token_id or 0
    bench_shape = opts.static_shape or (1, min(128, cfg.max_position_embeddings))  # a model may be shorter
    bench_feeds = make_feeds([bench_shape[1]] * bench_shape[0], bench_shape[1], cfg.vocab_size, pad_id, 0,
                             with_types)
    shapes = parity_shapes(opts.static_shape, cfg.max_position_embeddings)
    needs_module = opts.target is Target.OPENVINO and route != "onnx"  # converting from PyTorch
    keep_model = task is Task.FILL_MASK  # its logits (50k per token) would outweigh the model
    with prog.step(f"exporting ONNX (opset {opts.opset})"):
        plain = ox.export_onnx(module, work / "plain.onnx", output_name=output, opset=opts.opset,
                               static_shape=opts.static_shape)
        reference = _torch_runner(module, opts.threads)
        if not keep_model:
            # The PyTorch outputs parity compares against are recorded now (13 MB for Bort's hidden states),
            # so the model's 300 MB are not held while the optimizer, the compiler and the artifact run.
            reference = record_reference(reference, shapes=shapes, vocab_size=cfg.vocab_size, pad_id=pad_id,
                                         with_types=with_types)
            if not needs_module:
                del model
                module = None
        release()  # the tracer's garbage: ~0.9 GB of RSS for Bort that the next stage would stack on
    if opts.target is Target.ONNX:
        artifact = tmp / "model.onnx"
        with prog.step("optimizing the ONNX graph for CPU" if not opts.portable else "writing portable ONNX"):
            if opts.portable:
                shutil.copy(plain, artifact)
                fused_ops = ox.op_counts(artifact)
            else:
                fused_ops = ox.fuse_for_cpu(plain, artifact, num_heads=cfg.num_attention_heads,
                                            hidden_size=cfg.hidden_size)
            if opts.fp16:
                ox.to_fp16(artifact, artifact)
            release()
    else:
        from bortconv.converters import openvino_export as ovx
        from bortconv.validate.speed import KEEP_RULE
        label = {"auto": "from ONNX and from PyTorch, keeping the clearly faster", "onnx": "from ONNX",
                 "pytorch": "from PyTorch", "fastest": "from ONNX and from PyTorch, keeping the faster"}[route]
        with prog.step(f"converting to OpenVINO ({label})"):
            best, cands = ovx.best_openvino(module if needs_module else None, plain, output_name=output,
                                            static_shape=opts.static_shape, threads=opts.threads,
                                            bench_feeds=bench_feeds, route=route, names=names)
            ovx.save_ir(best.model, tmp / "openvino_model.xml", fp16=opts.fp16)
        ov_info = {"openvino_source": best.source, "openvino_from": route}
        if route != opts.openvino_from.value:
            ov_info["openvino_from_reason"] = f"--max-memory (asked: {opts.openvino_from.value})"
        if len(cands) > 1:  # the measurement that chose the route
            ov_info |= {"openvino_candidates": {c.source: round(c.median_ms or 0.0, 2) for c in cands},
                        "openvino_candidates_shape": list(bench_shape),
                        "openvino_rule": f"ONNX route preferred; {KEEP_RULE}" if route == "auto"
                        else "faster in this run"}
        del best, cands
        if needs_module and not keep_model:
            del model
            module = None
        release()

    from bortconv.runtime import open_session
    with prog.step("checking parity against PyTorch"):
        session = open_session(tmp, opts.threads)
        tol = TOLERANCES[(opts.target.value, precision)]
        report = check_parity(session.run, reference, output=output, shapes=shapes, tolerance=tol,
                              vocab_size=cfg.vocab_size, pad_id=pad_id, with_types=with_types)
        del session, reference
        release()
    if not report.passed:
        w = report.worst()
        raise ParityError(
            f"{opts.target.value} {precision} artifact: output '{output}' at shape {w.shape} differs from the "
            f"PyTorch model by {w.max_abs_diff:.3g} at index {list(w.where)} (tolerance {w.tolerance:g}); "
            f"nothing was written")

    for name in CARRIED_FILES:
        for d in (work / "tok", hf_dir):
            if (d / name).is_file():
                shutil.copy(d / name, tmp / name)
                break

    int8_info: dict[str, Any] = {}
    if int8 is not None:
        from bortconv.quantize.pipeline import _model_files, quantize_artifact
        with prog.step("quantizing to int8 under the accuracy gate"):
            fp32_dir = work / "fp32"
            fp32_dir.mkdir()
            for name in os.listdir(tmp):
                if (tmp / name).is_file():
                    (shutil.move if name in _model_files(opts.target.value) else shutil.copy)(
                        tmp / name, fp32_dir / name)
            (work / "q").mkdir()
            int8_info = quantize_artifact(fp32_dir, tmp, target=opts.target.value, task=task.value, opts=int8,
                                          work=work / "q")
        precision = "int8"

    speed: dict[str, Any] = {}
    if bench:
        from bortconv.validate.speed import interleaved
        with prog.step(f"timing artifact vs PyTorch eager (batch {bench_shape[0]}, length {bench_shape[1]})"):
            if module is None:  # let go once the reference was recorded: load it again (about 1 s)
                module = hf_model.task_module(hf_model.load_pytorch(hf_dir, task), task)
            session = open_session(tmp, opts.threads)
            lat = interleaved({"artifact": session.run, "pytorch_eager": _torch_runner(module, opts.threads)},
                              bench_feeds)
            del session
        speed = {"shape": list(bench_shape), "threads": opts.threads,
                 **{k: v.to_dict() for k, v in lat.items()},
                 "speedup_vs_pytorch": round(lat["pytorch_eager"].median_ms / lat["artifact"].median_ms, 3)}

    return {
        "target": opts.target.value, "task": task.value, "precision": precision,
        "source": str(src.resolve()), "source_kind": kind, "source_sha256": source_sha,
        "inputs": names, "output": output, "opset": opts.opset,
        "static_shape": list(opts.static_shape) if opts.static_shape else None,
        "graph": "portable" if opts.portable else ("fused" if opts.target is Target.ONNX else "openvino"),
        "fused_ops": fused_ops, "parity": [report.to_dict()], "parity_threads": opts.threads,
        **({"onnxruntime_session": {"disabled_optimizers": list(ORT_DISABLED_OPTIMIZERS),
                                    "why": "SkipLayerNormFusion re-creates a fused op that is slower on CPU than "
                                           "the Add + LayerNormalization this graph holds"}}
           if opts.target is Target.ONNX and not opts.portable else {}),
        "parity_checked": f"{'fp16' if opts.fp16 else 'fp32'} artifact vs PyTorch fp32"
                          + (" (before int8 quantization; int8 is judged by the gate)" if int8 else ""),
        "speed_at_export": speed, **ov_info, **({"int8": int8_info} if int8_info else {}),
    }
