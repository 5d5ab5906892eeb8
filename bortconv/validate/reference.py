"""The reference an artifact is judged against: its source as a Hugging Face directory (a `.params` file is
converted first), run through the PyTorch task model or the original MXNet forward, outputs memoized."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import max_positions
from bortconv.errors import InputError
from bortconv.layout import CONFIG_FILE, CONVERSION_RECORD
from bortconv.measure import Runner

log = logging.getLogger(__name__)


@dataclass
class ReferenceModel:
    """The source an artifact is judged against, as a Hugging Face directory the PyTorch model loads from.

    Its outputs are memoized per input batch: artifacts of one source (fp32 and fp16, ONNX and OpenVINO)
    validated in one run share the reference's forward passes.
    """

    path: Path
    kind: str  # "params" or "hf"
    hf_dir: Path
    config: dict[str, Any]
    record: dict[str, Any] | None
    task: str
    output: str
    _runners: dict[str, Runner] = field(default_factory=dict, repr=False)
    _outputs: dict[tuple[str, bytes], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def pad_id(self) -> int:
        return int(self.config.get("pad_token_id") or 0)

    @property
    def max_length(self) -> int:
        return max_positions(self.config)

    def run(self, feeds: Mapping[str, np.ndarray], backend: str = "pytorch") -> np.ndarray:
        """The reference output for a batch of feeds: fp32 PyTorch, or the MXNet forward (``backend="mxnet"``)."""
        key = (backend, _feeds_key(feeds))
        if key not in self._outputs:
            if backend not in self._runners:
                self._runners[backend] = self._make_runner(backend)
            self._outputs[key] = self._runners[backend](feeds)
        return self._outputs[key]

    def _make_runner(self, backend: str) -> Runner:
        if backend == "pytorch":
            from bortconv.converters.hf_model import pytorch_runner
            return pytorch_runner(self.hf_dir, self.task)
        if self.kind != "params" or self.record is None:
            raise InputError(f"--reference-backend mxnet needs a Bort .params reference and the artifact's "
                             f"conversion record; {self.path} is a "
                             f"{'model directory' if self.kind == 'hf' else 'file without one'}")
        from bortconv.validate.mxnet_reference import mxnet_runner
        return mxnet_runner(self.path, self.record, self.task)


def _feeds_key(feeds: Mapping[str, np.ndarray]) -> bytes:
    h = hashlib.sha256()
    for k in sorted(feeds):
        a = np.ascontiguousarray(feeds[k])
        h.update(f"{k}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()


class ReferenceCache:
    """Reference models of one validate run, keyed by source, task and conversion options: a source shared
    by several artifacts is converted and loaded once. Use as a context manager (it owns a temp directory)."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bortconv-validate-")
        self._models: dict[tuple[str, ...], ReferenceModel] = {}

    def get(self, artifact_dir: Path, manifest: Mapping[str, Any],
            reference: str | os.PathLike[str] | None) -> ReferenceModel:
        path = reference_path(artifact_dir, manifest, reference)
        record = _artifact_record(artifact_dir)
        variant = str(((record or {}).get("variant") or {}).get("name"))
        key = (str(path.resolve()), str(manifest["task"]), str(manifest["output"]), variant,
               str((record or {}).get("decoder_layer_norm_eps")))
        if key not in self._models:
            work = Path(self._tmp.name) / f"ref{len(self._models)}"
            work.mkdir()
            self._models[key] = resolve_reference(artifact_dir, manifest, reference, work)
        return self._models[key]

    def close(self) -> None:
        self._models.clear()
        self._tmp.cleanup()

    def __enter__(self) -> ReferenceCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reference_path(artifact_dir: Path, manifest: Mapping[str, Any],
                   reference: str | os.PathLike[str] | None) -> Path:
    """`reference`, or else the manifest's source; InputError (exit 2) if it is not there."""
    if reference is None:
        source = manifest.get("source")
        if not source:
            raise InputError(f"{artifact_dir}: manifest.json names no source; pass --reference SOURCE")
        path = Path(str(source))
        if not path.exists():
            raise InputError(f"{artifact_dir}: the manifest's source {path} does not exist here; "
                             f"pass --reference SOURCE (the .params file or model directory it was exported from)")
        return path
    path = Path(reference)
    if not path.exists():
        raise InputError(f"--reference {path}: no such file or directory")
    return path


def resolve_reference(artifact_dir: Path, manifest: Mapping[str, Any], reference: str | os.PathLike[str] | None,
                      work: Path) -> ReferenceModel:
    """The reference as a Hugging Face directory: a `.params` source is converted into `work` first."""
    from bortconv.converters import hf_model

    path = reference_path(artifact_dir, manifest, reference)
    record = _artifact_record(artifact_dir)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise InputError(f"--reference {path}: directory has no config.json; expected a Hugging Face model "
                             f"directory or a .params file")
        kind, hf_dir = "hf", path
    else:
        from bortconv.converters.convert import convert
        variant = (record or {}).get("variant", {}).get("name") if isinstance(record, dict) else None
        eps = (record or {}).get("decoder_layer_norm_eps") if isinstance(record, dict) else None
        hf_dir = work / "reference-hf"
        log.info("converting the reference %s", path)
        convert(path, hf_dir, variant=variant, decoder_layer_norm_eps=eps)
        kind = "params"
    config = hf_model.read_config(hf_dir)
    return ReferenceModel(path=path, kind=kind, hf_dir=hf_dir, config=config, record=record,
                          task=str(manifest["task"]), output=str(manifest["output"]))


def _artifact_record(artifact_dir: Path) -> dict[str, Any] | None:
    path = artifact_dir / CONVERSION_RECORD
    try:
        rec = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a damaged record is the integrity check's finding, not bad input
    return rec if isinstance(rec, dict) else None


