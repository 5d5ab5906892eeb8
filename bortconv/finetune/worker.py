"""What a Ray worker runs for one training: read the student and the data from the work directory, train, write the
result there, return its summary. No Ray import here: Ray calls :func:`run_job` as a plain function.

Models and data travel as files in the work directory (the student as a Hugging Face directory, data as ``.npz``,
the trained state as safetensors), never as pickled live objects; a multi-node cluster needs the work directory on
storage every node mounts at the same path. A worker keeps the student it loaded for the next training.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from bortconv.finetune.checkpoint import load_encoded, save_training, write_json
from bortconv.finetune.determinism import deterministic_torch
from bortconv.finetune.encoding import Encoded
from bortconv.finetune.jobs import schedule
from bortconv.finetune.recipe import Student, train_candidate
from bortconv.finetune.search import Hyper

STUDENT_FILE = "student.json"
_students: dict[str, Student] = {}
_data: dict[str, Encoded] = {}


def save_student(student: Student, folder: Path) -> None:
    """The student's template as a Hugging Face directory, plus what :class:`Student` adds (pad id, fresh head)."""
    import transformers

    from bortconv.finetune.source import quiet_transformers

    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers(transformers):
        student.template.save_pretrained(str(folder))
    write_json(folder / STUDENT_FILE, {"pad_id": student.pad_id, "reinit": list(student.reinit)})


def load_student(folder: str) -> Student:
    """The student :func:`save_student` wrote (once per worker process)."""
    if folder not in _students:
        import transformers

        from bortconv.finetune.source import quiet_transformers

        meta = json.loads((Path(folder) / STUDENT_FILE).read_text(encoding="utf-8"))
        with quiet_transformers(transformers):
            model = transformers.BertForSequenceClassification.from_pretrained(folder, attn_implementation="sdpa")
        _students.clear()
        _students[folder] = Student(model.float().eval(), int(meta["pad_id"]), tuple(meta["reinit"]))
    return _students[folder]


def _encoded(path: str, keep: set[str]) -> Encoded:
    for old in set(_data) - keep:  # an earlier round's training set
        del _data[old]
    if path not in _data:
        _data[path] = load_encoded(Path(path))
    return _data[path]


def _mark(folder: Path, key: str, started: float) -> int:
    """Note the training as running (host, pid, start, attempt); returns which attempt this is."""
    mark = folder / f"{key}.running"
    attempts = 1
    if mark.is_file():  # an earlier attempt died (killed worker, lost node, killed driver)
        try:
            attempts = int(json.loads(mark.read_text(encoding="utf-8")).get("attempts", 1)) + 1
        except (ValueError, OSError):
            attempts = 2
    write_json(mark, {"host": socket.gethostname(), "pid": os.getpid(), "started": started, "attempts": attempts})
    return attempts


def run_job(settings: dict[str, Any], job: dict[str, Any], queued_at: float) -> dict[str, Any] | None:
    """Train one configuration; its result as :func:`bortconv.finetune.checkpoint.result_to_dict` gives it, or
    None when the budget leaves no time to start it."""
    started = time.time()
    if not job["must_run"] and started + job["cost_s"] > settings["deadline"]:
        return None
    if settings["device"] == "cuda":  # cuBLAS is deterministic only with a fixed workspace (set before CUDA starts)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    folder = Path(settings["trainings"])
    attempts = _mark(folder, job["key"], started)
    student = load_student(settings["student"])
    paths = {settings["train"], settings["selection"], settings["feed"]}
    train, selection, feed = (_encoded(settings[k], paths) for k in ("train", "selection", "feed"))
    loaded = time.time()
    deadline = time.perf_counter() + (settings["deadline"] - loaded)  # inf stays inf
    with deterministic_torch(settings["threads"]):
        res = train_candidate(student, Hyper(**job["hyper"]), train, selection, epochs=settings["epochs"],
                              run_seed=settings["seed"], deadline=deadline, feed=feed, patience=settings["patience"],
                              device=settings["device"])
    res.schedule = schedule(executor="ray", started=started, finished=time.time(), device=settings["device"],
                            queued_at=queued_at, attempts=attempts, load_s=loaded - started)
    doc = save_training(folder, job["key"], res)
    (folder / f"{job['key']}.running").unlink(missing_ok=True)
    return doc
