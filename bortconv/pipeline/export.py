"""`bortconv export`: a Bort checkpoint (or a BERT-family HF directory) -> a checked CPU artifact directory.

Pipeline (:mod:`bortconv.pipeline.steps`): [convert .params] -> load PyTorch task model -> ONNX -> (fused ONNX |
OpenVINO IR) -> parity against the PyTorch model -> config, tokenizer -> [int8 under the gate] -> timing ->
manifest. Everything is built in a temporary directory beside OUT_DIR and renamed into place only after parity
(and the gate) passed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bortconv._util.atomic import atomic_directory, check_output_dir
from bortconv._util.memory import collect_only_new, memory_budget
from bortconv._util.progress import Progress
from bortconv.config import (ExportOptions, Int8Options, Precision, Target, as_path, check_options_type, option_keyword,
                             parse_enum)
from bortconv.errors import InputError
from bortconv.layout import ONNX_FILE, WORK_DIR
from bortconv.pipeline import steps


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
        """The result for ``--json``: every field but the manifest, plus the manifest's records of what the export
        did to the weights (``int8``, ``embeddings``) when it did it."""
        extra = {k: self.manifest[k] for k in ("int8", "embeddings") if k in self.manifest}
        return {k: v for k, v in self.__dict__.items() if k != "manifest"} | extra


#: keyword aliases of `precision` (the CLI's --fp16 and --int8)
PRECISION_ALIASES: dict[str, Precision] = {"fp16": Precision.FP16, "int8": Precision.INT8}


def _precision(kw: dict[str, Any]) -> Precision:
    """`precision` from the keywords, with its aliases (``fp16=True``, ``int8=True``) popped; they must agree."""
    given = kw.pop("precision", None)
    asked = {parse_enum(Precision, given, "precision")} if given is not None else set()
    for alias, value in PRECISION_ALIASES.items():
        flag = kw.pop(alias, False)
        if not isinstance(flag, bool):  # int8="no" must not mean int8
            raise InputError(f"{alias}: {flag!r} is not True or False", option=alias)
        if flag:
            asked.add(value)
    if len(asked) > 1:
        raise InputError(f"precision: {' and '.join(sorted(p.value for p in asked))} asked at once",
                         option="precision")
    return asked.pop() if asked else Precision.FP32  # type: ignore[return-value]


def export_options(**keywords: Any) -> ExportOptions:
    """The :class:`ExportOptions` of export's keyword arguments (the CLI's options, by the same names), checked.

    The keywords are ExportOptions' fields, Int8Options' (``calibration``, ``samples``, ``int8_scheme``,
    ``int8_gate``) and the aliases ``fp16=True`` / ``int8=True`` of `precision`."""
    kw = dict(keywords)
    if kw.get("target") is None:
        raise InputError("target: export needs one: onnx or openvino (--target)", option="target")
    precision = _precision(kw)
    int8_names = {option_keyword(f): f.name for f in fields(Int8Options) if f.name != "threads"}
    int8_kw = {int8_names[k]: kw.pop(k) for k in list(kw) if k in int8_names}
    unknown = sorted(set(kw) - {option_keyword(f) for f in fields(ExportOptions)} - {"int8"})
    if unknown:
        raise InputError(f"export: unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    given = [k for k, v in int8_kw.items() if v is not None and k in ("calibration", "samples", "scheme")]
    if given and precision is not Precision.INT8:
        name = {f.name: option_keyword(f) for f in fields(Int8Options)}[given[0]]
        raise InputError(f"{name}: applies to precision int8 only (got {precision.value})", option=name)
    if int8_kw.get("arch", "native") != "native" and precision is not Precision.INT8:
        # fp32, fp16 and bf16 files are the same for every CPU family; only int8's scheme depends on it
        raise InputError(f"arch {int8_kw['arch']}: applies to precision int8 (other precisions are the same files on "
                         f"every CPU family; check one on the device with `bortconv validate`)", option="arch")
    return ExportOptions(precision=precision, int8=Int8Options(threads=kw.get("threads"), **int8_kw), **kw)


def _timed(opts: ExportOptions) -> bool:
    """Whether the artifact is timed against PyTorch: not for another CPU family (this machine's speed is not
    the artifact's)."""
    return opts.bench and not (opts.quantized is not None and opts.quantized.foreign)


def export(source: str | os.PathLike[str], output_dir: str | os.PathLike[str], options: ExportOptions | None = None,
           **keywords: Any) -> ExportResult:
    """Export `source` (a Bort `.params` file or a BERT-family Hugging Face directory) for CPU inference.

    Writes ``model.onnx`` (target onnx) or ``openvino_model.xml/.bin`` (target openvino), plus config,
    tokenizer and ``manifest.json``. Parity against the PyTorch model is checked before anything is kept;
    a failing artifact raises :class:`bortconv.errors.ParityError` and leaves nothing at `output_dir`.
    With `int8`, the checked fp32 artifact is then quantized under the accuracy gate (see
    :mod:`bortconv.quantize.pipeline`), calibrated on `calibration` (default: the shipped English set).
    With `max_memory` (bytes, or a size such as "1.5G") the run is planned to fit that resident-memory budget,
    refused up front if it cannot, and stopped cleanly (:class:`bortconv.errors.MemoryBudgetError`) if it
    passes it anyway.

    Options are an :class:`bortconv.config.ExportOptions`, or the same as keywords (:func:`export_options`:
    ``target="openvino", int8=True, ...``); not both.
    """
    if options is None:
        options = export_options(**keywords)
    elif keywords:
        raise InputError(f"export: pass an ExportOptions or keywords, not both (got {', '.join(sorted(keywords))})")
    check_options_type(options, ExportOptions, "export")
    src, out = as_path(source, "source"), as_path(output_dir, "output_dir")
    kind = steps.source_kind(src)
    check_output_dir(out, options.force, reads=[src, options.vocab, options.merges, options.int8.calibration])
    steps.check_precision_here(options)
    steps.check_calibration(options)
    steps.check_source(src)
    # one step for the proof, or for int8 (which writes its own gate's proof)
    prog = Progress((6 if kind == "params" else 5) + int(_timed(options))
                    + int(steps.gate_runs(options) and not options.ungated)
                    + int(options.quantized is None and options.embeddings != "fp32")
                    + int(options.target is Target.OPENVINO and steps.has_tokenizer(src, options)),
                    enabled=options.progress)
    with collect_only_new(), memory_budget(options.max_memory, "export") as budget, \
            atomic_directory(out, force=options.force) as tmp:
        work = tmp / WORK_DIR
        work.mkdir()
        fields = _export_into(src, tmp, work, options, prog)
        shutil.rmtree(work)
        from bortconv.manifest import write_manifest
        manifest = write_manifest(tmp, fields)
    files = {name: int(info["bytes"]) for name, info in manifest["files"].items()}  # type: ignore[index]
    return ExportResult(output_dir=str(out), target=options.target.value, task=str(fields["task"]),
                        precision=options.precision.value, files=files, fused_ops=fields["fused_ops"],
                        parity=fields["parity"], speed=fields["speed_at_export"],
                        openvino_source=fields.get("openvino_source"), timings=prog.timings, manifest=manifest,
                        peak_rss_mb=round(budget.peak / 2**20) if budget else None,
                        max_memory_mb=round(budget.limit / 2**20) if budget else None)


def _export_into(src: Path, tmp: Path, work: Path, opts: ExportOptions, prog: Progress) -> dict[str, Any]:
    """The chain of steps, building into `tmp`; returns the manifest's fields."""
    source = steps.resolve_source(src, work, prog, opts.vocab, opts.merges, opts.variant, opts.heads)
    loaded = steps.load_model(source, opts, prog)
    from bortconv.quantize.embeddings import check_task, group_size
    check_task(loaded.task.value, opts.embeddings)  # before the heavy steps: exit 2 with nothing written
    if opts.int8.embedding_group_size is not None:  # whether it divides a row is known now, not after the build
        group_size(opts.embeddings, loaded.hidden_size, opts.int8.embedding_group_size)
    route = steps.plan_memory(loaded, opts, int8=opts.quantized is not None)
    traced = steps.trace_onnx(loaded, opts, work, prog, route)
    build = steps.build_onnx if opts.target is Target.ONNX else steps.build_openvino
    built = build(traced, loaded, opts, tmp, prog)
    parity = steps.check_parity(tmp, traced, loaded, opts, prog)
    steps.carry_files(source, tmp)
    tokenizer_ir = steps.tokenizer_as_ops(tmp, opts, prog)
    embeddings = steps.compress_embeddings(tmp, work, loaded, opts, prog)
    int8 = opts.quantized
    int8_info = steps.quantize(tmp, work, opts, loaded.task, int8, prog) if int8 is not None else {}
    # int8 carries its own gate's proof (lifted out of the int8 section); the others fp32 PyTorch's, which their
    # deployment gate then judges them against
    carried = None if int8_info else steps.carry_proof(tmp, source, loaded, opts, prog)
    proof = {"proof": int8_info.pop("proof")} if carried is None else carried.fields
    if (embeddings or int8_info) and opts.target is Target.ONNX:  # the graph was rewritten: count what it holds now
        from bortconv.converters.onnx_export import op_counts
        built = replace(built, fused_ops=op_counts(tmp / ONNX_FILE))
    deployment = steps.gate_deployment(tmp, opts, prog, carried)
    speed = steps.time_against_pytorch(tmp, source, loaded, traced, opts, prog, deployment) if _timed(opts) else {}
    return (steps.manifest_fields(source, loaded, opts, built, parity, int8_info, speed) | deployment.fields()
            | tokenizer_ir | proof | embeddings)
