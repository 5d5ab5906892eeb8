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
    fidelity         int8 and bf16 artifacts, and any with an int8 or int4 word table: the deployment gate
                     (held-out text of every length, under bortconv's runtime and a stock load, on this CPU)
                     instead of atol; other fp32 and fp16 artifacts: after atol parity, a stock load held to the
                     bf16 gate (:mod:`bortconv.validate.fidelity_checks`)

Where the source is not here, or torch is not installed (a device with ``bortconv[runtime]`` only), and no
``--reference`` is given, the artifact's own proof (``proof.npz``: the gate's probes and the fp32 reference's
outputs on them, :mod:`bortconv.fidelity.proof`) stands in for the source: integrity, then the deployment gate
re-run from the proof under bortconv's runtime and each stock loader, with the thresholds the manifest records.
An artifact without a readable proof is then bad input (exit 2).

Heavy libraries (torch, onnxruntime, openvino, mxnet) are imported only by the checks that need them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bortconv._util.hashing import sha256_file
from bortconv.config import as_path, check_threads, checked_arguments
from bortconv.errors import InputError, MissingDependencyError
from bortconv.layout import MANIFEST_FILE, PROOF_FILE
from bortconv.manifest import Manifest, compressed_table, static_shape
from bortconv.measure import Runner
from bortconv.validate.checks import Check, ValidationReport, check_integrity, check_reference_files, parse_tolerance
from bortconv.validate.fidelity_checks import fidelity_gate, proof_gate, proof_thresholds
from bortconv.validate.reference import ReferenceCache, ReferenceModel, reference_path

if TYPE_CHECKING:  # annotations only: numpy is not imported at run time here
    import numpy as np

log = logging.getLogger(__name__)

ATOL_PRECISIONS = ("fp32", "fp16")
BACKENDS = ("pytorch", "mxnet")
#: Inputs differ from the ones export used (seed 0), so validate is not a replay of the export's own check.
PARITY_SEED = 1000
#: MXNet and PyTorch differ by up to ~1e-4 on their own (erf GELU, LayerNorm accumulation order); the README's
#: converted-vs-MXNet bounds are 1e-4 (hidden, classifier) and 2e-4 (MLM logits over the vocabulary).
MXNET_FLOOR = {"fill-mask": 2e-4}


class FidelityGate(Protocol):
    """What a precision gate (e.g. int8's) provides: judge `session` against `reference`, return report rows."""

    def __call__(self, artifact_dir: Path, manifest: Mapping[str, Any], reference: ReferenceModel, session: Any,
                 *, threads: int | None) -> Sequence[Check]: ...



#: precision -> the gate that judges artifacts of that precision instead of atol parity.
PRECISION_GATES: dict[str, FidelityGate] = {"int8": fidelity_gate, "bf16": fidelity_gate}
#: the gate that also runs, after atol parity, for atol-exact precisions: how a stock loader on this CPU does
STOCK_GATE: FidelityGate = fidelity_gate

__all__ = ["Check", "ValidationReport", "ReferenceCache", "parse_tolerance", "validate", "validate_all",
           "PRECISION_GATES"]


def read_artifact_manifest(artifact_dir: Path) -> Manifest:
    """manifest.json of an artifact directory (InputError naming the field if it is not a bortconv manifest)."""
    from bortconv.manifest import read_manifest
    return read_manifest(artifact_dir)


def check_parity_against(group: str, session: Any, run_reference: Runner, ref: ReferenceModel,
                         manifest: Mapping[str, Any], tolerance: float) -> list[Check]:
    """The artifact session vs one reference runner over the shape table, one row per shape."""
    from bortconv.validate.parity import check_parity, parity_shapes

    shapes = parity_shapes(static_shape(manifest), ref.max_length)
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
    #: why the source cannot be the reference here (the proof stands in for it); None: the source is the reference
    proof_only: str | None = None
    proof: Any = None  # the loaded proof (None in proof mode: it does not match its hash, integrity says so)


