"""A round's trainings as the driver hands them to an executor, and the record of where and when each ran."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bortconv.finetune.search import Hyper, training_cost

if TYPE_CHECKING:
    from bortconv.finetune.agora import Search


@dataclass(frozen=True)
class Job:
    """One training of a round, as the driver hands it out."""

    key: str  # its name in the work directory
    hyper: Hyper
    round_no: int
    index: int  # 1-based, in the round's order
    total: int  # trainings in the round
    cost_s: float  # the planner's estimate
    must_run: bool  # round 1's first training runs whatever the budget says

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "hyper": self.hyper.to_dict(), "round": self.round_no, "cost_s": self.cost_s,
                "must_run": self.must_run}


def jobs_of(s: Search, configs: Sequence[Hyper], round_no: int) -> list[Job]:
    """The round's trainings, named by the work directory (or by position when the run keeps no checkpoint)."""
    assert s.train is not None
    n_dev = len(s.selection) + len(s.feed)
    out = []
    for i, h in enumerate(configs, start=1):
        key = s.work.key(s.digest, h) if s.work is not None else f"{round_no}-{i}"
        cost = training_cost(h, len(s.train), n_dev, s.epochs, s.speeds)
        out.append(Job(key, h, round_no, i, len(configs), cost, round_no == 1 and i == 1))
    return out


def schedule(*, executor: str, started: float, finished: float, device: str, queued_at: float,
             attempts: int = 1, load_s: float = 0.0) -> dict[str, Any]:
    """Where and when a training ran (the record's per-training ``schedule``): wall_s from its start to its result,
    load_s of it spent reading the student and data (a worker's first training), queue_s waiting for a slot
    (clocks of different hosts are compared: skew shows there)."""
    return {"executor": executor, "host": socket.gethostname(), "pid": os.getpid(), "device": device,
            "wall_s": round(finished - started, 3), "load_s": round(load_s, 3),
            "queue_s": round(max(0.0, started - queued_at), 3), "started": round(started, 3), "attempts": attempts}
