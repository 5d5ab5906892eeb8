"""The export pipeline's steps. Each takes and returns typed values; :func:`bortconv.pipeline.export.export`
chains them (as onnxruntime's ``BertOnnxModel.optimize`` chains its ``fuse_*`` steps):

    resolve_source -> load_model -> plan_memory -> trace_onnx -> build_onnx | build_openvino
        -> check_parity -> carry_files -> tokenizer_as_ops -> compress_embeddings
        -> quantize (int8) | carry_proof -> gate_deployment -> time_against_pytorch -> manifest_fields

Memory: the PyTorch outputs parity compares against are recorded right after tracing and the model is let go
before the optimizer or the compiler runs (see :class:`Loaded`), unless a later step still needs it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortconv._util.hashing import sha256_file
from bortconv._util.memory import active_budget, release
from bortconv.pipeline.cost import fit_budget
from bortconv._util.progress import Progress
from bortconv.config import ExportOptions, GateThresholds, Int8Options, Precision, Target, Task
from bortconv.errors import InputError, ParityError
from bortconv.layout import CARRIED_FILES, CONFIG_FILE, ONNX_FILE, OV_XML, TOKENIZER_FILE, WEIGHT_FILES, model_files
from bortconv.measure import KEEP_RULE, Runner, interleaved, make_feeds, timing_shape
from bortconv.runtime.bort import ORT_DISABLED_OPTIMIZERS

log = logging.getLogger(__name__)

#: how each --openvino-from route is announced in the progress line
ROUTE_LABEL = {"auto": "from ONNX and from PyTorch, keeping the clearly faster", "onnx": "from ONNX",
               "pytorch": "from PyTorch", "fastest": "from ONNX and from PyTorch, keeping the faster"}


@dataclass(frozen=True)
class Source:
    """What the export starts from: a Hugging Face directory (a `.params` file converted into one)."""

    path: Path
    kind: str  # "params" or "hf"
    hf_dir: Path
    sha256: str | None
    tokenizer_dir: Path | None  # a tokenizer built from --vocab/--merges, if any


@dataclass
class Loaded:
    """The PyTorch task model and the facts every later step reads from it. `module` is None once let go."""

    task: Task
    module: Any
    vocab_size: int
    max_positions: int
    num_heads: int
    hidden_size: int
    pad_id: int
    names: list[str]
    weight_bytes: int

    @property
    def output(self) -> str:
        return self.task.output_name

    @property
    def with_types(self) -> bool:
        return "token_type_ids" in self.names

    def let_go(self) -> None:
        self.module = None
        release()


@dataclass
class Traced:
    """The plain ONNX graph, the reference outputs parity compares against, and the timing shape."""

    plain: Path
    reference: Runner
    shapes: list[tuple[str, tuple[int, ...], int]]
    bench_shape: tuple[int, int]
    bench_feeds: dict[str, np.ndarray]
    route: str  # the OpenVINO route taken (may differ from the one asked for under --max-memory)
    needs_module: bool = False


@dataclass
class Built:
    """What building the artifact's model files recorded."""

    fused_ops: dict[str, int] = field(default_factory=dict)
    openvino: dict[str, Any] = field(default_factory=dict)


def resolve_source(src: Path, work: Path, prog: Progress, vocab: str | None, merges: str | None,
                   variant: str | None = None, heads: int | None = None) -> Source:
    """Convert a `.params` source into a Hugging Face directory in `work` (`variant`/`heads`: its model, where the
    tensors cannot tell), and build the tokenizer if asked."""
    from bortconv.converters import hf_model
    from bortconv.converters.convert import convert

    if src.is_dir() and (variant or heads is not None):
        raise InputError(f"{'variant' if variant else 'heads'}: {src} is a Hugging Face directory, whose config.json "
                         f"gives its model; it applies to a Bort .params source",
                         option="variant" if variant else "heads")
    if src.is_dir():
        hf_dir = src
        weights = next((hf_dir / f for f in WEIGHT_FILES if (hf_dir / f).is_file()), None)
        source = Source(src, "hf", hf_dir, sha256_file(weights) if weights else None, None)
    else:
        with prog.step(f"converting {src.name}"):
            conv = convert(src, work / "hf", variant=variant, heads=heads)
        source = Source(src, "params", work / "hf", conv.source_sha256, None)
    if not (vocab or merges):
        return source
    if not (vocab and merges):
        raise InputError("vocab and merges go together", option="vocab")
    from bortconv.converters import tokenizer as tok
    gv = tok.read_gluon_vocab(vocab)
    tok.check_vocab_size(gv, int(hf_model.read_config(source.hf_dir)["vocab_size"]), vocab)
    tok.write_tokenizer(tok.build_tokenizer(vocab, merges), work / "tok", gv)
    return Source(source.path, source.kind, source.hf_dir, source.sha256, work / "tok")