def _importable(name: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _why_no_source(manifest: Mapping[str, Any], backends: tuple[str, ...]) -> str | None:
    """Why the source cannot be this artifact's reference here (None: it can). Never for the mxnet backend,
    which needs the source whatever the artifact carries."""
    if "mxnet" in backends:
        return None
    source = manifest.get("source")
    if not source:
        return "the manifest names no source"
    if not Path(str(source)).exists():
        return f"the manifest's source {source} does not exist here"
    missing = [m for m in ("torch", "transformers") if not _importable(m)]
    return f"{' and '.join(missing)} not installed here" if missing else None


def _load_proof(d: Path, manifest: Mapping[str, Any], why: str) -> Any:
    """The artifact's proof, checked before anything runs: InputError (exit 2) if it has none or it is malformed;
    None if the file does not match its hash (then integrity fails, exit 1: a tampered file is not bad input)."""
    from bortconv.fidelity.proof import read_proof

    listed = manifest["files"].get(PROOF_FILE)
    if not isinstance(listed, dict) or not isinstance(manifest.get("proof"), dict) or not (d / PROOF_FILE).is_file():
        raise InputError(f"{d}: {why}; pass --reference SOURCE (the .params file or model directory it was exported "
                         f"from, with 'bortconv[export]' installed): the artifact carries no {PROOF_FILE} to validate "
                         f"from (exported before bortconv carried proofs?)")
    if sha256_file(d / PROOF_FILE) != listed.get("sha256"):
        return None
    proof = read_proof(d / PROOF_FILE)
    try:
        proof_thresholds(manifest)
    except ValueError as exc:
        raise InputError(f"{d / MANIFEST_FILE}: {exc}") from None
    from bortconv.runtime.loaders import LOADERS
    loaders = manifest["proof"].get("loaders", LOADERS)
    if not isinstance(loaders, list) or not loaders or not set(loaders) <= set(LOADERS):
        raise InputError(f"{d / MANIFEST_FILE}: proof.loaders {loaders!r} is not a list of {', '.join(LOADERS)}")
    if proof.task != manifest["task"]:
        raise InputError(f"{d / PROOF_FILE}: a proof of task {proof.task}, the manifest says {manifest['task']}")
    return proof


def _plan(artifact_dir: str | os.PathLike[str], reference: str | os.PathLike[str] | None,
          tolerance: str | float | None, backends: tuple[str, ...], threads: int | None) -> _Plan:
    from bortconv.validate.parity import TOLERANCES

    d = as_path(artifact_dir, "artifact_dir")
    manifest = read_artifact_manifest(d)
    target, precision = str(manifest["target"]), str(manifest["precision"])
    check_threads(threads)
    for b in backends:
        check_backend_available(b)
    # a compressed word table is judged as export judged it, by the gate: its ids' rows are not the source's
    gate = PRECISION_GATES.get(precision) or (fidelity_gate if compressed_table(manifest) else None)
    if gate is None and precision not in ATOL_PRECISIONS:
        raise InputError(f"{d / MANIFEST_FILE}: precision '{precision}' is not one of "
                         f"{', '.join(ATOL_PRECISIONS + tuple(PRECISION_GATES))}")
    tol = parse_tolerance(tolerance, target, precision)
    why = _why_no_source(manifest, backends) if reference is None else None
    if why:
        return _Plan(d, manifest, 0.0, False, gate, why, _load_proof(d, manifest, why))
    ref = reference_path(d, manifest, reference)
    if "mxnet" in backends and ref.is_dir():
        raise InputError(f"--reference-backend mxnet needs the Bort .params reference; {ref} is a model directory")
    return _Plan(d, manifest, tol or TOLERANCES.get((target, precision), 0.0), tol is not None, gate)


@checked_arguments
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
    if isinstance(backends, str):  # one name, not its characters
        backends = (backends,)
    backends = tuple(dict.fromkeys(backends or ("pytorch",)))
    plan = _plan(as_path(artifact_dir, "artifact_dir"), reference, tolerance, backends, threads)
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
    if plan.proof_only:
        return _run_from_proof(plan, checks, threads, fail_fast, t_start)
    ref_path = str(reference_path(d, manifest, reference))
    if fail_fast and any(c.failed for c in checks):
        return _report(d, manifest, ref_path, backends, checks, t_start, threads, stopped_after="integrity")
    ref = cache.get(d, manifest, reference)
    checks += check_reference_files(d, manifest, ref)
    if fail_fast and any(c.failed for c in checks):
        return _report(d, manifest, ref_path, backends, checks, t_start, threads, stopped_after="reference")
    session = _open(d, threads, checks)
    if session is not None:
        _set_torch_threads(threads)
        if plan.gate is not None:
            checks += list(plan.gate(d, manifest, ref, session, threads=threads))
        else:
            for backend in backends:
                b_tol = tol if plan.explicit_tolerance or backend == "pytorch" else \
                    max(tol, MXNET_FLOOR.get(ref.task, 0.0))
                checks += check_parity_against(f"parity/{backend}", session,
                                               lambda f, b=backend: ref.run(f, b), ref, manifest, b_tol)
            if not (fail_fast and any(c.failed for c in checks)):
                checks += list(STOCK_GATE(d, manifest, ref, session, threads=threads))
        del session
    return _report(d, manifest, ref_path, backends, checks, t_start, threads)


def _run_from_proof(plan: _Plan, checks: list[Check], threads: int | None, fail_fast: bool,
                    t_start: float) -> ValidationReport:
    """Integrity, then the deployment gate from the artifact's proof (no source, no torch)."""
    d, manifest = plan.directory, plan.manifest
    source = f"{PROOF_FILE} (the fp32 reference's outputs the artifact carries)"
    checks.append(Check("reference", "source", "info", where=PROOF_FILE,
                        detail=f"{plan.proof_only}: parity against the source not run; the gate re-run from the "
                               f"artifact's proof"))
    if fail_fast and any(c.failed for c in checks):
        return _report(d, manifest, source, ("proof",), checks, t_start, threads, stopped_after="integrity")
    if plan.proof is None:
        checks.append(Check("fidelity", "from the proof", "skip",
                            detail=f"{PROOF_FILE} does not match the manifest's sha256: the gate cannot run from it"))
        return _report(d, manifest, source, ("proof",), checks, t_start, threads)
    session = _open(d, threads, checks)
    if session is not None:
        checks += list(proof_gate(d, manifest, plan.proof, session, threads=threads))
        del session
    return _report(d, manifest, source, ("proof",), checks, t_start, threads)


def _report(d: Path, manifest: Mapping[str, Any], reference: str, backends: tuple[str, ...], checks: list[Check],
            t_start: float, threads: int | None, stopped_after: str | None = None) -> ValidationReport:
    if stopped_after:
        checks = checks + [Check("parity", "not run", "skip",
                                 detail=f"--fail-fast: stopped after the {stopped_after} failure")]
    return ValidationReport(artifact=str(d), target=str(manifest["target"]), precision=str(manifest["precision"]),
                            task=str(manifest["task"]), reference=reference, backends=backends, checks=tuple(checks),
                            seconds=time.perf_counter() - t_start, threads=threads)


def _open(d: Path, threads: int | None, checks: list[Check]) -> Any:
    from bortconv.runtime.bort import loading, model_file, open_session
    t0 = time.perf_counter()
    try:
        with loading(model_file(d)):
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


def raise_for_failures(reports: Sequence[ValidationReport]) -> None:
    """The CI verdict: IntegrityError if any file check failed, else ParityError if any check failed (exit 1),
    with the first failure in one line; nothing if every report passed."""
    from bortconv.errors import IntegrityError, ParityError

    bad = [r for r in reports if not r.passed]
    if not bad:
        return
    first = bad[0].failures[0]
    what = f"{first.group} {first.name}" + (
        f": {first.detail}" if first.detail or first.max_diff is None or first.tolerance is None
        else f": max abs diff {first.max_diff:.3g} at {first.where} > tolerance {first.tolerance:g}")
    failed = [c for r in bad for c in r.failures]
    error = IntegrityError if any(c.group in ("integrity", "reference") for c in failed) else ParityError
    if len(reports) == 1:
        raise error(f"{bad[0].artifact}: {len(bad[0].failures)} of {len(bad[0].checks)} checks failed (first: {what})")
    raise error(f"{len(bad)} of {len(reports)} artifacts failed validation (first: {bad[0].artifact}: {what})")
