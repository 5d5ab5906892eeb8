"""The work directory: what a killed run needs to continue (``--resume``), and what Ray workers read and write.

    <work>/run.json                  the run's fingerprint (options, data, source, versions), plan and probe speeds
    <work>/rounds/<n>.json           round n's configurations and a digest of its training set D
    <work>/rounds/<n>.cap.json       round n's cap on synthetic points in D (it depends on the time left then)
    <work>/trainings/<key>.json      a finished training: scores, predictions, epochs, where and when it ran
    <work>/trainings/<key>.safetensors   its kept state dict (removed once the search no longer needs it)
    <work>/trainings/<key>.running   a training in progress: the worker's host, pid and start time
    <work>/student/, data/, rounds/<n>-train.npz   the student and the data, for Ray workers (files, not pickles)

A training's key hashes the run's fingerprint, the digest of the training set it ran on and its configuration, so
a resumed run reuses exactly the trainings an uninterrupted run would have made and retrains anything else. The
``.json`` is written after the state file, by rename: its presence means the training is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError
from bortconv.finetune.encoding import Encoded
from bortconv.finetune.recipe import Score, TrainResult
from bortconv.finetune.search import Hyper, Plan, Speeds

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
#: in every fingerprint: 2 since Agora's teacher check (a round 2 may extend plain's search), so an older run's
#: rounds/<n>.json, written by the other path, is never resumed
CHECKPOINT_VERSION = 2
#: options that decide where and how a run executes, not what it computes: a run may resume with others
EXECUTION_OPTIONS = ("executor", "ray_address", "work_dir", "resume", "force", "progress", "budget_minutes")


def default_work_dir(out: Path) -> Path:
    """Where a run keeps its checkpoints unless --work-dir is given: ``.<OUT name>.bortconv-work`` beside OUT."""
    return out.parent / f".{out.name}.bortconv-work"


def write_json(path: Path, doc: Any) -> None:
    """Write `doc` as JSON by temp file + rename: a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _score_dict(score: Score | None) -> dict[str, Any] | None:
    if score is None:
        return None
    return {"accuracy": score.accuracy, "loss": score.loss, "predictions": score.predictions.tolist()}


def _score(d: dict[str, Any] | None) -> Score | None:
    if d is None:
        return None
    return Score(d["accuracy"], d["loss"], np.asarray(d["predictions"], dtype=np.int64))


def result_to_dict(res: TrainResult) -> dict[str, Any]:
    """Everything of a TrainResult but its state (floats are written exactly: JSON keeps Python's repr)."""
    return {"hyper": res.hyper.to_dict(), "epoch": res.epoch, "dev": _score_dict(res.dev),
            "feed": _score_dict(res.feed), "history": res.history, "seconds": res.seconds, "steps": res.steps,
            "stopped_by_budget": res.stopped_by_budget, "early_stopped": res.early_stopped,
            "schedule": res.schedule}


def result_from_dict(d: dict[str, Any], state_file: Path | None) -> TrainResult:
    """The TrainResult :func:`result_to_dict` wrote; its state stays on disk (`state_file`) until it is needed."""
    dev = _score(d["dev"])
    assert dev is not None
    return TrainResult(Hyper(**d["hyper"]), d["epoch"], dev, d["history"], d["seconds"], d["steps"],
                       d["stopped_by_budget"], None, _score(d["feed"]), d["early_stopped"],
                       schedule=d.get("schedule"), state_file=str(state_file) if state_file else None)


