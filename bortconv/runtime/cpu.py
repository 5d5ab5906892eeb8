"""What the CPU can do: the int8 scheme (u8s8 saturates on AVX2 without VNNI; VNNI/AMX make int8 pay) and bf16
(native on AMX-BF16 and AVX512_BF16) depend on it, at export and again wherever `validate` runs."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, frozenset[str]]:
    """(model name, instruction-set flags) of this machine from /proc/cpuinfo (Linux); no flags elsewhere."""
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(val.split())
            elif key.strip() == "model name":
                model = val.strip()
    return model, frozenset(flags)


def cpu_features() -> dict[str, object]:
    """Model name and the int8-relevant instruction-set features of this machine."""
    model, flags = cpu_flags()
    return {
        "model": model,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
        "amx": "amx_int8" in flags,
        "bf16": bool(flags & {"amx_bf16", "avx512_bf16"}),
    }
