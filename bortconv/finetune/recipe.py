"""Bort's fine-tuning recipe (alexa/bort ``finetune_bort.py``) on a Hugging Face ``BertForSequenceClassification``.

Head. Bort classifies from the ``<s>`` (first-token) output through Dropout -> Dense(units, tanh) -> Dropout ->
Dense(classes). ``BertForSequenceClassification`` computes pooler (Dense + tanh on token 0) -> Dropout ->
classifier: the same two Dense layers, so a fine-tuned model loads with stock ``transformers`` and exports with
bortconv. The one difference: there is no Dropout *before* the tanh Dense (stock class, kept loadable anywhere).
A head the source does not have is initialised normal(0, ``initializer_range``) with zero biases, seeded per
candidate; gluon's uniform(-0.5, 0.5) would put a 1024-wide tanh layer deep in saturation (pre-activations of
std ~9 on unit-scale inputs). A pooler or classifier the source already has is kept.

Optimizer. ``torch.optim.AdamW`` (β 0.9/0.999, ε 1e-6), decoupled weight decay, none on LayerNorm weights and
biases: the close match of gluonnlp's BERTAdam (which also skips bias correction; AdamW does not).

Schedule. Linear warmup over ``warmup_ratio`` x steps, then linear decay to 0, as Bort's loop computes it
(``step/warmup`` then ``1 - (step - warmup)/(total - warmup)``, step counted from 1); gradients clipped at global
norm 1.0; dev accuracy after every epoch, and the best epoch (ties: lower dev loss) is what the candidate returns.

Epochs. The author used 50-100 epochs for small problems; a CPU budget cannot, so training runs up to ``epochs``
(default 10) and stops early when the dev score has not improved for ``patience`` epochs (default 3). "Dev" here
is the *selection* part of the dev file (Agora feeds the other part's mistakes to the generator); the mistakes
part is scored at the kept epoch too (:attr:`TrainResult.feed`), for the generator and the record.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bortconv.finetune.determinism import derived_seed, seed_everything
from bortconv.finetune.encoding import Encoded, batch_tensors, length_batches
from bortconv.finetune.search import Hyper

log = logging.getLogger(__name__)

ADAM_EPS = 1e-6
ADAM_BETAS = (0.9, 0.999)
CLIP_NORM = 1.0
EVAL_BATCH = 64


@dataclass
class Student:
    """The model every candidate starts from: the source's weights with a classification head."""

    template: Any  # BertForSequenceClassification, never trained itself
    pad_id: int
    reinit: tuple[str, ...]  # head modules the source lacked, initialised per candidate ("pooler", "classifier")

    def fresh(self, seed: int) -> Any:
        """A copy of the template with the missing head parts initialised from `seed`."""
        import torch

        model = copy.deepcopy(self.template)
        gen = torch.Generator().manual_seed(seed)
        std = float(getattr(model.config, "initializer_range", 0.02))
        with torch.no_grad():
            for name in self.reinit:
                layer = model.bert.pooler.dense if name == "pooler" else model.classifier
                layer.weight.normal_(0.0, std, generator=gen)
                layer.bias.zero_()
        return model


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weights, none on LayerNorm parameters and biases (Bort's rule)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if "LayerNorm" in name or "layer_norm" in name or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: Any, h: Hyper) -> Any:
    """AdamW (decoupled decay) over :func:`param_groups`; torch's fused CPU kernel where it has one (3-4x faster
    than the per-tensor loop on a 22M-parameter model; elementwise, so just as deterministic)."""
    import torch

    groups = param_groups(model, h.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=h.lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch without the fused CPU kernel
        return torch.optim.AdamW(groups, lr=h.lr, betas=ADAM_BETAS, eps=ADAM_EPS, foreach=True)


def bort_schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The learning-rate factor after `k` optimizer steps (LambdaLR's argument), as alexa/bort computes it."""
    warmup = int(total_steps * warmup_ratio)

    def factor(k: int) -> float:
        step = k + 1  # Bort increments its step counter before setting the rate
        if step < warmup:
            return step / warmup
        return max(0.0, 1.0 - (step - warmup) / max(1, total_steps - warmup))
    return factor


@dataclass(frozen=True)
class Score:
    accuracy: float
    loss: float
    predictions: np.ndarray = field(repr=False)


def _on(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return batch if device == "cpu" else {k: v.to(device) for k, v in batch.items()}


def evaluate(model: Any, data: Encoded, pad_id: int, device: str = "cpu") -> Score:
    """Accuracy and mean cross-entropy against `data`'s targets (argmax as the label), on `device`."""
    import torch

    model.eval()
    preds = np.zeros(len(data), np.int64)
    loss = 0.0
    with torch.no_grad():
        for index in length_batches(data, EVAL_BATCH):
            logits = model(**_on(batch_tensors(data, index, pad_id), device)).logits.float().cpu()
            target = torch.from_numpy(data.targets[index])
            loss += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            preds[index] = logits.argmax(-1).numpy()
    acc = float((preds == data.hard_labels).mean())
    return Score(acc, loss / max(1, len(data)), preds)


@dataclass
class TrainResult:
    """One candidate trained on one training set: its best epoch."""

    hyper: Hyper
    epoch: int  # 1-based, the kept one
    dev: Score
    history: list[dict[str, float]]
    seconds: float
    steps: int
    stopped_by_budget: bool = False
    state: dict[str, Any] | None = field(default=None, repr=False)
    feed: Score | None = None  # the dev part whose mistakes feed the generator, at the kept epoch
    early_stopped: bool = False
    schedule: dict[str, Any] | None = None  # where and when it ran: worker host and pid, device, wall and queue time
    state_file: str | None = None  # the kept state as a file in the work directory (when `state` is not in memory)

    def better_than(self, other: TrainResult | None) -> bool:
        if other is None:
            return True
        return (self.dev.accuracy, -self.dev.loss) > (other.dev.accuracy, -other.dev.loss)


def _epoch(model: Any, opt: Any, sched: Any, train: Encoded, h: Hyper, rng: np.random.Generator,
           pad_id: int, device: str = "cpu") -> float:
    import torch

    model.train()
    order = rng.permutation(len(train))
    params = [p for g in opt.param_groups for p in g["params"]]
    total = 0.0
    for s in range(0, len(order), h.batch_size):
        index = order[s:s + h.batch_size].tolist()
        logits = model(**_on(batch_tensors(train, index, pad_id), device)).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(train.targets[index]).to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        total += float(loss.detach()) * len(index)
    return total / len(order)


def train_candidate(student: Student, h: Hyper, train: Encoded, dev: Encoded, *, epochs: int, run_seed: int,
                    deadline: float | None = None, feed: Encoded | None = None,
                    patience: int | None = None, device: str = "cpu") -> TrainResult:
    """Fine-tune a fresh copy of the student with θ = `h` for up to `epochs`; keep the best epoch by dev score.

    Deterministic for (`run_seed`, `h`, `train`) on a given machine and thread count. With `deadline`
    (``time.perf_counter()`` value) training stops after the epoch that passes it; with `patience`, after that
    many epochs without a better dev score. `feed` is scored at every kept epoch. On CUDA (`device`) the same
    fp32 recipe runs (no mixed precision); the kept state comes back on the CPU."""
    import torch

    t0 = time.perf_counter()
    seed = derived_seed(run_seed, h.seed)
    seed_everything(seed)
    model = student.fresh(seed).to(device)
    opt = make_optimizer(model, h)
    total = epochs * math.ceil(len(train) / h.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, bort_schedule(total, h.warmup_ratio))
    rng = np.random.default_rng(seed)
    best: TrainResult | None = None
    history: list[dict[str, float]] = []
    stopped = False
    for epoch in range(1, epochs + 1):
        train_loss = _epoch(model, opt, sched, train, h, rng, student.pad_id, device)
        score = evaluate(model, dev, student.pad_id, device)
        history.append({"epoch": epoch, "train_loss": round(train_loss, 5), "dev_accuracy": score.accuracy,
                        "dev_loss": round(score.loss, 5)})
        cand = TrainResult(h, epoch, score, history, 0.0, 0)
        if cand.better_than(best):
            cand.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            cand.feed = evaluate(model, feed, student.pad_id, device) if feed is not None and len(feed) else None
            best = cand
        if deadline is not None and time.perf_counter() > deadline and epoch < epochs:
            stopped = True
            log.info("%s: stopped after epoch %d of %d by the time budget", h.label(), epoch, epochs)
            break
        assert best is not None
        if patience is not None and epoch - best.epoch >= patience and epoch < epochs:
            best.early_stopped = True
            break
    assert best is not None  # epochs >= 1
    best.history, best.seconds, best.steps = history, time.perf_counter() - t0, total
    best.stopped_by_budget = stopped
    return best


def load_state(student: Student, state: dict[str, Any]) -> Any:
    """The student with a trained state loaded (eval mode)."""
    model = copy.deepcopy(student.template)
    model.load_state_dict(state)
    return model.eval()
