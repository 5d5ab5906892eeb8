"""The Agora round loop (de Wynter, arXiv 2010.07990; the notes page *bort_algorithms_and_applications*), built
so that it contains plain fine-tuning::

    dev  = S (selection: scores epochs and models, never seen by the generator) + F (mistakes: feeds the generator)
    Θ ← plain's sample (stratified over the learning rate, sized to round 1's share of the budget); D ← --train
    round 1: train every θ in Θ on D                                      (exactly plain's search)
    if the teacher is not more accurate on dev (S + F) than round 1's best:
        round 2 extends plain's search: the next configurations of its seeded order that fit the time left (no
        budget: as many as round 1), on --train; return the best of rounds 1 and 2 by plain's rule (S accuracy,
        then S loss)                                                                               (see below)
    repeat while Θ is not empty and a training fits the time left:
        b ← the last round's best model (by S);  M ← the points of F that b gets wrong
        G ← generate(M), then (--generate-from both, the default) generate(--train) up to max_generated
        D ← --train ∪ teacher-labelled(G), synthetic points at most synthetic_ratio (3) x |--train|, and at most
            what lets the next round's best-ranked θ train in the time left (a smaller D rather than no round)
            (--synthetic-filter agree: only points the teacher labels as their source point's gold label)
        if the last round stalled and a replay is left: keep Θ             (the README's "replay")
        else: remove from Θ the run tied with the worst S score (at least one)
        train the best-ranked θ of Θ that fit the time left on D, from the pretrained source
    return round 1's best, unless a later round's best is *clearly* better on S (a sign test, below)

Round 1 is plain's search, trained on the same data with the same seeds, so plain's model is one of Agora's
candidates; the result can only differ from plain's if a later model is clearly better on S, a split the generated
data never came from. "Clearly": on the S examples where the two models disagree about being right, the later one is
right so much more often that a coin would do it with probability at most :data:`.search.SWITCH_P` (one-sided
exact sign test, :func:`.search.sign_test`). A later model one S example ahead, which on small dev splits is most
later rounds that "win", is noise: with "any higher S accuracy" as the rule, benchmarks/bench_agora.py measured
Agora losing to plain on held-out test splits (docs/finetune.md, "Measured"). ``plain`` stops after round 1.

Why the teacher is asked first: Agora's later rounds teach the student through the teacher's labels, and a teacher
no more accurate than the student on data both are scored on cannot add what the student lacks (the notes page
only asks for an "ok-ish" teacher above 2/3; this check is bortconv's). Its later rounds would then spend the rest
of the budget on noisier data, where more of plain's own configurations are a better use of it (docs/finetune.md
measures both).

:func:`train_all` is the one call that trains a round's configurations; it hands them to the search's executor
(:mod:`.executor`: this process, or Ray tasks). With a work directory (:mod:`.checkpoint`) each round's
configurations and each finished training are checkpointed, and a resumed run replays the loop, loading what is done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bortconv.finetune.checkpoint import encoded_digest
from bortconv.finetune.data import Example
from bortconv.finetune.determinism import derived_seed
from bortconv.finetune.encoding import Encoded, TextEncoder, one_hot
from bortconv.finetune.executor import LocalExecutor
from bortconv.finetune.generate import Generator, negation_words
from bortconv.finetune.progress import SearchProgress
from bortconv.finetune.recipe import Student, TrainResult
from bortconv.finetune.search import (PLAN_SHARE, SWITCH_P, Hyper, Speeds, makespan, prune, sign_test,
                                      training_cost)
from bortconv.finetune.teacher import Teacher

if TYPE_CHECKING:
    from bortconv.finetune.checkpoint import WorkDir

log = logging.getLogger(__name__)


@dataclass
class Search:
    """Everything one search reads and grows: the student, D (rebuilt each round), S and F, teacher, generator."""

    student: Student
    encoder: TextEncoder
    labels: tuple[str, ...]
    real: Encoded  # the training file
    selection: Encoded  # S: scores epochs and candidates; never given to the generator
    feed: Encoded  # F: its mistakes feed the generator
    feed_examples: Sequence[Example]
    epochs: int
    seed: int
    speeds: Speeds
    deadline: float
    progress: SearchProgress
    patience: int | None = 3
    teacher: Teacher | None = None
    generator: Generator | None = None
    per_mistake: int = 4
    max_generated: int = 256
    max_replays: int = 1
    soft_targets: bool = True
    synthetic_ratio: float = 3.0
    keep: str = "all"  # "all": every point, on the teacher's targets; "agree": only those it labels as the source
    train_examples: Sequence[Example] = ()  # generated from after F's mistakes (--generate-from both); () none
    seen: set[tuple[str, str | None]] = field(default_factory=set)
    timings: Counter[str] = field(default_factory=Counter)
    pool: list[tuple[Example, np.ndarray]] = field(default_factory=list)  # synthetic points in D, with targets
    train: Encoded | None = None  # D: real + pool
    executor: Any = field(default_factory=LocalExecutor)  # runs a round's trainings (.executor)
    work: WorkDir | None = None  # checkpoints (.checkpoint); None: nothing kept, nothing resumed
    digest: str = ""  # of D, as the round being trained has it
    teacher_dev: float | None = None  # the teacher's accuracy on dev (S + F); None: not measured (no extension)
    more: Sequence[Hyper] = ()  # plain's seeded order after its sample, up to --max-candidates: round 1 extended

    def __post_init__(self) -> None:
        if self.train is None:
            self.train = self.real


@dataclass
class Outcome:
    """The search's result: the kept candidate (with its trained state), why it was kept, and every round."""

    best: TrainResult
    best_round: int
    best_train_size: int
    rounds: list[dict[str, Any]]
    trainings: int
    replays: int
    stopped_by_budget: bool
    why: str = ""
    round1_best: TrainResult | None = None


