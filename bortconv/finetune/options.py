"""The options of a fine-tuning run: one frozen, validated object (the CLI's flags, the API's keywords)."""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bortconv.config import available_cores
from bortconv.errors import InputError
from bortconv.finetune.search import SMALL_DATA_SPACE, SearchSpace

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


@dataclass(frozen=True)
class FinetuneOptions:
    """Options of :func:`finetune` (the CLI's flags). Validated on construction; InputError names the flag."""

    method: Method = Method.AGORA
    teacher: str | os.PathLike[str] | None = None  # agora: HF classifier dir or bortconv artifact dir
    budget_minutes: float | None = None  # None: 10 with --executor local, no budget with --executor ray
    seed: int = 0
    # a .params source: the tokenizer files and the shape, as `convert` takes them
    vocab: str | os.PathLike[str] | None = None
    merges: str | os.PathLike[str] | None = None
    variant: str | None = None
    heads: int | None = None
    # the search
    space: SearchSpace = SMALL_DATA_SPACE
    candidates: int | None = None  # fix |Θ| instead of fitting it to the budget
    max_candidates: int = 16
    epochs: int = 10  # at most; early stopping on the selection split ends most trainings sooner
    patience: int | None = 3  # epochs without a better selection score before a training stops (None: never)
    max_length: int = 128
    selection_share: float = 0.75  # of dev, held back from the generator: it picks epochs and the result
    # agora's data generation
    per_mistake: int = 4
    max_generated: int | None = None  # per round; default: the training file's size
    max_replays: int = 1
    teacher_targets: str = "soft"  # or "hard"
    synthetic_ratio: float = 1.0  # synthetic points in D at most this many times the training file's size
    synthetic_filter: str = "agree"  # keep generated points the teacher labels as their source ("agree") or "all"
    generate_from: str = "both"  # "mistakes": F's mistakes only (the Agora notes); "both": then the training file
    generator: Generator | None = field(default=None, compare=False)
    # the run
    threads: int = field(default_factory=available_cores)  # the one --threads default; the record says it
    force: bool = False
    progress: bool = True
    # where trainings run, and the checkpoints that let a killed run continue
    executor: str = "local"  # "local" (in this process) or "ray" (Ray tasks, one per training)
    ray_address: str | None = None  # a running cluster (ray start --head); default: a local Ray started for the run
    device: str = "auto"  # training device: auto (CUDA when torch, or the cluster, has it), cpu or cuda
    work_dir: str | os.PathLike[str] | None = None  # default: .<OUT name>.bortconv-work beside OUT
    resume: bool = False  # continue the run checkpointed in the work directory

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", Method(self.method))
        except ValueError:
            raise InputError(f"--method {self.method!r}: expected agora or plain") from None
        if self.method is Method.AGORA and not self.teacher:
            raise InputError("--teacher is needed for --method agora (it labels the generated data); "
                             "--method plain trains without one")
        if self.method is Method.PLAIN and self.teacher:
            raise InputError("--teacher: --method plain uses no teacher (it is the baseline without one)")
        self._check_execution()
        if self.budget_minutes is None and self.executor == "local":
            object.__setattr__(self, "budget_minutes", DEFAULT_BUDGET_MINUTES)
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise InputError(f"--budget-minutes {self.budget_minutes}: must be > 0")
        for name, low in (("epochs", 1), ("max_length", 8), ("per_mistake", 1), ("threads", 1),
                          ("max_candidates", 1), ("max_replays", 0)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise InputError(f"--{name.replace('_', '-')} {value!r}: must be an integer >= {low}")
        for name in ("candidates", "max_generated"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise InputError(f"--{name.replace('_', '-')} {value!r}: must be an integer >= 1")
        if self.patience is not None and (type(self.patience) is not int or self.patience < 1):
            raise InputError(f"--patience {self.patience!r}: must be an integer >= 1")
        if not 0 < self.selection_share < 1:
            raise InputError(f"--selection-share {self.selection_share}: must be between 0 and 1")
        if not self.synthetic_ratio >= 0:
            raise InputError(f"--synthetic-ratio {self.synthetic_ratio}: must be >= 0")
        if self.synthetic_filter not in ("agree", "all"):
            raise InputError(f"--synthetic-filter {self.synthetic_filter!r}: expected agree or all")
        if self.generate_from not in GENERATE_FROM:
            raise InputError(f"--generate-from {self.generate_from!r}: expected {' or '.join(GENERATE_FROM)}")
        if self.teacher_targets not in ("soft", "hard"):
            raise InputError(f"teacher_targets {self.teacher_targets!r}: expected soft or hard")
        if self.generator is not None and not callable(self.generator):
            raise InputError("generator: must be a callable (examples, per_example, rng) -> examples")

    def _check_execution(self) -> None:
        if self.executor not in EXECUTORS:
            raise InputError(f"--executor {self.executor!r}: expected {' or '.join(EXECUTORS)}")
        if self.device not in DEVICES:
            raise InputError(f"--device {self.device!r}: expected {', '.join(DEVICES)}")
        if self.ray_address and self.executor != "ray":
            raise InputError("--ray-address: needs --executor ray")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("generator", "space")}
        d["method"] = self.method.value
        d["space"] = self.space.to_dict()
        return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in d.items()}
