"""manifest.json: what an artifact directory holds, where it came from, and what was measured at export."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from bortconv._hashing import sha256_file
from bortconv._version import __version__
from bortconv.config import FORMAT_VERSION
from bortconv.layout import MANIFEST_FILE

VERSIONED = ("torch", "transformers", "onnx", "onnxruntime", "openvino", "tokenizers", "numpy")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"bortconv": __version__}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def file_hashes(directory: Path) -> dict[str, dict[str, object]]:
    """name -> {sha256, bytes} for every file in the directory except the manifest itself."""
    return {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST_FILE}


def write_manifest(directory: Path, fields: dict[str, object]) -> dict[str, object]:
    manifest = {"format_version": FORMAT_VERSION, "versions": versions(), **fields,
                "files": file_hashes(directory)}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, object]:
    """manifest.json of an artifact directory; InputError (exit 2) naming what is wrong if there is none."""
    from bortconv._jsonfile import read_json
    from bortconv.errors import InputError

    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{directory}: no {MANIFEST_FILE}; not a bortconv artifact directory")
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: not a bortconv manifest (not a JSON object)")
    return manifest


def carried_fields(manifest: dict[str, object]) -> dict[str, object]:
    """The fields a derived artifact (int8 from fp32) inherits: all but the file list and the tool versions,
    which write_manifest fills in anew."""
    return {k: v for k, v in manifest.items() if k not in ("files", "versions", "format_version")}