def _cost(s: Search, h: Hyper) -> float:
    assert s.train is not None
    return training_cost(h, len(s.train), len(s.selection) + len(s.feed), s.epochs, s.speeds)


def train_all(s: Search, configs: Sequence[Hyper], round_no: int) -> tuple[list[TrainResult], bool]:
    """Train every configuration of a round on D; (results in `configs` order, stopped by the budget).

    The single place a round's trainings run: each is independent (fresh model from the pretrained source, its
    own derived seed), so the executor may run them in parallel; it returns the same list."""
    return s.executor.run_round(s, configs, round_no)  # type: ignore[no-any-return]


def _configs(s: Search, round_no: int, proposed: list[Hyper]) -> list[Hyper]:
    """Round `round_no`'s configurations (D already built): a resumed run takes the checkpointed ones."""
    assert s.train is not None
    s.digest = encoded_digest(s.train)
    return s.work.round_configs(round_no, proposed, s.digest) if s.work is not None else proposed


def _drop_state(s: Search, res: TrainResult) -> None:
    if s.work is not None:
        s.work.drop_state(res)
    res.state = None


def _row(res: TrainResult) -> dict[str, Any]:
    return {"hyper": res.hyper.to_dict(), "selection_accuracy": res.dev.accuracy,
            "selection_loss": round(res.dev.loss, 5),
            "feed_accuracy": None if res.feed is None else res.feed.accuracy,
            "best_epoch": res.epoch, "epochs_run": len(res.history), "early_stopped": res.early_stopped,
            "seconds": round(res.seconds, 2), "epochs": res.history,
            **({"stopped_by_budget": True} if res.stopped_by_budget else {}),
            **({"schedule": res.schedule} if res.schedule is not None else {})}


def _targets(s: Search, probs: np.ndarray) -> np.ndarray:
    if s.soft_targets:
        return probs
    return one_hot([s.labels[i] for i in probs.argmax(1)], {lab: i for i, lab in enumerate(s.labels)})


