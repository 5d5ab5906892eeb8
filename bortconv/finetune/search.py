"""The hyperparameter search: the space Θ, a seeded sample of it sized to the time budget, and pruning.

The default space is the one the alexa/bort README recommends (480 configurations). On a small CPU only a few fit
a budget, so Θ is a prefix of a seeded permutation of the grid: the same seed gives the same order, and a larger
budget extends the sample rather than changing it. How many fit comes from a cost model whose speeds are measured
on this machine before training starts (:class:`Speeds`), so the number sampled can differ between machines (or a
busy and an idle one); pass ``candidates`` to fix it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bortconv.errors import InputError

#: the planner keeps this share of the budget for the work it can estimate; the rest absorbs estimation error
PLAN_SHARE = 0.85
#: the share of dev examples the planner assumes the best candidate gets wrong (the teacher's "ok-ish" 2/3 bound)
PLAN_MISTAKE_SHARE = 1 / 3


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
        if any(v <= 0 for v in self.lr) or any(v < 0 for v in self.weight_decay):
            raise InputError("search space: learning rates must be > 0 and weight decays >= 0")
        if any(not 0 <= v < 1 for v in self.warmup_ratio):
            raise InputError("search space: warmup ratios must be in [0, 1)")
        if any(type(v) is not int or v < 1 for v in self.batch_size):
            raise InputError("search space: batch sizes must be positive integers")

    @property
    def size(self) -> int:
        return len(self.lr) * len(self.weight_decay) * len(self.warmup_ratio) * len(self.batch_size) * len(self.seed)

    def grid(self) -> list[Hyper]:
        return [Hyper(*v) for v in itertools.product(self.lr, self.weight_decay, self.warmup_ratio,
                                                     self.batch_size, self.seed)]

    def order(self, seed: int) -> list[Hyper]:
        """Every configuration, in a seeded random order (Θ is a prefix of it)."""
        grid = self.grid()
        import numpy as np  # lazily: `bortconv finetune --help` builds SearchSpace defaults without numpy

        perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA2C4])).permutation(len(grid))
        return [grid[i] for i in perm]

    def to_dict(self) -> dict[str, list[float | int]]:
        return {k: list(v) for k, v in asdict(self).items()}


#: the alexa/bort README's recommended space
BORT_SPACE = SearchSpace()


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
    """Θ and what the planner expected it to cost."""

    candidates: tuple[Hyper, ...]
    estimated_s: float
    budget_s: float
    space_size: int
    minimum_s: float  # one candidate, one round

    def to_dict(self) -> dict[str, object]:
        return {"sampled": len(self.candidates), "space_size": self.space_size,
                "estimated_s": round(self.estimated_s, 1), "budget_s": round(self.budget_s, 1),
                "minimum_s": round(self.minimum_s, 1), "plan_share": PLAN_SHARE}


def generated_per_round(n_dev: int, per_mistake: int, cap: int) -> int:
    """The planner's assumption of how many examples a round adds."""
    return min(cap, per_mistake * math.ceil(PLAN_MISTAKE_SHARE * n_dev))


def search_cost(cands: Sequence[Hyper], *, agora: bool, n_train: int, n_dev: int, epochs: int, speeds: Speeds,
                per_mistake: int, cap: int) -> float:
    """Estimated seconds for the whole search over `cands`.

    plain: one round (every θ trained once). agora: round r trains the survivors on the grown training set; one
    θ is pruned per round at least, so the planner assumes exactly one (the most rounds)."""
    if not agora:
        return sum(training_cost(h, n_train, n_dev, epochs, speeds) for h in cands)
    grow = generated_per_round(n_dev, per_mistake, cap)
    ordered = sorted(cands, key=lambda h: -h.batch_size)  # small batches are slower: assume they survive longest
    total, n = 0.0, n_train
    for r in range(len(cands)):
        total += sum(training_cost(h, n, n_dev, epochs, speeds) for h in ordered[r:])
        if r < len(cands) - 1:  # the last round's augmentation would never be trained on: it is skipped
            mistakes = math.ceil(PLAN_MISTAKE_SHARE * n_dev)
            total += mistakes * per_mistake * speeds.generate_s_per_example + grow * speeds.teacher_s_per_example
            n += grow
    return total


def plan_search(space: SearchSpace, *, seed: int, budget_s: float, agora: bool, n_train: int, n_dev: int,
                epochs: int, speeds: Speeds, per_mistake: int, cap: int, candidates: int | None = None,
                max_candidates: int = 16, overhead_s: float = 0.0, option: str = "--budget-minutes") -> Plan:
    """Θ: the longest prefix of the seeded order whose estimated cost fits the budget (or `candidates` of it).

    Raises InputError, naming the minimum, when not even one candidate fits."""
    order = space.order(seed)

    def cost(k: int) -> float:
        return overhead_s + search_cost(order[:k], agora=agora, n_train=n_train, n_dev=n_dev, epochs=epochs,
                                        speeds=speeds, per_mistake=per_mistake, cap=cap)

    minimum = cost(1) / PLAN_SHARE
    if minimum > budget_s:
        raise InputError(f"{option} {budget_s / 60:g}: too small to train one candidate here (about "
                         f"{math.ceil(minimum / 6) / 10:g} minutes is the minimum for {n_train} training examples, "
                         f"{epochs} epoch{'s' if epochs != 1 else ''})")
    limit = min(len(order), candidates if candidates else max_candidates)
    k = 1
    while k < limit and (candidates or cost(k + 1) <= PLAN_SHARE * budget_s):
        k += 1
    if candidates and cost(k) > budget_s:
        raise InputError(f"--candidates {candidates}: estimated {cost(k) / 60:.1f} minutes, over {option} "
                         f"{budget_s / 60:g}")
    return Plan(tuple(order[:k]), cost(k), budget_s, space.size, minimum)


def prune(scores: Sequence[tuple[Hyper, float]]) -> tuple[list[Hyper], list[Hyper]]:
    """(survivors, pruned): sort by score and drop the leading run tied with the worst (at least one).

    The notes page prunes "the longest common sequence, rooted at the first element" of the sorted list; read as
    the run of configurations tied with the worst score. Survivors keep their original order."""
    if not scores:
        return [], []
    worst = min(s for _, s in scores)
    pruned = [h for h, s in scores if s == worst]
    return [h for h, s in scores if s != worst], pruned