def load_model(source: Source, opts: ExportOptions, prog: Progress) -> Loaded:
    """The PyTorch task model the artifact must compute (the source's own head unless --task says otherwise)."""
    from bortconv.converters import hf_model
    from bortconv.converters import onnx_export as ox

    task = opts.task or hf_model.default_task(source.hf_dir)
    with prog.step(f"loading PyTorch model ({task.value})"):
        model = hf_model.load_pytorch(source.hf_dir, task, named=source.path)
        module = hf_model.task_module(model, task)
    cfg = model.config
    if opts.static_shape and opts.static_shape[1] > cfg.max_position_embeddings:
        raise InputError(f"static_shape {opts.static_shape[0]},{opts.static_shape[1]}: the model has "
                         f"{cfg.max_position_embeddings} positions; a length of at most that", option="static_shape")
    return Loaded(task=task, module=module, vocab_size=cfg.vocab_size, max_positions=cfg.max_position_embeddings,
                  num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, pad_id=cfg.pad_token_id or 0,
                  names=ox.input_names(module), weight_bytes=4 * sum(p.numel() for p in model.parameters()))


def plan_memory(loaded: Loaded, opts: ExportOptions, int8: bool) -> str:
    """The OpenVINO route to take: the one asked for, or under --max-memory the one that fits (or refuse now)."""
    route = opts.openvino_from.value
    budget = active_budget()
    if budget is not None:  # plan to fit --max-memory before the heavy stages, or refuse now
        route = fit_budget(budget.limit, loaded.weight_bytes, target=opts.target.value, int8=int8, route=route,
                           fill_mask=loaded.task is Task.FILL_MASK)
    return route


def trace_onnx(loaded: Loaded, opts: ExportOptions, work: Path, prog: Progress, route: str) -> Traced:
    """Trace the plain ONNX graph and record the PyTorch outputs parity will compare against."""
    from bortconv.converters import hf_model
    from bortconv.converters import onnx_export as ox
    from bortconv.validate.parity import parity_shapes, record_reference

    bench_shape = opts.static_shape or timing_shape(loaded.max_positions)
    bench_feeds = make_feeds([bench_shape[1]] * bench_shape[0], bench_shape[1], loaded.vocab_size, loaded.pad_id, 0,
                             loaded.with_types)
    shapes = parity_shapes(opts.static_shape, loaded.max_positions)
    needs_module = opts.target is Target.OPENVINO and route != "onnx"  # converting from PyTorch
    keep_model = loaded.task is Task.FILL_MASK  # its logits (50k per token) would outweigh the model
    with prog.step(f"exporting ONNX (opset {opts.opset})"):
        plain = ox.export_onnx(loaded.module, work / "plain.onnx", output_name=loaded.output, opset=opts.opset,
                               static_shape=opts.static_shape)
        reference = hf_model.torch_runner(loaded.module, opts.threads)
        if not keep_model:
            # The PyTorch outputs parity compares against are recorded now (13 MB for Bort's hidden states),
            # so the model's 300 MB are not held while the optimizer, the compiler and the artifact run.
            reference = record_reference(reference, shapes=shapes, vocab_size=loaded.vocab_size,
                                         pad_id=loaded.pad_id, with_types=loaded.with_types)
            if not needs_module:
                loaded.module = None
        release()  # the tracer's garbage: ~0.9 GB of RSS for Bort that the next stage would stack on
    return Traced(plain, reference, shapes, bench_shape, bench_feeds, route, needs_module)


