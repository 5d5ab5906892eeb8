"""Latency measurement shared by export's speed summary and `bortconv bench`: warm-up, repeats, median."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    p99_ms: float
    runs: int
    spread: float  # (p90 - min) / median: a wide spread means a noisy machine

    def to_dict(self) -> dict[str, float]:
        return {"median_ms": round(self.median_ms, 3), "p90_ms": round(self.p90_ms, 3),
                "p99_ms": round(self.p99_ms, 3), "runs": self.runs, "spread": round(self.spread, 3)}


#: A measured choice between options timed in one run keeps the preferred one unless another is faster by at
#: least this fraction and this many ms. Within that margin they are timing noise apart, and letting noise
#: decide would make the same input give different artifacts from run to run (reproducible exports).
CLEAR_GAIN = 0.15
CLEAR_GAIN_MS = 0.5
KEEP_RULE = (f"the preferred option unless another was at least {CLEAR_GAIN:.0%} and {CLEAR_GAIN_MS} ms faster in "
             f"the same run")


def clearly_faster(candidate_ms: float, incumbent_ms: float) -> bool:
    """Whether `candidate_ms` beats `incumbent_ms` by more than timing noise (see :data:`CLEAR_GAIN`)."""
    return candidate_ms <= incumbent_ms * (1 - CLEAR_GAIN) and incumbent_ms - candidate_ms >= CLEAR_GAIN_MS


def keep_preferred(ms_by_option: Mapping[str, float]) -> str:
    """The option to keep of those timed, given in preference order: the first, replaced by a later one only
    when that one is clearly faster than the current choice."""
    options = list(ms_by_option)
    kept = options[0]
    for option in options[1:]:
        if clearly_faster(ms_by_option[option], ms_by_option[kept]):
            kept = option
    return kept


def measure(fn: Callable[[Mapping[str, np.ndarray]], object], feeds: Mapping[str, np.ndarray], *,
            warmup: int = 3, runs: int = 20, max_seconds: float = 30.0) -> Latency:
    """Call `fn(feeds)` `warmup` times untimed, then up to `runs` times (stopping after `max_seconds`)."""
    for _ in range(warmup):
        fn(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (time.perf_counter() - start < max_seconds or len(times) < 3):
        t0 = time.perf_counter()
        fn(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return summarize(times)


def summarize(times_ms: list[float]) -> Latency:
    """Median, p90, p99 and spread of a list of latencies (ms)."""
    arr = np.array(times_ms)
    med = float(np.median(arr))
    return Latency(median_ms=med, p90_ms=float(np.percentile(arr, 90)), p99_ms=float(np.percentile(arr, 99)),
                   runs=len(times_ms), spread=float((np.percentile(arr, 90) - arr.min()) / med) if med else 0.0)


#: pause before each candidate's block in :func:`interleaved` (ORT's spinning threads go idle after ~35 ms)
SETTLE_S = 0.06


def interleaved(fns: Mapping[str, Callable[[Mapping[str, np.ndarray]], object]], feeds: Mapping[str, np.ndarray],
                *, rounds: int = 5, runs_per_round: int = 4) -> dict[str, Latency]:
    """Measure several callables in alternating rounds, so drift on a shared machine hits them alike.

    Each round starts from the next candidate in turn (no fixed order to favour one). Before a candidate's
    block the harness pauses SETTLE_S and makes one untimed call: ONNX Runtime's worker threads keep spinning
    for ~35 ms after a run returns (measured), which slowed whichever candidate came next, and the first call
    after a switch runs with the other model's weights in the caches; a deployed model runs alone and warm."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for fn in fns.values():
        for _ in range(2):
            fn(feeds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            time.sleep(SETTLE_S)
            fn(feeds)
            for _ in range(runs_per_round):
                t0 = time.perf_counter()
                fn(feeds)
                samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: summarize(times) for name, times in samples.items()}


