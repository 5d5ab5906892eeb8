"""What a fine-tuning run shows on stderr: the plan, each candidate trained, and after each round the candidates
left and the best dev score. Silent with ``progress=False`` (``--quiet``)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from bortconv._util.progress import Progress
from bortconv.finetune.search import Hyper, Plan


class SearchProgress:
    """Progress lines for the search, built on bortconv's stage display."""

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar = Progress(0, enabled=enabled, stream=self.stream)

    def say(self, line: str) -> None:
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def planned(self, method: str, plan: Plan, trainings: int, generator: str | None,
                execution: dict[str, object] | None = None, later: tuple[int, float] | None = None) -> None:
        """The plan, with the planner's time estimate for round 1 on the workers it sees, before anything trains;
        `later`: (most trainings, their estimated seconds) Agora's later rounds can add."""
        self.bar.total = trainings
        gen = f"; new data: {generator}, labelled by the teacher" if generator else ""
        budget = f"fit {plan.budget_s / 60:g} min" if math.isfinite(plan.budget_s) else "(no time budget)"
        where = ""
        if execution:
            where = (f" on {plan.workers} {execution.get('executor')} worker{'s' if plan.workers != 1 else ''}"
                     f" ({execution.get('device')})")
        self.say(f"finetune ({method}): {len(plan.candidates)} of {plan.space_size} configurations {budget} "
                 f"(estimated {plan.estimated_s / 60:.1f} min for round 1{where}, up to {trainings} "
                 f"trainings){gen}")
        if later is not None and later[0]:
            self.say(f"  later rounds: at most {later[0]} more trainings, at most {later[1] / 60:.1f} min of training "
                     f"on these workers{' (the budget stops them sooner)' if math.isfinite(plan.budget_s) else ''}")

    def add_trainings(self, n: int) -> None:
        self.bar.total += n

    @contextmanager
    def training(self, round_no: int, i: int, alive: int, h: Hyper) -> Iterator[None]:
        with self.bar.step(f"round {round_no}: candidate {i}/{alive} ({h.label()})"):
            yield

    def round_done(self, round_no: int, *, left: int, best: float, round_best: float, train_size: int,
                   note: str = "") -> None:
        self.say(f"  round {round_no}: {left} candidate{'s' if left != 1 else ''} left, best dev "
                 f"{best:.4f} (this round {round_best:.4f}), training set {train_size}{note}")
