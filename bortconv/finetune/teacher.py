"""The teacher: a trained classifier that labels generated text.

Either a Hugging Face sequence-classification directory (run with transformers) or a bortconv text-classification
artifact directory (it has manifest.json; run torch-free through :class:`bortconv.runtime.bort.BortRuntime`). It labels
*text* with its own tokenizer, so its architecture and vocabulary may differ from the student's. Its label names
must be the training labels: the same set, matched by name (a teacher with transformers' default names
``LABEL_<i>`` matches integer training labels ``<i>``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bortconv.errors import InputError, shown
from bortconv.finetune.data import Example
from bortconv.layout import CONFIG_FILE, MANIFEST_FILE

log = logging.getLogger(__name__)

BATCH = 32


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {shown(text, 120)}" if text else type(exc).__name__


class Teacher:
    """Probabilities over the training labels for any texts (columns in the training label order)."""

    kind: str = ""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        self.path = path
        self.names = tuple(names)  # the teacher's own label names, in its id order
        self.columns: np.ndarray | None = None  # teacher id -> training id

    def match(self, labels: Sequence[str]) -> None:
        """Map the teacher's labels onto the training labels; refuses a teacher whose label set differs."""
        names = list(self.names)
        if set(names) != set(labels) and all(n.isdigit() for n in labels):  # transformers' default names
            names = [n[len("LABEL_"):] if n.startswith("LABEL_") else n for n in names]
        extra = sorted(set(names) - set(labels))
        if extra:
            raise InputError(f"teacher {self.path}: labels the training file never has: "
                             f"{', '.join(shown(x, 40) for x in extra)}", option="teacher")
        lacking = sorted(set(labels) - set(names))
        if lacking:
            raise InputError(f"teacher {self.path}: does not know the training labels "
                             f"{', '.join(shown(x, 40) for x in lacking)}; its labels must be the training labels",
                             option="teacher")
        index = {lab: i for i, lab in enumerate(labels)}
        self.columns = np.array([index[n] for n in names])

    def _logits(self, examples: Sequence[Example]) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self, examples: Sequence[Example]) -> np.ndarray:
        """(n, num_labels) probabilities, columns in the training label order."""
        if self.columns is None:
            raise RuntimeError("Teacher.match() must be called first")
        probs = np.zeros((len(examples), len(self.columns)), np.float32)
        for s in range(0, len(examples), BATCH):
            chunk = examples[s:s + BATCH]
            probs[s:s + len(chunk)][:, self.columns] = _softmax(self._logits(chunk).astype(np.float64))
        return probs


class TransformersTeacher(Teacher):
    """A Hugging Face sequence-classification directory, run with transformers (any architecture)."""

    kind = "transformers"

    def __init__(self, path: Path) -> None:
        import transformers

        from bortconv.finetune.source import quiet_transformers

        try:
            with quiet_transformers(transformers):
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
                self.model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
        except Exception as exc:  # transformers raises every kind of error for a directory it cannot load
            raise InputError(f"teacher {path}: does not load as a sequence-classification model "
                             f"({_failure(exc)})", option="teacher") from None
        id2label = self.model.config.id2label
        super().__init__(path, [str(id2label[i]) for i in range(len(id2label))])

    def _logits(self, examples: Sequence[Example]) -> np.ndarray:
        import torch

        b = [e.text_b for e in examples] if examples[0].text_b is not None else None
        enc = self.tokenizer([e.text for e in examples], b, truncation=True, padding=True, return_tensors="pt",
                             max_length=min(512, int(getattr(self.tokenizer, "model_max_length", 512) or 512)))
        with torch.no_grad():
            return self.model(**enc).logits.float().numpy()


class RuntimeTeacher(Teacher):
    """A bortconv text-classification artifact (ONNX or OpenVINO), run torch-free with BortRuntime."""

    kind = "bortconv-runtime"

    def __init__(self, path: Path, threads: int | None) -> None:
        from bortconv.runtime.bort import BortRuntime

        try:
            self.runtime = BortRuntime(path, threads=threads)
            if self.runtime.task == "text-classification":
                self.runtime.predict(["a probe"])  # a teacher that cannot read text must fail now, not mid-search
        except InputError as exc:
            raise InputError(f"teacher {path}: {exc.message}", option="teacher") from None
        except Exception as exc:  # a corrupt model file: ONNX Runtime / OpenVINO raise their own types
            raise InputError(f"teacher {path}: does not load ({_failure(exc)})", option="teacher") from None
        if self.runtime.task != "text-classification":
            raise InputError(f"teacher {path}: a {self.runtime.task} artifact; the teacher must be a "
                             f"text-classification one", option="teacher")
        id2label = self.runtime.id2label
        super().__init__(path, [str(id2label.get(str(i), i)) for i in range(len(id2label))])

    def _logits(self, examples: Sequence[Example]) -> np.ndarray:
        texts = [e.text for e in examples]
        if examples[0].text_b is None:
            out = self.runtime.predict(texts)
        else:
            out = self.runtime.predict(texts, text_pairs=[str(e.text_b) for e in examples])
        return np.array([r["logits"] for r in out], np.float64)


def load_teacher(path: str | os.PathLike[str], labels: Sequence[str], *, threads: int | None = None) -> Teacher:
    """Open the teacher at `path` and match its labels to `labels` (InputError, exit 2, if it cannot be used)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"teacher {p}: {'not a directory' if p.exists() else 'no such directory'}", option="teacher")
    if not (p / CONFIG_FILE).is_file():
        raise InputError(f"teacher {p}: no {CONFIG_FILE}; expected a Hugging Face sequence-classification "
                         f"directory or a bortconv text-classification artifact", option="teacher")
    teacher: Teacher = RuntimeTeacher(p, threads) if (p / MANIFEST_FILE).is_file() else TransformersTeacher(p)
    teacher.match(labels)
    log.info("teacher %s (%s): labels %s", p, teacher.kind, teacher.names)
    return teacher


def teacher_accuracy(teacher: Teacher, examples: Sequence[Example], labels: Sequence[str]) -> float:
    """The teacher's accuracy on labelled examples (the notes page asks for an "ok-ish" teacher, above 2/3)."""
    pred = teacher.probabilities(examples).argmax(1)
    index = {lab: i for i, lab in enumerate(labels)}
    return float(np.mean(pred == np.array([index[str(e.label)] for e in examples])))
