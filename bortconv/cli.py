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
from dataclasses import Field, dataclass
from pathlib import Path
from typing import Any

from bortconv._util.parser import Parser
from bortconv._util.signals import Terminated, raise_if_signalled, signals_raise
from bortconv._version import __version__
from bortconv.config import (HEADS_HELP, MAX_MEMORY_HELP, THREADS_HELP, VARIANT_HELP, ExportOptions, Int8Options,
                             TrimOptions, add_option_arguments, cli_fields, option_flag, option_keyword, option_values)
from bortconv.errors import BortconvError, InputError

log = logging.getLogger("bortconv")


def _emit_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def cmd_inspect(args: argparse.Namespace) -> int:
    from bortconv.converters.convert import inspect_checkpoint

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
    from bortconv.converters.convert import convert

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

    result = export(args.source, args.output, **option_values(args, EXPORT_FIELDS))
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(summary(result))
    return 0


def cmd_trim(args: argparse.Namespace) -> int:
    from bortconv.pipeline.trim import trim

    result = trim(args.source, args.output, **option_values(args, TRIM_FIELDS))
    if args.json:
        _emit_json(result.to_dict())
        return 0
    rec = result.record
    tokens, gate = rec["tokens"], rec["gate"]
    print(f"wrote {result.output_dir}: kept {tokens['kept']:,} of {tokens['total']:,} tokens "
          f"({100 * tokens['fraction']:.1f}%, rule {rec['rule']['name']}), "
          f"{result.files.get('model.safetensors', 0) / 1e6:.1f} MB of weights")
    for part, what in (("domain", f"held-out domain text ({gate['domain']['texts']} lines of --corpus)"),
                       ("general", f"general English ({gate['general_text']})")):
        m = gate[part]
        print(f"  {what}: sentence cosine mean {m['sentence_cosine_mean']:.4f}, p5 {m['sentence_cosine_p5']:.4f}, "
              f"worst {m['sentence_cosine_worst']:.4f}")
    return 0


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from bortconv.converters.convert import write_tokenizer_dir

    files = write_tokenizer_dir(args.vocab, args.merges, args.output, max_length=args.max_length, force=args.force)
    if args.json:
        _emit_json({"output_dir": args.output, "files": files})
    else:
        print(f"wrote {args.output}: " + ", ".join(sorted(files)))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from bortconv.quantize.pipeline import quantize_directory

    values = {f.name: getattr(args, option_keyword(f)) for f in QUANTIZE_FIELDS if hasattr(args, option_keyword(f))}
    manifest = quantize_directory(args.artifact, args.output, force=args.force, max_memory=args.max_memory,
                                  opts=Int8Options(**values))
    info = manifest["int8"]
    if args.json:
        _emit_json({"output_dir": args.output, "int8": info,
                    "files": {k: v["bytes"] for k, v in manifest["files"].items()}})
        return 0
    from bortconv.pipeline.summary import gate_lines, int8_speed_line, model_size_line

    print(f"wrote {args.output}: {manifest['target']} int8 ({info['scheme']}), fp32 layers kept: "
          f"{', '.join(info['kept_fp32']['groups']) or 'none'}")
    print(f"  gate on {info['gate']['heldout_texts']} held-out probes:")
    print("\n".join(gate_lines(info["gate"]["results"])))
    print(int8_speed_line(info["speed_vs_fp32"]))
    print(model_size_line(manifest["target"], {k: v["bytes"] for k, v in manifest["files"].items()}, manifest))
    return 0


