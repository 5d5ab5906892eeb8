"""`bortconv validate`: is an artifact directory still what was exported, and does it still compute what its
source computes? A CI gate: every check is a row of a :class:`ValidationReport`, not a boolean.

Groups of checks, in the order they run:

    integrity        every file's sha256 against manifest.json; no missing and no unlisted files
    reference        the reference is the file the artifact came from (source sha256, informational), and the
                     files carried from it (config.json, conversion record, tokenizer files) equal the
                     reference's own copies -- so an edited tokenizer is caught even with a re-hashed manifest
    parity/pytorch   the artifact vs the source through the PyTorch model, over the shape table of
                     validate/parity.py, with the (target, precision) tolerance of validate/parity.py
    parity/mxnet     the same against MXNet itself (``backends=("pytorch", "mxnet")``; needs mxnet importable)
    fidelity         int8 artifacts: judged by task agreement, not atol, by a gate in bortconv.quantize
                     (see :data:`PRECISION_GATES`)

Heavy libraries (torch, onnxruntime, openvino, mxnet) are imported only by the checks that need them.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bortconv.errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
TARGETS = ("onnx", "openvino")
ATOL_PRECISIONS = ("fp32", "fp16")
BACKENDS = ("pytorch", "mxnet")
#: Inputs differ from the ones export used (seed 0), so validate is not a replay of the export's own check.
PARITY_SEED = 1000
#: MXNet and PyTorch differ by up to ~1e-4 on their own (erf GELU, LayerNorm accumulation order); the README's
#: converted-vs-MXNet bounds are 1e-4 (hidden, classifier) and 2e-4 (MLM logits over the vocabulary).
MXNET_FLOOR = {"fill-mask": 2e-4}

#: precision -> "module:function" of the gate that judges artifacts of that precision instead of atol parity.
#: The int8 gate is written in bortconv/quantize/ by the int8 work; until it exists, int8 artifacts are refused
#: (exit 2). The function must follow :class:`FidelityGate`.
PRECISION_GATES: dict[str, str] = {"int8": "bortconv.quantize.gate:fidelity_gate"}

Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


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
        return int(self.config.get("max_position_embeddings") or 512)

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
            return pytorch_runner(self.hf_dir, self.task)
        if self.kind != "params" or self.record is None:
            raise InputError(f"--reference-backend mxnet needs a Bort .params reference and the artifact's "
                             f"conversion record; {self.path} is a "
                             f"{'model directory' if self.kind == 'hf' else 'file without one'}")
        from bortconv.validate.mxnet_reference import mxnet_runner
        return mxnet_runner(self.path, self.record, self.task)


def _feeds_key(feeds: Mapping[str, np.ndarray]) -> bytes:
    import hashlib
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


class FidelityGate(Protocol):
    """What a precision gate (e.g. int8's) provides: judge `session` against `reference`, return report rows."""

    def __call__(self, artifact_dir: Path, manifest: Mapping[str, Any], reference: ReferenceModel, session: Any,
                 *, threads: int | None) -> Sequence[Check]: ...


def read_artifact_manifest(artifact_dir: Path) -> dict[str, Any]:
    """manifest.json of an artifact directory, checked for the fields validate needs (InputError if not)."""
    from bortconv.manifest import read_manifest
    manifest = read_manifest(artifact_dir)
    path = artifact_dir / MANIFEST_FILE
    missing = [k for k in ("files", "target", "precision", "task", "output") if k not in manifest]
    if missing or not isinstance(manifest.get("files"), dict):
        raise InputError(f"{path}: not a bortconv manifest (missing {', '.join(missing) or 'files'})")
    if manifest["target"] not in TARGETS:
        raise InputError(f"{path}: target '{manifest['target']}' is not one of {', '.join(TARGETS)}")
    return manifest


def parse_tolerance(value: str | float | None, target: str, precision: str) -> float | None:
    """``--tolerance``: one number for this artifact, or ``TARGET:PRECISION=NUMBER[,...]`` entries (entries for
    other targets/precisions are ignored, so one CI line serves a loop over artifacts). None: the default table."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        tol: float | None = float(value)
    else:
        tol = None
        text = value.strip()
        if "=" not in text:
            tol = _positive_float(text, value)
        else:
            for entry in text.split(","):
                key, sep, num = entry.partition("=")
                parts = key.strip().split(":")
                if not sep or len(parts) != 2:
                    raise InputError(f"--tolerance: '{entry}' is not TARGET:PRECISION=NUMBER (e.g. onnx:fp16=1e-2)")
                if (parts[0], parts[1]) == (target, precision):
                    tol = _positive_float(num.strip(), value)
                else:
                    _positive_float(num.strip(), value)
    if tol is not None and not tol > 0:
        raise InputError(f"--tolerance: '{value}' must be positive")
    return tol


def _positive_float(text: str, whole: object) -> float:
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"--tolerance: '{whole}' is not a number or TARGET:PRECISION=NUMBER entries") from None
    if not number > 0 or not np.isfinite(number):
        raise InputError(f"--tolerance: '{whole}' must be a positive number")
    return number


def check_integrity(artifact_dir: Path, manifest: Mapping[str, Any]) -> list[Check]:
    """One row per manifest entry (sha256 and size), plus a failing row per file the manifest does not list."""
    from bortconv.api import sha256_file

    checks = []
    listed = manifest["files"]
    for name in sorted(listed):
        t0 = time.perf_counter()
        info = listed[name] if isinstance(listed[name], dict) else {}
        path = artifact_dir / name
        if Path(name).name != name or name in (".", ".."):
            checks.append(Check("integrity", f"sha256 {name}", "fail",
                                detail="manifest names a path outside the artifact directory"))
            continue
        if not path.is_file():
            checks.append(Check("integrity", f"sha256 {name}", "fail", detail="file is missing"))
            continue
        digest = sha256_file(path)
        want = str(info.get("sha256", ""))
        if digest != want:
            detail = f"sha256 {digest[:12]}... but manifest says {want[:12] or '(none)'}..."
            if info.get("bytes") is not None and int(info["bytes"]) != path.stat().st_size:
                detail += f" ({path.stat().st_size} bytes, manifest says {info['bytes']})"
            checks.append(Check("integrity", f"sha256 {name}", "fail", detail=detail,
                                seconds=time.perf_counter() - t0))
        else:
            checks.append(Check("integrity", f"sha256 {name}", "pass", seconds=time.perf_counter() - t0))
    for p in sorted(artifact_dir.iterdir()):
        if p.name != MANIFEST_FILE and p.name not in listed:
            checks.append(Check("integrity", f"unlisted {p.name}", "fail",
                                detail="present in the directory but not listed in manifest.json"))
    return checks


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
        if not (path / "config.json").is_file():
            raise InputError(f"--reference {path}: directory has no config.json; expected a Hugging Face model "
                             f"directory or a .params file")
        kind, hf_dir = "hf", path
    else:
        from bortconv.api import convert
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
    path = artifact_dir / "bortconv_conversion.json"
    try:
        rec = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a damaged record is the integrity check's finding, not bad input
    return rec if isinstance(rec, dict) else None


def check_reference_files(artifact_dir: Path, manifest: Mapping[str, Any], ref: ReferenceModel) -> list[Check]:
    """Is this the file the artifact came from (info), and are the carried files the reference's own copies?"""
    from bortconv.api import sha256_file
    from bortconv.converters import hf_model
    from bortconv.exporter import CARRIED_FILES

    checks = []
    want_sha = manifest.get("source_sha256")
    if ref.kind == "params":
        src_file: Path | None = ref.path
    else:
        src_file = next((ref.path / f for f in hf_model.WEIGHT_FILES if (ref.path / f).is_file()), None)
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
    if kind == "params" and name == "bortconv_conversion.json":
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


def pytorch_runner(hf_dir: Path, task: str) -> Runner:
    """fp32 PyTorch forward of the task model in `hf_dir` (the model export traced), feeds -> numpy output."""
    import torch

    from bortconv.converters import hf_model

    module = hf_model.task_module(hf_model.load_pytorch(hf_dir, task), hf_model.Task(task))

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}).float().numpy()
    return run