def _generate(s: Search, mistakes: Sequence[Example], rng: np.random.Generator,
              most: int) -> tuple[list, int, int]:
    """New points, each with its source: ([(example, source)], made before de-duplication, how many came from
    mistakes). F's mistakes first; then (--generate-from both) the training file's points fill what is left of
    `most` (max_generated, or less when D must be smaller to fit the time), so the teacher also labels points near
    everything the student learns from. Only as many training points as can fill that room are varied (a seeded
    sample): the generator (an MLM forward pass per point for Bort) does no work the cap would throw away."""
    made, count = _near(s, mistakes, most, rng)
    room = most - len(made)
    if not s.train_examples or room <= 0:
        return made, count, len(made)
    n = min(len(s.train_examples), -(-room // s.per_mistake))  # ceil(room / per point)
    sources = [s.train_examples[i] for i in np.sort(rng.choice(len(s.train_examples), n, replace=False))]
    more, more_count = _near(s, sources, room, rng)
    return made + more, count + more_count, len(made)


def _near(s: Search, sources: Sequence[Example], room: int, rng: np.random.Generator) -> tuple[list, int]:
    """Up to `room` new points near `sources` (a seeded sample if more), with their sources; and how many made."""
    assert s.generator is not None
    made, count = [], 0
    for src in sources:  # one call per source point, so each new point knows the gold label it came from
        out = s.generator([src], s.per_mistake, rng)
        count += len(out)
        for ex in out:
            if (ex.text, ex.text_b) not in s.seen:  # nothing already in D or dev, and no repeats
                s.seen.add((ex.text, ex.text_b))
                made.append((ex, src))
    if len(made) > room:
        made = [made[i] for i in np.sort(rng.choice(len(made), size=room, replace=False))]
    return made, count


def _wrong(s: Search, res: TrainResult) -> np.ndarray:
    """Indices of the F points `res` gets wrong: the mistakes Agora's generator varies."""
    assert res.feed is not None
    return np.flatnonzero(res.feed.predictions != s.feed.hard_labels)


def ratio_cap(s: Search) -> int:
    """The most synthetic points D holds: synthetic_ratio x |real|."""
    return int(s.synthetic_ratio * len(s.real))


def least_synthetic(s: Search) -> int:
    """The fewest synthetic points worth a later round: a quarter of the training file (or the ratio's cap, if
    smaller)."""
    return min(ratio_cap(s), len(s.real) // 4)


def synthetic_room(s: Search, h: Hyper, mistakes: int = 0) -> int | None:
    """How many synthetic points D may hold next round: synthetic_ratio x |real|, or fewer if making them and
    training `h` (the best-ranked configuration left) on a D that large would not fit PLAN_SHARE of the time left
    (the planner's margin for estimation error). Making them: the generator varies each of the `mistakes` F points
    and then training-file points up to the round's new points (at most max_generated), and the teacher labels the
    new points. None when not even :func:`least_synthetic` fits: then no later round runs. A smaller D rather than
    no round: a later round at the full cap costs (1 + synthetic_ratio) x a round-1 training, which round 1's
    share of a small budget often leaves no room for."""
    cap = ratio_cap(s)
    if not np.isfinite(s.deadline):
        return cap
    left = PLAN_SHARE * (s.deadline - time.perf_counter())
    n_dev = len(s.selection) + len(s.feed)

    def fits(n: int) -> bool:
        new = min(n, s.max_generated)
        make = (s.speeds.generate_s_per_example * max(new, mistakes * s.per_mistake)
                + s.speeds.teacher_s_per_example * new)
        train = training_cost(h, len(s.real) + n, n_dev, s.epochs, s.speeds)
        return make + makespan([train], s.executor.workers) <= left

    if fits(cap):
        return cap
    lo, hi = 0, cap  # fits(lo) or lo == 0; not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo if lo >= least_synthetic(s) else None


def _rebuild(s: Search, fresh: list[tuple[Example, np.ndarray]], rng: np.random.Generator, cap: int) -> int:
    """Add `fresh` to the synthetic pool, cap the pool at `cap` points (the newest first, then a seeded sample of
    older ones) and rebuild D; how many points the cap dropped."""
    older = s.pool
    pool = fresh[:cap] if len(fresh) <= cap else [fresh[i] for i in np.sort(rng.choice(len(fresh), cap, False))]
    room = cap - len(pool)
    if room > 0 and older:
        pick = np.sort(rng.choice(len(older), size=min(room, len(older)), replace=False))
        pool = [older[i] for i in pick] + pool
    dropped = len(older) + len(fresh) - len(pool)
    s.pool = pool
    if not pool:
        s.train = s.real
        return dropped
    syn = s.encoder.encode([e for e, _ in pool], np.stack([t for _, t in pool]).astype(np.float32))
    s.train = Encoded(list(s.real.ids), None if s.real.types is None else list(s.real.types),
                      s.real.targets.copy())
    s.train.extend(syn)
    return dropped


def augment(s: Search, best: TrainResult, round_no: int, cap: int) -> dict[str, Any]:
    """Generate points from the F mistakes of `best`, label them with the teacher, filter, cap the synthetic
    pool at `cap` points (:func:`synthetic_room`), rebuild D."""
    assert s.teacher is not None
    mistakes = [s.feed_examples[i] for i in _wrong(s, best)]
    rng = np.random.default_rng(derived_seed(s.seed, round_no, 0xA60A))
    t0 = time.perf_counter()
    made, raw, from_mistakes = _generate(s, mistakes, rng, min(s.max_generated, cap))
    s.timings["generation_s"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    examples = [e for e, _ in made]
    probs = s.teacher.probabilities(examples) if made else np.zeros((0, len(s.labels)), np.float32)
    s.timings["teacher_s"] += time.perf_counter() - t0
    index = {lab: i for i, lab in enumerate(s.labels)}
    source = np.array([index[str(src.label)] for _, src in made], dtype=np.int64)
    agree = probs.argmax(1) == source if made else np.zeros(0, bool)
    keep = agree if s.keep == "agree" else np.ones(len(made), bool)
    targets = _targets(s, probs)
    fresh = [(examples[i], targets[i]) for i in np.flatnonzero(keep)]
    dropped_by_cap = _rebuild(s, fresh, rng, cap)
    conf = probs.max(1) if made else np.zeros(0)
    negated = sum(negation_words(e) != negation_words(src) for e, src in made)
    assert s.train is not None
    return {"mistakes": len(mistakes), "generated": raw, "new": len(made), "new_from_mistakes": from_mistakes,
            "new_from_training_file": len(made) - from_mistakes,
            "teacher_agrees_with_source": round(float(agree.mean()), 4) if made else None,
            "teacher_mean_confidence": round(float(conf.mean()), 4) if made else None,
            "teacher_mean_confidence_agreeing": round(float(conf[agree].mean()), 4) if agree.any() else None,
            "negation_words_changed": int(negated), "kept": len(fresh), "dropped_disagreeing": int((~keep).sum()),
            "synthetic_cap": cap, "dropped_by_cap": dropped_by_cap, "synthetic_in_training_set": len(s.pool),
            "synthetic_share": round(len(s.pool) / len(s.train), 4),
            "teacher_labels": dict(sorted(Counter(s.labels[i] for i in probs.argmax(1)).items())) if made else {},
            "examples": [{"text": e.text, **({"text_b": e.text_b} if e.text_b else {}),
                          "source": src.text, "source_label": src.label,
                          "teacher_label": s.labels[int(p.argmax())]} for (e, src), p in zip(made[:3], probs[:3])]}


def _key(r: TrainResult) -> tuple[float, float]:
    return (r.dev.accuracy, -r.dev.loss)


def _fitting(s: Search, ranked: Sequence[Hyper]) -> list[Hyper]:
    """The best-ranked configurations whose trainings together fit the time left."""
    out: list[Hyper] = []
    costs: list[float] = []
    now = time.perf_counter()
    for h in ranked:
        costs.append(_cost(s, h))
        if now + makespan(costs, s.executor.workers) > s.deadline:
            break
        out.append(h)
    return out


def _why_extended(best: TrainResult, best_round: int, rounds: list[dict[str, Any]], n_sel: int,
                  budgeted: bool) -> str:
    """Why the result was kept when the teacher check extended plain's search (round 1's row has the check)."""
    check = rounds[0]["teacher_check"]
    n = len(rounds[1]["trained"]) if len(rounds) > 1 else 0
    head = (f"the teacher ({check['teacher_dev_accuracy']:.4f} on dev) was no more accurate than round 1's best "
            f"({check['round1_best_dev_accuracy']:.4f}), so Agora's rounds did not run")
    if not n:
        return (f"{head}, and no further configuration of plain's order "
                f"{'fitted the time left' if budgeted else 'was left'}: the result is round 1's, plain's model")
    return (f"{head}; round 2 extended plain's search by {n} configuration{'s' * (n != 1)}, and the result is the "
            f"best of rounds 1 and 2 on the selection split ({n_sel} examples, plain's rule): round {best_round}'s "
            f"{best.hyper.label()} ({best.dev.accuracy:.4f})")


def _why(best: TrainResult, best_round: int, first: TrainResult, n_sel: int) -> str:
    if best_round == 1:
        return (f"no later round was clearly better than round 1's best on the selection split "
                f"({first.dev.accuracy:.4f}, {n_sel} examples; sign test p <= {SWITCH_P}): the result is round 1's, "
                f"plain's model")
    return (f"round {best_round}'s {best.hyper.label()} scored {best.dev.accuracy:.4f} on the selection split "
            f"({n_sel} examples, never seen by the generator), clearly above the kept model (round 1's best "
            f"{first.dev.accuracy:.4f}; sign test p <= {SWITCH_P})")


def _round_row(s: Search, round_no: int, results: list[TrainResult], planned: float, spent: float) -> dict:
    assert s.train is not None
    return {"round": round_no, "train_size": len(s.train), "synthetic": len(s.pool),
            "synthetic_share": round(len(s.pool) / len(s.train), 4), "planned_s": round(planned, 1),
            "spent_s": round(spent, 1), "trained": [_row(r) for r in results],
            "round_best": _row(max(results, key=_key))["hyper"] if results else None}


def run_search(s: Search, candidates: Sequence[Hyper], *, agora: bool) -> Outcome:
    """Round 1 (plain's search), then Agora's rounds while configurations are left and fit the time (or, when the
    teacher is no more accurate than round 1's best, round 2 extending plain's search)."""
    rounds: list[dict[str, Any]] = []
    alive, round_no, trainings, replays = _configs(s, 1, list(candidates)), 0, 0, 0
    kept: list[Any] = [None, None, 0, 0]  # best, first (round 1's best), best's round, best's training-set size
    last: TrainResult | None = None
    stopped = extended = False
    while alive and not stopped:
        round_no += 1
        planned = makespan([_cost(s, h) for h in alive], s.executor.workers)
        t0 = time.perf_counter()
        results, stopped = train_all(s, alive, round_no)
        trainings += len(results)
        if not results:
            rounds.append({"round": round_no, "trained": [], "note": "nothing fitted the time left"})
            break
        row = _round_row(s, round_no, results, planned, time.perf_counter() - t0)
        last = max(results, key=_key)
        _keep(s, kept, last, round_no, row, extended)
        best, first = kept[0], kept[1]
        for res in results:
            if res is not best and res is not first:
                _drop_state(s, res)  # keep the kept model's state (and round 1's), not one per candidate
        stalled = round_no > 1 and last is not best
        ranked = [r.hyper for r in sorted(results, key=_key, reverse=True)]
        if not agora or stopped or extended:
            row["note"] = ("plain: round 1 is the whole search" if not agora else "stopped by the time budget"
                           if stopped else "round 2 extended plain's search; Agora's rounds did not run")
            rounds.append(row)
            s.progress.round_done(round_no, left=0, best=best.dev.accuracy, round_best=last.dev.accuracy,
                                  train_size=len(s.train or ()))
            break
        extended = round_no == 1 and _teacher_behind(s, first, row)
        if extended:
            alive = _extension(s, row, len(results))
        else:
            replay = stalled and replays < s.max_replays
            replays += replay
            survivors, pruned = (ranked, []) if replay else prune([(r.hyper, r.dev.accuracy) for r in results])
            survivors = [h for h in ranked if h in survivors] or (ranked[:1] if round_no == 1 else [])  # all tied
            row |= {"replay_next": replay, "pruned": [h.to_dict() for h in pruned]}
            alive = _next_round(s, row, last, survivors, round_no + 1)
        row["left"] = len(alive)
        rounds.append(row)
        s.progress.add_trainings(len(alive))
        note = f", D {len(s.train or ())} ({len(s.pool)} synthetic)" if alive and not extended else ""
        s.progress.round_done(round_no, left=len(alive), best=best.dev.accuracy, round_best=last.dev.accuracy,
                              train_size=len(s.train or ()), note=note)
    best, first, best_round, best_size = kept
    assert best is not None and first is not None  # the first training always runs (budget checked up front)
    why = (_why_extended(best, best_round, rounds, len(s.selection), bool(np.isfinite(s.deadline))) if extended
           else _why(best, best_round, first, len(s.selection)))
    return Outcome(best, best_round, best_size, rounds, trainings, replays, stopped, why, first)


def _keep(s: Search, kept: list[Any], last: TrainResult, round_no: int, row: dict[str, Any], extended: bool) -> None:
    """Update `kept` ([best, first, best's round, its D size]) with round `round_no`'s best, `last`: round 1's is
    kept; a later round's replaces it only if clearly better on S (a sign test); an extension of plain's search is
    judged by plain's own rule (S accuracy, then S loss)."""
    if kept[1] is None:
        kept[:] = [last, last, 1, len(s.train or ())]
    elif extended:
        if last.better_than(kept[0]):
            kept[0], kept[2] = last, round_no
    else:  # a later round must be clearly better on S than the kept model; otherwise the earlier stays
        row["vs_kept"] = sign_test(last.dev.predictions, kept[0].dev.predictions, s.selection.hard_labels)
        if row["vs_kept"]["switch"]:
            kept[0], kept[2], kept[3] = last, round_no, len(s.train or ())


def teacher_check(s: Search, first: TrainResult) -> dict[str, Any] | None:
    """The teacher's accuracy on dev (S + F) against round 1's best model's on the same examples; None when the
    teacher's was not measured."""
    if s.teacher_dev is None:
        return None
    n = len(s.selection) + len(s.feed)
    right = int((first.dev.predictions == s.selection.hard_labels).sum())
    if first.feed is not None:
        right += int((first.feed.predictions == s.feed.hard_labels).sum())
    # exact accuracies over the same n examples (so: counts), not the record's rounded ones: a lead of one counts
    return {"teacher_dev_accuracy": round(s.teacher_dev, 4), "round1_best_dev_accuracy": round(right / n, 4),
            "teacher_ahead": s.teacher_dev > right / n}


def _teacher_behind(s: Search, first: TrainResult, row: dict[str, Any]) -> bool:
    """Whether the teacher is no more accurate on dev than round 1's best (recorded in `row`): then its labels
    cannot teach the student, and the rest of the budget extends plain's search instead of running Agora's rounds."""
    check = teacher_check(s, first)
    if check is None:
        return False
    row["teacher_check"] = check
    return not check["teacher_ahead"]


def _extension(s: Search, row: dict[str, Any], n_round1: int) -> list[Hyper]:
    """Round 2 as plain's search extended: the next configurations of its seeded order that fit the time left
    (with no budget, as many as round 1's `n_round1`), trained on the training file alone (D is not augmented)."""
    more = list(s.more) if np.isfinite(s.deadline) else list(s.more[:n_round1])
    alive = _configs(s, 2, _fitting(s, more))
    # planned, not trained: the deadline may stop the last ones (round 2's row lists those trained; why counts them)
    row["extension"] = {"planned": len(alive), "of": len(s.more)}
    return alive


def _next_round(s: Search, row: dict[str, Any], last: TrainResult, survivors: list[Hyper],
                round_no: int) -> list[Hyper]:
    """Round `round_no`'s configurations: D rebuilt from `last`'s mistakes at the size the time left allows, then the
    best-ranked `survivors` that fit; none (and `row` says why) if not even the smallest D fits."""
    if not survivors:
        return []
    cap = _cap(s, round_no, survivors[0], len(_wrong(s, last)))
    if cap is None:
        row["note"] = (f"no later round: generating, labelling and training {survivors[0].label()} on the training "
                       f"file and {least_synthetic(s)} generated points would not fit the time left")
        return []
    row["augmentation"] = augment(s, last, round_no - 1, cap)
    alive = _configs(s, round_no, _fitting(s, survivors))
    if len(alive) < len(survivors):
        row["dropped_for_time"] = [h.to_dict() for h in survivors[len(alive):]]
    return alive


def _cap(s: Search, round_no: int, h: Hyper, mistakes: int) -> int | None:
    """Round `round_no`'s cap on synthetic points (:func:`synthetic_room` for `h`); checkpointed, so a resumed run
    rebuilds the same D."""
    cap = synthetic_room(s, h, mistakes)
    return s.work.synthetic_cap(round_no, cap) if s.work is not None else cap


def later_trainings(n: int, max_replays: int) -> int:
    """The most trainings Agora's later rounds can add to round 1's `n`: each round retrains the survivors and
    prunes at least one ((n-1) + (n-2) + ... + 1), and each replay repeats a round without pruning (at most n-1)."""
    return n * (n - 1) // 2 + max_replays * max(n - 1, 0)


def planned_trainings(n: int, agora: bool) -> int:
    """Trainings round 1 runs (plain's whole search); Agora adds what fits the rest of the budget."""
    return n
