"""Create (once) and run an emulated aarch64 user space: qemu user-mode + a Debian arm64 root + PyPI's wheels.

What it holds, cached under $BORTCONV_CACHE (default ~/.cache/bortconv) beside the mxnet environment and keyed
by a hash of everything that goes in:
- ``qemu-aarch64-static`` from Debian trixie's qemu-user-static (10.x). bookworm's 7.2 segfaults on
  ``import onnxruntime`` with every -cpu model (docs/arm.md). It is extracted with mmdebstrap, not installed:
  the host's packages stay as they are, and no binfmt_misc registration is needed.
- a bookworm arm64 root with python3.11 and the C/C++ runtime libraries (extracted, no maintainer scripts);
- PyPI's aarch64 wheels of bortconv's torch-free runtime, unzipped into one site directory.

bortconv itself goes in per source tree (:func:`install_bortconv`): its pure-Python package is copied, keyed by
the hash of its files, so the guest runs the source under test without rebuilding the rest.

Building needs ``mmdebstrap`` (installed with apt-get when missing and running as root). Where it cannot be had,
:func:`ready` is False and :func:`reason` says why; the ARM tests skip with that reason. Run as a script to build:
``python tests/reference/armenv.py`` (refenv.py's main does, so the README's test command builds it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refenv import cache_root  # noqa: E402

#: the x86 test environment's versions (pyproject's `runtime` extra resolved), so guest and host run the same code
WHEELS = ("numpy==2.4.6", "onnxruntime==1.32.0", "openvino==2026.4.1", "openvino-tokenizers==2026.4.1.0",
          "tokenizers==0.23.3")
#: openvino's aarch64 wheel is tagged manylinux_2_35: pip finds only old releases unless that tag is named
PLATFORMS = ("manylinux_2_35_aarch64", "manylinux_2_31_aarch64", "manylinux_2_28_aarch64",
             "manylinux2014_aarch64")
PYTHON = "3.11"
QEMU_SUITE = "trixie"
ROOT_SUITE = "bookworm"
ROOT_PACKAGES = ("python3.11", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1", "libgomp1", "zlib1g",
                 "ca-certificates")
#: -cpu models the tests run: Raspberry Pi 4 class (OpenVINO infers in f32 there) and Graviton2 (f16)
CPUS = ("cortex-a72", "neoverse-n1")
_LAYOUT = 1  # bump when the directory layout below changes


def _key() -> str:
    spec = {"wheels": WHEELS, "platforms": PLATFORMS, "python": PYTHON, "qemu": QEMU_SUITE, "root": ROOT_SUITE,
            "packages": ROOT_PACKAGES, "layout": _LAYOUT}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def env_dir() -> Path:
    return cache_root() / f"armenv-{_key()}"


def qemu() -> Path:
    return env_dir() / "qemu-aarch64-static"


def root() -> Path:
    return env_dir() / "root"


def site() -> Path:
    return env_dir() / "site"


def ready() -> bool:
    return (env_dir() / ".complete").exists()


def reason() -> str | None:
    """Why the environment cannot be built here, or None when it is built or can be."""
    if ready():
        return None
    if shutil.which("mmdebstrap") is None and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        return ("the emulated aarch64 environment needs mmdebstrap (Debian's package), and it is missing; "
                "installing it needs root and apt-get")
    return None


def _mmdebstrap() -> str:
    """mmdebstrap's path, installing it with apt-get when missing and we are root."""
    found = shutil.which("mmdebstrap")
    if found:
        return found
    why = reason()
    if why:
        raise RuntimeError(why)
    print("installing mmdebstrap with apt-get (the aarch64 test environment needs it)", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("mmdebstrap") or "mmdebstrap"


def _extract(mm: str, arch: str, suite: str, packages: tuple[str, ...], out: Path) -> None:
    subprocess.run([mm, "--quiet", "--variant=extract", f"--architectures={arch}", f"--include={','.join(packages)}",
                    suite, str(out)], check=True)


def _wheels(out: Path) -> None:
    """Download the aarch64 wheels and unzip them into `out` (a wheel's .data/{purelib,platlib} merged in)."""
    dl = out.parent / "wheels"
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", PYTHON, *platforms, "-d", str(dl), *WHEELS], check=True)
    for wheel in sorted(dl.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out)
    for data in out.glob("*.data"):
        for kind in ("purelib", "platlib"):
            if (data / kind).is_dir():
                shutil.copytree(data / kind, out, dirs_exist_ok=True)
        shutil.rmtree(data)
    shutil.rmtree(dl)


def ensure() -> Path:
    """Build the environment if it is not there; returns its directory. Raises on failure, loudly."""
    d = env_dir()
    if ready():
        return d
    mm = _mmdebstrap()
    print(f"building the emulated aarch64 environment in {d} (once)", file=sys.stderr, flush=True)
    start = time.monotonic()
    cache_root().mkdir(parents=True, exist_ok=True)
    tmp = d.with_name(d.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _extract(mm, "amd64", QEMU_SUITE, ("qemu-user-static",), tmp / "qemu")
        shutil.copy2(tmp / "qemu" / "usr" / "bin" / "qemu-aarch64-static", tmp / "qemu-aarch64-static")
        shutil.rmtree(tmp / "qemu")  # the rest of trixie's extract is not needed: keep the one static binary
        _extract(mm, "arm64", ROOT_SUITE, ROOT_PACKAGES, tmp / "root")
        (tmp / "site").mkdir()
        _wheels(tmp / "site")
        (tmp / "build.json").write_text(json.dumps({"seconds": round(time.monotonic() - start, 1),
                                                    "wheels": WHEELS, "qemu": QEMU_SUITE, "root": ROOT_SUITE}))
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return d


def _tree_hash(package: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(package.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(package)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def install_bortconv(repo: Path) -> Path:
    """Copy `repo`'s pure-Python bortconv package into the environment (once per source state); returns the
    directory to put on the guest's PYTHONPATH. No torch, no dependencies beyond the wheels above."""
    src = Path(repo) / "bortconv"
    out = env_dir() / "bortconv" / _tree_hash(src)
    if (out / ".complete").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp / "bortconv", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def run(code: str, cpu: str, *, args: tuple[str, ...] = (), pythonpath: tuple[Path, ...] = (),
        timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the Python snippet `code` (``python -c``) in the guest on the emulated `cpu` (a qemu -cpu model).

    The guest sees the host's file system (qemu's -L only redirects the loader and libraries to the arm64 root),
    so paths on the host can be passed as they are. Returns stdout/stderr as text and the return code; a run
    longer than `timeout` seconds raises subprocess.TimeoutExpired.
    """
    path = os.pathsep.join([*map(str, pythonpath), str(site())])
    # qemu hands its own environment to the guest: a clean one, so nothing of the host's venv leaks in
    # ONEDNN_JIT_PROFILE=0: the aarch64 OpenVINO's oneDNN otherwise writes a /tmp/perf-PID.map per process
    guest_env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8", "PYTHONPATH": path,
                 "PYTHONNOUSERSITE": "1", "ONEDNN_JIT_PROFILE": "0", "DNNL_JIT_PROFILE": "0", **(env or {})}
    cmd = [str(qemu()), "-cpu", cpu, "-L", str(root()), str(root() / "usr" / "bin" / f"python{PYTHON}"),
           "-c", code, *args]
    # run from the environment's directory: `python -c` puts the working directory first on sys.path, and a
    # source tree there would shadow the installed copy
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=guest_env,
                            cwd=env_dir())
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:  # whatever JIT map the guest (the same process as qemu, in user mode) left: the disk is shared
        Path(f"/tmp/perf-{proc.pid}.map").unlink(missing_ok=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def size_bytes() -> int:
    return sum(p.stat().st_size for p in env_dir().rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    print(ensure())