def build_onnx(traced: Traced, loaded: Loaded, opts: ExportOptions, tmp: Path, prog: Progress) -> Built:
    """The artifact's model.onnx: fused for ONNX Runtime's CPU kernels, or the portable plain graph."""
    from bortconv.converters import onnx_export as ox

    artifact = tmp / ONNX_FILE
    with prog.step("optimizing the ONNX graph for CPU" if not opts.portable else "writing portable ONNX"):
        if opts.portable:
            shutil.copy(traced.plain, artifact)
            fused_ops = ox.op_counts(artifact)
        else:
            fused_ops = ox.fuse_for_cpu(traced.plain, artifact, num_heads=loaded.num_heads,
                                        hidden_size=loaded.hidden_size)
        if opts.precision is Precision.FP16:
            ox.to_fp16(artifact, artifact)
        release()
    return Built(fused_ops=fused_ops)


def build_openvino(traced: Traced, loaded: Loaded, opts: ExportOptions, tmp: Path, prog: Progress) -> Built:
    """The artifact's OpenVINO IR, converted by the route `traced.route` (measured when there are two)."""
    from bortconv.converters import openvino_export as ovx

    route = traced.route
    with prog.step(f"converting to OpenVINO ({ROUTE_LABEL[route]})"):
        best, cands = ovx.best_openvino(loaded.module if traced.needs_module else None, traced.plain,
                                        output_name=loaded.output, static_shape=opts.static_shape,
                                        threads=opts.threads, bench_feeds=traced.bench_feeds, route=route,
                                        names=loaded.names)
        ovx.save_ir(best.model, tmp / OV_XML, fp16=opts.weights_fp16)
    info: dict[str, Any] = {"openvino_source": best.source, "openvino_from": route}
    if route != opts.openvino_from.value:
        info["openvino_from_reason"] = f"--max-memory (asked: {opts.openvino_from.value})"
    if len(cands) > 1:  # the measurement that chose the route
        info |= {"openvino_candidates": {c.source: round(c.median_ms or 0.0, 2) for c in cands},
                 "openvino_candidates_rounds_ms": {c.source: [round(r, 3) for r in c.rounds_ms] for c in cands},
                 **({"openvino_choice": best.decision} if best.decision else {}),
                 "openvino_candidates_shape": list(traced.bench_shape),
                 "openvino_rule": f"ONNX route preferred; {KEEP_RULE}" if route == "auto" else "faster in this run"}
    del best, cands
    if traced.needs_module and loaded.task is not Task.FILL_MASK:
        loaded.module = None
    release()
    return Built(openvino=info)


def check_parity(tmp: Path, traced: Traced, loaded: Loaded, opts: ExportOptions, prog: Progress) -> Any:
    """The artifact against the PyTorch model over the shape table; ParityError (nothing kept) if it drifts."""
    from bortconv.runtime.bort import open_session
    from bortconv.validate.parity import TOLERANCES
    from bortconv.validate.parity import check_parity as run_parity

    precision = "fp16" if opts.weights_fp16 else "fp32"  # of the weights parity checks (pinned to f32 compute)
    with prog.step("checking parity against PyTorch"):
        session = open_session(tmp, opts.threads)
        report = run_parity(session.run, traced.reference, output=loaded.output, shapes=traced.shapes,
                            tolerance=TOLERANCES[(opts.target.value, precision)], vocab_size=loaded.vocab_size,
                            pad_id=loaded.pad_id, with_types=loaded.with_types)
        del session
        traced.reference = _released
        release()
    if not report.passed:
        w = report.worst()
        raise ParityError(
            f"{opts.target.value} {precision} artifact: output '{loaded.output}' at shape {w.shape} differs from "
            f"the PyTorch model by {w.max_abs_diff:.3g} at index {list(w.where)} (tolerance {w.tolerance:g}); "
            f"nothing was written")
    return report


def _released(feeds: Any) -> np.ndarray:
    raise RuntimeError("the parity reference was released after the parity step")


def carry_files(source: Source, tmp: Path) -> None:
    """Config, conversion record and tokenizer files, from the built tokenizer first, then the source."""
    for name in CARRIED_FILES:
        for d in (source.tokenizer_dir, source.hf_dir):
            if d is not None and (d / name).is_file():
                shutil.copy(d / name, tmp / name)
                break


