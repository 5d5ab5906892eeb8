"""One fine-tuning run, step by step: source -> teacher -> student -> probe -> plan -> search -> write -> re-read.

Called by :func:`bortconv.finetune.api.finetune` inside the output's temporary directory, with torch already
made deterministic; every step returns a value and only the last one writes.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bortconv._util.hashing import sha256_file
from bortconv.config import max_positions
from bortconv.errors import ExportError, InputError
from bortconv.finetune import record as rec
from bortconv.finetune.agora import Outcome, Search, later_trainings, planned_trainings, run_search
from bortconv.finetune.checkpoint import WorkDir, fingerprint, load_state_file
from bortconv.finetune.determinism import derived_seed
from bortconv.finetune.data import Dataset
from bortconv.finetune.encoding import Encoded, TextEncoder, one_hot
from bortconv.finetune.generate import Generator, corpus_words, default_generator, generator_name
from bortconv.finetune.options import FinetuneOptions, Method
from bortconv.finetune.speed_probe import measure_speeds
from bortconv.finetune.progress import SearchProgress
from bortconv.finetune.recipe import Student, evaluate, load_state
from bortconv.finetune.search import Hyper, Plan, Speeds, plan_search
from bortconv.finetune.source import (Source, build_template, check_labels, load_mlm, load_tokenizer,
                                      quiet_transformers, resolve_source, tokenizer_files)
from bortconv.finetune.teacher import Teacher, load_teacher, teacher_accuracy

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The run's inputs, loaded: source, labels, student, encoded data, teacher, generator."""

    source: Source
    labels: tuple[str, ...]
    student: Student
    tokenizer: Any
    encoder: TextEncoder
    train: Encoded
    dev: Encoded  # the selection split S
    feed: Encoded  # the mistakes split F
    feed_examples: tuple
    selection_rows: list[int]
    teacher: Teacher | None
    generator: Generator | None


def split_dev(dev: Dataset, share: float, seed: int) -> tuple[list[int], list[int]]:
    """(selection rows, mistakes rows) of dev: per label, a seeded `share` (at least one) held back for selection.

    The same split for plain and Agora (it depends on the seed and the file only), so round 1 is plain's search."""
    import numpy as np

    rng = np.random.default_rng(derived_seed(seed, 0x5E1EC7))
    selection: list[int] = []
    for label in sorted(dev.labels):
        rows = [i for i, e in enumerate(dev.examples) if e.label == label]
        k = min(len(rows), max(1, round(share * len(rows))))
        selection += [rows[i] for i in rng.permutation(len(rows))[:k]]
    chosen = set(selection)
    return sorted(selection), [i for i in range(len(dev)) if i not in chosen]


def _check_max_length(src: Source, max_length: int) -> None:
    """InputError when --max-length is past the source's positions (training would index past them mid-run)."""
    from bortconv.converters.hf_model import read_config

    positions = max_positions(read_config(src.model_dir))
    if max_length > positions:
        raise InputError(f"max_length {max_length}: {src.path} has {positions} positions; pass --max-length "
                         f"{positions} or less", option="max_length")


def _prepare(source: str | os.PathLike[str], train: Dataset, dev: Dataset, labels: tuple[str, ...], work: Path,
             opts: FinetuneOptions) -> Prepared:
    agora = opts.method is Method.AGORA
    src = resolve_source(source, work, vocab=opts.vocab, merges=opts.merges, variant=opts.variant, heads=opts.heads)
    _check_max_length(src, opts.max_length)
    labels = check_labels(src, labels)
    teacher = load_teacher(opts.teacher, labels, threads=opts.threads) if agora and opts.teacher else None
    tokenizer = load_tokenizer(src.model_dir, src.path)
    template, reinit = build_template(src, labels)
    student = Student(template, int(tokenizer.pad_token_id or 0), reinit)
    encoder = TextEncoder(tokenizer, opts.max_length, tokenizer_dir=src.model_dir)
    label_ids = {lab: i for i, lab in enumerate(labels)}
    enc_train = encoder.encode(train.examples, one_hot([str(e.label) for e in train.examples], label_ids))
    sel_rows, feed_rows = split_dev(dev, opts.selection_share, opts.seed)
    sel, feed = [dev.examples[i] for i in sel_rows], tuple(dev.examples[i] for i in feed_rows)
    enc_dev = encoder.encode(sel, one_hot([str(e.label) for e in sel], label_ids))
    enc_feed = encoder.encode(feed, one_hot([str(e.label) for e in feed], label_ids))
    generator = None
    if agora:
        generator = opts.generator or default_generator(load_mlm(src), tokenizer, corpus_words(train.examples),
                                                        opts.max_length)
    return Prepared(src, labels, student, tokenizer, encoder, enc_train, enc_dev, enc_feed, feed, sel_rows, teacher,
                    generator)


