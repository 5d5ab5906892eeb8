"""`bortconv` command line: one function per command, one place where errors become exit codes.

Heavy libraries are imported inside the commands that need them, so `bortconv --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from bortconv._signals import Terminated, signals_raise
from bortconv._version import __version__
from bortconv.config import ARCHES
from bortconv.errors import BortconvError

log = logging.getLogger("bortconv")


def _emit_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def cmd_inspect(args: argparse.Namespace) -> int:
    from bortconv.api import inspect_checkpoint

    info = inspect_checkpoint(args.checkpoint, variant=args.variant, heads=args.heads)
    if args.json:
        _emit_json(info.to_dict())
        return 0
    v = info.variant
    print(f"file        {info.path} ({info.file_size / 1e6:.1f} MB, records {', '.join(info.record_versions)})")
    print(f"variant     {v.name}  (layers {v.num_layers}, heads {v.num_heads}, ffn {v.intermediate_size}, "
          f"units {v.hidden_size}, vocab {v.vocab_size}, max length {v.max_position_embeddings})")
    head = info.head.value + (f" ({info.num_labels} classes)" if info.num_labels else "")
    print(f"head        {head}{'  [tied embedding stored once]' if info.deduplicated else ''}")
    print(f"dtype       {info.dtype}")
    print(f"parameters  {info.parameter_count:,}")
    if info.nonfinite:
        bad = ", ".join(f"{k} ({n})" for k, n in sorted(info.nonfinite.items()))
        print(f"NaN/Inf     {bad}  -- convert will refuse this checkpoint")
    width = max(len(t.name) for t in info.tensors)
    print()
    for t in info.tensors:
        shape = "x".join(map(str, t.shape)) if t.shape is not None else "none"
        print(f"  {t.name:<{width}}  {t.dtype:<8} {shape:<12} -> {t.hf_key or '(tied)'}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from bortconv.api import convert

    result = convert(args.checkpoint, args.output, dtype=args.dtype, variant=args.variant, heads=args.heads,
                     decoder_layer_norm_eps=args.decoder_ln_eps, force=args.force, vocab=args.vocab,
                     merges=args.merges, max_memory=args.max_memory)
    if args.json:
        _emit_json(result.to_dict())
    else:
        size = sum(result.files.values()) / 1e6
        print(f"wrote {result.output_dir}: {result.variant.name} {result.head.value}, {result.dtype.value}, "
              f"{result.parameter_count:,} parameters, {size:.1f} MB")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bortconv.pipeline.export import export
    from bortconv.pipeline.summary import summary

    result = export(args.source, args.output, target=args.target, task=args.task, opset=args.opset,
                    fp16=args.fp16, static_shape=args.static_shape, threads=args.threads, portable=args.portable,
                    force=args.force, vocab=args.vocab, merges=args.merges, int8=args.int8,
                    calibration=args.calibration, samples=args.samples, int8_scheme=args.int8_scheme,
                    bench=not args.no_bench, progress=not args.quiet, openvino_from=args.openvino_from,
                    max_memory=args.max_memory, precision=args.precision, ungated=args.ungated, arch=args.arch)
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(summary(result))
    return 0


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from bortconv.api import write_tokenizer_dir

    files = write_tokenizer_dir(args.vocab, args.merges, args.output, max_length=args.max_length, force=args.force)
    if args.json:
        _emit_json({"output_dir": args.output, "files": files})
    else:
        print(f"wrote {args.output}: " + ", ".join(sorted(files)))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from bortconv.config import Int8Options
    from bortconv.quantize.pipeline import quantize_directory

    manifest = quantize_directory(args.artifact, args.output, force=args.force, max_memory=args.max_memory,
                                  opts=Int8Options(calibration=args.calibration, samples=args.samples,
                                                   scheme=args.int8_scheme, threads=args.threads,
                                                   precision=args.precision, arch=args.arch))
    info = manifest["int8"]
    if args.json:
        _emit_json({"output_dir": args.output, "int8": info,
                    "files": {k: v["bytes"] for k, v in manifest["files"].items()}})
        return 0
    from bortconv.pipeline.summary import device_gate_line, gate_lines, int8_speed_line

    print(f"wrote {args.output}: {manifest['target']} int8 ({info['scheme']}), fp32 layers kept: "
          f"{', '.join(info['kept_fp32']['groups']) or 'none'}")
    print(f"  gate on {info['gate']['heldout_texts']} held-out probes:")
    print("\n".join(gate_lines(info["gate"]["results"])))
    print(int8_speed_line(info["speed_vs_fp32"]))
    if info.get("device_gate"):
        print(device_gate_line(info["device_gate"]))
    return 0


def cmd_make_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bortconv.demo import write_demo_checkpoint

    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"{path} exists; kept it (pass --force to rewrite)")
        return 0
    if path.exists():
        path.unlink()
    write_demo_checkpoint(path, seed=args.seed)
    print(f"wrote {path}: bort_4_8_768_1024 MLM, fp16, seeded random weights ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bortconv.validate import report as rp
    from bortconv.validate.gate import raise_for_failures, validate_all

    backends = ["pytorch"] + (["mxnet"] if args.reference_backend == "mxnet" else [])
    reports = validate_all(args.artifacts, reference=args.reference, tolerance=args.tolerance, backends=backends,
                           threads=args.threads, fail_fast=args.fail_fast)
    print("\n\n".join(rp.validation_table(r) for r in reports))
    if len(reports) > 1:
        print("\n" + rp.validation_summary(reports))
    if args.json:
        rp.write_json(rp.validation_json(reports), args.json)
    if args.junit:
        rp.write_junit(reports, args.junit)
    raise_for_failures(reports)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bortconv.validate import report as rp
    from bortconv.pipeline.bench import bench

    logging.getLogger("bortconv.validate.bench").setLevel(logging.INFO)  # progress: bench takes minutes
    result = bench(args.artifacts, baseline=args.baseline, seq_lens=args.seq_lens, batches=args.batch,
                   threads=args.threads, rounds=args.rounds, runs_per_round=args.runs, warmup=args.warmup,
                   budget_s=args.budget, memory=not args.no_memory, baseline_cache=args.cache_dir,
                   cold_start=args.cold_start)
    print(rp.bench_markdown(result), end="")
    if args.json:
        rp.write_json(result.to_dict(), args.json)
    if args.plot:
        rp.bench_plot(result, args.plot)
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", help="model name bort_<layers>_<heads>_<ffn>_<units> (fixes the head count)")
    p.add_argument("--heads", type=int, help="number of attention heads (not visible in tensor shapes)")


def _args_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    _add_model_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _args_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"], help="weights dtype (default fp32)")
    _add_model_options(p)
    p.add_argument("--decoder-ln-eps", type=float, default=None,
                   help="MLM decoder LayerNorm epsilon (default 1e-12, gluonnlp <= 0.9.1)")
    p.add_argument("--vocab", help="gluonnlp vocabulary JSON (with --merges: writes Bort's tokenizer too)")
    p.add_argument("--merges", help="GPT-2 BPE merges file (vocab.bpe)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--max-memory", metavar="SIZE", help="resident-memory budget, e.g. 1.5G: planned to fit, "
                   "refused up front if it cannot, stopped cleanly if passed (exit 2)")


def _args_tokenizer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocab", required=True, help="gluonnlp vocabulary JSON")
    p.add_argument("--merges", required=True, help="GPT-2 BPE merges file (vocab.bpe)")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--max-length", type=int, default=512, help="truncation length incl. special tokens")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--json", action="store_true", help="machine-readable summary")


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a Bort .params file or a Hugging Face model directory")
    p.add_argument("--target", required=True, help="onnx or openvino")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--task", help="feature-extraction, fill-mask or text-classification (default: "
                                  "text-classification if the checkpoint has a classifier, else feature-extraction)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"], default=None,
                   help="fp32 (default); fp16 weights; bf16 inference (OpenVINO, CPUs with AMX or AVX512_BF16, under "
                        "the bf16 gate); int8 (under the int8 gate). Recorded in the manifest with how to load it")
    p.add_argument("--fp16", action="store_true", help="alias of --precision fp16")
    p.add_argument("--ungated", action="store_true", help="bf16 on a CPU without native bf16: build it untested "
                                                          "(the manifest says no gate ran)")
    p.add_argument("--static-shape", metavar="B,L", help="fixed batch and length for edge targets")
    p.add_argument("--threads", type=int, default=None, help="threads for the parity and speed runs")
    p.add_argument("--portable", action="store_true", help="ONNX with standard ops only (no ORT fusions)")
    p.add_argument("--openvino-from", default="auto", choices=["auto", "onnx", "pytorch", "fastest"],
                   help="OpenVINO: auto (default) converts from ONNX and from PyTorch and keeps PyTorch's IR only "
                        "if clearly faster here (near-ties go to ONNX: reproducible); onnx/pytorch convert one way; "
                        "fastest keeps whichever timed faster (not reproducible)")
    p.add_argument("--vocab", help="gluonnlp vocabulary JSON (with --merges: writes the tokenizer)")
    p.add_argument("--merges", help="GPT-2 BPE merges file")
    p.add_argument("--int8", action="store_true", help="alias of --precision int8")
    p.add_argument("--calibration", help="int8: calibration text file, one sentence per line "
                                         "(default: the shipped English set)")
    p.add_argument("--samples", type=int, help="int8: calibration sentences (the rest of the file is held out)")
    p.add_argument("--int8-scheme", help="int8: force one scheme instead of choosing the fastest that passes")
    p.add_argument("--arch", default="native", choices=list(ARCHES),
                   help="int8: the CPU family the artifact is deployed on (default: this machine's). For another "
                        "family the int8 scheme is that family's, nothing is timed here, and the gate on the "
                        "device's own kernels is left to `bortconv validate` there")
    p.add_argument("--no-bench", action="store_true", help="skip the speed comparison with PyTorch")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--max-memory", metavar="SIZE", help="resident-memory budget, e.g. 1.5G: planned to fit, "
                   "refused up front if it cannot, stopped cleanly if passed (exit 2)")


def _args_quantize(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="an fp32 artifact directory written by bortconv export")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--precision", default="int8", choices=["fp32", "fp16", "bf16", "int8"],
                   help="int8 (default; the only precision quantize makes: bf16 is export --precision bf16)")
    p.add_argument("--calibration", help="calibration text file, one sentence per line (default: shipped set)")
    p.add_argument("--samples", type=int, help="calibration sentences (the rest of the file is held out)")
    p.add_argument("--int8-scheme", help="force one scheme instead of choosing the fastest that passes")
    p.add_argument("--arch", default="native", choices=list(ARCHES),
                   help="int8: the CPU family the artifact is deployed on (default: this machine's). For another "
                        "family the int8 scheme is that family's, nothing is timed here, and the gate on the "
                        "device's own kernels is left to `bortconv validate` there")
    p.add_argument("--threads", type=int, default=None, help="threads for the gate and timing runs")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--max-memory", metavar="SIZE", help="resident-memory budget, e.g. 1.5G: planned to fit, "
                   "refused up front if it cannot, stopped cleanly if passed (exit 2)")


def _args_make_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="where to write the .params file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rewrite the file if it exists")


def _args_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT_DIR")
    p.add_argument("--reference", metavar="SOURCE", help="the .params file or HF directory the artifact came "
                                                         "from (default: the manifest's source)")
    p.add_argument("--reference-backend", choices=["pytorch", "mxnet"], default="pytorch",
                   help="mxnet: also check against the MXNet forward (needs mxnet importable here)")
    p.add_argument("--tolerance", help="max abs diff: a number, or TARGET:PRECISION=NUMBER,... "
                                       "(default: the table per target and precision)")
    p.add_argument("--threads", type=int, default=None, help="threads for the artifact and the reference")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (- for stdout)")
    p.add_argument("--junit", metavar="FILE", help="write the report as JUnit XML")
    p.add_argument("--fail-fast", action="store_true", help="stop after the first group of checks that fails")


def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT_DIR")
    p.add_argument("--baseline", default="bert-large", help="bert-large (default), bert-base or none")
    p.add_argument("--seq-lens", default="16,64,128,256,512", help="sequence lengths (default 16,64,128,256,512)")
    p.add_argument("--batch", default="1,8", help="batch sizes (default 1,8)")
    p.add_argument("--threads", type=int, default=None, help="threads for every runtime (default: all CPUs)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--runs", type=int, default=4, help="max runs per candidate per round (default 4)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per candidate and shape (default 2)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per shape after 3 rounds (default 60)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    p.add_argument("--cold-start", action="store_true", help="OpenVINO artifacts: load time and first inference in "
                   "fresh processes, without and with the compiled-model cache (CACHE_DIR)")
    p.add_argument("--cache-dir", help="where random-weight baselines are kept (default ~/.cache/bortconv/bench)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (- for stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="write latency vs sequence length (needs matplotlib)")


def _extension(module: str, name: str) -> Callable[[Any], Any]:
    """A command that lives in its own stage (finetune, package, serve): imported when the command is built
    or run, so each stays the one home of its options and `bortconv --help` stays light."""
    def call(arg: Any) -> Any:
        return getattr(importlib.import_module(module), name)(arg)
    return call


#: command -> (help line, the function that adds its arguments); COMMANDS maps it to what runs it
SPECS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "inspect": ("describe a Bort .params checkpoint", _args_inspect),
    "convert": ("convert a Bort .params checkpoint to a Hugging Face BERT directory", _args_convert),
    "tokenizer": ("write Bort's tokenizer (tokenizer.json) from its vocab and merges", _args_tokenizer),
    "export": ("export a Bort checkpoint or BERT-family HF directory to ONNX or OpenVINO", _args_export),
    "quantize": ("quantize an fp32 ONNX/OpenVINO artifact directory to int8", _args_quantize),
    "make-demo": ("write a Bort-shaped demo checkpoint (random weights, released layout)", _args_make_demo),
    "validate": ("check an artifact directory: file hashes, and parity against its source", _args_validate),
    "bench": ("latency, throughput, load time, memory and size; vs BERT-large", _args_bench),
    "finetune": ("fine-tune Bort (or any BERT) for classification with Agora, or a plain search",
                 _extension("bortconv.finetune.cli", "add_arguments")),
    "package": ("write a Triton or OVMS model repository from an artifact directory",
                _extension("bortconv.package.cli", "add_arguments")),
    "serve": ("serve an artifact over the Open Inference (KServe v2) protocol with KServe's model server",
              _extension("bortconv.serve.cli", "add_arguments")),
}


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "inspect": cmd_inspect, "convert": cmd_convert, "export": cmd_export, "make-demo": cmd_make_demo,
    "validate": cmd_validate, "bench": cmd_bench, "quantize": cmd_quantize,
    "tokenizer": cmd_tokenizer, "finetune": _extension("bortconv.finetune.cli", "run"),
    "package": _extension("bortconv.package.cli", "run"), "serve": _extension("bortconv.serve.cli", "run")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bortconv", description="Take Amazon's Bort out of MXNet checkpoints: Hugging Face, ONNX, OpenVINO, "
                                     "with parity checks against the original.")
    parser.add_argument("--version", action="version", version=f"bortconv {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_line, add_arguments) in SPECS.items():
        p = sub.add_parser(name, help=help_line)
        add_arguments(p)
        p.set_defaults(func=_command(name))
    return parser


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """What runs `name`: looked up when the parser is built, so a replaced ``cmd_*`` function takes effect."""
    run = COMMANDS[name]
    return globals().get(run.__name__, run) if run.__name__.startswith("cmd_") else run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a check failed, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    argv = [a for a in argv if a != "--debug"]
    try:
        args = parser.parse_args(argv)
        args.debug = debug
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="bortconv: %(levelname)s: %(message)s")
    try:
        from bortconv.config import gate_sweep
        gate_sweep()  # a bad BORTCONV_GATE_SWEEP is bad input before any work, not an error at the gate
        with signals_raise():  # SIGTERM raises too, so cleanup runs; neither can be lost (see _signals)
            return args.func(args)
    except BortconvError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `bortconv inspect x | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except (KeyboardInterrupt, Terminated):
        # CPython remembers a KeyboardInterrupt that passed through exec() of a string (dataclasses and
        # namedtuples do that while torch/transformers import) and, under `python -m`, then exits by SIGINT
        # instead of with our 130 (Modules/main.c exit_sigint). A clean exec() clears that flag.
        exec("pass")
        from bortconv._atomic import committed
        done = f" after {committed[-1]} was complete" if committed else "; nothing was left behind"
        print(f"bortconv: interrupted{done}", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so in one line, traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: internal error: {type(exc).__name__}: {exc} (re-run with --debug)", file=sys.stderr)
        return 3
