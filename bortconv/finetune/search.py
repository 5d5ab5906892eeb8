"""The hyperparameter search: the space Θ, a seeded sample of it sized to the time budget, and pruning.

The default space (:data:`SMALL_DATA_SPACE`) has learning rates measured for a small encoder (all-MiniLM-L6-v2)
on a few hundred examples; the alexa/bort README's 480 configurations (:data:`BORT_SPACE`, Bort on GLUE-sized
data) remain available. On a small CPU only a few configurations fit a budget, so Θ is a prefix of a seeded order
of the grid that is **stratified over the learning rate**: the order cycles through the learning rates (in a
seeded order), so any prefix of k configurations holds min(k, |lr|) distinct learning rates and never k draws of
one bad rate. The same seed gives the same order, and a larger budget extends the sample rather than changing it.

How many fit comes from a cost model whose speeds are measured on this machine before training starts
(:class:`Speeds`). Plain and Agora plan round 1 identically: the prefix that fits :data:`ROUND1_SHARE` of the
planned budget. Plain stops there; Agora spends the rest on later rounds. Agora's round 1 therefore trains exactly
plain's configurations (containment). Pass ``candidates`` to fix the sample size.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from bortconv.errors import InputError

if TYPE_CHECKING:
    import numpy as np

#: the planner keeps this share of the budget for the work it can estimate; the rest absorbs estimation error
PLAN_SHARE = 0.85
#: the share of the planned budget that round 1 (plain's whole search) gets; Agora's later rounds get the rest
ROUND1_SHARE = 0.5


@dataclass(frozen=True, order=True)
class Hyper:
    """One configuration θ: what the alexa/bort README searches over."""

    lr: float
    weight_decay: float
    warmup_ratio: float
    batch_size: int
    seed: int

    def label(self) -> str:
        return (f"lr={self.lr:g} wd={self.weight_decay:g} warmup={self.warmup_ratio:g} "
                f"batch={self.batch_size} seed={self.seed}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class SearchSpace:
    """A grid of hyperparameter values; Θ is sampled from its product."""

    lr: tuple[float, ...] = (1e-4, 1e-5, 9e-6)
    weight_decay: tuple[float, ...] = (0.0, 10.0, 100.0, 350.0)
    warmup_ratio: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50)
    batch_size: tuple[int, ...] = (8, 16)
    seed: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "warmup_ratio", "batch_size", "seed"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise InputError(f"search space: '{name}' must be a non-empty tuple of values")
        rules = (("lr", "learning rates must be > 0", lambda v: v > 0),
                 ("weight_decay", "weight decays must be >= 0", lambda v: v >= 0),
                 ("warmup_ratio", "warmup ratios must be in [0, 1)", lambda v: 0 <= v < 1))
        for name, rule, ok in rules:  # NaN passed `v <= 0` and inf trained a model of NaN weights
            bad = [v for v in getattr(self, name) if isinstance(v, bool) or not isinstance(v, numbers.Real)
                   or not math.isfinite(v) or not ok(v)]
            if bad:  # named as its flag (--lr, --weight-decay, --warmup-ratio) where the CLI shows it
                raise InputError(f"{name} {bad[0]!r}: {rule} (finite numbers)", option=name)
        if any(type(v) is not int or v < 1 for v in self.batch_size):
            raise InputError("search space: batch sizes must be positive integers")
        bad_seeds = [v for v in self.seed if type(v) is not int or not 0 <= v < 2 ** 32]  # as --seed
        if bad_seeds:
            raise InputError(f"search space: seeds must be integers in 0..2**32 - 1, got {bad_seeds[0]!r}")

    @property
    def size(self) -> int:
        return len(self.lr) * len(self.weight_decay) * len(self.warmup_ratio) * len(self.batch_size) * len(self.seed)

    def grid(self) -> list[Hyper]:
        return [Hyper(*v) for v in itertools.product(self.lr, self.weight_decay, self.warmup_ratio,
                                                     self.batch_size, self.seed)]

    def order(self, seed: int) -> list[Hyper]:
        """Every configuration in a seeded order stratified over the learning rate (Θ is a prefix of it).

        Each learning rate's configurations are shuffled; the order then takes one of each learning rate in turn
        (the learning rates themselves in a seeded order), so a prefix covers the learning rates first."""
        import numpy as np  # lazily: `bortconv finetune --help` builds SearchSpace defaults without numpy

        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA2C4]))
        grid = self.grid()
        strata = [[h for h in grid if h.lr == lr] for lr in self.lr]
        strata = [[st[i] for i in rng.permutation(len(st))] for st in strata]
        lrs = rng.permutation(len(strata))
        return [strata[j][i] for i in range(len(strata[0])) for j in lrs]

    def to_dict(self) -> dict[str, list[float | int]]:
        return {k: list(v) for k, v in asdict(self).items()}


#: the alexa/bort README's recommended space (Bort on GLUE-sized data): 480 configurations (``--space full``)
BORT_SPACE = SearchSpace()
FULL_SPACE = BORT_SPACE
#: the default: learning rates for a small encoder on a few hundred examples (measured: docs/finetune.md), the
#: decoupled weight decays AdamW is usually given (Bort's 10-350 shrink every weight by lr x wd per step), a short
#: warmup, two batch sizes and three seeds
SMALL_DATA_SPACE = SearchSpace(lr=(1e-4, 3e-5, 3e-4), weight_decay=(0.0, 0.01), warmup_ratio=(0.1,),
                               batch_size=(16, 8), seed=(0, 1, 2))
#: the spaces ``--space`` names (``bort`` is the older name of ``full``)
NAMED_SPACES = {"small": SMALL_DATA_SPACE, "full": FULL_SPACE, "bort": FULL_SPACE}
#: ``--space SPEC`` keys -> SearchSpace fields
SPEC_KEYS = {"lr": "lr", "wd": "weight_decay", "weight_decay": "weight_decay", "warmup": "warmup_ratio",
             "warmup_ratio": "warmup_ratio", "batch": "batch_size", "batch_size": "batch_size", "seed": "seed",
             "seeds": "seed"}
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")


def _spec_values(text: str, key: str, field: str, option: str) -> tuple[float | int, ...]:
    """The values of one ``key=v1,v2`` item: numbers, or integer ranges ``a..b`` (inclusive) for batch and seed."""
    out: list[float | int] = []
    for item in (v.strip() for v in text.split(",")):
        m = _RANGE.fullmatch(item)
        try:
            if m and field in ("batch_size", "seed"):
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo or hi - lo >= 10_000:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(item) if field in ("batch_size", "seed") else float(item))
        except ValueError:
            kind = "integers or a range a..b" if field in ("batch_size", "seed") else "numbers"
            raise InputError(f"{option} {text!r}: {key}= takes comma-separated {kind}, not {item!r}") from None
    return tuple(dict.fromkeys(out))


def parse_space(text: str, option: str = "--space") -> SearchSpace:
    """A search space from ``small``, ``full`` (the README's 480), or a SPEC: ``[NAME;]key=values;...``.

    Keys: ``lr``, ``wd``, ``warmup``, ``batch``, ``seeds`` (long names too); values comma-separated, integer
    ranges ``a..b`` for batch and seeds. A dimension the SPEC leaves out keeps NAME's values (default: small).
    Example: ``full;seeds=0..1;batch=16`` (3 x 4 x 4 x 1 x 2 = 96 configurations). Bad input: InputError."""
    from dataclasses import replace

    items = [t.strip() for t in text.split(";") if t.strip()]
    if not items:
        raise InputError(f"{option} {text!r}: empty; expected small, full or key=values;... (docs/finetune.md)")
    base = SMALL_DATA_SPACE
    if "=" not in items[0]:
        name = items.pop(0)
        if name not in NAMED_SPACES:
            raise InputError(f"{option} {text!r}: unknown space {name!r}; expected small, full or key=values;...")
        base = NAMED_SPACES[name]
    given: dict[str, tuple[float | int, ...]] = {}
    for item in items:
        key, eq, values = (part.strip() for part in item.partition("="))
        if not eq or key not in SPEC_KEYS or not values:
            raise InputError(f"{option} {text!r}: {item!r} is not key=values with a key of lr, wd, warmup, batch, "
                             f"seeds")
        field = SPEC_KEYS[key]
        if field in given:
            raise InputError(f"{option} {text!r}: {key} is given twice")
        given[field] = _spec_values(values, key, field, option)
    try:
        return replace(base, **given)
    except InputError as exc:  # the space's own checks (lr > 0, warmup in [0, 1), ...)
        raise InputError(f"{option} {text!r}: {exc.message.removeprefix('search space: ')}") from None


@dataclass(frozen=True)
class Speeds:
    """Seconds per unit of work, measured on this machine by a short probe before the search."""

    step_s: dict[int, float]  # batch size -> seconds per optimizer step
    eval_s_per_example: float
    setup_s: float  # building a fresh model for a candidate
    generate_s_per_example: float = 0.0
    teacher_s_per_example: float = 0.0

    def step(self, batch_size: int) -> float:
        """Seconds per step at `batch_size`, interpolated linearly between the measured sizes."""
        sizes = sorted(self.step_s)
        if batch_size in self.step_s:
            return self.step_s[batch_size]
        lo = max([s for s in sizes if s <= batch_size], default=sizes[0])
        hi = min([s for s in sizes if s >= batch_size], default=sizes[-1])
        if lo == hi:
            return self.step_s[lo] * batch_size / lo
        w = (batch_size - lo) / (hi - lo)
        return self.step_s[lo] * (1 - w) + self.step_s[hi] * w

    def to_dict(self) -> dict[str, object]:
        return {"step_s": {str(k): round(v, 4) for k, v in self.step_s.items()},
                "eval_s_per_example": round(self.eval_s_per_example, 5), "setup_s": round(self.setup_s, 3),
                "generate_s_per_example": round(self.generate_s_per_example, 5),
                "teacher_s_per_example": round(self.teacher_s_per_example, 5)}


def training_cost(h: Hyper, n_train: int, n_dev: int, epochs: int, speeds: Speeds) -> float:
    """Estimated seconds to train one candidate for `epochs` (dev scored after every epoch)."""
    steps = epochs * math.ceil(n_train / h.batch_size)
    return speeds.setup_s + steps * speeds.step(h.batch_size) + epochs * n_dev * speeds.eval_s_per_example


@dataclass(frozen=True)
class Plan:
    """Θ and what the planner expected it to cost (budget_s is inf when the run has no budget)."""

    candidates: tuple[Hyper, ...]
    estimated_s: float
    budget_s: float
    space_size: int
    minimum_s: float  # one candidate, one round
    workers: int = 1  # trainings run at once (Ray: the cluster's slots of --threads CPUs)

    def to_dict(self) -> dict[str, object]:
        return {"sampled": len(self.candidates), "space_size": self.space_size,
                "estimated_s": round(self.estimated_s, 1),
                "budget_s": round(self.budget_s, 1) if math.isfinite(self.budget_s) else None,
                "minimum_s": round(self.minimum_s, 1), "plan_share": PLAN_SHARE,
                "round1_share": ROUND1_SHARE, "workers": self.workers,
                "learning_rates": sorted({h.lr for h in self.candidates})}


def makespan(costs: Sequence[float], workers: int = 1, start_s: float = 0.0) -> float:
    """Seconds until the last of `costs` ends when `workers` run them in order, each taking the next job as it
    frees up (how Ray hands queued tasks to free slots), each worker ready after `start_s` (a fresh Ray worker
    loads torch and the student first). One worker: their sum."""
    if workers <= 1:
        return start_s + float(sum(costs))
    free = [start_s] * workers
    for c in costs:
        heapq.heappush(free, heapq.heappop(free) + c)
    return max(free)


def round_cost(cands: Sequence[Hyper], *, n_train: int, n_dev: int, epochs: int, speeds: Speeds,
               workers: int = 1, start_s: float = 0.0) -> float:
    """Estimated seconds to train every configuration of `cands` once on `n_train` examples with `workers`, each
    ready after `start_s`."""
    return makespan([training_cost(h, n_train, n_dev, epochs, speeds) for h in cands], workers, start_s)


def plan_search(space: SearchSpace, *, seed: int, budget_s: float | None, n_train: int, n_dev: int, epochs: int,
                speeds: Speeds, candidates: int | None = None, max_candidates: int = 16, overhead_s: float = 0.0,
                option: str = "budget_minutes", workers: int = 1, worker_start_s: float = 0.0) -> Plan:
    """Θ for round 1 (the same for plain and Agora): the longest prefix of the seeded order whose estimated cost
    on `workers` parallel workers (each ready after `worker_start_s`) fits ROUND1_SHARE x PLAN_SHARE of the budget
    (or `candidates` of it). With no budget (None: a cluster run), `candidates` of it or the whole space.

    Raises InputError, naming the minimum, when not even one candidate fits."""
    order = space.order(seed)
    share = ROUND1_SHARE * PLAN_SHARE

    def cost(k: int) -> float:
        return overhead_s + round_cost(order[:k], n_train=n_train, n_dev=n_dev, epochs=epochs, speeds=speeds,
                                       workers=workers, start_s=worker_start_s)

    if budget_s is None:
        k = min(len(order), candidates or len(order))
        return Plan(tuple(order[:k]), cost(k), math.inf, space.size, cost(1), workers)
    minimum = cost(1) / PLAN_SHARE  # one training in the planned share; round 1 may then take all of it
    if minimum > budget_s:
        raise InputError(f"{option} {budget_s / 60:g}: too small to train one candidate here (about "
                         f"{math.ceil(minimum / 6) / 10:g} minutes is the minimum for {n_train} training examples, "
                         f"{epochs} epoch{'s' if epochs != 1 else ''})", option=option)
    limit = min(len(order), candidates if candidates else max_candidates)
    k = 1
    while k < limit and (candidates or cost(k + 1) <= share * budget_s):  # k = 1 at least, as the minimum allows
        k += 1
    if candidates and cost(k) > budget_s:
        raise InputError(f"candidates {candidates}: estimated {cost(k) / 60:.1f} minutes, over {option} "
                         f"{budget_s / 60:g}", option="candidates")
    return Plan(tuple(order[:k]), cost(k), budget_s, space.size, minimum, workers)


#: the largest one-sided sign-test p-value at which a later Agora round's model replaces the kept one (why: the
#: module doc of bortconv.finetune.agora)
SWITCH_P = 0.05


def sign_test(candidate: np.ndarray, kept: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """Paired comparison of two models' predictions on S: `wins` (candidate right, kept wrong), `losses` (the
    reverse) and the one-sided exact sign-test p-value of that many wins or more among the discordant examples."""
    right_c, right_k = candidate == labels, kept == labels
    wins, losses = int((right_c & ~right_k).sum()), int((right_k & ~right_c).sum())
    n = wins + losses
    p = sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n if n else 1.0
    return {"wins": wins, "losses": losses, "p": round(p, 5), "switch": p <= SWITCH_P}


def prune(scores: Sequence[tuple[Hyper, float]]) -> tuple[list[Hyper], list[Hyper]]:
    """(survivors, pruned): sort by score and drop the leading run tied with the worst (at least one).

    The notes page prunes "the longest common sequence, rooted at the first element" of the sorted list; read as
    the run of configurations tied with the worst score. Survivors keep their original order."""
    if not scores:
        return [], []
    worst = min(s for _, s in scores)
    pruned = [h for h, s in scores if s == worst]
    return [h for h, s in scores if s != worst], pruned
