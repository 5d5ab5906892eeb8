"""The rows of a validation report, and the checks that need no model run: file integrity against the
manifest, and the files an artifact carries from its reference."""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv._util.hashing import sha256_file
from bortconv.config import PRECISIONS, Target
from bortconv.errors import InputError
from bortconv.layout import CARRIED_FILES, CONVERSION_RECORD, WEIGHT_FILES


@dataclass(frozen=True)
class Check:
    """One row of the report. ``status`` is pass, fail, skip (could not run) or info (no verdict)."""

    group: str
    name: str
    status: str
    max_diff: float | None = None
    where: str = ""
    tolerance: float | None = None
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    """Everything `bortconv validate` checked on one artifact directory."""

    artifact: str
    target: str
    precision: str
    task: str
    reference: str
    backends: tuple[str, ...]
    checks: tuple[Check, ...]
    seconds: float
    threads: int | None = None

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "checks"}
        return d | {"passed": self.passed, "checks": [c.to_dict() for c in self.checks],
                    "failures": len(self.failures)}


def parse_tolerance(value: str | float | None, target: str, precision: str) -> float | None:
    """``--tolerance``: one number for this artifact, or ``TARGET:PRECISION=NUMBER[,...]`` entries (entries for
    other targets/precisions are ignored, so one CI line serves a loop over artifacts). None: the default table."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # True was read as 1.0
        return _positive(float(value), value)
    if not isinstance(value, str):
        raise InputError(f"--tolerance: {value!r} is not a number or TARGET:PRECISION=NUMBER entries")
    text = value.strip()
    if "=" not in text:
        return _positive_float(text, value)
    tol, seen = None, set()
    for entry in text.split(","):
        key, sep, num = entry.partition("=")
        parts = tuple(key.strip().split(":"))
        if not sep or len(parts) != 2:
            raise InputError(f"--tolerance: '{entry}' is not TARGET:PRECISION=NUMBER (e.g. onnx:fp16=1e-2)")
        targets = tuple(t.value for t in Target)
        if parts[0] not in targets or parts[1] not in PRECISIONS:  # a typo would leave the default in force
            raise InputError(f"--tolerance: '{entry}': TARGET is one of {', '.join(targets)} and PRECISION "
                             f"one of {', '.join(PRECISIONS)}")
        if parts in seen:  # which of two would hold is a guess; the later, looser one was taken silently
            raise InputError(f"--tolerance: '{key.strip()}' is given twice")
        seen.add(parts)
        number = _positive_float(num.strip(), value)
        if parts == (target, precision):
            tol = number
    return tol


def _positive_float(text: str, whole: object) -> float:
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"--tolerance: '{whole}' is not a number or TARGET:PRECISION=NUMBER entries") from None
    return _positive(number, whole)


def _positive(number: float, whole: object) -> float:
    if not number > 0 or not np.isfinite(number):
        raise InputError(f"--tolerance: '{whole}' must be a positive number")
    return number


def check_integrity(artifact_dir: Path, manifest: Mapping[str, Any]) -> list[Check]:
    """One row per manifest entry (sha256 and size), plus a failing row per file the manifest does not list."""
    from bortconv.manifest import file_problem, unlisted_files

    checks = []
    listed = manifest["files"]
    for name in sorted(listed):
        t0 = time.perf_counter()
        problem = file_problem(artifact_dir, name, listed[name])
        checks.append(Check("integrity", f"sha256 {name}", "fail" if problem else "pass", detail=problem or "",
                            seconds=time.perf_counter() - t0))
    for name in unlisted_files(artifact_dir, listed):
        checks.append(Check("integrity", f"unlisted {name}", "fail",
                            detail="present in the directory but not listed in manifest.json"))
    return checks


def check_reference_files(artifact_dir: Path, manifest: Mapping[str, Any], ref: Any) -> list[Check]:
    """Is this the file the artifact came from (info), and are the carried files the reference's own copies?"""
    checks = []
    want_sha = manifest.get("source_sha256")
    if ref.kind == "params":
        src_file: Path | None = ref.path
    else:
        src_file = next((ref.path / f for f in WEIGHT_FILES if (ref.path / f).is_file()), None)
    if want_sha and src_file is not None:
        same = sha256_file(src_file) == want_sha
        checks.append(Check("reference", "source sha256", "info" if not same else "pass", where=src_file.name,
                            detail="" if same else "the reference is not the file the artifact was exported from "
                                                   "(manifest source_sha256 differs); parity is judged against it"))
    for name in CARRIED_FILES:
        mine = artifact_dir / name
        if not mine.is_file():
            continue
        theirs = ref.hf_dir / name
        if not theirs.is_file():
            checks.append(Check("reference", f"copy of {name}", "skip",
                                detail="the reference has no copy of this file (e.g. a tokenizer built at export)"))
            continue
        same, detail = _same_carried_file(name, mine, theirs, ref.kind)
        checks.append(Check("reference", f"copy of {name}", "pass" if same else "fail", detail=detail))
    return checks


def _same_carried_file(name: str, mine: Path, theirs: Path, kind: str) -> tuple[bool, str]:
    if kind == "params" and name == CONVERSION_RECORD:
        # re-converted here: where the source sat and which bortconv wrote it may differ, the rest may not
        try:
            a, b = json.loads(mine.read_text()), json.loads(theirs.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return False, f"not valid JSON ({exc})"
        diff = sorted(k for k in set(a) | set(b) if k not in ("source", "tool") and a.get(k) != b.get(k))
        return not diff, f"differs from a fresh conversion of the reference in: {', '.join(diff)}" if diff else ""
    if mine.read_bytes() == theirs.read_bytes():
        return True, ""
    if name.endswith(".json"):
        try:
            if json.loads(mine.read_text()) == json.loads(theirs.read_text()):
                return True, ""
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return False, "differs from the reference's copy"


