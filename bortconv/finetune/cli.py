"""``bortconv finetune``: its arguments and its command function (bortconv.cli turns errors into exit codes)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bortconv.config import THREADS_HELP, available_cores
from bortconv.finetune.options import DEVICES, EXECUTORS, GENERATE_FROM, FinetuneOptions
from bortconv.finetune.search import SearchSpace, parse_space


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The finetune command's arguments, added to `parser` (a subparser of bortconv's CLI)."""
    parser.add_argument("source", help="a Bort .params checkpoint (with --vocab/--merges) or a BERT-family "
                                       "Hugging Face directory with a tokenizer")
    parser.add_argument("--train", required=True, help="training examples: TSV, CSV or JSONL with a header "
                                                       "(text, label; text_b for pairs)")
    parser.add_argument("--dev", required=True, help="dev examples, same columns: scores candidates and epochs")
    parser.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    parser.add_argument("--teacher", help="agora: a sequence-classification HF directory or a bortconv "
                                          "text-classification artifact that labels generated examples")
    parser.add_argument("--method", choices=["agora", "plain"], default="agora",
                        help="agora (default; needs --teacher) or plain: the same search without teacher or "
                             "generated data")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="wall-time budget; the search space is sampled to fit it (default 10 with --executor "
                             "local; none with --executor ray: round 1 trains --candidates or the whole space)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of every training (default 0)")
    parser.add_argument("--vocab", help="a .params source: gluonnlp vocabulary JSON")
    parser.add_argument("--merges", help="a .params source: GPT-2 BPE merges file")
    parser.add_argument("--variant", help="a .params source: bort_<layers>_<heads>_<ffn>_<units>")
    parser.add_argument("--heads", type=int, help="a .params source: attention heads")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per training at most, best kept by the "
                                                                "selection split (default 10)")
    parser.add_argument("--patience", type=int, default=3, help="stop a training after this many epochs without a "
                                                                "better selection score (default 3)")
    parser.add_argument("--selection-share", type=float, default=0.75,
                        help="share of --dev held back as the selection split, never given to the generator "
                             "(default 0.75)")
    parser.add_argument("--space", default="small", metavar="small|full|SPEC",
                        help="the search space the flags below edit: small (default; learning rates for a small "
                             "encoder on small data), full (the alexa/bort README's 480 configurations; 'bort' "
                             "is its old name) or a SPEC such as 'full;seeds=0..1;batch=16' (keys lr, wd, warmup, "
                             "batch, seeds; docs/finetune.md)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per example incl. specials "
                                                                    "(default 128)")
    parser.add_argument("--candidates", type=int, help="train exactly this many configurations (default: as many "
                                                       "as fit the budget, at most --max-candidates)")
    parser.add_argument("--max-candidates", type=int, default=16, help="upper bound of the sample (default 16)")
    parser.add_argument("--lr", type=_floats, help="search space: learning rates, e.g. 1e-4,3e-5,3e-4")
    parser.add_argument("--weight-decay", type=_floats, help="search space: weight decays, e.g. 0,0.01")
    parser.add_argument("--warmup-ratio", type=_floats, help="search space: warmup ratios, e.g. 0.1,0.35")
    parser.add_argument("--batch-size", type=_ints, help="search space: batch sizes, e.g. 8,16")
    parser.add_argument("--seeds", type=_ints, help="search space: candidate seeds, e.g. 0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    _add_generation_arguments(parser.add_argument_group("agora's generated data"))
    _add_execution_arguments(parser)
    parser.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the training record as JSON")


def _add_generation_arguments(parser: Any) -> None:  # an argparse argument group
    """Agora's generated data: where it comes from, how much, which points are kept and with what targets."""
    parser.add_argument("--synthetic-ratio", type=float, default=1.0,
                        help="agora: synthetic points in the training set at most this many times the training "
                             "file's size (default 1.0)")
    parser.add_argument("--synthetic-filter", choices=["agree", "all"], default="agree",
                        help="agora: keep generated points the teacher labels as their source point's gold label "
                             "(default) or all of them")
    parser.add_argument("--generate-from", choices=GENERATE_FROM, default="both",
                        help="agora: generate near the last best model's mistakes on the mistakes split, then near "
                             "the training file's points (both; default), or near the mistakes only (the Agora "
                             "notes' rule)")
    parser.add_argument("--per-mistake", type=int, default=4,
                        help="agora: new examples per source point: a dev mistake, or with --generate-from both a "
                             "training point too (default 4)")
    parser.add_argument("--max-generated", type=int, help="agora: new examples per round at most (default: the "
                                                          "training file's size)")
    parser.add_argument("--teacher-targets", choices=["soft", "hard"], default="soft",
                        help="agora: train on the teacher's probabilities (default) or its labels")


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Where trainings run and the checkpoints that let a killed run continue."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where trainings run: local (default; one after another in this process) or ray "
                             "(Ray tasks, as many at once as the cluster allows; needs bortconv[distributed])")
    parser.add_argument("--ray-address", help="--executor ray: a running Ray cluster, e.g. 10.0.0.1:6379 (default: "
                                              "RAY_ADDRESS, else a cluster started on this machine, else a "
                                              "local Ray started for the run)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="training device: auto (default; CUDA when torch, or the Ray cluster, has it), cpu "
                             "or cuda (exit 2 when there is none)")
    parser.add_argument("--work-dir", help="checkpoints of rounds and finished trainings (default: "
                                           ".OUT.bortconv-work beside -o; on a cluster: storage every node mounts)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run checkpointed in the work directory (the same command otherwise); "
                             "finished trainings are not redone")


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    """The chosen space (--space: a name or a SPEC), with any dimension the command line gives replaced."""
    base = parse_space(getattr(args, "space", "small"))
    given = {"lr": args.lr, "weight_decay": args.weight_decay, "warmup_ratio": args.warmup_ratio,
             "batch_size": args.batch_size, "seed": args.seeds}
    if all(v is None for v in given.values()):
        return base
    from dataclasses import replace
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def options_from_args(args: argparse.Namespace) -> FinetuneOptions:
    """The options the parsed command line asks for (what `run` trains with)."""
    return FinetuneOptions(
        method=args.method, teacher=args.teacher, budget_minutes=args.budget_minutes, seed=args.seed,
        vocab=args.vocab, merges=args.merges, variant=args.variant, heads=args.heads, space=space_from_args(args),
        candidates=args.candidates, max_candidates=args.max_candidates, epochs=args.epochs,
        patience=args.patience, selection_share=args.selection_share, max_length=args.max_length,
        per_mistake=args.per_mistake, max_generated=args.max_generated, teacher_targets=args.teacher_targets,
        synthetic_ratio=args.synthetic_ratio, synthetic_filter=args.synthetic_filter, generate_from=args.generate_from,
        threads=args.threads or available_cores(), force=args.force, progress=not args.quiet, executor=args.executor,
        ray_address=args.ray_address, device=args.device, work_dir=args.work_dir, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    """Run the command: a short summary on stdout (or the record as JSON with --json); 0 on success."""
    from bortconv.finetune.api import finetune

    result = finetune(args.source, args.train, args.dev, args.output, options_from_args(args))
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
        return 0
    r = result.record
    s, best = r["search"], r["best"]
    print(f"wrote {result.output_dir}: {r['method']}, selection accuracy {best['dev_accuracy']:.4f} "
          f"({_hyper(best['hyper'])}, round {best['round']}, epoch {best['epoch']})")
    print(f"  {r['selection']['why']}")
    print(f"  {s['plan']['sampled']} of {s['plan']['space_size']} configurations, {s['trainings']} trainings in "
          f"{len(s['rounds'])} round(s), {best['generated_in_training_set']} generated examples in the kept "
          f"model's training set, {r['timings']['total_s'] / 60:.1f} min")
    return 0


def _hyper(h: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in h.items())