def check_parity_against(group: str, session: Any, run_reference: Runner, ref: ReferenceModel,
                         manifest: Mapping[str, Any], tolerance: float) -> list[Check]:
    """The artifact session vs one reference runner over the shape table, one row per shape."""
    from bortconv.validate.parity import check_parity, parity_shapes

    static = manifest.get("static_shape")
    shapes = parity_shapes(tuple(static) if static else None, ref.max_length)  # type: ignore[arg-type]
    calls: list[float] = []  # check_parity calls the artifact, then the reference, once per shape

    def timed(fn: Runner, artifact: bool) -> Runner:
        def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
            t0 = time.perf_counter()
            try:
                return fn(feeds)
            except Exception as exc:
                if artifact:  # a damaged graph may load and then fail to run: that is the artifact's failure
                    raise _ArtifactRunError(_one_line(exc)) from exc
                raise  # the reference's own problem is not the artifact's: it surfaces as an error
            finally:
                calls.append(time.perf_counter() - t0)
        return run

    try:
        report = check_parity(timed(session.run, True), timed(run_reference, False), output=ref.output,
                              shapes=shapes, tolerance=tolerance, vocab_size=ref.vocab_size, pad_id=ref.pad_id,
                              with_types="token_type_ids" in session.input_names, seed=PARITY_SEED)
    except _ArtifactRunError as exc:
        where = shapes[len(calls) // 2][0] if len(calls) // 2 < len(shapes) else ""
        return [Check(group, f"run {where}".strip(), "fail", detail=str(exc), seconds=sum(calls))]
    return [Check(group, r.shape, "pass" if r.passed else "fail", max_diff=r.max_abs_diff,
                  where=str(list(r.where)) if r.where else "", tolerance=r.tolerance,
                  detail="" if r.where or r.passed else "output shape differs from the reference",
                  seconds=sum(calls[2 * k:2 * k + 2]))
            for k, r in enumerate(report.rows)]


class _ArtifactRunError(Exception):
    pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def load_gate(precision: str) -> FidelityGate:
    """The fidelity gate for a non-atol precision, or InputError (exit 2) while it does not exist."""
    spec = PRECISION_GATES[precision]
    module_name, _, func = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), func)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        raise InputError(f"precision '{precision}' is not supported by this bortconv yet: its fidelity gate "
                         f"({spec}) does not exist, so {precision} artifacts cannot be validated") from None


