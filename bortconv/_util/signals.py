"""Ctrl-C and SIGTERM as exceptions that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. When that is a weakref callback or a
``__del__`` (CI caught one inside importlib's module-lock callback while torch imported), CPython only prints
"Exception ignored in ..." and carries on, so an interrupted export ran to the end and kept its output. The
handlers here remember every signal they turned into an exception; the atomic commit and each progress step
ask :func:`raise_if_signalled` first, so a swallowed interrupt still stops the run before anything lands.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt: a BaseException, so no library's `except Exception` (the ONNX
    exporter wrapper, the OpenVINO route fallback) can swallow it or turn it into an export error."""


#: signals turned into exceptions since :func:`signals_raise` was entered, in arrival order
raised: list[int] = []


def _raise_for(signum: int, frame: FrameType | None = None) -> None:
    raised.append(signum)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _quiet_swallowed(previous_hook: Callable[[sys.UnraisableHookArgs], object]
                     ) -> Callable[[sys.UnraisableHookArgs], None]:
    """An unraisable-exception hook that drops our own signal exceptions.

    When CPython swallows the KeyboardInterrupt (or Terminated) that :func:`_raise_for` raised inside a weakref
    callback, it prints "Exception ignored in ..." and a traceback to stderr. The interrupt is not lost (it is
    in :data:`raised`, and :func:`raise_if_signalled` raises it again), so that traceback is noise on a run
    that must end with one line. Every other unraisable exception goes to the previous hook unchanged."""

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if raised and unraisable.exc_type in (KeyboardInterrupt, Terminated):
            return
        previous_hook(unraisable)

    return hook


def raise_if_signalled() -> None:
    """Raise again the exception of a signal that arrived (and may have been swallowed by a library)."""
    if raised:
        signum = raised[-1]
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within: SIGINT raises KeyboardInterrupt and SIGTERM raises :class:`Terminated`, both remembered.

    The previous handlers come back on exit, and the memory is cleared on entry, so one process can run
    several commands (the tests call ``main()`` in-process)."""
    held = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    raised.clear()
    previous = {s: signal.signal(s, _raise_for) for s in held}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_swallowed(previous_hook)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        raised.clear()