def quantize(tmp: Path, work: Path, opts: ExportOptions, task: Task, int8: Int8Options,
             prog: Progress) -> dict[str, Any]:
    """int8 under the accuracy gate: the checked fp32 model files move aside and the int8 ones take their place."""
    from bortconv.quantize.pipeline import quantize_artifact

    with prog.step("quantizing to int8 under the accuracy gate"):
        fp32_dir = work / "fp32"
        fp32_dir.mkdir()
        for name in os.listdir(tmp):
            if (tmp / name).is_file():
                (shutil.move if name in model_files(opts.target.value) else shutil.copy)(tmp / name, fp32_dir / name)
        (work / "q").mkdir()
        return quantize_artifact(fp32_dir, tmp, target=opts.target.value, task=task.value, opts=int8,
                                 work=work / "q", static_shape=opts.static_shape)


#: what the proof's (and so the deployment gate's) reference outputs are
PROOF_REFERENCE = "PyTorch fp32 (the source's task model)"


@dataclass(frozen=True)
class CarriedProof:
    """The artifact's proof as the manifest records it, and what the gate's probes were (the deployment gate's
    ``heldout`` record: it judges against this proof)."""

    fields: dict[str, Any]
    heldout: dict[str, Any]
    thresholds: GateThresholds


def carry_proof(tmp: Path, source: Source, loaded: Loaded, opts: ExportOptions, prog: Progress) -> CarriedProof:
    """The artifact's own proof (:mod:`bortconv.fidelity.proof`): the deployment gate's probes, exactly as the gate
    builds them here, and fp32 PyTorch's outputs on them, so `validate` re-runs the gate without torch or the
    source, and the export's own gate (:func:`gate_deployment`) judges against the same file. int8 artifacts carry
    their int8 gate's proof instead (written by quantize)."""
    import json

    from bortconv.converters import hf_model
    from bortconv.layout import PROOF_FILE
    from bortconv.fidelity.gate import DeploymentGate, heldout_text
    from bortconv.fidelity.proof import proof_record, write_proof

    with prog.step("writing the artifact's proof (the gate's probes, fp32 PyTorch outputs)"):
        if loaded.module is None:  # let go once the parity reference was recorded: load it again (about 1 s)
            loaded.module = hf_model.task_module(hf_model.load_pytorch(source.hf_dir, loaded.task), loaded.task)
        run = hf_model.torch_runner(loaded.module, opts.threads)
        config = json.loads((tmp / CONFIG_FILE).read_text())
        gate = DeploymentGate.for_artifact(tmp, run, loaded.task.value, heldout_text(None, None), config=config,
                                           with_types=loaded.with_types, static_shape=opts.static_shape)
        written = write_proof(tmp / PROOF_FILE, gate.probes, (run(p.feeds) for p in gate.probes), gate.task)
        if not opts.bench:  # the timing step would use it; otherwise give its memory back
            loaded.let_go()
    thresholds = gate_thresholds(opts)
    return CarriedProof({"proof": proof_record(written, text=gate.text.source, sweep=gate.sweep,
                                               thresholds=thresholds, reference=PROOF_REFERENCE)},
                        gate.record(), thresholds)


def gate_thresholds(opts: ExportOptions) -> GateThresholds:
    """What the artifact is held to against fp32 PyTorch, at export and in `validate`: its precision's gate (fp32
    and fp16 the bf16 one, what a stock bf16 load must meet). A compressed word table (``--embeddings int8|int4``)
    is lossy weight quantization, judged at int8's thresholds by :func:`compress_embeddings`: the proof holds the
    artifact to those, or a table that passed would fail the precision's tighter gate on its own error."""
    from bortconv.config import GATE_DEFAULTS

    if opts.quantized is None and opts.embeddings != "fp32":
        return GATE_DEFAULTS["int8"]
    return GATE_DEFAULTS.get(opts.precision.value, GATE_DEFAULTS["bf16"])