def _plan(p: Prepared, opts: FinetuneOptions, speeds: Speeds, elapsed: float, workers: int,
          worker_start_s: float) -> Plan:
    n_dev = len(p.dev) + len(p.feed)
    # still to come besides the search: the teacher's dev score, and writing + re-reading + re-scoring the result
    tail = 3 * speeds.setup_s + n_dev * (speeds.eval_s_per_example + speeds.teacher_s_per_example)
    budget = None if opts.budget_minutes is None else 60 * opts.budget_minutes
    return plan_search(opts.space, seed=opts.seed, budget_s=budget, n_train=len(p.train),
                       n_dev=n_dev, epochs=opts.epochs, speeds=speeds, candidates=opts.candidates,
                       max_candidates=opts.max_candidates, overhead_s=elapsed + tail, workers=workers,
                       worker_start_s=worker_start_s)


def _saved_plan(saved: dict[str, Any]) -> tuple[Plan, Speeds]:
    """The plan and probe speeds a resumed run takes from its checkpoint (the search replays, it is not re-sized)."""
    pl, sp = saved["plan"], saved["speeds"]
    speeds = Speeds({int(k): v for k, v in sp["step_s"].items()}, sp["eval_s_per_example"], sp["setup_s"],
                    sp["generate_s_per_example"], sp["teacher_s_per_example"])
    budget = pl["budget_s"] if pl["budget_s"] is not None else math.inf
    return Plan(tuple(Hyper(**h) for h in pl["candidates"]), pl["estimated_s"], budget, pl["space_size"],
                pl["minimum_s"], pl["workers"]), speeds


def _probe_and_plan(p: Prepared, opts: FinetuneOptions, work: WorkDir, fp: str, executor: Any,
                    t0: float) -> tuple[Plan, Speeds, float]:
    """(plan, speeds, probe seconds): measured and planned here, or the checkpoint's when resuming. A Ray worker's
    first training first loads what this process loaded (torch, the student): the estimate counts it once per
    worker, at the time loading took here."""
    saved = work.begin(fp)
    if saved is not None:
        plan, speeds = _saved_plan(saved)
        log.info("--resume: %s: %d finished trainings", work.path, work.finished())
        return plan, speeds, 0.0
    t1 = time.perf_counter()
    speeds = measure_speeds(p.student, p.train, p.dev, opts.space.batch_size, teacher=p.teacher,
                            generator=p.generator, samples=p.feed_examples)
    probe = time.perf_counter() - t1
    start = time.perf_counter() - t0 - probe if executor.name != "local" else 0.0
    plan = _plan(p, opts, speeds, time.perf_counter() - t0, executor.workers, start)
    work.save_run(plan, speeds)
    return plan, speeds, probe


def default_max_generated(n_train: int, opts: FinetuneOptions) -> int:
    """New points per round when --max-generated is not given: as many as the synthetic cap holds
    (--synthetic-ratio x the training file), so the first augmentation can fill it; at least one."""
    return max(1, int(opts.synthetic_ratio * n_train))


def _later_bound(plan: Plan, opts: FinetuneOptions) -> tuple[int, float]:
    """(trainings, seconds): the most Agora's later rounds can train, each priced at round 1's mean estimate on a
    training set grown by up to --synthetic-ratio, spread over the plan's workers (generation and labelling aside)."""
    n = len(plan.candidates)
    extra = later_trainings(n, opts.max_replays)
    per = plan.estimated_s / max(n, 1) * (1 + opts.synthetic_ratio)
    return extra, per * extra / max(plan.workers, 1)