def cmd_make_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bortconv.converters.demo import check_seed, is_demo, write_demo_checkpoint
    from bortconv.errors import InputError

    check_seed(args.seed)  # before a file is looked at, or --force removes one
    path = Path(args.path)
    kept = path.is_file() and not args.force
    if kept and not is_demo(path, args.seed):  # another seed's demo, or another checkpoint: not what was asked for
        raise InputError(f"{path}: exists and is not the demo checkpoint of --seed {args.seed}; pass --force to "
                         f"replace it, or another path")
    if kept:
        print(f"{path} exists; kept it (pass --force to rewrite)", file=sys.stderr if args.json else sys.stdout)
    else:
        if path.is_file():
            path.unlink()
        write_demo_checkpoint(path, seed=args.seed)
    if args.json:
        _emit_json({"path": str(path), "bytes": path.stat().st_size, "written": not kept, "seed": args.seed,
                    "variant": "bort_4_8_768_1024", "head": "mlm", "dtype": "fp16"})
    elif not kept:
        print(f"wrote {path}: bort_4_8_768_1024 MLM, fp16, seeded random weights "
              f"({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _check_output_files(args: argparse.Namespace, *options: str) -> None:
    """The command's file outputs, checked before its work (they are written at its end)."""
    from pathlib import Path

    from bortconv._util.atomic import check_output_file
    from bortconv.errors import InputError

    given: dict[Path, str] = {}
    for option in options:
        path = getattr(args, option)
        if path == "":  # was taken as "not given": no report, and no word of it
            raise InputError(f"--{option}: an empty path")
        if path and path != "-":
            check_output_file(Path(path), option, reads=getattr(args, "artifacts", ()))
            same = given.setdefault(Path(path).resolve(), option)
            if same != option:  # the second would overwrite the first
                raise InputError(f"--{option} {path}: the same file as --{same}; give each its own")


def cmd_validate(args: argparse.Namespace) -> int:
    from bortconv.validate import report as rp
    from bortconv.validate.command import raise_for_failures, validate_all

    _check_output_files(args, "report", "junit")
    backends = ["pytorch"] + (["mxnet"] if args.reference_backend == "mxnet" else [])
    reports = validate_all(args.artifacts, reference=args.reference, tolerance=args.tolerance, backends=backends,
                           threads=args.threads, fail_fast=args.fail_fast)
    if args.json:
        _emit_json(rp.validation_json(reports))
    else:
        print("\n\n".join(rp.validation_table(r) for r in reports))
        if len(reports) > 1:
            print("\n" + rp.validation_summary(reports))
    if args.report:
        rp.write_json(rp.validation_json(reports), args.report)
    if args.junit:
        rp.write_junit(reports, args.junit)
    raise_for_failures(reports)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bortconv.validate import report as rp
    from bortconv.bench.baselines import bench

    _check_output_files(args, "report", "plot")
    if not 0 < args.budget_minutes < float("inf"):  # named as the flag: the API's budget_s is in seconds
        raise InputError(f"--budget-minutes {args.budget_minutes}: must be a finite number > 0")
    logging.getLogger("bortconv.bench.harness").setLevel(logging.INFO)  # progress: bench takes minutes
    result = bench(args.artifacts, baseline=args.baseline, seq_lens=args.seq_lens, batches=args.batch_size,
                   threads=args.threads, rounds=args.rounds, runs_per_round=args.runs, warmup=args.warmup,
                   budget_s=args.budget_minutes * 60.0, memory=not args.no_memory,
                   baseline_cache=args.baseline_cache, cold_start=args.cold_start)
    if args.json:
        _emit_json(result.to_dict())
    else:
        print(rp.bench_markdown(result), end="")
    if args.report:
        rp.write_json(result.to_dict(), args.report)
    if args.plot:
        rp.bench_plot(result, args.plot)
    return 0


class _Deprecated(argparse.Action):
    """An old spelling kept for one release: warns on stderr and stores into the new option's dest."""

    def __init__(self, option_strings: Sequence[str], dest: str, instead: str = "", convert: Callable[[str], Any]
                 = str, **kw: Any) -> None:
        self.instead, self.convert = instead, convert
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"bortconv: warning: {option_string} is deprecated; use {self.instead}", file=sys.stderr)
        setattr(ns, self.dest, self.convert(values))


#: the options `bortconv export` has: ExportOptions' own and Int8Options' (its --threads is export's)
EXPORT_FIELDS: list[Field[Any]] = cli_fields(ExportOptions) + cli_fields(Int8Options, skip=("threads",))
#: the options `bortconv quantize` has
QUANTIZE_FIELDS: list[Field[Any]] = cli_fields(Int8Options)
#: the options `bortconv trim` has
TRIM_FIELDS: list[Field[Any]] = cli_fields(TrimOptions)
#: API keyword -> flag, for every generated option: how the CLI names a parameter an error names
FLAGS: dict[str, str] = {option_keyword(f): option_flag(f) for f in EXPORT_FIELDS + QUANTIZE_FIELDS + TRIM_FIELDS}
#: bench's keywords whose flags are not "--" + the keyword (its options are not generated: `_args_bench`)
FLAGS |= {"batches": "--batch-size", "runs_per_round": "--runs"}
#: the API's names of positional arguments and outputs, shown as the CLI's usage names them (a message said
#: --source, --output-dir or --repo: flags that do not exist)
FLAGS |= {"source": "source", "checkpoint": "checkpoint", "artifact_dir": "ARTIFACT_DIR", "artifacts": "ARTIFACT_DIR",
          "output_dir": "-o", "out_dir": "-o", "repo": "-o"}


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON on stdout)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", metavar="NAME", help=VARIANT_HELP)
    p.add_argument("--heads", type=int, metavar="N", help=HEADS_HELP)


def _args_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    _add_model_options(p)
    _add_json(p)


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
    _add_json(p)
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)


