"""Measurement shared by every stage: model inputs (feeds), interleaved latency, and the measured-choice rule.

A leaf: the OpenVINO route (converters), the int8 scheme (quantize), parity and `bortconv bench` (validate)
are all chosen or judged by measurement, so timing and feeds sit below them all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: A model run: feeds keyed by input name (int64 arrays) -> its output. Every runner in bortconv has this type.
Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, length: int | None = None,
              with_types: bool = False, type_rows: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Right-pad id lists into input_ids/attention_mask (and token_type_ids: zeros, or `type_rows`) int64 arrays."""
    n = length or max(len(r) for r in rows)
    ids = np.full((len(rows), n), pad_id, np.int64)
    mask = np.zeros((len(rows), n), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        types = np.zeros_like(ids)
        for i, t in enumerate(type_rows or ()):
            types[i, :len(t)] = t
        feeds["token_type_ids"] = types
    return feeds


#: the shape exports and int8 candidates are timed at (batch, length), cut to a shorter model's positions
TIMING_SHAPE = (1, 128)


def timing_shape(positions: int) -> tuple[int, int]:
    """TIMING_SHAPE, cut to the model's positions: a 64-position model is timed at 1x64, not run past its end."""
    return TIMING_SHAPE[0], min(TIMING_SHAPE[1], positions)


def make_feeds(lengths: Sequence[int], length: int, vocab_size: int, pad_id: int, seed: int,
               with_types: bool, special: tuple[int, int] = (0, 2)) -> dict[str, np.ndarray]:
    """A batch of random token ids (first token BOS, last valid token EOS), right-padded with pad_id."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        row = rng.integers(min(4, vocab_size - 1), vocab_size, size=n).tolist()
        row[0] = special[0]
        if n > 1:
            row[-1] = special[1]
        rows.append(row)
    return pad_batch(rows, pad_id, length, with_types)


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    p99_ms: float
    runs: int
    spread: float  # (p90 - min) / median: a wide spread means a noisy machine
    rounds_ms: tuple[float, ...] = ()  # the median of each interleaved round (what a measured choice compares)

    def to_dict(self) -> dict[str, float]:
        return {"median_ms": round(self.median_ms, 3), "p90_ms": round(self.p90_ms, 3),
                "p99_ms": round(self.p99_ms, 3), "runs": self.runs, "spread": round(self.spread, 3)}


def summarize(times_ms: list[float], rounds: Sequence[Sequence[float]] = ()) -> Latency:
    """Median, p90, p99 and spread of a list of latencies (ms); `rounds`: the same samples by round."""
    arr = np.array(times_ms)
    med = float(np.median(arr))
    return Latency(median_ms=med, p90_ms=float(np.percentile(arr, 90)), p99_ms=float(np.percentile(arr, 99)),
                   runs=len(times_ms), spread=float((np.percentile(arr, 90) - arr.min()) / med) if med else 0.0,
                   rounds_ms=tuple(float(np.median(r)) for r in rounds if len(r)))


#: A measured choice between options timed in one run keeps the preferred one unless another is faster by at
#: least this fraction and this many ms, and faster in every round of the run. Within that margin they are timing
#: noise apart, and letting noise decide would make the same input give different artifacts from run to run
#: (reproducible exports). "Every round" is what holds under load: a burst of other work on a shared machine slows
#: whichever option is running then, which can move a median by 15% but not every round's.
CLEAR_GAIN = 0.15
CLEAR_GAIN_MS = 0.5
KEEP_RULE = (f"the preferred option unless another was at least {CLEAR_GAIN:.0%} and {CLEAR_GAIN_MS} ms faster in "
             f"the same interleaved run, and faster in each of its rounds")


def clearly_faster(candidate_ms: float, incumbent_ms: float, candidate_rounds: Sequence[float] = (),
                   incumbent_rounds: Sequence[float] = ()) -> bool:
    """Whether `candidate_ms` beats `incumbent_ms` by more than timing noise (see :data:`CLEAR_GAIN`). With the
    per-round medians of both (same run, same rounds), the candidate must also be faster in every round."""
    if not (candidate_ms <= incumbent_ms * (1 - CLEAR_GAIN) and incumbent_ms - candidate_ms >= CLEAR_GAIN_MS):
        return False
    if not (candidate_rounds and incumbent_rounds):
        return True
    return all(c < i for c, i in zip(candidate_rounds, incumbent_rounds, strict=True))


def keep_preferred(ms_by_option: Mapping[str, float],
                   rounds_by_option: Mapping[str, Sequence[float]] | None = None) -> str:
    """The option to keep of those timed, given in preference order: the first, replaced by a later one only
    when that one is clearly faster than the current choice (in every round, when `rounds_by_option` is given)."""
    rounds = rounds_by_option or {}
    options = list(ms_by_option)
    kept = options[0]
    for option in options[1:]:
        if clearly_faster(ms_by_option[option], ms_by_option[kept], rounds.get(option, ()), rounds.get(kept, ())):
            kept = option
    return kept


def confirmed_choice(timed: Mapping[str, Latency],
                     retime: Callable[[list[str]], Mapping[str, Latency]]) -> tuple[str, dict[str, object]]:
    """The option to keep: :func:`keep_preferred` on `timed` (options in preference order), and a choice other
    than the preferred option is timed again against it in a second interleaved run (`retime`) and kept only if
    it is clearly faster there too. On a loaded machine one run can be fooled (measured: the same two int8 schemes
    of a tiny model at 14.0/16.0 ms in one export and 6.8/3.3 ms in the next); two independent runs rarely are.
    Returns the option and a record of the decision for the manifest."""
    first = keep_preferred({k: v.median_ms for k, v in timed.items()}, {k: v.rounds_ms for k, v in timed.items()})
    preferred = next(iter(timed))
    if first == preferred:
        return preferred, {"rule": KEEP_RULE, "kept": preferred}
    again = retime([preferred, first])
    confirmed = clearly_faster(again[first].median_ms, again[preferred].median_ms, again[first].rounds_ms,
                               again[preferred].rounds_ms)
    record = {"rule": KEEP_RULE + "; a departure from the preferred option is confirmed by a second run",
              "first_run_choice": first, "confirmed": confirmed,
              "second_run_ms": {k: round(again[k].median_ms, 3) for k in (preferred, first)},
              "second_run_rounds_ms": {k: [round(r, 3) for r in again[k].rounds_ms] for k in (preferred, first)}}
    kept = first if confirmed else preferred
    return kept, record | {"kept": kept}


#: pause before each candidate's block (ONNX Runtime's spinning worker threads go idle after ~35 ms, measured)
SETTLE_S = 0.06


def interleave(fns: Mapping[str, Callable[[], object]], *, rounds: int = 5, runs_per_round: int = 4,
               warmup: int = 2, budget_s: float = math.inf, turn_s: float = math.inf, gap_s: float = SETTLE_S,
               min_rounds: int = 3) -> dict[str, Latency]:
    """Time several zero-argument callables in alternating rounds, so drift on a shared machine hits them alike.

    Each candidate is called `warmup` times untimed (at least once, which also measures its cost). Every round
    then gives each candidate a turn, starting from the next candidate in turn (no fixed order to favour
    one). A turn idles `gap_s` first: ONNX Runtime's and OpenMP's workers keep spinning after a call (ORT's
    ~35 ms), and on two cores the previous candidate's spinning pool would be timed as this one's slowness.
    A cheap candidate's turn starts with one untimed call (its own pool wakes up and its weights return to
    the caches, as in a service that runs only that model), then runs up to `runs_per_round` times, as many
    as fit in `turn_s`: slow candidates (BERT-large eager) run once a turn. Rounds stop after `budget_s`
    once `min_rounds` have run.
    """
    cost: dict[str, float] = {}
    for name, fn in fns.items():
        for _ in range(max(warmup, 1)):
            t0 = time.perf_counter()
            fn()
            cost[name] = time.perf_counter() - t0
    per_turn = {name: runs_per_round if math.isinf(turn_s) else max(1, min(runs_per_round, int(turn_s / max(c, 1e-6))))
                for name, c in cost.items()}
    samples: dict[str, list[list[float]]] = {k: [] for k in fns}  # per round
    names = list(fns)
    start = time.perf_counter()
    for r in range(rounds):
        if r >= min_rounds and time.perf_counter() - start > budget_s:
            break
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            samples[name].append([])
            time.sleep(gap_s)
            if cost[name] < turn_s / 4:
                fn()
            for _ in range(per_turn[name]):
                t0 = time.perf_counter()
                fn()
                samples[name][-1].append((time.perf_counter() - t0) * 1e3)
    return {name: summarize([t for r in rounds_ for t in r], rounds_) for name, rounds_ in samples.items()}


def interleaved(fns: Mapping[str, Runner], feeds: Mapping[str, np.ndarray], *, rounds: int = 5,
                runs_per_round: int = 4) -> dict[str, Latency]:
    """:func:`interleave` of runners on one set of feeds: the timing behind every measured choice at export."""
    return interleave({name: (lambda fn=fn: fn(feeds)) for name, fn in fns.items()}, rounds=rounds,
                      runs_per_round=runs_per_round)
