"""Stage-by-stage progress on stderr: what is running and how long each step took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from bortconv._util.memory import enter_stage
from bortconv._util.signals import raise_if_signalled


class Progress:
    """`with progress.step("exporting ONNX"): ...` prints "[2/6] exporting ONNX ... 4.1 s"."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = total
        self.n = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        raise_if_signalled()  # an interrupt a library swallowed during the last step stops the run here
        self.n += 1
        enter_stage(label)  # a --max-memory message names the stage it stopped in
        if self.enabled:
            self.stream.write(f"[{self.n}/{self.total}] {label} ...")
            self.stream.flush()
        t0 = time.perf_counter()
        ok = False
        end = " failed\n"
        try:
            yield
            raise_if_signalled()
            ok = True
        except Exception:
            raise
        except BaseException:  # Ctrl-C or SIGTERM: the step did not fail, it was stopped
            end = " interrupted\n"
            raise
        finally:
            dt = time.perf_counter() - t0
            self.timings[label] = round(dt, 3)
            if self.enabled:
                self.stream.write(f" {dt:.1f} s\n" if ok else end)
                self.stream.flush()
