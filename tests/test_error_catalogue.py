"""The error catalogue (docs/errors.md) is the code's: generated from bortconv.errors, and every error class the
product raises is in it (a new error type cannot ship undocumented)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import bortconv.errors as errors

ROOT = Path(__file__).resolve().parents[1]


CATALOGUE_PAGE = ROOT / "docs" / "errors.md"


def catalogue_block() -> str:
    text = CATALOGUE_PAGE.read_text()
    start, end = "<!-- error-catalogue: start -->", "<!-- error-catalogue: end -->"
    assert start in text and end in text, "docs/errors.md lost its error-catalogue markers"
    return text[text.index(start) + len(start):text.index(end)].strip()


def test_catalogue_is_generated_from_the_code():
    assert catalogue_block() == errors.catalogue_markdown(), \
        "docs/errors.md is stale: paste the output of `python -m bortconv.errors` between its markers"


def test_every_error_class_is_catalogued():
    classes = {c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.BortconvError) and c is not errors.BortconvError}
    assert classes == set(errors.CATALOGUE)
    codes = {c.__name__: c.exit_code for c in errors.CATALOGUE}
    assert set(codes.values()) <= {1, 2} and all(c.advice for c in errors.CATALOGUE)
    # bad input is 2, a failed check is 1 (the contract CI pipelines rely on)
    assert codes["InputError"] == codes["CheckpointFormatError"] == codes["OutputExistsError"] == 2
    assert codes["ParityError"] == codes["IntegrityError"] == codes["AccuracyGateError"] == 1


def test_product_raises_only_catalogued_errors():
    """Every `raise X(...)` in the package names a catalogued error or a Python built-in used internally."""
    catalogued = {c.__name__ for c in errors.CATALOGUE}
    internal_ok = {"ValueError", "KeyError", "TypeError", "RuntimeError", "StopIteration", "NotImplementedError",
                   "Terminated", "_ArtifactRunError", "AssertionError", "error",
                   "AttributeError",  # module __getattr__ protocol (lazy API names)
                   "OSError",  # a self-check of written files (internal: exit 3)
                   "InvalidInput",  # kserve's bad-request error: `bortconv serve` answers HTTP 400 with it
                   "ArgumentTypeError"}  # argparse's own usage error for an option value (exit 2)
    raised: dict[str, set[str]] = {}
    for path in (ROOT / "bortconv").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                f = node.exc.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name:
                    raised.setdefault(name, set()).add(path.name)
    unknown = {k: v for k, v in raised.items() if k not in catalogued | internal_ok}
    assert not unknown, f"raised but not in the catalogue: {unknown}"
    assert {"InputError", "CheckpointFormatError", "MappingError", "ParityError"} <= set(raised)
