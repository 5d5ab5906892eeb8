"""Measure, before the search, how long its units of work take on this machine (what the budget planner needs)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from bortconv.finetune.data import Example
from bortconv.finetune.encoding import Encoded, batch_tensors
from bortconv.finetune.generate import Generator
from bortconv.finetune.recipe import Student, evaluate, make_optimizer
from bortconv.finetune.search import Hyper, Speeds
from bortconv.finetune.teacher import Teacher

TIMED_STEPS = 2
EVAL_ROWS = 64


def _step_seconds(student: Student, train: Encoded, batch_sizes: Sequence[int]) -> tuple[float, dict[int, float]]:
    """(seconds to build a fresh model, seconds per optimizer step at each batch size)."""
    import torch

    t0 = time.perf_counter()
    model = student.fresh(0)
    setup = time.perf_counter() - t0
    model.train()
    opt = make_optimizer(model, Hyper(lr=1e-9, weight_decay=0.0, warmup_ratio=0.0, batch_size=1, seed=0))
    rng = np.random.default_rng(0)
    out: dict[int, float] = {}
    for n, bs in enumerate(sorted(set(batch_sizes))):
        for k in range(TIMED_STEPS + (n == 0)):  # one untimed warm-up step first
            index = rng.choice(len(train), size=min(bs, len(train)), replace=False).tolist()
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(**batch_tensors(train, index, student.pad_id)).logits,
                                                     torch.from_numpy(train.targets[index]))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if k >= (n == 0):
                out[bs] = out.get(bs, 0.0) + (time.perf_counter() - t0) / TIMED_STEPS
        out[bs] *= bs / min(bs, len(train))  # a tiny training set: scale to the full batch
    return setup, out


def measure_speeds(student: Student, train: Encoded, dev: Encoded, batch_sizes: Sequence[int], *,
                   teacher: Teacher | None = None, generator: Generator | None = None,
                   samples: Sequence[Example] = ()) -> Speeds:
    """Time a few training steps, a scoring pass, and (for agora) the generator and the teacher on `samples`."""
    setup, steps = _step_seconds(student, train, batch_sizes)
    rows = Encoded(dev.ids[:EVAL_ROWS], None if dev.types is None else dev.types[:EVAL_ROWS],
                   dev.targets[:EVAL_ROWS])
    t0 = time.perf_counter()
    evaluate(student.template, rows, student.pad_id)
    eval_s = (time.perf_counter() - t0) / len(rows)
    gen_s = teach_s = 0.0
    if generator is not None and samples:
        t0 = time.perf_counter()
        made = generator(list(samples[:4]), 2, np.random.default_rng(0))
        gen_s = (time.perf_counter() - t0) / max(1, len(made))
    if teacher is not None and samples:
        t0 = time.perf_counter()
        teacher.probabilities(list(samples[:16]))
        teach_s = (time.perf_counter() - t0) / min(16, len(samples))
    return Speeds(steps, eval_s, setup, gen_s, teach_s)
