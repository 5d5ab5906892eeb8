"""Read a JSON file the user handed us: a readable message (exit 2) instead of a decoder traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bortconv.errors import InputError


def read_json(path: Path) -> Any:
    """The parsed contents of `path`; InputError naming the file if it is not valid UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
