"""Labelled examples from TSV, CSV or JSONL files: reading, checking, and the label set.

A file has a header (JSONL: keys) naming the columns ``text`` and ``label``, plus ``text_b`` for pair tasks.
Labels are strings or integers; they are kept as strings (an integer 3 and the string "3" are the same label).
Every problem is an :class:`~bortconv.errors.InputError` naming the file (and the line, where there is one).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bortconv.errors import InputError, shown

log = logging.getLogger(__name__)

TEXT, TEXT_B, LABEL = "text", "text_b", "label"
FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Example:
    """One text (or pair) and its label; generated examples have no label until the teacher gives one."""

    text: str
    text_b: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Dataset:
    """The examples of one file, with where they came from."""

    path: Path
    format: str
    examples: tuple[Example, ...]

    @property
    def is_pair(self) -> bool:
        return self.examples[0].text_b is not None

    @property
    def labels(self) -> Counter[str]:
        return Counter(e.label for e in self.examples if e.label is not None)

    def __len__(self) -> int:
        return len(self.examples)


def detect_format(path: Path) -> str:
    """tsv, csv or jsonl, from the suffix; otherwise from the first line."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt:
        return fmt
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def _label(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: label {shown(repr(value), 40)} is neither a string nor an integer")
    out = str(value).strip()
    if not out:
        raise InputError(f"{where}: empty label")
    return out


def _example(row: dict[str, object], where: str, pair: bool) -> Example:
    text = row.get(TEXT)
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: empty or missing '{TEXT}'")
    text_b = row.get(TEXT_B) if pair else None
    if pair and (not isinstance(text_b, str) or not text_b.strip()):
        raise InputError(f"{where}: empty or missing '{TEXT_B}'")
    return Example(text.strip(), text_b.strip() if isinstance(text_b, str) else None, _label(row.get(LABEL), where))


def _check_columns(columns: Iterable[str], path: Path, option: str) -> bool:
    """Whether the file is a pair task; refuses a header without text and label."""
    cols = set(columns)
    missing = [c for c in (TEXT, LABEL) if c not in cols]
    if missing:
        have = ", ".join(sorted(shown(c, 30) for c in cols)) or "none"
        raise InputError(f"{option} {path}: no {' or '.join(repr(c) for c in missing)} column (columns: {have}); "
                         f"a header with 'text' and 'label' (and 'text_b' for pairs) is needed")
    return TEXT_B in cols


def _delimited_rows(path: Path, fmt: str, option: str) -> Iterator[tuple[str, dict[str, object]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        # TSV as GLUE writes it: no quoting (a quote is text); CSV with standard quoting
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip().lower() for h in header]
        twice = sorted({h for h in (TEXT, TEXT_B, LABEL) if header.count(h) > 1})
        if twice:  # dict(zip(...)) would keep the last one and train on it without a word (others are not read)
            raise InputError(f"{option} {path}: the header names column {', '.join(map(repr, twice))} more than once")
        yield "header", dict.fromkeys(header, "")
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(f"{option} {path}:{reader.line_num}: {len(row)} fields, the header has "
                                 f"{len(header)}")
            yield f"{path}:{reader.line_num}", dict(zip(header, row))


def _jsonl_rows(path: Path, option: str) -> Iterator[tuple[str, dict[str, object]]]:
    header_done = False
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{option} {path}:{n}: not a JSON object ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{option} {path}:{n}: not a JSON object")
            if not header_done:
                header_done = True
                yield "header", obj
            yield f"{path}:{n}", obj


def read_examples(path: str | os.PathLike[str], option: str = "--train") -> Dataset:
    """Read a TSV, CSV or JSONL file of labelled examples; `option` names it in messages."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{option} {p}: no such file" if not p.exists() else f"{option} {p}: not a file")
    if p.stat().st_size == 0:
        raise InputError(f"{option} {p}: empty file")
    fmt = detect_format(p)
    rows = _jsonl_rows(p, option) if fmt == "jsonl" else _delimited_rows(p, fmt, option)
    examples: list[Example] = []
    pair = False
    try:
        for where, row in rows:
            if where == "header":
                pair = _check_columns(row, p, option)
                continue
            examples.append(_example(row, f"{option} {where}", pair))
    except UnicodeDecodeError as exc:
        raise InputError(f"{option} {p}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{option} {p}: not readable as {fmt.upper()} ({exc})") from None
    if not examples:
        raise InputError(f"{option} {p}: no examples (only a header, or blank lines)")
    log.info("%s: %d examples (%s), labels %s", p, len(examples), fmt, dict(Counter(e.label for e in examples)))
    return Dataset(p, fmt, tuple(examples))


def label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """The label set in id order: numeric order if every label is an integer, else sorted strings."""
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def check_same_task(train: Dataset, other: Dataset, option: str) -> None:
    """`other` (dev) must be the same kind of task and use only labels the training file has."""
    if other.is_pair != train.is_pair:
        has, lacks = (other, train) if other.is_pair else (train, other)
        raise InputError(f"{option} {other.path}: pair/single mismatch: {has.path} has a 'text_b' column, "
                         f"{lacks.path} does not")
    unseen = sorted(set(other.labels) - set(train.labels))
    if unseen:
        raise InputError(f"{option} {other.path}: labels the training file {train.path} never has: "
                         f"{', '.join(shown(u, 40) for u in unseen)}")
