"""`bortconv` command line: one function per command, one place where errors become exit codes.

Heavy libraries are imported inside the commands that need them, so `bortconv --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from bortconv import __version__
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
                     decoder_layer_norm_eps=args.decoder_ln_eps, force=args.force)
    if args.json:
        _emit_json(result.to_dict())
    else:
        size = sum(result.files.values()) / 1e6
        print(f"wrote {result.output_dir}: {result.variant.name} {result.head.value}, {result.dtype.value}, "
              f"{result.parameter_count:,} parameters, {size:.1f} MB")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bortconv.exporter import export

    result = export(args.source, args.output, target=args.target, task=args.task, opset=args.opset,
                    fp16=args.fp16, static_shape=args.static_shape, threads=args.threads, portable=args.portable,
                    force=args.force, vocab=args.vocab, merges=args.merges, bench=not args.no_bench,
                    progress=not args.quiet)
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(f"\n{result.output_dir}: {result.target} {result.precision} {result.task}"
          + (f" (OpenVINO IR converted from {result.openvino_source})" if result.openvino_source else ""))
    for name, size in sorted(result.files.items()):
        print(f"  {name:<28} {size / 1e6:>9.1f} MB")
    if result.fused_ops:
        print("  fused ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(result.fused_ops.items())))
    print("\nparity vs PyTorch (max abs diff at valid positions)")
    for rep in result.parity:
        for r in rep["rows"]:
            verdict = "ok" if r["passed"] else "FAIL"
            print(f"  {rep['output']:<18} {r['shape']:<16} {r['max_abs_diff']:>10.2e}  tol {r['tolerance']:.0e}  "
                  f"{verdict}")
    sp = result.speed
    if sp:
        b, length = sp["shape"]
        print(f"\nspeed (batch {b}, length {length}, {sp['threads'] or 'default'} threads): artifact "
              f"{sp['artifact']['median_ms']:.1f} ms, PyTorch eager {sp['pytorch_eager']['median_ms']:.1f} ms "
              f"-> {sp['speedup_vs_pytorch']:.2f}x")
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


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", help="model name bort_<layers>_<heads>_<ffn>_<units> (fixes the head count)")
    p.add_argument("--heads", type=int, help="number of attention heads (not visible in tensor shapes)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bortconv", description="Take Amazon's Bort out of MXNet checkpoints: Hugging Face, ONNX, OpenVINO, "
                                     "with parity checks against the original.")
    parser.add_argument("--version", action="version", version=f"bortconv {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("inspect", help="describe a Bort .params checkpoint")
    p.add_argument("checkpoint")
    _add_model_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("convert", help="convert a Bort .params checkpoint to a Hugging Face BERT directory")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"], help="weights dtype (default fp32)")
    _add_model_options(p)
    p.add_argument("--decoder-ln-eps", type=float, default=None,
                   help="MLM decoder LayerNorm epsilon (default 1e-12, gluonnlp <= 0.9.1)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="export a Bort checkpoint or BERT-family HF directory to ONNX or OpenVINO")
    p.add_argument("source", help="a Bort .params file or a Hugging Face model directory")
    p.add_argument("--target", required=True, help="onnx or openvino")
    p.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    p.add_argument("--task", help="feature-extraction, fill-mask or text-classification (default: "
                                  "text-classification if the checkpoint has a classifier, else feature-extraction)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights (never the default; recorded in the manifest)")
    p.add_argument("--static-shape", metavar="B,L", help="fixed batch and length for edge targets")
    p.add_argument("--threads", type=int, default=None, help="threads for the parity and speed runs")
    p.add_argument("--portable", action="store_true", help="ONNX with standard ops only (no ORT fusions)")
    p.add_argument("--vocab", help="gluonnlp vocabulary JSON (with --merges: writes the tokenizer)")
    p.add_argument("--merges", help="GPT-2 BPE merges file")
    p.add_argument("--no-bench", action="store_true", help="skip the speed comparison with PyTorch")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("make-demo", help="write a Bort-shaped demo checkpoint (random weights, released layout)")
    p.add_argument("path", help="where to write the .params file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rewrite the file if it exists")
    p.set_defaults(func=cmd_make_demo)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "inspect": cmd_inspect, "convert": cmd_convert, "export": cmd_export, "make-demo": cmd_make_demo}


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: object) -> None:  # turn SIGTERM into an exception so cleanup runs
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a check failed, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="bortconv: %(levelname)s: %(message)s")
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except BortconvError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `bortconv inspect x | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except (KeyboardInterrupt, _Terminated):
        print("bortconv: interrupted; nothing was left behind", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so in one line, traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"bortconv: internal error: {type(exc).__name__}: {exc} (re-run with --debug)", file=sys.stderr)
        return 3
