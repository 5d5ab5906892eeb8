"""The Agora round loop (de Wynter, arXiv 2010.07990; the notes page *bort_algorithms_and_applications*)::

    Θ ← sampled configurations; D ← training set; E ← dev set
    repeat while Θ is not empty:
        train every θ in Θ on D, from the pretrained source        (one round)
        b ← best model of the round;  M ← points of E that b gets wrong
        if the best dev score stalled and a replay is left:        (the README's "replay")
            keep Θ as it is                                         (no pruning this round)
        else:
            remove from Θ the run of configurations tied with the worst score (at least one)
        if Θ is not empty:
            D ← D ∪ teacher-labelled(generate(M))
    return the best model seen in any round

``plain`` is the same search without teacher or generated data: one round (each θ trained once on D). Later
rounds would train the same θ on the same D and, training being deterministic, only repeat round 1.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bortconv.finetune.data import Example
from bortconv.finetune.determinism import derived_seed
from bortconv.finetune.encoding import Encoded, TextEncoder, one_hot
from bortconv.finetune.generate import Generator
from bortconv.finetune.progress import SearchProgress
from bortconv.finetune.recipe import Student, TrainResult, train_candidate
from bortconv.finetune.search import Hyper, Speeds, prune, training_cost
from bortconv.finetune.teacher import Teacher

log = logging.getLogger(__name__)


@dataclass
class Search:
    """Everything one search reads and grows: the student, D (grows), E, the teacher and generator."""

    student: Student
    encoder: TextEncoder
    labels: tuple[str, ...]
    train: Encoded
    dev: Encoded
    dev_examples: Sequence[Example]
    epochs: int
    seed: int
    speeds: Speeds
    deadline: float
    progress: SearchProgress
    teacher: Teacher | None = None
    generator: Generator | None = None
    per_mistake: int = 4
    max_generated: int = 256
    max_replays: int = 1
    soft_targets: bool = True
    seen: set[tuple[str, str | None]] = field(default_factory=set)
    timings: Counter[str] = field(default_factory=Counter)


@dataclass
class Outcome:
    """The search's result: the best candidate seen (with its trained state) and the log of every round."""

    best: TrainResult
    best_round: int
    best_train_size: int
    rounds: list[dict[str, Any]]
    trainings: int
    replays: int
    stopped_by_budget: bool


def _fits(s: Search, h: Hyper) -> bool:
    need = training_cost(h, len(s.train), len(s.dev), s.epochs, s.speeds)
    return time.perf_counter() + need <= s.deadline


def _train_round(s: Search, alive: Sequence[Hyper], round_no: int) -> tuple[list[TrainResult], bool]:
    """Train every configuration of the round; (results, stopped by the budget)."""
    results: list[TrainResult] = []
    for i, h in enumerate(alive, start=1):
        if (results or round_no > 1) and not _fits(s, h):
            log.info("round %d: %s not started: the time budget would be exceeded", round_no, h.label())
            return results, True
        t0 = time.perf_counter()
        with s.progress.training(round_no, i, len(alive), h):
            res = train_candidate(s.student, h, s.train, s.dev, epochs=s.epochs, run_seed=s.seed,
                                  deadline=s.deadline)
        s.timings["training_s"] += time.perf_counter() - t0
        results.append(res)
        if res.stopped_by_budget:
            return results, True
    return results, False


def _row(res: TrainResult) -> dict[str, Any]:
    return {"hyper": res.hyper.to_dict(), "dev_accuracy": res.dev.accuracy, "dev_loss": round(res.dev.loss, 5),
            "best_epoch": res.epoch, "seconds": round(res.seconds, 2), "steps": res.steps,
            "epochs": res.history, **({"stopped_by_budget": True} if res.stopped_by_budget else {})}


def _targets(s: Search, probs: np.ndarray) -> np.ndarray:
    if s.soft_targets:
        return probs
    return one_hot([s.labels[i] for i in probs.argmax(1)], {lab: i for i, lab in enumerate(s.labels)})


