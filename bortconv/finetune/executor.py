"""Where a round's trainings run: in this process (``--executor local``) or as Ray tasks (``--executor ray``).

The driver keeps the Agora loop (mistakes, generation, teacher, pruning, replay); an executor only trains a round's
configurations and returns their results in the round's order. Every training is independent (a fresh model from
the source, its own derived seed, a pinned thread count), so where it runs does not change what it computes.

Both executors checkpoint each finished training in the work directory (:mod:`.checkpoint`) and, with
``--resume``, load a finished one instead of training it again. Ray itself is imported by :mod:`.ray_executor`
only, when ``--executor ray`` asks for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from bortconv.errors import InputError
from bortconv.finetune.jobs import Job, jobs_of, schedule
from bortconv.finetune.recipe import TrainResult, train_candidate
from bortconv.finetune.search import Hyper

if TYPE_CHECKING:
    from bortconv.finetune.agora import Search
    from bortconv.finetune.options import FinetuneOptions

log = logging.getLogger(__name__)


class LocalExecutor:
    """Today's behaviour: the round's trainings one after another, in this process."""

    name = "local"
    workers = 1
    max_retries = 0

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def info(self) -> dict[str, Any]:
        """The record's ``execution``: where this run's trainings ran."""
        return {"executor": self.name, "device": self.device, "workers": self.workers, "host": socket.gethostname(),
                "pid": os.getpid(), "cluster_resources": None, "max_retries": self.max_retries}

    def run_round(self, s: Search, configs: Sequence[Hyper], round_no: int) -> tuple[list[TrainResult], bool]:
        """Train every configuration of a round on D; (results in `configs` order, stopped by the budget)."""
        assert s.train is not None
        results: list[TrainResult] = []
        queued = time.time()
        for job in jobs_of(s, configs, round_no):
            res = s.work.load(job.key) if s.work is not None else None
            if res is None:
                if not job.must_run and time.perf_counter() + job.cost_s > s.deadline:
                    log.info("round %d: %s not started: the time budget would be exceeded", round_no,
                             job.hyper.label())
                    return results, True
                res = self._train(s, job, queued)
            else:
                s.progress.say(f"  round {round_no}: candidate {job.index}/{job.total} ({job.hyper.label()}) "
                               f"resumed from the work directory")
            results.append(res)
            if res.stopped_by_budget:
                return results, True
        return results, False

    def _train(self, s: Search, job: Job, queued: float) -> TrainResult:
        assert s.train is not None
        t0, started = time.perf_counter(), time.time()
        with s.progress.training(job.round_no, job.index, job.total, job.hyper):
            res = train_candidate(s.student, job.hyper, s.train, s.selection, epochs=s.epochs, run_seed=s.seed,
                                  deadline=s.deadline, feed=s.feed, patience=s.patience, device=self.device)
        s.timings["training_s"] += time.perf_counter() - t0
        res.schedule = schedule(executor=self.name, started=started, finished=time.time(), device=self.device,
                                queued_at=queued)
        if s.work is not None:
            s.work.save(job.key, res)
        return res

    def close(self) -> None:
        """Nothing to release (the Ray executor shuts down the Ray it started)."""
        return None


def local_device(device: str) -> str:
    """The device this process trains on: auto -> CUDA when torch sees it; cuda without it is bad input."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise InputError("device cuda: torch sees no CUDA device on this machine (torch "
                         f"{torch.__version__}); use device cpu, or a CUDA build of torch on a GPU machine",
                         option="device")
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


@contextlib.contextmanager
def open_executor(opts: FinetuneOptions) -> Iterator[LocalExecutor | Any]:
    """The executor `opts` asks for, connected (Ray: to --ray-address or a local Ray), closed afterwards."""
    if opts.executor == "local":
        yield LocalExecutor(local_device(opts.device))
        return
    from bortconv.finetune.ray_executor import RayExecutor

    # Ray's driver prints cluster events (e.g. "A worker died ...") on stdout, which is --json's: send them to stderr
    with contextlib.redirect_stdout(sys.stderr):
        ex = RayExecutor.connect(opts)
        try:
            yield ex
        finally:
            ex.close()