def save_training(folder: Path, key: str, res: TrainResult) -> dict[str, Any]:
    """Write a finished training: its state dict (safetensors), then its JSON (the completion mark)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = folder / f"{key}.safetensors"
    if res.state is not None:
        tmp = state.with_name(f".{state.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in res.state.items()}, str(tmp))
        os.replace(tmp, state)
    doc = result_to_dict(res)
    write_json(folder / f"{key}.json", doc)
    return doc


def load_state_file(path: str) -> dict[str, Any]:
    """A state dict :func:`save_training` wrote."""
    from safetensors.torch import load_file

    return load_file(path)


def save_encoded(path: Path, data: Encoded) -> str:
    """Write `data` as .npz (flat ids + lengths, types, targets); returns its digest."""
    arrays = _arrays(data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return _digest(arrays)


def load_encoded(path: Path) -> Encoded:
    """The Encoded :func:`save_encoded` wrote."""
    with np.load(path) as z:
        lengths = z["lengths"]
        cuts = np.cumsum(lengths)[:-1]

        def rows(flat: np.ndarray) -> list[list[int]]:
            return [row.tolist() for row in np.split(flat, cuts)] if len(lengths) else []
        return Encoded(rows(z["ids"]), rows(z["types"]) if "types" in z.files else None, z["targets"].copy())


def _arrays(data: Encoded) -> dict[str, np.ndarray]:
    out = {"ids": np.asarray([i for row in data.ids for i in row], np.int64),
           "lengths": np.asarray([len(row) for row in data.ids], np.int64),
           "targets": np.ascontiguousarray(data.targets, np.float32)}
    if data.types is not None:
        out["types"] = np.asarray([t for row in data.types for t in row], np.int64)
    return out


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode() + str(arrays[name].shape).encode() + arrays[name].tobytes())
    return h.hexdigest()


def encoded_digest(data: Encoded) -> str:
    """A digest of a training set's ids, types and targets (what a training's key depends on)."""
    return _digest(_arrays(data))


def fingerprint(options: dict[str, Any], inputs: dict[str, Any]) -> str:
    """What makes two runs the same computation: their options (minus how they execute) and their inputs."""
    doc = {k: v for k, v in options.items() if k not in EXECUTION_OPTIONS} | {"inputs": inputs,
                                                                             "version": CHECKPOINT_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:32]


class WorkDir:
    """The checkpoints of one run. Nothing is written before :meth:`begin`; :meth:`check` refuses a directory
    holding another run's checkpoint up front."""

    def __init__(self, path: str | os.PathLike[str], *, resume: bool, given: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        #: the user named the directory (--work-dir): --resume there with no checkpoint is a mistyped path
        self.given = given
        self.key_base = ""
        self.resumed: list[str] = []  # keys of trainings loaded instead of run
        self.started = False

    @property
    def trainings(self) -> Path:
        return self.path / "trainings"

    def check(self) -> None:
        """Refuse a checkpoint without --resume, and a non-empty directory that is not a work directory."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"work_dir {self.path}: exists and is not a directory", option="work_dir")
        has_run = (self.path / RUN_FILE).is_file()
        if has_run and not self.resume:
            raise InputError(f"work_dir {self.path}: holds the checkpoint of an earlier run; pass --resume to "
                             f"continue it, or remove the directory to start over", option="work_dir")
        if self.path.is_dir() and any(self.path.iterdir()) and not has_run:
            raise InputError(f"work_dir {self.path}: not empty and not a bortconv work directory", option="work_dir")
        if self.resume and not has_run and self.given:  # a mistyped --work-dir must not cost a whole run
            raise InputError(f"resume: --work-dir {self.path} holds no checkpoint to continue; give the work "
                             f"directory of the run to continue, or drop --resume to start one", option="resume")
        if self.resume and not has_run:  # the default one: a run killed before any checkpoint, or a first run
            log.info("--resume: %s holds no checkpoint; the run starts from the beginning", self.path)

    def begin(self, fp: str) -> dict[str, Any] | None:
        """Start (or continue) the checkpoint for fingerprint `fp`; the saved plan when resuming one."""
        self.key_base = fp
        run = self.path / RUN_FILE
        if not run.is_file():
            return None
        saved = json.loads(run.read_text(encoding="utf-8"))
        if saved.get("fingerprint") != fp:
            raise InputError(f"resume: {self.path} holds a checkpoint of another run (its options, data or "
                             f"source differ); give the same command, or remove the directory to start over",
                             option="resume")
        self.started = True
        return saved

    def save_run(self, plan: Plan, speeds: Speeds) -> None:
        for sub in ("rounds", "trainings", "data"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        write_json(self.path / RUN_FILE, {"fingerprint": self.key_base, "version": CHECKPOINT_VERSION,
                                          "plan": {"candidates": [h.to_dict() for h in plan.candidates],
                                                   "estimated_s": plan.estimated_s, "budget_s": plan.budget_s,
                                                   "space_size": plan.space_size, "minimum_s": plan.minimum_s,
                                                   "workers": plan.workers},
                                          "speeds": {"step_s": {str(k): v for k, v in speeds.step_s.items()},
                                                     "eval_s_per_example": speeds.eval_s_per_example,
                                                     "setup_s": speeds.setup_s,
                                                     "generate_s_per_example": speeds.generate_s_per_example,
                                                     "teacher_s_per_example": speeds.teacher_s_per_example}})
        self.started = True

    def round_configs(self, round_no: int, proposed: list[Hyper], digest: str) -> list[Hyper]:
        """Round `round_no`'s configurations: the checkpointed ones when resuming (the budget's choice of what
        fits is not made again), else `proposed`, checkpointed now."""
        path = self.path / "rounds" / f"{round_no}.json"
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved["train_digest"] != digest:
                log.warning("round %d: its training set differs from the checkpoint's; its trainings run again",
                            round_no)
            return [Hyper(**h) for h in saved["configs"]]
        write_json(path, {"round": round_no, "configs": [h.to_dict() for h in proposed], "train_digest": digest})
        return proposed

    def synthetic_cap(self, round_no: int, proposed: int | None) -> int | None:
        """Round `round_no`'s cap on synthetic points (None: the round does not fit): the checkpointed one when
        resuming (it depends on the time left when it was chosen, so D is rebuilt as it was), else `proposed`,
        checkpointed now."""
        path = self.path / "rounds" / f"{round_no}.cap.json"
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))["synthetic_cap"]
            return None if saved is None else int(saved)
        write_json(path, {"round": round_no, "synthetic_cap": proposed})
        return proposed

    def key(self, digest: str, h: Hyper) -> str:
        """The name of a training: run fingerprint x training set x configuration."""
        blob = json.dumps([self.key_base, digest, h.to_dict()], sort_keys=True).encode()
        return f"r-{h.lr:g}-{h.seed}-" + hashlib.sha256(blob).hexdigest()[:16]

    def load(self, key: str) -> TrainResult | None:
        """A finished training of this run, or None."""
        path = self.trainings / f"{key}.json"
        if not path.is_file():
            return None
        state = self.trainings / f"{key}.safetensors"
        res = result_from_dict(json.loads(path.read_text(encoding="utf-8")), state if state.is_file() else None)
        res.schedule = {**(res.schedule or {}), "resumed": True}
        self.resumed.append(key)
        return res

    def save(self, key: str, res: TrainResult) -> None:
        """Checkpoint a training this process ran (a Ray worker writes its own with :func:`save_training`)."""
        save_training(self.trainings, key, res)
        res.state_file = str(self.trainings / f"{key}.safetensors") if res.state is not None else None

    def drop_state(self, res: TrainResult) -> None:
        """The search no longer needs this training's weights: free them, in memory and on disk."""
        res.state = None
        if res.state_file:
            Path(res.state_file).unlink(missing_ok=True)
            res.state_file = None

    def finished(self) -> int:
        """How many finished trainings the directory holds (what --resume would not redo)."""
        return len(list(self.trainings.glob("*.json"))) if self.trainings.is_dir() else 0

    def remove(self) -> None:
        """The run completed (or left nothing worth resuming): the directory goes."""
        shutil.rmtree(self.path, ignore_errors=True)