def augment(s: Search, best: TrainResult, round_no: int) -> dict[str, Any]:
    """Generate new points from the dev mistakes of `best`, label them with the teacher, add them to D."""
    assert s.generator is not None and s.teacher is not None
    wrong = np.flatnonzero(best.dev.predictions != s.dev.hard_labels)
    mistakes = [s.dev_examples[i] for i in wrong]
    rng = np.random.default_rng(derived_seed(s.seed, round_no, 0xA60A))
    t0 = time.perf_counter()
    made = s.generator(mistakes, s.per_mistake, rng) if mistakes else []
    fresh: list[Example] = []
    for ex in made:
        key = (ex.text, ex.text_b)
        if key not in s.seen:  # nothing already in D or E, and no repeats
            s.seen.add(key)
            fresh.append(ex)
    if len(fresh) > s.max_generated:
        keep = np.sort(rng.choice(len(fresh), size=s.max_generated, replace=False))
        fresh = [fresh[i] for i in keep]
    s.timings["generation_s"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    probs = s.teacher.probabilities(fresh) if fresh else np.zeros((0, len(s.labels)), np.float32)
    s.timings["teacher_s"] += time.perf_counter() - t0
    s.train.extend(s.encoder.encode(fresh, _targets(s, probs)))
    counts = Counter(s.labels[i] for i in probs.argmax(1)) if len(fresh) else Counter()
    return {"mistakes": len(mistakes), "generated": len(made), "added": len(fresh),
            "teacher_labels": dict(sorted(counts.items())),
            "teacher_mean_confidence": round(float(probs.max(1).mean()), 4) if len(fresh) else None,
            "examples": [{"text": e.text, **({"text_b": e.text_b} if e.text_b else {}),
                          "teacher_label": s.labels[int(p.argmax())]} for e, p in zip(fresh[:3], probs[:3])]}


def _replay_fits(s: Search, alive: Sequence[Hyper]) -> bool:
    """A replay is only started if the round it adds fits the time left (it is an extra, not the plan)."""
    n = len(s.train) + s.max_generated
    need = sum(training_cost(h, n, len(s.dev), s.epochs, s.speeds) for h in alive)
    return time.perf_counter() + need <= s.deadline


def _decide(s: Search, agora: bool, results: list[TrainResult], best_before: TrainResult | None,
            replays: int, alive: list[Hyper]) -> tuple[list[Hyper], list[Hyper], bool]:
    """(survivors, pruned, replay) after a round."""
    round_best = max(results, key=lambda r: (r.dev.accuracy, -r.dev.loss))
    stalled = best_before is not None and round_best.dev.accuracy <= best_before.dev.accuracy
    if agora and stalled and replays < s.max_replays and _replay_fits(s, alive):
        return list(alive), [], True
    scores = [(r.hyper, r.dev.accuracy) for r in results]
    survivors, pruned = prune(scores)
    return survivors, pruned, False


def run_search(s: Search, candidates: Sequence[Hyper], *, agora: bool) -> Outcome:
    """Run the rounds (see the module docstring) until Θ is empty or the budget is spent."""
    alive, rounds = list(candidates), []
    best: TrainResult | None = None
    best_round = best_size = trainings = replays = 0
    stopped = False
    round_no = 0
    while alive and not stopped:
        round_no += 1
        results, stopped = _train_round(s, alive, round_no)
        trainings += len(results)
        if not results:
            break
        before = best
        for res in results:
            if res.better_than(best):
                best, best_round, best_size = res, round_no, len(s.train)
        for res in results:
            if res is not best:
                res.state = None  # keep one trained state (the best so far), not one per candidate
        row: dict[str, Any] = {"round": round_no, "train_size": len(s.train), "trained": [_row(r) for r in results]}
        if stopped:
            row["stopped_by_budget"] = True
            rounds.append(row)
            break
        alive, pruned, replay = _decide(s, agora, results, before, replays, alive) if agora else ([], [], False)
        replays += replay
        row |= {"replay_next": replay, "pruned": [h.to_dict() for h in pruned], "left": len(alive)}
        if not agora:
            row["note"] = "plain: every configuration trained once on the training file; no later rounds"
        round_best = max(results, key=lambda r: (r.dev.accuracy, -r.dev.loss))
        if alive:
            row["augmentation"] = augment(s, round_best, round_no)
            s.progress.add_trainings(len(alive) if replay else 0)
        rounds.append(row)
        assert best is not None
        note = (f", +{row['augmentation']['added']} teacher-labelled" if alive else "") + \
               (" (stalled: replaying the round)" if replay else "")
        s.progress.round_done(round_no, left=len(alive), best=best.dev.accuracy,
                              round_best=round_best.dev.accuracy, train_size=len(s.train), note=note)
    assert best is not None  # the first training always runs (the budget was checked up front)
    return Outcome(best, best_round, best_size, rounds, trainings, replays, stopped)


def planned_trainings(n: int, agora: bool) -> int:
    """Trainings the search runs without replays: n for plain, n + (n-1) + ... + 1 for agora at most."""
    return n * (n + 1) // 2 if agora else n