def _args_tokenizer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocab", required=True, help="gluonnlp vocabulary JSON")
    p.add_argument("--merges", required=True, help="GPT-2 BPE merges file (vocab.bpe)")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--max-length", type=int, default=512, help="truncation length incl. special tokens")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    _add_json(p)


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a Bort .params file or a Hugging Face model directory")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    _add_json(p)
    add_option_arguments(p, EXPORT_FIELDS)


def _args_trim(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a BERT-family Hugging Face directory with its tokenizer.json (WordPiece or BPE)")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    _add_json(p)
    add_option_arguments(p, TRIM_FIELDS)


def _args_quantize(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="an fp32 artifact directory written by bortconv export")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--precision", choices=["int8"], default="int8",
                   help="int8, the one precision quantize makes (fp16 and bf16 are export --precision)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    _add_json(p)
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)
    add_option_arguments(p, QUANTIZE_FIELDS)


def _args_make_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="where to write the .params file")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--force", action="store_true", help="rewrite the file if it exists")
    _add_json(p)


def _add_report(p: argparse.ArgumentParser) -> None:
    """--json (stdout), --report FILE, and the old `--json FILE` for one release."""
    p.add_argument("--json", nargs="?", const=True, default=False, metavar="FILE",
                   help="machine-readable output (JSON on stdout); `--json FILE` is the deprecated spelling of "
                        "--report FILE")
    p.add_argument("--report", metavar="FILE", help="also write the report as JSON to FILE")


def _args_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT_DIR")  # none: refused by validate, after --json DIR
    p.add_argument("--reference", metavar="SOURCE", help="the .params file or HF directory the artifact came "
                                                         "from (default: the manifest's source)")
    p.add_argument("--reference-backend", choices=["pytorch", "mxnet"], default="pytorch",
                   help="mxnet: also check against the MXNet forward (needs mxnet importable here)")
    p.add_argument("--tolerance", help="max abs diff: a number, or TARGET:PRECISION=NUMBER,... "
                                       "(default: the table per target and precision)")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    _add_report(p)
    p.add_argument("--junit", metavar="FILE", help="write the report as JUnit XML")
    p.add_argument("--fail-fast", action="store_true", help="stop after the first group of checks that fails")


