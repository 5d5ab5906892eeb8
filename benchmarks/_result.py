"""The one place a benchmark's figures become a file: ``benchmarks/results/NAME.json``.

Every script in benchmarks/ ends with :func:`write_result`. The file names its machine (CPU model, the
instruction sets that decide speed, cores), the library versions, the UTC date and the git commit it ran at, and
holds the script's tables as rendered text cells. ``python benchmarks/render_docs.py`` copies those tables into
README.md and docs/ between ``<!-- table: NAME -->`` markers; tests/test_docs.py fails when they differ. So a
figure in the docs is always one a script printed, on a machine the page names.

Light on purpose: no heavy import (versions come from package metadata), so a benchmark's own timing is not
disturbed and the renderer can import this module without torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SCHEMA = 1
#: the libraries whose versions change the figures
LIBRARIES = ("bortconv", "openvino", "openvino-tokenizers", "onnxruntime", "onnx", "nncf", "torch", "transformers",
             "tokenizers", "numpy")
#: instruction sets that decide which kernels run: name in the result -> /proc/cpuinfo flags (any of them)
FLAGS = {"avx2": ("avx2",), "avx512": ("avx512f",), "vnni": ("avx512_vnni", "avx_vnni", "amx_int8"),
         "avx512_bf16": ("avx512_bf16",), "amx": ("amx_bf16", "amx_int8"),
         # ARM: half-precision arithmetic, bf16, int8 matrix multiply
         "fp16": ("asimdhp", "fphp"), "arm_bf16": ("bf16",), "i8mm": ("i8mm",)}
X86_ONLY, ARM_ONLY = {"avx2", "avx512", "vnni", "avx512_bf16", "amx"}, {"fp16", "arm_bf16", "i8mm"}


def _lscpu_model() -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "Model name" and val.strip() and val.strip() != "-":
            return val.strip()
    return None


def machine() -> dict[str, Any]:
    """CPU model, the flags that matter for this architecture, cores, and the platform."""
    model, flags = None, set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("flags", "Features") and not flags:
                flags = set(val.split())
            elif key.strip() == "model name" and model is None:
                model = val.strip()
    arch = platform.machine()
    wanted = ARM_ONLY if arch in ("aarch64", "arm64") else X86_ONLY
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    # how busy the machine was as the run ended: a shared machine's figures are slower than a quiet one's
    load = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    return {"cpu": _lscpu_model() or model or platform.processor() or arch, "arch": arch, "cores": cores,
            "flags": {k: bool(flags & set(v)) for k, v in FLAGS.items() if k in wanted},
            "load_avg_1min": load, "os": platform.platform(terse=True), "python": platform.python_version()}


def versions() -> dict[str, str]:
    """Installed versions of the libraries in :data:`LIBRARIES` (from metadata: nothing is imported)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


#: environment variables, besides the deployment gate's length sweep (bortconv.config.GATE_SWEEP_ENV; unset means
#: the full sweep users get), that change how fast a benchmark runs: OpenMP's wait policy and thread count, and CI
#: (tests/conftest.py sets the sweep, the wait policy and CI for the test suite). Recorded as the run saw them
ENVIRONMENT = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "CI")


def environment() -> dict[str, str]:
    """The gate sweep's variable and ENVIRONMENT's, those that are set, with their values (bortconv.config, read
    for the variable's name, imports no heavy library)."""
    from bortconv.config import GATE_SWEEP_ENV

    return {k: os.environ[k] for k in (GATE_SWEEP_ENV, *ENVIRONMENT) if k in os.environ}


def commit() -> dict[str, Any]:
    """The git commit the benchmark ran at, and whether bortconv/ or benchmarks/ differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30).stdout
    try:
        head = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--", "bortconv", "benchmarks/*.py").strip())
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": head or None, "dirty": dirty if head else None}


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (),
          caption: str = "") -> dict[str, Any]:
    """A table as the docs show it: column names, cells already formatted as text, right-aligned columns."""
    if any(len(r) != len(columns) for r in rows):
        raise ValueError(f"every row needs {len(columns)} cells")
    return {"columns": list(columns), "rows": [[str(c) for c in r] for r in rows], "right": sorted(set(right)),
            "caption": caption}


def write_result(name: str, tables: dict[str, dict[str, Any]], data: Any, settings: dict[str, Any] | None = None,
                 path: str | os.PathLike[str] | None = None) -> Path:
    """Write benchmarks/results/NAME.json (or `path`, named by its stem): provenance, the script's tables and its
    raw data."""
    out = Path(path) if path else RESULTS / f"{name}.json"
    doc = {"schema": SCHEMA, "name": out.stem,  # docs' markers name the file: --result elsewhere names it
           "command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit(), "machine": machine(), "versions": versions(), "environment": environment(),
           "settings": settings or {},
           "tables": tables, "data": data}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"result written to {out}", file=sys.stderr)
    return out


def add_result_option(ap: Any, name: str) -> None:
    """`--result FILE`: where the JSON result goes (default benchmarks/results/NAME.json)."""
    ap.add_argument("--result", default=str(RESULTS / f"{name}.json"),
                    help=f"write the result here (default: benchmarks/results/{name}.json)")
