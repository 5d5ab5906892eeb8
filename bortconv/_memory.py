"""Give freed heap back to the operating system between export stages.

torch.onnx.export and ORT's optimizer free hundreds of MB of Python and protobuf objects, but glibc keeps the
pages in its arenas, so the process's RSS (what a container's memory limit counts) stays at the stage's peak
and the next stage stacks on top of it. ``malloc_trim(0)`` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def release() -> None:
    """Collect garbage and, on glibc, trim the heap (a no-op elsewhere)."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl or another libc without malloc_trim
        pass
