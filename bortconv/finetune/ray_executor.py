"""``--executor ray``: each training of a round is a Ray task asking for ``--threads`` CPUs (and one GPU with
``--device cuda``); Ray runs as many at once as the cluster's resources allow.

- The driver (this process) keeps the Agora loop; tasks get the student, the data and their configuration as files
  in the work directory (:mod:`.worker`) and write their trained state there.
- A task whose worker dies (killed, out of memory, node lost) or raises is retried by Ray up to :data:`MAX_RETRIES`
  times; a training that still fails stops the run (exit 1) naming its configuration. Nothing is dropped silently.
- Results come back in the round's order, so the Agora loop sees what the local executor would give it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bortconv.errors import InputError, MissingDependencyError, TrainingError, shown
from bortconv.finetune.checkpoint import result_from_dict, save_encoded
from bortconv.finetune.jobs import Job, jobs_of
from bortconv.finetune.recipe import TrainResult
from bortconv.finetune.search import Hyper

if TYPE_CHECKING:
    from bortconv.finetune.agora import Search
    from bortconv.finetune.options import FinetuneOptions

log = logging.getLogger(__name__)

#: Ray retries a training this many times after its first attempt (worker death or an exception), then the run stops
MAX_RETRIES = 2
EXTRA = "pip install 'bortconv[distributed]'"


def import_ray() -> Any:
    """Ray, or MissingDependencyError naming the extra."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(f"--executor ray needs Ray, which is not installed: {EXTRA}") from None
    return ray


def _slots(ray: Any, threads: int, gpu: bool) -> int:
    """How many trainings the cluster runs at once: per live node, its CPUs // --threads (and at most its GPUs)."""
    total = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        n = int(res.get("CPU", 0) // threads)
        total += min(n, int(res.get("GPU", 0))) if gpu else n
    return total


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """InputError when nothing answers at a HOST:PORT --ray-address: ray.init retries an unreachable head for
    minutes, printing warnings, before it gives up. "auto", "local" and names without a port are Ray's to resolve."""
    import socket

    if not address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the head "
                         f"with `ray start --head`, or check the address") from None