def _write(p: Prepared, outcome: Outcome, tmp: Path, device: str) -> None:
    """Save the best model and the source's tokenizer files; re-read them and re-score dev (on the training
    device) to prove it."""
    import transformers

    best = outcome.best
    if best.state is None and not (best.state_file and Path(best.state_file).is_file()):
        raise ExportError(f"the kept training ({best.hyper.label()}): its weights are missing from the work "
                          f"directory ({best.state_file}); remove the work directory and run again")
    model = load_state(p.student, best.state if best.state is not None else load_state_file(str(best.state_file)))
    model.config.architectures = ["BertForSequenceClassification"]
    with quiet_transformers(transformers):
        model.save_pretrained(str(tmp))
    for f in tokenizer_files(p.source.model_dir):
        shutil.copy(f, tmp / f.name)
    with quiet_transformers(transformers):
        again, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(tmp), output_loading_info=True)
    bad = sorted(info.get("missing_keys") or []) + sorted(info.get("mismatched_keys") or [])
    if bad:
        raise ExportError(f"the written model does not load completely: {bad[:5]}")
    rescored = evaluate(again.to(device).eval(), p.dev, p.student.pad_id, device)
    if not (rescored.predictions == outcome.best.dev.predictions).all():
        raise ExportError("the written model does not reproduce the kept candidate's dev predictions")


def _data_info(ds: Dataset) -> dict[str, Any]:
    return {"path": str(ds.path.resolve()), "sha256": sha256_file(ds.path), "format": ds.format, "rows": len(ds),
            "pair": ds.is_pair, "label_counts": dict(sorted(Counter(ds.labels).items()))}


def _record(p: Prepared, opts: FinetuneOptions, plan: Plan, speeds: Speeds, outcome: Outcome,
            search: Search, teacher_dev: float | None, data: dict[str, Any], timings: dict[str, float]) -> dict:
    import torch

    best = outcome.best
    return {
        **rec.header(opts.method.value),
        "source": p.source.to_dict(),
        "data": data,
        "teacher": None if p.teacher is None else {
            "path": str(Path(p.teacher.path).resolve()), "kind": p.teacher.kind, "labels": list(p.teacher.names),
            "dev_accuracy": None if teacher_dev is None else round(teacher_dev, 4), "targets": opts.teacher_targets},
        "generator": generator_name(p.generator) if p.generator is not None else None,
        "options": opts.to_dict(),
        "selection": {"winner_round": outcome.best_round, "why": outcome.why,
                      "round1_best": None if outcome.round1_best is None else {
                          "hyper": outcome.round1_best.hyper.to_dict(),
                          "selection_accuracy": outcome.round1_best.dev.accuracy},
                      "split": "selection split of dev (selection_share), never given to the generator"},
        "budget": {"budget_s": plan.to_dict()["budget_s"], "round1_planned_s": round(plan.estimated_s, 1),
                   "rounds": [{"round": r["round"], "planned_s": r.get("planned_s"), "spent_s": r.get("spent_s")}
                              for r in outcome.rounds]},
        "search": {"plan": plan.to_dict(), "speeds": speeds.to_dict(),
                   "candidates": [h.to_dict() for h in plan.candidates], "rounds": outcome.rounds,
                   "trainings": outcome.trainings, "replays": outcome.replays,
                   "stopped_by_budget": outcome.stopped_by_budget},
        "best": {"hyper": best.hyper.to_dict(), "round": outcome.best_round, "epoch": best.epoch,
                 "dev_accuracy": best.dev.accuracy, "dev_loss": round(best.dev.loss, 5),
                 "feed_accuracy": None if best.feed is None else best.feed.accuracy,
                 "train_size": outcome.best_train_size, "generated_in_training_set":
                     outcome.best_train_size - data["train"]["rows"],
                 "dev_accuracy_note": "accuracy on the selection split of dev, which picked the model (and its "
                                      "epoch): optimistic; judge on held-out data"},
        "execution": {**search.executor.info(), "work_dir": None if search.work is None else str(search.work.path),
                      "resumed_trainings": 0 if search.work is None else len(search.work.resumed)},
        "timings": {k: round(v, 2) for k, v in {**timings, **search.timings}.items()},
        "determinism": {"seed": opts.seed, "threads": opts.threads, "deterministic_algorithms": True,
                        "reproducible_on": "the same machine, thread count and library versions"},
        "labels": list(p.labels),
        "decisions": rec.DECISIONS,
        "versions": rec.versions() | {"torch_threads": torch.get_num_threads()},
    }


