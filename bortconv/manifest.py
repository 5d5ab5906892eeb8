"""manifest.json, typed: what an artifact directory holds, where it came from, how to load it, and what was
measured at export. One writer (:func:`write_manifest`), one reader (:func:`read_manifest`), one schema
(``bortconv/data/manifest.schema.json``): the reader refuses a file that lacks the schema's required fields or
has them of the wrong type, naming the field.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from bortconv._util.hashing import sha256_file
from bortconv._version import __version__
from bortconv.config import FORMAT_VERSION
from bortconv.errors import ChangedArtifactError, InputError
from bortconv.layout import MANIFEST_FILE

VERSIONED = ("torch", "transformers", "onnx", "onnxruntime", "openvino", "tokenizers", "numpy")
SCHEMA_FILE = "manifest.schema.json"
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "string": str, "integer": int,
                                                    "null": type(None)}


@cache
def schema() -> dict[str, Any]:
    """The manifest's JSON schema (shipped as package data)."""
    return json.loads(resources.files("bortconv").joinpath("data", SCHEMA_FILE).read_text(encoding="utf-8"))


def versions() -> dict[str, str | None]:
    """bortconv's version and those of the libraries an artifact's numbers depend on (None: not installed)."""
    out: dict[str, str | None] = {"bortconv": __version__}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass(frozen=True)
class FileRecord:
    """One file of the artifact as the manifest records it."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest(Mapping[str, Any]):
    """A manifest.json: its core fields typed, every field (as written) also readable by key."""

    format_version: int
    target: str
    task: str
    precision: str
    output: str
    files: dict[str, FileRecord]
    versions: dict[str, str | None]
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = MANIFEST_FILE) -> Manifest:
        """Check `data` against the schema's required fields and their types (InputError naming the field)."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: not a bortconv manifest (not a JSON object)")
        _check(data, where)
        files = {name: FileRecord(str(f["sha256"]), int(f["bytes"])) for name, f in data["files"].items()}
        return cls(int(data["format_version"]), str(data["target"]), str(data["task"]), str(data["precision"]),
                   str(data["output"]), files, dict(data["versions"]), dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, as written."""
        return dict(self.data)

    @property
    def loading(self) -> dict[str, Any]:
        """How each runtime loads the artifact (the `loading` contract); {} for old manifests."""
        value = self.data.get("loading")
        return value if isinstance(value, dict) else {}

    @property
    def source(self) -> str | None:
        return self.data.get("source")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def _check(data: Mapping[str, Any], where: str) -> None:
    sch = schema()
    missing = [k for k in sch["required"] if k not in data]
    if missing:
        raise InputError(f"{where}: not a bortconv manifest (missing {', '.join(missing)})")
    for key in sch["required"]:
        spec = sch["properties"][key]
        if "enum" in spec and data[key] not in spec["enum"]:
            raise InputError(f"{where}: {key} '{data[key]}' is not one of {', '.join(spec['enum'])}")
        if "type" in spec and not isinstance(data[key], _JSON_TYPES[spec["type"]]):
            raise InputError(f"{where}: {key} is not of type {spec['type']}")
    for name, f in data["files"].items():
        if not (isinstance(f, Mapping) and isinstance(f.get("sha256"), str) and isinstance(f.get("bytes"), int)):
            raise InputError(f"{where}: files['{name}'] lacks its sha256 and bytes")


def static_shape(manifest: Mapping[str, Any]) -> tuple[int, int] | None:
    """The (batch, length) an artifact exported with --static-shape only runs at; None when its shapes are dynamic."""
    value = manifest.get("static_shape")
    return (int(value[0]), int(value[1])) if value else None


def table_record(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The word table's record: top level for a gated fp32/fp16/bf16 export, under int8 for an int8 one ({}: none)."""
    int8 = manifest.get("int8")
    record = manifest.get("embeddings") or (int8.get("embeddings") if isinstance(int8, Mapping) else None)
    return record if isinstance(record, Mapping) else {}


def compressed_table(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The word-table record of an artifact whose table is stored int8 or int4 (``--embeddings``), else None."""
    record = table_record(manifest)
    return record if record.get("scheme") not in (None, "fp32") else None


def file_problem(directory: Path, name: str, info: object) -> str | None:
    """Why the artifact's file `name` is not what its manifest lists (`info`: sha256, bytes); None if it is."""
    if Path(name).name != name or name in (".", ".."):
        return "manifest names a path outside the artifact directory"
    path = directory / name
    if not path.is_file():
        return "file is missing"
    want = str(info.get("sha256", "")) if isinstance(info, Mapping) else ""
    digest = sha256_file(path)
    if digest == want:
        return None
    detail = f"sha256 {digest[:12]}... but manifest says {want[:12] or '(none)'}..."
    if isinstance(info, Mapping) and info.get("bytes") is not None and int(info["bytes"]) != path.stat().st_size:
        detail += f" ({path.stat().st_size} bytes, manifest says {info['bytes']})"
    return detail


def unlisted_files(directory: Path, listed: Mapping[str, Any]) -> list[str]:
    """What `directory` holds besides the manifest and the files it lists."""
    return [p.name for p in sorted(directory.iterdir()) if p.name != MANIFEST_FILE and p.name not in listed]


def check_unchanged(directory: Path, manifest: Mapping[str, Any]) -> None:
    """ChangedArtifactError (bad input: exit 2) naming the first file of `directory` that is not what its manifest
    lists (changed, missing, or not listed): a command that builds on an artifact (quantize, package) must not carry
    a change into a new artifact with fresh hashes, where `validate` could no longer see it."""
    listed = manifest.get("files")
    if not isinstance(listed, Mapping):
        raise InputError(f"{directory / MANIFEST_FILE}: lists no files; not a manifest bortconv wrote")
    problems = itertools.chain(((name, file_problem(directory, name, info)) for name, info in sorted(listed.items())),
                               ((name, "not listed in its manifest") for name in unlisted_files(directory, listed)))
    name, why = next(((n, w) for n, w in problems if w), (None, None))  # stops at the first
    if name is not None:
        raise ChangedArtifactError(f"{directory / name}: {why}; the artifact changed after it was written "
                                   f"(bortconv validate {directory} lists what)")


def file_hashes(directory: Path) -> dict[str, dict[str, object]]:
    """name -> {sha256, bytes} for every file in the directory except the manifest itself."""
    return {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST_FILE}


def write_manifest(directory: Path, fields: Mapping[str, object]) -> Manifest:
    """Write manifest.json into `directory`: `fields`, plus the format version, tool versions and file hashes."""
    data = {"format_version": FORMAT_VERSION, "versions": versions(), **fields, "files": file_hashes(directory)}
    manifest = Manifest.from_dict(json.loads(json.dumps(data, default=str)), str(directory / MANIFEST_FILE))
    (directory / MANIFEST_FILE).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def read_manifest(directory: Path) -> Manifest:
    """manifest.json of an artifact directory; InputError (exit 2) naming what is wrong if there is none."""
    from bortconv._util.jsonfile import read_json

    if not directory.is_dir():
        raise InputError(f"{directory}: {'not a directory' if directory.exists() else 'no such directory'} (give "
                         f"the artifact directory)")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{directory}: no {MANIFEST_FILE}; not a bortconv artifact directory")
    return Manifest.from_dict(read_json(path), str(path))


def carried_fields(manifest: Mapping[str, object]) -> dict[str, object]:
    """The fields a derived artifact (int8 from fp32) inherits: all but the file list and the tool versions,
    which write_manifest fills in anew."""
    return {k: v for k, v in manifest.items() if k not in ("files", "versions", "format_version")}
