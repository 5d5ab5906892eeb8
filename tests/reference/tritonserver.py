"""Locate (fetching once) a real Triton Inference Server binary: the one PyTriton's wheel bundles.

`nvidia-pytriton` 0.7.0 carries NVIDIA's own `tritonserver` 2.51.0 build with its shared libraries and the
python backend only; the onnxruntime and openvino backends ship in NGC containers, which this machine cannot
pull. The wheel is fetched with pip (`pip download --no-deps`, so nothing of PyTriton or its numpy<2 pin enters
the test environment) and only the server is unpacked, under $BORTCONV_CACHE like the mxnet reference
environment. Run as a script to fetch it: ``python tests/reference/tritonserver.py`` (refenv.py does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refenv import cache_lock, cache_root  # noqa: E402

WHEEL = "nvidia-pytriton==0.7.0"
VERSION = "2.51.0"  # what that wheel's tritonserver reports as server_version
#: the wheel's members the server needs: the binary, its bundled libraries, the backends directory
MEMBERS = ("pytriton/tritonserver/bin/", "pytriton/tritonserver/backends/", "nvidia_pytriton.libs/")


def home() -> Path:
    return cache_root() / f"tritonserver-{VERSION}"


def binary() -> Path:
    return home() / "pytriton" / "tritonserver" / "bin" / "tritonserver"


def backends() -> Path:
    return home() / "pytriton" / "tritonserver" / "backends"


def environment() -> dict[str, str]:
    """The environment to start the binary in: its bundled libraries first on the loader path."""
    libs = str(home() / "nvidia_pytriton.libs")
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [libs, os.environ.get("LD_LIBRARY_PATH")]))}


def ready() -> bool:
    return (home() / ".complete").exists()


def ensure() -> Path:
    """Fetch and unpack the server if it is not there; returns the binary. Raises on failure, loudly."""
    if ready():
        return binary()
    with cache_lock(home().name):
        return binary() if ready() else _fetch()


def _fetch() -> Path:
    print(f"fetching Triton Inference Server {VERSION} (from {WHEEL}) into {home()} (once)", file=sys.stderr,
          flush=True)
    cache_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        out = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out, [n for n in z.namelist() if n.startswith(MEMBERS)])
        for exe in (out / "pytriton" / "tritonserver" / "bin").iterdir():
            exe.chmod(0o755)
        (out / ".complete").write_text("ok\n")
        shutil.rmtree(home(), ignore_errors=True)
        out.rename(home())
    return binary()


if __name__ == "__main__":
    print(ensure())