def _args_bench(p: argparse.ArgumentParser) -> None:
    from bortconv.config import BENCH_BASELINES

    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT_DIR")  # none: refused by bench, after --json DIR
    p.add_argument("--baseline", default="bert-large", choices=BENCH_BASELINES,
                   help="bert-large (default), bert-base, bert-tiny (tests) or none")
    p.add_argument("--seq-lens", default="16,64,128,256,512", help="sequence lengths (default 16,64,128,256,512)")
    p.add_argument("--batch-size", default="1,8", help="batch sizes (default 1,8)")
    p.add_argument("--batch", action=_Deprecated, dest="batch_size", instead="--batch-size",
                   help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--runs", type=int, default=4, help="max runs per candidate per round (default 4)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per candidate and shape (default 2)")
    p.add_argument("--budget-minutes", type=float, default=1.0,
                   help="minutes per shape once 3 rounds have run (default 1)")
    p.add_argument("--budget", action=_Deprecated, dest="budget_minutes", instead="--budget-minutes",
                   convert=lambda v: float(v) / 60.0, help=argparse.SUPPRESS)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    p.add_argument("--cold-start", action="store_true", help="OpenVINO artifacts: load time and first inference in "
                   "fresh processes, without and with the compiled-model cache (CACHE_DIR)")
    p.add_argument("--baseline-cache", metavar="DIR",
                   help="where the random-weight baselines are built and kept (default $BORTCONV_CACHE/bench, "
                        "~/.cache/bortconv/bench unset; several GB for bert-large: delete it to reclaim the space)")
    # --cache-dir means OpenVINO's compiled-model cache everywhere else (serve, BortRuntime(cache_dir=))
    p.add_argument("--cache-dir", action=_Deprecated, dest="baseline_cache", instead="--baseline-cache",
                   help=argparse.SUPPRESS)
    _add_report(p)
    p.add_argument("--plot", metavar="FILE.png", help="write latency vs sequence length (needs matplotlib)")


def _extension(module: str, name: str) -> Callable[[Any], Any]:
    """A function of a command that lives in its own stage (finetune, package, serve): imported when the command
    is built or run, so each stage stays the one home of its options and `bortconv --help` stays light."""
    def call(arg: Any) -> Any:
        return getattr(importlib.import_module(module), name)(arg)
    return call


@dataclass(frozen=True)
class Command:
    """One `bortconv` command: its help line, what adds its arguments, and what runs it (exit code)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    @classmethod
    def of(cls, help_line: str, module: str) -> Command:
        """A command whose `add_arguments` and `run` live in `module`."""
        return cls(help_line, _extension(module, "add_arguments"), _extension(module, "run"))


#: every command, defined one way; main() looks the runner up here when it runs
COMMANDS: dict[str, Command] = {
    "inspect": Command("describe a Bort .params checkpoint", _args_inspect, cmd_inspect),
    "convert": Command("convert a Bort .params checkpoint to a Hugging Face BERT directory", _args_convert,
                       cmd_convert),
    "tokenizer": Command("write Bort's tokenizer (tokenizer.json) from its vocab and merges", _args_tokenizer,
                         cmd_tokenizer),
    "export": Command("export a Bort checkpoint or BERT-family HF directory to ONNX or OpenVINO", _args_export,
                      cmd_export),
    "trim": Command("cut a Hugging Face directory's vocabulary to a domain's corpus, gated on held-out text",
                    _args_trim, cmd_trim),
    "quantize": Command("quantize an fp32 ONNX/OpenVINO artifact directory to int8", _args_quantize, cmd_quantize),
    "make-demo": Command("write a Bort-shaped demo checkpoint (random weights, released layout)", _args_make_demo,
                         cmd_make_demo),
    "validate": Command("check an artifact directory: file hashes, parity against its source, the deployment "
                        "gate on this CPU", _args_validate, cmd_validate),
    "bench": Command("latency, throughput, load time, memory and size; vs BERT-large", _args_bench, cmd_bench),
    "finetune": Command.of("fine-tune Bort (or any BERT) for classification with Agora, or a plain search",
                           "bortconv.finetune.cli"),
    "package": Command.of("write a Triton or OVMS model repository from an artifact directory",
                          "bortconv.package.cli"),
    "serve": Command.of("serve an artifact over the Open Inference (KServe v2) protocol with KServe's model server",
                        "bortconv.serve.cli"),
}


def build_parser() -> Parser:
    parser = Parser(
        prog="bortconv", description="Take Amazon's Bort out of MXNet checkpoints: Hugging Face, ONNX, OpenVINO, "
                                     "with parity checks against the original.")
    parser.add_argument("--version", action="version", version=f"bortconv {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
    parser.commands = dict(sub.choices)
    return parser


def _old_json_file(args: argparse.Namespace) -> None:
    """`--json FILE` (validate, bench) is the old spelling of `--report FILE`: warn, and treat it so. A directory
    after --json is no report file: it is the first artifact (`bortconv validate --json DIR`)."""
    if isinstance(getattr(args, "json", None), str) and Path(args.json).is_dir():
        args.artifacts, args.json = [args.json, *args.artifacts], True
    if isinstance(getattr(args, "json", None), str):
        print("bortconv: warning: --json FILE is deprecated; use --report FILE (--json alone prints JSON on "
              "stdout)", file=sys.stderr)
        if args.json == "-":
            args.json = True
        else:
            args.report, args.json = args.report or args.json, False


def _message(exc: BortconvError) -> str:
    """The one-line message, with an API parameter it names shown as its flag."""
    if isinstance(exc, InputError) and exc.option:
        return exc.for_flag(FLAGS.get(exc.option, "--" + exc.option.replace("_", "-")))
    return exc.message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a check failed, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    argv = [a for a in argv if a != "--debug"]
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # argparse would report them from the top parser, naming neither the command nor its --help
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        args.debug = debug
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="bortconv: %(levelname)s: %(message)s")
    try:
        from bortconv.config import gate_sweep
        gate_sweep()  # a bad BORTCONV_GATE_SWEEP is bad input before any work, not an error at the gate
        _old_json_file(args)
        with signals_raise():  # SIGTERM raises too, so cleanup runs; neither can be lost (see _signals)
            try:
                return COMMANDS[args.command].run(args)
            except BortconvError:
                raise  # bortconv's own verdict (--max-memory's watchdog interrupts the run, then says why)
            except Exception:
                # a library may turn the interrupt into its own error (transformers' lazy import reported a
                # Ctrl-C during `import modeling_bert` as ModuleNotFoundError): after a signal, it is the signal
                raise_if_signalled()
                raise
    except BortconvError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: error: {_message(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `bortconv inspect x | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except (KeyboardInterrupt, Terminated):
        # CPython remembers a KeyboardInterrupt that passed through exec() of a string (dataclasses and
        # namedtuples do that while torch/transformers import) and, under `python -m`, then exits by SIGINT
        # instead of with our 130 (Modules/main.c exit_sigint). A clean exec() clears that flag.
        exec("pass")
        from bortconv._util.atomic import committed, kept
        done = f" after {committed[-1]} was complete" if committed else \
            f"; {kept[-1]}" if kept else "; nothing was left behind"
        print(f"bortconv: interrupted{done}", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so in one line, traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: internal error: {type(exc).__name__}: {exc} (re-run with --debug)", file=sys.stderr)
        return 3
