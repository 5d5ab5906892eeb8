"""The options of a fine-tuning run: one frozen, validated object (the CLI's flags, the API's keywords)."""

from __future__ import annotations

import enum
import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from bortconv.config import (HEADS_HELP, THREADS_HELP, VARIANT_HELP, available_cores, check_choices, check_field_types,
                             check_threads, option, parse_enum)
from bortconv.errors import InputError
from bortconv.finetune.search import SMALL_DATA_SPACE, SearchSpace, parse_space

if TYPE_CHECKING:  # numpy comes with it: `bortconv --help` builds this module's options without it
    from bortconv.finetune.generate import Generator


#: what --budget-minutes is when not given on one machine; a cluster run (--executor ray) has no budget then
DEFAULT_BUDGET_MINUTES = 10.0
EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")


class Method(str, enum.Enum):
    AGORA = "agora"
    PLAIN = "plain"


#: where Agora's generated points come from: the last best model's F mistakes, or those and then the training file
GENERATE_FROM = ("both", "mistakes")
#: which generated points Agora keeps: all of them (with the teacher's targets), or those the teacher labels as their
#: source point's gold label
SYNTHETIC_FILTERS = ("all", "agree")
#: what Agora trains generated points on: the teacher's probabilities or its labels
TEACHER_TARGETS = ("soft", "hard")
#: the CLI's argument groups (besides "general")
PARAMS, SEARCH, GENERATION = "a .params source", "the search", "agora's generated data"
EXECUTION = "where trainings run"