def time_against_pytorch(tmp: Path, source: Source, loaded: Loaded, traced: Traced, opts: ExportOptions,
                         prog: Progress, deployment: Deployment) -> dict[str, Any]:
    """Median latency of the artifact and of PyTorch eager, interleaved in one run, and their ratio; for an
    OpenVINO fp32 artifact on a CPU with native bf16, its bf16 inference in the same run (the summary's
    "--precision bf16" option)."""
    from bortconv.converters import hf_model
    from bortconv.runtime.bort import open_session

    b, length = traced.bench_shape
    with prog.step(f"timing artifact vs PyTorch eager (batch {b}, length {length})"):
        if loaded.module is None:  # let go once the reference was recorded: load it again (about 1 s)
            loaded.module = hf_model.task_module(hf_model.load_pytorch(source.hf_dir, loaded.task), loaded.task)
        runners = {"artifact": open_session(tmp, opts.threads).run,
                   "pytorch_eager": hf_model.torch_runner(loaded.module, opts.threads)}
        if deployment.bf16_option is not None:
            runners["bf16"] = open_session(tmp, opts.threads, precision="bf16").run
        lat = interleaved(runners, traced.bench_feeds)
        del runners
    speed = {"shape": list(traced.bench_shape), "threads": opts.threads,
             **{k: v.to_dict() for k, v in lat.items() if k != "bf16"},
             "speedup_vs_pytorch": round(lat["pytorch_eager"].median_ms / lat["artifact"].median_ms, 3)}
    if deployment.bf16_option is not None:
        speed["options"] = {"bf16": deployment.bf16_option | {
            "median_ms": round(lat["bf16"].median_ms, 3),
            "speedup_vs_fp32": round(lat["artifact"].median_ms / lat["bf16"].median_ms, 3)}}
    return speed


def manifest_fields(source: Source, loaded: Loaded, opts: ExportOptions, built: Built, parity: Any,
                    int8_info: dict[str, Any], speed: dict[str, Any]) -> dict[str, Any]:
    """Everything the manifest records about this export (write_manifest adds versions and file hashes)."""
    onnx_session = {"onnxruntime_session": {
        "disabled_optimizers": list(ORT_DISABLED_OPTIMIZERS),
        "why": "SkipLayerNormFusion re-creates a fused op that is slower on CPU than the Add + LayerNormalization "
               "this graph holds"}} if opts.target is Target.ONNX and not opts.portable else {}
    return {
        "target": opts.target.value, "task": loaded.task.value,
        "precision": opts.precision.value,
        "source": str(source.path.resolve()), "source_kind": source.kind, "source_sha256": source.sha256,
        "inputs": loaded.names, "output": loaded.output, "opset": opts.opset,
        "static_shape": list(opts.static_shape) if opts.static_shape else None,
        "graph": "portable" if opts.portable else ("fused" if opts.target is Target.ONNX else "openvino"),
        "fused_ops": built.fused_ops, "parity": [parity.to_dict()], "parity_threads": opts.threads,
        **onnx_session,
        "parity_checked": f"{'fp16' if opts.weights_fp16 else 'fp32'} weights, f32 inference, vs PyTorch fp32"
                          + {"int8": " (before int8 quantization; int8 is judged by the gate)",
                             "bf16": " (bf16 inference is judged by the gate)"}.get(opts.precision.value, ""),
        "speed_at_export": speed, **built.openvino, **({"int8": int8_info} if int8_info else {}),
    }


def has_tokenizer(src: Path, opts: ExportOptions) -> bool:
    """Whether the artifact will carry a tokenizer (built from --vocab/--merges, or the source's own)."""
    return bool(opts.vocab and opts.merges) or (src.is_dir() and (src / TOKENIZER_FILE).is_file())


def tokenizer_as_ops(tmp: Path, opts: ExportOptions, prog: Progress) -> dict[str, Any]:
    """OpenVINO artifacts with a tokenizer carry it as OpenVINO ops too (single texts and pairs), checked id
    for id against tokenizer.json on held-out text and pairs of it; a failed conversion fails the export."""
    from bortconv.converters.ov_tokenizer import write_openvino_tokenizers
    from bortconv.fidelity.heldout import shipped_texts

    if opts.target is not Target.OPENVINO or not (tmp / TOKENIZER_FILE).is_file():
        return {}
    texts = shipped_texts()
    with prog.step("converting the tokenizer to OpenVINO ops (checked against tokenizer.json)"):
        return write_openvino_tokenizers(tmp, texts, list(zip(texts[::2], texts[1::2])))


def check_calibration(opts: ExportOptions) -> None:
    """int8's calibration file must be readable text of enough lines: refused before anything runs, not at the
    quantization step after the conversion and parity steps."""
    from bortconv.fidelity.text_split import load_texts
    if opts.quantized is not None and opts.quantized.calibration is not None:
        load_texts(opts.quantized.calibration)