class RayExecutor:
    """Trainings as Ray tasks on a cluster (or a local Ray this run starts)."""

    name = "ray"
    max_retries = MAX_RETRIES

    def __init__(self, ray: Any, opts: FinetuneOptions, device: str, started_ray: bool) -> None:
        self.ray = ray
        self.address = opts.ray_address
        self.threads = opts.threads
        self.device = device
        self.started_ray = started_ray
        self.resources = {k: v for k, v in sorted(ray.cluster_resources().items()) if not k.startswith("node:")}
        self.nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.workers = _slots(ray, opts.threads, device == "cuda")
        self._remote: Any = None
        self._shared: dict[str, str] = {}

    @classmethod
    def connect(cls, opts: FinetuneOptions) -> RayExecutor:
        """Join --ray-address (or start a local Ray); check it can run a training with --threads and --device."""
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            _check_reachable(opts.ray_address)
            try:
                ray.init(address=opts.ray_address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"--ray-address {opts.ray_address}" if opts.ray_address else "a local Ray"
                raise InputError(f"{where}: cannot connect ({shown(str(exc).splitlines()[0] if str(exc) else '')})"
                                 ) from None
        try:
            return cls._checked(ray, opts, started)
        except BaseException:
            if started:
                ray.shutdown()
            raise

    @classmethod
    def _checked(cls, ray: Any, opts: FinetuneOptions, started: bool) -> RayExecutor:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if opts.device == "cuda" and not gpus:
            raise InputError("device cuda: the Ray cluster has no GPU; use device cpu or add GPU nodes",
                             option="device")
        device = "cuda" if opts.device == "cuda" or (opts.device == "auto" and gpus) else "cpu"
        ex = cls(ray, opts, device, started)
        if ex.workers < 1:
            raise InputError(f"threads {opts.threads}: no node of the Ray cluster has {opts.threads} CPUs"
                             f"{' and a GPU' if device == 'cuda' else ''} (cluster: {ex.resources})", option="threads")
        return ex

    def info(self) -> dict[str, Any]:
        """The record's ``execution``: the cluster as the run found it."""
        return {"executor": self.name, "device": self.device, "workers": self.workers, "address": self.address,
                "nodes": self.nodes, "cluster_resources": self.resources, "max_retries": self.max_retries,
                "ray": getattr(self.ray, "__version__", None)}

    def _remote_fn(self) -> Any:
        if self._remote is None:
            from bortconv.finetune.worker import run_job

            self._remote = self.ray.remote(num_cpus=self.threads, num_gpus=1 if self.device == "cuda" else 0,
                                           max_retries=MAX_RETRIES, retry_exceptions=True)(run_job)
        return self._remote

    def _settings(self, s: Search, round_no: int) -> dict[str, Any]:
        """What every task of the round reads: the shared files (written once per run, D once per round)."""
        from bortconv.finetune.worker import save_student

        assert s.work is not None and s.train is not None
        if not self._shared:
            save_student(s.student, s.work.path / "student")
            for name, data in (("selection", s.selection), ("feed", s.feed)):
                save_encoded(s.work.path / "data" / f"{name}.npz", data)
                self._shared[name] = str(s.work.path / "data" / f"{name}.npz")
            self._shared["student"] = str(s.work.path / "student")
        train = s.work.path / "rounds" / f"{round_no}-train.npz"
        save_encoded(train, s.train)
        return {**self._shared, "train": str(train), "trainings": str(s.work.trainings), "epochs": s.epochs,
                "seed": s.seed, "patience": s.patience, "threads": self.threads, "device": self.device,
                "deadline": time.time() + (s.deadline - time.perf_counter())}

    def run_round(self, s: Search, configs: Sequence[Hyper], round_no: int) -> tuple[list[TrainResult], bool]:
        """Submit the round's unfinished trainings at once; gather them in order (the local executor's result)."""
        assert s.work is not None
        jobs = jobs_of(s, configs, round_no)
        done = {j.key: r for j in jobs if (r := s.work.load(j.key)) is not None}
        t0 = time.perf_counter()
        refs: dict[str, Any] = {}
        if len(done) < len(jobs):
            settings, remote = self._settings(s, round_no), self._remote_fn()
            refs = {j.key: remote.remote(settings, j.to_dict(), time.time()) for j in jobs if j.key not in done}
        try:
            return self._gather(s, jobs, done, refs)
        finally:
            for ref in refs.values():  # what is still queued or running after a stop or a failure
                self.ray.cancel(ref, force=True)
            s.timings["training_s"] += time.perf_counter() - t0

    def _gather(self, s: Search, jobs: list[Job], done: dict[str, TrainResult],
                refs: dict[str, Any]) -> tuple[list[TrainResult], bool]:
        results: list[TrainResult] = []
        for job in jobs:
            res = done.get(job.key) or self._get(s, job, refs.pop(job.key))
            if res is None:
                log.info("round %d: %s not started: the time budget would be exceeded", job.round_no,
                         job.hyper.label())
                return results, True
            word = "resumed from the work directory" if job.key in done else \
                f"on {res.schedule.get('host')} pid {res.schedule.get('pid')}" if res.schedule else ""
            s.progress.say(f"  round {job.round_no}: candidate {job.index}/{job.total} ({job.hyper.label()}) {word}")
            results.append(res)
            if res.stopped_by_budget:
                return results, True
        return results, False

    def _get(self, s: Search, job: Job, ref: Any) -> TrainResult | None:
        assert s.work is not None
        try:
            doc = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise TrainingError(f"training {job.hyper.label()} (round {job.round_no}) failed {MAX_RETRIES + 1} times "
                              f"({type(exc).__name__}: {shown(cause, 160)}); the finished trainings are kept in "
                              f"{s.work.path}: fix the cause and run the same command with --resume") from None
        if doc is None:
            return None
        state = s.work.trainings / f"{job.key}.safetensors"
        return result_from_dict(doc, state if state.is_file() else None)

    def close(self) -> None:
        """Shut down the Ray this run started (a cluster it joined keeps running)."""
        if self.started_ray:
            self.ray.shutdown()