@dataclass(frozen=True)
class FinetuneOptions:
    """Options of :func:`finetune` and ``bortconv finetune``: each field is defined once here, with the help,
    choices and group the CLI shows (:func:`bortconv.config.option`). Validated on construction; an InputError
    names the parameter (the CLI shows it as its flag)."""

    method: Method = option(Method.AGORA, choices=[m.value for m in Method],
                            help="agora (default; needs --teacher) or plain: the same search without teacher or "
                                 "generated data")
    teacher: str | os.PathLike[str] | None = option(
        None, metavar="DIR",
        help="agora: a sequence-classification HF directory or a bortconv text-classification artifact that labels "
             "generated examples")
    budget_minutes: float | None = option(
        None, metavar="MIN",
        help="wall-time budget; the search space is sampled to fit it: round 1, which is all of plain, plans half "
             "of 85%% of it, and Agora's later rounds use the rest (default 10 with --executor local; none with "
             "--executor ray: round 1 trains --candidates or the whole space)")
    seed: int = option(0, metavar="N", help="seed of the sample and of every training (default 0)")
    # a .params source: the tokenizer files and the shape, as `convert` takes them
    vocab: str | os.PathLike[str] | None = option(None, group=PARAMS, metavar="FILE", help="gluonnlp vocabulary JSON")
    merges: str | os.PathLike[str] | None = option(None, group=PARAMS, metavar="FILE", help="GPT-2 BPE merges file")
    variant: str | None = option(None, group=PARAMS, metavar="NAME", help=VARIANT_HELP)
    heads: int | None = option(None, group=PARAMS, metavar="N", help=HEADS_HELP)
    # the search
    space: SearchSpace = option(SMALL_DATA_SPACE, cli=False,
                                help="the search space (the CLI builds it from --space and the space flags)")
    candidates: int | None = option(None, group=SEARCH, metavar="N",
                                    help="train exactly this many configurations (default: as many as fit the "
                                         "budget, at most --max-candidates)")
    max_candidates: int = option(16, group=SEARCH, metavar="N",
                                 help="upper bound of the sample: round 1 and, after the teacher check, its extension "
                                      "(default 16)")
    epochs: int = option(10, group=SEARCH, metavar="N",
                         help="epochs per training at most, best kept by the selection split (default 10)")
    patience: int | None = option(3, group=SEARCH, metavar="N",
                                  help="stop a training after this many epochs without a better selection score "
                                       "(default 3)")
    max_length: int = option(128, group=SEARCH, metavar="N", help="tokens per example incl. specials (default 128)")
    selection_share: float = option(0.75, group=SEARCH, metavar="X",
                                    help="share of --dev held back as the selection split, never given to the "
                                         "generator (default 0.75)")
    # agora's data generation
    per_mistake: int = option(4, group=GENERATION, metavar="N",
                              help="agora: new examples per source point: a dev mistake, or with --generate-from "
                                   "both a training point too (default 4)")
    max_generated: int | None = option(None, group=GENERATION, metavar="N",
                                       help="agora: new examples per round at most (default: --synthetic-ratio "
                                            "times the training file's size, so one round can fill the cap)")
    max_replays: int = option(1, cli=False, help="rounds that retrain without new data before the search stops")
    teacher_targets: str = option("soft", group=GENERATION, choices=TEACHER_TARGETS,
                                  help="agora: train on the teacher's probabilities (default) or its labels")
    synthetic_ratio: float = option(3.0, group=GENERATION, metavar="X",
                                    help="agora: synthetic points in the training set at most this many times the "
                                         "training file's size (default 3)")
    synthetic_filter: str = option("all", group=GENERATION, choices=SYNTHETIC_FILTERS,
                                   help="agora: keep every generated point, trained on the teacher's targets "
                                        "(all; default), or only those the teacher labels as their source point's "
                                        "gold label (agree)")
    generate_from: str = option("both", group=GENERATION, choices=GENERATE_FROM,
                                help="agora: generate near the last best model's mistakes on the mistakes split, "
                                     "then near the training file's points (both; default), or near the mistakes "
                                     "only (the Agora notes' rule)")
    generator: Generator | None = option(None, cli=False, help="a data-generating function (examples, per_example, "
                                                               "rng) -> examples; default: the source's")
    # the run
    threads: int = option(factory=available_cores, metavar="N", help=THREADS_HELP)
    force: bool = option(False, help="replace a non-empty output directory")
    progress: bool = option(True, negate="--quiet", help="no progress lines")
    # where trainings run, and the checkpoints that let a killed run continue
    executor: str = option("local", group=EXECUTION, choices=EXECUTORS,
                           help="where trainings run: local (default; one after another in this process) or ray "
                                "(Ray tasks, as many at once as the cluster allows; needs bortconv[distributed])")
    ray_address: str | None = option(None, group=EXECUTION, metavar="HOST:PORT",
                                     help="--executor ray: a running Ray cluster, e.g. 10.0.0.1:6379 (default: "
                                          "RAY_ADDRESS, else a cluster started on this machine, else a local Ray "
                                          "started for the run)")
    device: str = option("auto", group=EXECUTION, choices=DEVICES,
                         help="training device: auto (default; CUDA when torch, or the Ray cluster, has it), cpu or "
                              "cuda (exit 2 when there is none)")
    work_dir: str | os.PathLike[str] | None = option(
        None, group=EXECUTION, metavar="DIR",
        help="checkpoints of rounds and finished trainings (default: .OUT.bortconv-work beside -o; on a cluster: "
             "storage every node mounts)")
    resume: bool = option(False, group=EXECUTION,
                          help="continue the run checkpointed in the work directory (the same command otherwise); "
                               "finished trainings are not redone")

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choices(self)  # method, teacher_targets, synthetic_filter, generate_from, executor, device
        object.__setattr__(self, "method", parse_enum(Method, self.method, "method"))
        if isinstance(self.space, str):  # the CLI's spelling: "small", "full" or a SPEC
            object.__setattr__(self, "space", parse_space(self.space, "space"))
        if not isinstance(self.space, SearchSpace):
            _reject("space", f": {type(self.space).__name__} is not a SearchSpace (or its spec, e.g. \"small\")")
        if not 0 <= self.seed < 2**32:
            _reject("seed", f"{self.seed}: must be in 0..2**32 - 1")
        if self.method is Method.AGORA and not self.teacher:
            raise InputError("teacher is needed for the agora method (it labels the generated data); the plain "
                             "method trains without one", option="teacher")
        if self.method is Method.PLAIN and self.teacher:
            _reject("teacher", ": the plain method uses no teacher (it is the baseline without one)")
        if self.ray_address and self.executor != "ray":
            _reject("ray_address", ": needs --executor ray")
        if self.budget_minutes is None and self.executor == "local":
            object.__setattr__(self, "budget_minutes", DEFAULT_BUDGET_MINUTES)
        if self.budget_minutes is not None and not 0 < self.budget_minutes < math.inf:  # inf: JSON has no Infinity
            _reject("budget_minutes", f"{self.budget_minutes}: must be a finite number > 0")
        for name, low in (("epochs", 1), ("max_length", 8), ("per_mistake", 1), ("threads", 1),
                          ("max_candidates", 1), ("max_replays", 0)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                _reject(name, f"{value!r}: must be an integer >= {low}")
        check_threads(self.threads)
        for name in ("candidates", "max_generated", "patience"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                _reject(name, f"{value!r}: must be an integer >= 1")
        if not 0 < self.selection_share < 1:
            _reject("selection_share", f"{self.selection_share}: must be between 0 and 1")
        if not 0 <= self.synthetic_ratio < math.inf:
            _reject("synthetic_ratio", f"{self.synthetic_ratio}: must be a finite number >= 0")
        if self.generator is not None and not callable(self.generator):
            _reject("generator", ": must be a callable (examples, per_example, rng) -> examples")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("generator", "space")}
        d["method"] = self.method.value
        d["space"] = self.space.to_dict()
        return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in d.items()}


def _reject(name: str, text: str) -> NoReturn:
    """Raise an InputError about parameter `name` (the CLI shows it as its flag): "name VALUE: why" or "name: why"."""
    raise InputError(f"{name}{'' if text.startswith(':') else ' '}{text}", option=name) from None