def _inputs(p: Prepared, train: Dataset, dev: Dataset, device: str) -> dict[str, Any]:
    """What a run's checkpoint must match besides its options: data, source, device and library versions."""
    return {"train": sha256_file(train.path), "dev": sha256_file(dev.path), "source": p.source.sha256,
            "device": device, "versions": rec.versions()}


def _teacher_dev(p: Prepared, opts: FinetuneOptions, dev: Dataset) -> float | None:
    if p.teacher is None:
        return None
    acc = teacher_accuracy(p.teacher, dev.examples, p.labels)  # exact: the teacher check compares counts
    if acc < 2 / 3:
        log.warning("--teacher %s: %.1f%% on --dev; Agora asks for a teacher above 2/3", opts.teacher, 100 * acc)
    return acc


def run_finetune(source: str | os.PathLike[str], train: Dataset, dev: Dataset, labels: tuple[str, ...],
                 tmp: Path, work: Path, opts: FinetuneOptions, t0: float, *, executor: Any,
                 checkpoint: WorkDir) -> dict[str, Any]:
    """Run the whole fine-tuning into `tmp`, its trainings on `executor`, checkpointed in `checkpoint`; returns
    the training record (not yet written)."""
    agora = opts.method is Method.AGORA
    progress = SearchProgress(enabled=opts.progress)
    p = _prepare(source, train, dev, labels, work, opts)
    timings = {"loading_s": time.perf_counter() - t0}
    fp = fingerprint(opts.to_dict(), _inputs(p, train, dev, executor.device))
    plan, speeds, timings["probe_s"] = _probe_and_plan(p, opts, checkpoint, fp, executor, t0)
    cap = opts.max_generated if opts.max_generated is not None else default_max_generated(len(p.train), opts)
    teacher_dev = _teacher_dev(p, opts, dev)
    progress.planned(opts.method.value, plan, planned_trainings(len(plan.candidates), agora),
                     generator_name(p.generator) if p.generator is not None else None, executor.info(),
                     later=_later_bound(plan, opts) if agora else None)
    deadline = math.inf if opts.budget_minutes is None else t0 + 60 * opts.budget_minutes
    search = Search(p.student, p.encoder, p.labels, p.train, p.dev, p.feed, p.feed_examples, opts.epochs,
                    opts.seed, speeds, deadline=deadline, progress=progress,
                    patience=opts.patience, teacher=p.teacher, generator=p.generator, per_mistake=opts.per_mistake,
                    max_generated=cap, max_replays=opts.max_replays, soft_targets=opts.teacher_targets == "soft",
                    synthetic_ratio=opts.synthetic_ratio, keep=opts.synthetic_filter,
                    train_examples=tuple(train.examples) if opts.generate_from == "both" else (),
                    seen={(e.text, e.text_b) for e in (*train.examples, *dev.examples)}, executor=executor,
                    work=checkpoint, teacher_dev=teacher_dev,
                    more=tuple(opts.space.order(opts.seed)[len(plan.candidates):opts.max_candidates]))
    outcome = run_search(search, plan.candidates, agora=agora)
    t1 = time.perf_counter()
    _write(p, outcome, tmp, executor.device if executor.name == "local" else _driver_device(executor.device))
    timings["writing_s"] = time.perf_counter() - t1
    data = {"train": _data_info(train), "dev": _data_info(dev),
            "dev_split": {"selection": len(p.dev), "mistakes": len(p.feed), "share": opts.selection_share,
                          "selection_rows": p.selection_rows,
                          "note": "dev rows (0-based, header excluded) held back for selection; the generator "
                                  "only ever sees the other rows' mistakes"}}
    return _record(p, opts, plan, speeds, outcome, search, teacher_dev, data, timings)


def _driver_device(device: str) -> str:
    """Where the driver re-scores a model trained on `device`: there, if this machine has it."""
    import torch

    return device if device == "cpu" or torch.cuda.is_available() else "cpu"