def check_source(src: Path) -> None:
    """A Hugging Face source's config.json, weights' header and tokenizer.json, refused before anything runs if
    unusable (they were read by the loading and the last steps, as exit 1 or 3, naming no file)."""
    from bortconv.converters import hf_model

    if not src.is_dir():
        return
    hf_model.read_config(src)
    hf_model.check_weights(src)
    path = src / TOKENIZER_FILE
    if not path.is_file():
        return
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return  # the runtime's own loader names the missing package when text is read
    try:
        Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises bare Exception for a file it cannot parse
        why = " ".join(str(exc).split())[:160]
        raise InputError(f"{path}: not a tokenizer the `tokenizers` package reads ({why})") from None


def check_precision_here(opts: ExportOptions) -> None:
    """bf16 needs a CPU that computes it natively, or an explicit --ungated: refuse before anything runs."""
    from bortconv.runtime.loaders import native_bf16
    if opts.precision is Precision.BF16 and not opts.ungated:
        native, have = native_bf16()
        if not native:
            from bortconv.runtime.cpu import cpu_flags
            raise InputError(f"precision bf16: this CPU ({cpu_flags()[0]}) has no native bf16 ({have}); the gate "
                             f"cannot measure what a bf16 CPU computes here. Export on a CPU with AMX or AVX512_BF16, "
                             f"or pass ungated=True (--ungated) to build it untested", option="precision")


@dataclass
class Deployment:
    """How the artifact is loaded (the manifest's contract) and what the deployment gate found on this CPU."""

    loading: dict[str, Any]
    gate: dict[str, Any] = field(default_factory=dict)
    bf16_option: dict[str, Any] | None = None  # fp32 OpenVINO: bf16 inference of the same IR, gated here

    def fields(self) -> dict[str, Any]:
        return {"loading": self.loading, **({"deployment_gate": self.gate} if self.gate else {})}


def gate_runs(opts: ExportOptions) -> bool:
    """Whether export runs the deployment gate itself (int8's runs inside quantization)."""
    if opts.quantized is not None:
        return False
    if opts.precision is Precision.BF16:
        return True
    from bortconv.runtime.loaders import stock_precision
    return opts.target is Target.OPENVINO and stock_precision() != "f32"


def gate_deployment(tmp: Path, opts: ExportOptions, prog: Progress, carried: CarriedProof | None) -> Deployment:
    """The artifact as it will be loaded, judged on held-out text of every length (int8 is gated by quantize),
    against the artifact's own proof (fp32 PyTorch's outputs on the gate's probes): exactly what `validate`
    re-runs on any CPU.

    bf16: bortconv's runtime (pinned bf16) and a stock load. fp32/fp16 OpenVINO where OpenVINO's default on this
    CPU is not f32 (the plugin reports it): the stock load, and the same IR pinned to bf16 judged as an option.
    Both are held to the thresholds the proof records (:func:`gate_thresholds`: the bf16 gate, or int8's with a
    compressed word table)."""
    from bortconv.fidelity.gate import judge_proof
    from bortconv.fidelity.proof import read_proof
    from bortconv.layout import PROOF_FILE
    from bortconv.runtime.loaders import loading_contract, native_bf16, open_as, session_precision
    from bortconv.runtime.bort import open_session

    deployment = Deployment(loading_contract(opts.target.value, opts.precision.value))
    if not gate_runs(opts):
        return deployment
    if opts.precision is Precision.BF16 and opts.ungated:
        deployment.gate = {"ran": False, "why": "--ungated: built without the bf16 gate (CPU without native bf16)"}
        return deployment
    if carried is None:
        raise RuntimeError("a gated export judges against its proof: carry_proof runs before gate_deployment")
    thresholds = carried.thresholds
    loaders = ("bortconv", "stock") if opts.precision is Precision.BF16 else ("stock",)
    pinned = "bf16" if opts.precision is Precision.BF16 else "f32"
    with prog.step(f"judging the {' and '.join(loaders)} load{'s' if len(loaders) > 1 else ''} on held-out text "
                   f"of every length"):
        proof = read_proof(tmp / PROOF_FILE)
        verdicts = []
        for loader in loaders:
            session = open_as(tmp, loader, opts.threads, precision=pinned)
            verdicts.append(judge_proof(proof, session.run, loader, session_precision(session), thresholds))
            del session
        # the summary's option, timed with the artifact
        if opts.precision is not Precision.BF16 and opts.bench and native_bf16()[0]:
            option = judge_proof(proof, open_session(tmp, opts.threads, precision="bf16").run, "bortconv", "bf16",
                                 thresholds)
            deployment.bf16_option = {"passes_gate": option.passed, "gate": option.to_dict()}
        release()
    deployment.gate = {"ran": True, "thresholds": thresholds.to_dict(), "heldout": carried.heldout,
                       "reference": f"{PROOF_REFERENCE}: the artifact's proof",
                       "results": {v.loader: v.to_dict() for v in verdicts}}
    _raise_first_failure(verdicts, f"{opts.target.value} {opts.precision.value} artifact", "")
    return deployment


