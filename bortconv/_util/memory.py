"""Memory: give freed heap back between export stages, read the kernel's account of this process, and
hold a run to a resident-memory budget (``--max-memory``).

torch.onnx.export and ORT's optimizer free hundreds of MB of Python and protobuf objects, but glibc keeps the
pages in its arenas, so the process's RSS (what a container's memory limit counts) stays at the stage's peak
and the next stage stacks on top of it. ``malloc_trim(0)`` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bortconv.errors import InputError, MemoryBudgetError

log = logging.getLogger(__name__)


#: nested or concurrent runs inside one freeze (collect_only_new)
_runs_in_freeze = 0
_freeze_lock = threading.Lock()


@contextmanager
def collect_only_new() -> Iterator[None]:
    """Within: a garbage collection (:func:`release`, and Python's own) passes over only the objects made since
    entry.

    An export collects garbage between its stages, and a full collection walks every object Python tracks: some
    400,000 once torch and transformers are imported, 0.2 s a time and over half of a small model's export.
    Entry collects once, so what the caller left is still freed, then freezes what exists (``gc.freeze``); the
    stages' own garbage, made later, is collected as before. Exit unfreezes. A nested or concurrent run shares
    the first one's freeze; where the caller froze objects itself, nothing is frozen or unfrozen here.
    """
    global _runs_in_freeze
    with _freeze_lock:
        if _runs_in_freeze == 0 and gc.get_freeze_count() == 0:
            gc.collect()
            gc.freeze()
            _runs_in_freeze = 1
        elif _runs_in_freeze:
            _runs_in_freeze += 1
        mine = _runs_in_freeze > 0
    try:
        yield
    finally:
        if mine:
            with _freeze_lock:
                _runs_in_freeze -= 1
                if _runs_in_freeze == 0:
                    gc.unfreeze()


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


# --- a memory budget: --max-memory -------------------------------------------------------------------------

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_UNIT = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
#: how often the watchdog reads the resident set size
POLL_S = 0.02


def parse_size(text: str, option: str = "--max-memory") -> int:
    """'1.5G', '1500M', '1536MiB', '2000000000' -> bytes (binary units: 1G = 2**30)."""
    m = _SIZE.fullmatch(str(text))
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"{option} {text!r}: expected a size such as 1.5G, 1500M or 2000000000 (bytes)")
    return int(float(m.group(1)) * _UNIT[m.group(2).lower()])


def fmt_size(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def rss_bytes() -> int | None:
    """This process's resident set size now (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int | None:
    """The kernel's high-water mark of this process's RSS (VmHWM, Linux), or None."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Budget:
    """What a budgeted run used: the limit, the peak the watchdog saw, and where it was exceeded."""

    limit: int
    what: str
    peak: int = 0
    tripped_at: int | None = None
    stage: str = "starting"
    #: read the kernel's high-water mark, not the instantaneous RSS: a spike between two reads is not missed
    use_hwm: bool = False

    def error(self) -> MemoryBudgetError:
        seen = self.tripped_at or self.peak
        return MemoryBudgetError(
            f"{self.what}: resident memory reached {fmt_size(seen)} while {self.stage}, over --max-memory "
            f"{fmt_size(self.limit)}; stopped, nothing was written")

    def check(self) -> None:
        """Read the high-water mark once more and raise if it passed the limit since the last read (called
        just before an output is renamed into place, so a late spike cannot slip past the watchdog)."""
        seen = self._sample()
        if seen is not None and seen > self.limit:
            if self.tripped_at is None:
                self.tripped_at = seen
            raise self.error()

    def _sample(self) -> int | None:
        rss = peak_rss_bytes() if self.use_hwm else rss_bytes()
        if rss is not None:
            self.peak = max(self.peak, rss)
        return rss


_active: list[Budget] = []


def active_budget() -> Budget | None:
    """The budget the current run is under, if any (the exporter plans its stages to fit it)."""
    return _active[-1] if _active else None


def check_budget() -> None:
    """Raise MemoryBudgetError if the run under a budget has passed it (a no-op without a budget)."""
    if _active:
        _active[-1].check()


def enter_stage(label: str) -> None:
    """Record the stage a budgeted run is in (a no-op without a budget)."""
    if _active:
        _active[-1].stage = label


@contextmanager
def memory_budget(max_memory: int | str | None, what: str) -> Iterator[Budget | None]:
    """Keep the process's RSS under `max_memory` (bytes, or a size such as "1.5G") while the block runs, or
    stop it cleanly.

    A watchdog thread reads the RSS's high-water mark every 20 ms. Past the limit it interrupts the main
    thread (the same path as Ctrl-C, so every temporary file is removed on the way out) and the block ends in
    :class:`MemoryBudgetError`, naming the stage and the RSS seen: never the kernel's OOM killer, never a
    half-written output. A stage inside one long native call (the ONNX exporter, the OpenVINO compiler) is
    interrupted when that call returns, so it may pass the limit by what that call allocates; the plan made
    before the run (:func:`bortconv.pipeline.export.export` refuses budgets below its measured need) keeps that rare.
    With `max_memory` None the block runs unwatched.
    """
    if max_memory is None:
        yield None
        return
    limit = parse_size(str(max_memory))
    if rss_bytes() is None:
        raise InputError("--max-memory: this platform does not report a process's resident memory "
                         "(/proc/self/statm); run without it")
    import _thread
    budget = Budget(limit, what)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_S):
            rss = budget._sample()
            if rss is not None and rss > limit and budget.tripped_at is None:
                budget.tripped_at = rss
                _thread.interrupt_main()  # raises KeyboardInterrupt in the main thread
                return

    # The kernel's high-water mark, reset here, catches a spike that comes and goes between two reads (the
    # ONNX exporter's serialisation lasts well under the 20 ms); where it cannot be reset, the RSS is read.
    budget.use_hwm = reset_peak_rss() and peak_rss_bytes() is not None
    budget._sample()
    watcher = threading.Thread(target=watch, name="bortconv-memory-budget", daemon=True)
    watcher.start()
    _active.append(budget)
    try:
        try:
            yield budget
        finally:
            _active.remove(budget)
            stop.set()
            watcher.join()
        if budget.tripped_at is not None:  # tripped as the block ended: let the pending interrupt fire here
            for _ in range(1000):
                time.sleep(0)
    except KeyboardInterrupt:
        if budget.tripped_at is None:
            raise  # a real Ctrl-C
    if budget.tripped_at is not None:
        raise budget.error()
    log.info("%s: peak RSS %s (budget %s)", what, fmt_size(budget.peak), fmt_size(limit))
