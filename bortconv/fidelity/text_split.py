"""Calibration and held-out text: the shipped default (WordNet example sentences, WordNet 3.0 licence, see
bortconv/data/LICENSE-WordNet.txt) or the user's file, split so the gate never sees calibration text; and the
artifact's tokenizer that turns it into ids."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bortconv.config import as_path
from bortconv.errors import InputError

DEFAULT_FILE = "calibration_en.txt"
MAX_TOKENS = 128  # calibration and gate sequences are cut here: longer ones add time, not information


@dataclass(frozen=True)
class TextSplit:
    source: str
    calibration: tuple[str, ...]
    heldout: tuple[str, ...]


def load_texts(path: str | os.PathLike[str] | None) -> tuple[str, list[str]]:
    """(description of the source, non-empty lines)."""
    if path is None:
        text = resources.files("bortconv.data").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
        source = f"bortconv/data/{DEFAULT_FILE} (WordNet 3.0 example sentences)"
    else:
        p = as_path(path, "calibration")  # "" is no path: Path("") is the working directory
        if not p.is_file():
            raise InputError(f"calibration: {p}: {'not a file' if p.exists() else 'no such file'}",
                             option="calibration")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"calibration: {p}: not UTF-8 text", option="calibration") from None
        source = str(p.resolve())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 8:
        raise InputError(f"calibration: {source}: {len(lines)} lines; need at least 8 (calibration + held-out)",
                         option="calibration")
    return source, lines


def split_texts(path: str | os.PathLike[str] | None, samples: int | None) -> TextSplit:
    """The first `samples` lines (default 3/4 of the file, at most 300) calibrate; the rest, up to 200, gate."""
    source, lines = load_texts(path)
    n = samples if samples is not None else min(300, (len(lines) * 3) // 4)
    if n <= 0 or n >= len(lines):
        raise InputError(f"samples {n}: must be between 1 and {len(lines) - 1} for {source}", option="samples")
    return TextSplit(source, tuple(lines[:n]), tuple(lines[n:n + 200]))


def load_tokenizer(directory: Path) -> Any:
    """The artifact's tokenizer.json (no padding or truncation: rows are cut at MAX_TOKENS), or None."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok
