"""``bortconv finetune``: its arguments and its command function (bortconv.cli turns errors into exit codes)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bortconv.config import add_option_arguments, cli_fields, comma_items, option_values
from bortconv.errors import InputError
from bortconv.finetune.options import FinetuneOptions
from bortconv.finetune.search import SearchSpace, parse_space


def _items(text: str, kind: type, what: str) -> tuple[Any, ...]:
    """'1e-4, 3e-5' -> (1e-4, 3e-5); an empty item ('1e-4,,3e-5') is refused, not dropped."""
    try:
        return tuple(kind(x) for x in comma_items(text, "list"))  # the one home of the empty-item rule
    except (InputError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated {what}, none empty") from None


def _floats(text: str) -> tuple[float, ...]:
    return _items(text, float, "numbers")


def _ints(text: str) -> tuple[int, ...]:
    return _items(text, int, "integers")


#: the options `bortconv finetune` has, generated from FinetuneOptions (the search space's flags build one field)
FINETUNE_FIELDS = cli_fields(FinetuneOptions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The finetune command's arguments, added to `parser` (a subparser of bortconv's CLI): the data and output,
    then every FinetuneOptions field's flag in its group, then the search space's flags."""
    parser.add_argument("source", help="a Bort .params checkpoint (with --vocab/--merges) or a BERT-family "
                                       "Hugging Face directory with a tokenizer")
    parser.add_argument("--train", required=True, help="training examples: TSV, CSV or JSONL with a header "
                                                       "(text, label; text_b for pairs)")
    parser.add_argument("--dev", required=True, help="dev examples, same columns: scores candidates and epochs")
    parser.add_argument("-o", "--output", required=True, help="output directory (must be new or empty)")
    parser.add_argument("--json", action="store_true", help="print the training record as JSON")
    add_option_arguments(parser, FINETUNE_FIELDS)
    _add_space_arguments(parser.add_argument_group("the search space"))


def _add_space_arguments(group: Any) -> None:  # an argparse argument group
    """--space and the flags that replace one of its dimensions: together they give FinetuneOptions.space."""
    group.add_argument("--space", default="small", metavar="small|full|SPEC",
                       help="the search space the flags below edit: small (default; learning rates for a small "
                            "encoder on small data), full (the alexa/bort README's 480 configurations; 'bort' "
                            "is its old name) or a SPEC such as 'full;seeds=0..1;batch=16' (keys lr, wd, warmup, "
                            "batch, seeds; docs/finetune.md)")
    group.add_argument("--lr", type=_floats, help="search space: learning rates, e.g. 1e-4,3e-5,3e-4")
    group.add_argument("--weight-decay", type=_floats, help="search space: weight decays, e.g. 0,0.01")
    group.add_argument("--warmup-ratio", type=_floats, help="search space: warmup ratios, e.g. 0.1,0.35")
    group.add_argument("--batch-size", type=_ints, help="search space: batch sizes, e.g. 8,16")
    group.add_argument("--seeds", type=_ints, help="search space: candidate seeds, e.g. 0,1,2,3,4")


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
    return FinetuneOptions(space=space_from_args(args), **option_values(args, FINETUNE_FIELDS))


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
