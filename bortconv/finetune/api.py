"""``bortconv finetune`` as a Python call: options, the run, and what it wrote.

    from bortconv.finetune import FinetuneOptions, finetune
    res = finetune("bort.params", "train.tsv", "dev.tsv", "out/bort-topics",
                   FinetuneOptions(teacher="out/teacher", vocab="vocab.json", merges="vocab.bpe", budget_minutes=20))
    res = finetune(".../MiniLM", "train.tsv", "dev.tsv", "out/plain", method="plain", budget_minutes=5)  # keywords

OUT_DIR is a Hugging Face ``BertForSequenceClassification`` directory (weights, config with ``id2label``, the
source's tokenizer files) plus the training record ``bortconv_finetune.json``; ``bortconv export`` takes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortconv._util.atomic import atomic_directory, check_output_dir
from bortconv.config import as_path, check_options_type
from bortconv.errors import InputError
from bortconv.finetune.data import check_same_task, label_order, read_examples
from bortconv.finetune.options import FinetuneOptions, Method

if TYPE_CHECKING:
    from bortconv.finetune.checkpoint import WorkDir
    from bortconv.finetune.data import Dataset

log = logging.getLogger(__name__)
WORK = ".work"
__all__ = ["FinetuneOptions", "FinetuneResult", "Method", "finetune"]


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` wrote: the directory, its best dev accuracy, and the full training record."""

    output_dir: str
    method: str
    dev_accuracy: float
    record: dict[str, Any] = field(repr=False)
    files: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": self.output_dir, "files": self.files, **self.record}


def finetune(source: str | os.PathLike[str], train: str | os.PathLike[str], dev: str | os.PathLike[str],
             out_dir: str | os.PathLike[str], options: FinetuneOptions | None = None,
             **kwargs: Any) -> FinetuneResult:
    """Fine-tune `source` (Bort `.params` or a BERT-family HF directory) on `train`, scored on `dev`.

    Pass a :class:`FinetuneOptions`, or its fields as keywords (``method="plain", budget_minutes=5``). Bad input
    raises :class:`bortconv.errors.InputError` (exit 2) before anything is written; OUT_DIR appears only when the
    run is complete (an interrupted or failed run leaves nothing there). Finished trainings are checkpointed in the
    work directory (``work_dir``, default beside OUT_DIR), which ``resume=True`` continues from and which is removed
    when the run completes."""
    if options is not None and kwargs:
        raise InputError(f"finetune: pass a FinetuneOptions or keywords, not both (got {', '.join(sorted(kwargs))})")
    unknown = sorted(set(kwargs) - {f.name for f in fields(FinetuneOptions)})
    if unknown:
        raise InputError(f"finetune: unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    opts = options if options is not None else FinetuneOptions(**kwargs)
    check_options_type(opts, FinetuneOptions, "finetune")
    source, train, dev = as_path(source, "source"), as_path(train, "train"), as_path(dev, "dev")
    t0 = time.perf_counter()
    train_ds = read_examples(train, "--train")
    dev_ds = read_examples(dev, "--dev")
    check_same_task(train_ds, dev_ds, "--dev")
    labels = label_order(train_ds.labels)
    if len(labels) < 2:
        raise InputError(f"train {train_ds.path}: one label only ({labels[0]}); a classifier needs two or more",
                         option="train")
    out = as_path(out_dir, "out_dir")
    from bortconv.finetune.checkpoint import WorkDir, default_work_dir

    checkpoint = WorkDir(opts.work_dir or default_work_dir(out), resume=opts.resume,
                         given=opts.work_dir is not None)
    if checkpoint.path.resolve() in out.resolve().parents:  # the work directory is removed when the run completes
        raise InputError(f"{out}: inside the work directory {checkpoint.path}, which is removed when the run "
                         f"completes; choose an output outside it")
    check_output_dir(out, opts.force,
                     reads=[source, train, dev, opts.teacher, opts.vocab, opts.merges, opts.work_dir])
    checkpoint.check()
    from bortconv.finetune.executor import open_executor

    with open_executor(opts) as executor, _kept_if_useful(checkpoint):
        record, files = _run(source, train_ds, dev_ds, labels, out, opts, t0, executor, checkpoint)
    checkpoint.remove()  # the run is complete: OUT_DIR holds everything
    return FinetuneResult(str(out), opts.method.value, float(record["best"]["dev_accuracy"]), record, files)


def _run(source: str | os.PathLike[str], train: Dataset, dev: Dataset, labels: tuple[str, ...], out: Path,
         opts: FinetuneOptions, t0: float, executor: Any,
         checkpoint: WorkDir) -> tuple[dict[str, Any], dict[str, int]]:
    """The run inside OUT_DIR's temporary directory, with torch made deterministic; (record, files written)."""
    from bortconv.finetune.determinism import deterministic_torch
    from bortconv.finetune.run import run_finetune

    with deterministic_torch(opts.threads), atomic_directory(out, force=opts.force) as tmp:
        (tmp / WORK).mkdir()
        record = run_finetune(source, train, dev, labels, tmp, tmp / WORK, opts, t0, executor=executor,
                              checkpoint=checkpoint)
        shutil.rmtree(tmp / WORK)
        record["timings"]["total_s"] = round(time.perf_counter() - t0, 2)
        from bortconv.finetune.record import write_record
        write_record(tmp, record)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    return record, files


@contextlib.contextmanager
def _kept_if_useful(checkpoint: WorkDir) -> Iterator[None]:
    """On failure or interrupt, keep the work directory only if it holds finished trainings (worth --resume)."""
    try:
        yield
    except BaseException:
        done = checkpoint.finished()
        if done:
            from bortconv._util.atomic import kept
            kept.append(f"{checkpoint.path} keeps {done} finished training{'s' if done != 1 else ''}: the same "
                        f"command with --resume continues the run")
            log.warning("%s", kept[-1])
        else:
            checkpoint.remove()
        raise