def _raise_first_failure(verdicts: list[Any], what: str, advice: str) -> None:
    """AccuracyGateError naming the first loader whose verdict failed, its metrics and where the worst was."""
    from bortconv.errors import AccuracyGateError

    failed = [v for v in verdicts if not v.passed]
    if failed:
        v = failed[0]
        raise AccuracyGateError(f"{what} under the {v.loader} load ({v.inference_precision} on this CPU): "
                                f"{', '.join(v.failed)} (worst at {v.metrics.get('worst_at')}){advice}; nothing "
                                f"was written")


def source_kind(source: Path) -> str:
    """'params' or 'hf' for an export source; InputError (exit 2) for anything else."""
    if not source.exists():
        raise InputError(f"{source}: no such file or directory")
    if source.is_dir():
        if not (source / CONFIG_FILE).is_file():
            raise InputError(f"{source}: directory has no config.json; expected a Hugging Face model directory")
        return "hf"
    return "params"


def compress_embeddings(tmp: Path, work: Path, loaded: Loaded, opts: ExportOptions, prog: Progress) -> dict[str, Any]:
    """``--embeddings int8|int4`` outside int8 (int8 compresses inside quantization): the checked model files
    move aside as the reference, the compressed ones take their place and are judged by the deployment gate
    (int8's thresholds) under bortconv's and the stock loader; nothing is kept if they fail."""
    import json

    from bortconv.quantize import embeddings as emb
    from bortconv.fidelity.gate import DeploymentGate, heldout_text
    from bortconv.runtime.bort import open_session

    if opts.quantized is not None or opts.embeddings == "fp32":
        return {}
    scheme, group = opts.embeddings, opts.int8.embedding_group_size
    with prog.step(f"compressing the word embeddings to {scheme} under the deployment gate"):
        ref = work / "uncompressed"
        ref.mkdir()
        for name in os.listdir(tmp):
            if (tmp / name).is_file():
                shutil.copy(tmp / name, ref / name)
        if opts.target is Target.ONNX:
            record = emb.compress_onnx(ref / ONNX_FILE, tmp / ONNX_FILE, scheme, group,
                                       emb.onnx_word_table(ref / ONNX_FILE))
        else:
            import openvino as ov

            from bortconv.converters.openvino_export import save_ir
            model = ov.Core().read_model(str(ref / OV_XML))
            record = emb.compress_openvino(model, scheme, group, emb.ov_word_table(ref / OV_XML, loaded.vocab_size))
            save_ir(model, tmp / OV_XML, fp16=opts.weights_fp16)
            del model
        reference = open_session(ref, opts.threads, precision="f32")
        gate = DeploymentGate.for_artifact(tmp, reference.run, loaded.task.value, heldout_text(None, None),
                                           config=json.loads((tmp / CONFIG_FILE).read_text()),
                                           with_types=loaded.with_types, static_shape=opts.static_shape)
        thresholds = gate_thresholds(opts)  # int8's, what the artifact is then held to
        verdicts = gate.judge_loaders(tmp, thresholds, opts.threads, pinned="f32")
        del reference, gate
        release()
    _raise_first_failure(verdicts, f"embeddings {scheme} (group {record['group_size']})",
                         "; a smaller --embedding-group-size or --embeddings int8 keeps more")
    return {"embeddings": record | {"gate": {"thresholds": thresholds.to_dict(), "reference": "the same artifact "
                                             "with the fp32 table, pinned to f32",
                                             "results": {v.loader: v.to_dict() for v in verdicts}}}}