def check_backend_available(backend: str) -> None:
    """Refuse (exit 2) a reference backend this interpreter cannot run."""
    if backend not in BACKENDS:
        raise InputError(f"--reference-backend: '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "mxnet":
        from bortconv.validate.mxnet_reference import mxnet_import_error
        err = mxnet_import_error()
        if err:
            raise InputError(f"--reference-backend mxnet: mxnet cannot be imported in this interpreter ({err}); "
                             f"run validate with a python that has mxnet 1.9.1 and gluonnlp 0.8.3, or use the "
                             f"default pytorch backend")


@dataclass(frozen=True)
class _Plan:
    """What one artifact will be checked with, decided (and refused, exit 2) before anything runs."""

    directory: Path
    manifest: dict[str, Any]
    tolerance: float
    explicit_tolerance: bool
    gate: FidelityGate | None


def _plan(artifact_dir: str | os.PathLike[str], reference: str | os.PathLike[str] | None,
          tolerance: str | float | None, backends: tuple[str, ...], threads: int | None) -> _Plan:
    from bortconv.validate.parity import TOLERANCES

    d = Path(artifact_dir)
    manifest = read_artifact_manifest(d)
    target, precision = str(manifest["target"]), str(manifest["precision"])
    if threads is not None and threads <= 0:
        raise InputError(f"--threads must be positive, got {threads}")
    for b in backends:
        check_backend_available(b)
    gate: FidelityGate | None = None
    if precision in PRECISION_GATES:
        gate = load_gate(precision)
    elif precision not in ATOL_PRECISIONS:
        raise InputError(f"{d / MANIFEST_FILE}: precision '{precision}' is not one of "
                         f"{', '.join(ATOL_PRECISIONS + tuple(PRECISION_GATES))}")
    tol = parse_tolerance(tolerance, target, precision)
    ref = reference_path(d, manifest, reference)
    if "mxnet" in backends and ref.is_dir():
        raise InputError(f"--reference-backend mxnet needs the Bort .params reference; {ref} is a model directory")
    return _Plan(d, manifest, tol or TOLERANCES.get((target, precision), 0.0), tol is not None, gate)


def validate(artifact_dir: str | os.PathLike[str], *, reference: str | os.PathLike[str] | None = None,
             tolerance: str | float | None = None, backends: Sequence[str] = ("pytorch",),
             threads: int | None = None, fail_fast: bool = False,
             references: ReferenceCache | None = None) -> ValidationReport:
    """Check an exported artifact directory: integrity, reference copies, parity against its source.

    `reference` defaults to the manifest's ``source``. `backends` are the reference implementations parity
    runs against: ``pytorch`` (the source converted and loaded in transformers) and optionally ``mxnet``.
    Raises :class:`bortconv.errors.InputError` for anything that prevents checking (exit 2); failed checks are
    rows of the returned report (``report.passed`` is False), not exceptions. With `fail_fast`, checking stops
    after the first group with a failure (integrity, then reference files, then parity). `references` shares
    reference models between calls (see :func:`validate_all`).
    """
    backends = tuple(dict.fromkeys(backends or ("pytorch",)))
    plan = _plan(artifact_dir, reference, tolerance, backends, threads)
    if references is None:
        with ReferenceCache() as cache:
            return _run(plan, reference, backends, threads, fail_fast, cache)
    return _run(plan, reference, backends, threads, fail_fast, references)


def validate_all(artifact_dirs: Sequence[str | os.PathLike[str]], *, reference: str | os.PathLike[str] | None = None,
                 tolerance: str | float | None = None, backends: Sequence[str] = ("pytorch",),
                 threads: int | None = None, fail_fast: bool = False) -> list[ValidationReport]:
    """:func:`validate` for several artifact directories (a CI job checking everything it built).

    Every directory's input is checked before any runs, so bad input exits 2 with nothing half-reported;
    artifacts of the same source share one converted, loaded reference and its outputs.
    """
    if not artifact_dirs:
        raise InputError("validate: name at least one ARTIFACT_DIR")
    backends = tuple(dict.fromkeys(backends or ("pytorch",)))
    plans = [_plan(d, reference, tolerance, backends, threads) for d in artifact_dirs]
    with ReferenceCache() as cache:
        return [_run(p, reference, backends, threads, fail_fast, cache) for p in plans]


def _run(plan: _Plan, reference: str | os.PathLike[str] | None, backends: tuple[str, ...], threads: int | None,
         fail_fast: bool, cache: ReferenceCache) -> ValidationReport:
    t_start = time.perf_counter()
    d, manifest, tol = plan.directory, plan.manifest, plan.tolerance
    log.info("validating %s", d)
    checks: list[Check] = check_integrity(d, manifest)
    ref_path = str(reference_path(d, manifest, reference))
    if fail_fast and any(c.failed for c in checks):
        return _report(d, manifest, ref_path, backends, checks, t_start, threads, stopped_after="integrity")
    ref = cache.get(d, manifest, reference)
    checks += check_reference_files(d, manifest, ref)
    if fail_fast and any(c.failed for c in checks):
        return _report(d, manifest, ref_path, backends, checks, t_start, threads, stopped_after="reference")
    session = _open(d, threads, checks)
    if session is not None:
        if plan.gate is not None:
            checks += list(plan.gate(d, manifest, ref, session, threads=threads))
        else:
            _set_torch_threads(threads)
            for backend in backends:
                b_tol = tol if plan.explicit_tolerance or backend == "pytorch" else \
                    max(tol, MXNET_FLOOR.get(ref.task, 0.0))
                checks += check_parity_against(f"parity/{backend}", session,
                                               lambda f, b=backend: ref.run(f, b), ref, manifest, b_tol)
        del session
    return _report(d, manifest, ref_path, backends, checks, t_start, threads)


def _report(d: Path, manifest: Mapping[str, Any], reference: str, backends: tuple[str, ...], checks: list[Check],
            t_start: float, threads: int | None, stopped_after: str | None = None) -> ValidationReport:
    if stopped_after:
        checks = checks + [Check("parity", "not run", "skip",
                                 detail=f"--fail-fast: stopped after the {stopped_after} failure")]
    return ValidationReport(artifact=str(d), target=str(manifest["target"]), precision=str(manifest["precision"]),
                            task=str(manifest["task"]), reference=reference, backends=backends, checks=tuple(checks),
                            seconds=time.perf_counter() - t_start, threads=threads)


def _open(d: Path, threads: int | None, checks: list[Check]) -> Any:
    from bortconv.runtime import open_session
    t0 = time.perf_counter()
    try:
        session = open_session(d, threads)
    except MissingDependencyError:
        raise
    except InputError as exc:
        checks.append(Check("parity", "load artifact", "fail", detail=exc.message))
        return None
    except Exception as exc:  # the runtime refused the model file: the artifact is broken
        checks.append(Check("parity", "load artifact", "fail", detail=_one_line(exc),
                            seconds=time.perf_counter() - t0))
        return None
    checks.append(Check("parity", "load artifact", "pass", seconds=time.perf_counter() - t0))
    return session


def _set_torch_threads(threads: int | None) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)
