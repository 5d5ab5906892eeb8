"""--max-memory: a resident-memory budget that is planned for, refused up front when it cannot hold, and
enforced by a watchdog that stops the run cleanly (exit 2, nothing left behind) instead of the OOM killer.

The watchdog rows allocate real memory past a real limit; the CLI rows run real exports of an mxnet-built
Bort-shaped checkpoint. Peak figures for the full-size Bort are measured by benchmarks/bench_export.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from bortconv._util.atomic import TMP_MARK, atomic_directory
from bortconv._util.memory import collect_only_new, enter_stage, memory_budget, parse_size, release, rss_bytes
from bortconv.pipeline.cost import export_need, fit_budget
from bortconv.errors import InputError, MemoryBudgetError
from bortconv.bench.peak_memory import peak_of

BORTCONV = [sys.executable, "-m", "bortconv"]
CASE = "bort2_cls_fp16"  # Bort-shaped: 2 layers, 16 heads, units 1024, classifier head
G, M = 2**30, 2**20

# (text, bytes or None for "refused")
SIZES = [("1.5G", int(1.5 * G)), ("1500M", 1500 * M), ("1536MiB", 1536 * M), ("2000000000", 2_000_000_000),
         ("2gb", 2 * G), ("512k", 512 * 1024), ("", None), ("abc", None), ("-1G", None), ("0", None),
         ("1.5X", None), ("1e9", None)]


class _Cycle:
    """An object in a reference cycle: only the garbage collector frees it."""

    def __init__(self, freed: list[str], name: str) -> None:
        self.me, self.freed, self.name = self, freed, name

    def __del__(self) -> None:
        self.freed.append(self.name)


def test_collect_only_new_frees_the_runs_garbage_and_unfreezes():
    """Inside an export's freeze, a collection (release) frees the cycles made inside and passes over what existed
    before (frozen after one collection at entry, which frees the caller's garbage); nested runs share the freeze,
    exit unfreezes, and a caller's own freeze is left as it was. The reference is Python's gc itself."""
    import gc

    gc.unfreeze()  # conftest's session freeze: this test is the caller that froze nothing (restored at the end)
    try:
        _collect_only_new_rows()
    finally:
        gc.collect()
        gc.freeze()


def _collect_only_new_rows() -> None:
    import gc
    import weakref

    freed: list[str] = []
    before = _Cycle(freed, "before")
    kept = weakref.ref(before)
    _Cycle(freed, "caller garbage")  # a cycle, unreachable: the entry collection frees it
    with collect_only_new():
        assert freed == ["caller garbage"] and gc.get_freeze_count() > 0
        with collect_only_new():  # nested: the same freeze
            _Cycle(freed, "inside")
            release()
            assert freed == ["caller garbage", "inside"]
        assert gc.get_freeze_count() > 0
        del before
        release()  # frozen: not freed until the freeze ends
        assert kept() is not None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert kept() is None and freed[-1] == "before"
    gc.freeze()  # a caller that froze objects itself keeps its freeze
    try:
        n = gc.get_freeze_count()
        with collect_only_new():
            assert gc.get_freeze_count() == n
        assert gc.get_freeze_count() == n
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("text,expected", SIZES, ids=[repr(s[0]) for s in SIZES])
def test_parse_size(text, expected):
    if expected is None:
        with pytest.raises(InputError, match="--max-memory"):
            parse_size(text)
    else:
        assert parse_size(text) == expected


def settled_rss() -> int:
    """This process's RSS once the garbage earlier tests left is collected and the heap trimmed. The limits
    below are this plus a margin. In a test worker that had run exports first, the 400 MB spike once stayed
    under base + 150 MB: a collection during the block that frees an earlier test's arrays lowers the RSS by
    what it frees, so the base must not still hold them."""
    release()
    base = rss_bytes()
    assert base is not None
    return base


def _touch(nbytes: int) -> np.ndarray:
    a = np.ones(nbytes // 8)  # written: resident, not just reserved
    for _ in range(50):  # Python bytecodes for the watchdog's interrupt to land on
        time.sleep(0.01)
    return a


def test_watchdog_stops_the_block_and_nothing_is_left(tmp_path):
    base = settled_rss()
    out = tmp_path / "out"
    with pytest.raises(MemoryBudgetError) as err:
        with memory_budget(base + 150 * M, "export") as budget, atomic_directory(out) as tmp:
            enter_stage("allocating")  # what Progress.step does
            (tmp / "model.onnx").write_bytes(b"partial")
            held = _touch(400 * M)
            del held
    msg = str(err.value)
    assert "while allocating" in msg and "--max-memory" in msg and "nothing was written" in msg, msg
    assert budget.tripped_at is not None and budget.tripped_at > base + 150 * M
    assert list(tmp_path.iterdir()) == []  # no OUT, no temporary directory


def test_a_spike_between_two_reads_is_caught_before_the_output_lands(tmp_path):
    """Allocated and freed within one native call, well inside the watchdog's 20 ms: the kernel's high-water
    mark still holds it, and the check before the rename refuses the output."""
    base = settled_rss()
    out = tmp_path / "out"
    with pytest.raises(MemoryBudgetError):
        with memory_budget(base + 150 * M, "export"), atomic_directory(out) as tmp:
            (tmp / "model.onnx").write_bytes(b"x")
            np.ones(400 * M // 8).sum()  # 400 MB resident for a few ms, then freed
    assert list(tmp_path.iterdir()) == []


def test_under_budget_and_real_interrupt_pass_through():
    base = settled_rss()
    with memory_budget(base + 2 * G, "export") as budget:
        held = _touch(100 * M)
    assert budget.tripped_at is None and budget.peak >= base + 90 * M
    del held
    import _thread
    import signal
    # interrupt_main() acts only where Python's own SIGINT handler is installed: a Ctrl-C as a user's process has
    # it, whatever an earlier test in this process left installed
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):  # a real Ctrl-C is not turned into a budget error
            with memory_budget(base + 2 * G, "export"):
                _thread.interrupt_main()
                time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, before)


# (weights MB, target, int8, route, budget MB) -> the route taken, or "refused"
PLANS = [
    (300, "onnx", False, "auto", 4096, "auto"),
    (300, "openvino", False, "auto", 4096, "auto"),
    (300, "onnx", False, "auto", 400, "refused"),
    (300, "openvino", True, "pytorch", 400, "refused"),
]


@pytest.mark.parametrize("weights,target,int8,route,budget,taken", PLANS)
def test_plan_table(weights, target, int8, route, budget, taken):
    if taken == "refused":
        with pytest.raises(MemoryBudgetError, match="needs about"):
            fit_budget(budget * M, weights * M, target=target, int8=int8, route=route, fill_mask=False)
    else:
        assert fit_budget(budget * M, weights * M, target=target, int8=int8, route=route,
                          fill_mask=False) == taken


def test_openvino_takes_one_route_when_both_do_not_fit():
    w = 300 * M
    both = export_need(w, target="openvino", int8=False, both_routes=True)
    one = export_need(w, target="openvino", int8=False, both_routes=False)
    assert both > one  # the plan never puts both routes below one
    assert fit_budget((both + one) // 2, w, target="openvino", int8=False, route="auto", fill_mask=False) == "onnx"
    with pytest.raises(MemoryBudgetError):  # an explicit "fastest" is the user's choice: refused, not changed
        fit_budget((both + one) // 2, w, target="openvino", int8=False, route="fastest", fill_mask=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BORTCONV, *args], capture_output=True, text=True)


def test_cli_refuses_a_budget_below_the_plan_up_front(reference, tmp_path):
    out = tmp_path / "out"
    proc = _cli("export", str(reference[CASE].params), "--target", "onnx", "-o", str(out), "--max-memory", "450M",
                "--no-bench", "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs about" in lines[0] and "--max-memory 450 MB" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_watchdog_stops_convert_cleanly(reference, tmp_path):
    out = tmp_path / "out"  # 20 MB: below what the interpreter and numpy alone hold
    proc = _cli("convert", str(reference[CASE].params), "-o", str(out), "--max-memory", "20M")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("bortconv: error: convert: resident memory reached") and \
        proc.stderr.count("\n") == 1, proc.stderr
    assert not any(p.name.startswith(TMP_MARK) or p == out for p in tmp_path.iterdir())


def test_cli_bad_size(reference, tmp_path):
    proc = _cli("export", str(reference[CASE].params), "--target", "onnx", "-o", str(tmp_path / "o"),
                "--max-memory", "lots")
    assert (proc.returncode, proc.stderr.count("\n")) == (2, 1) and "--max-memory 'lots'" in proc.stderr


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_cli_export_within_budget(reference, tmp_path, target):
    """A budget the plan fits: the export completes, parity holds, the peak it reports is the kernel's, and the
    kernel's own account of the process (measured from outside) stayed under the budget."""
    out = tmp_path / "out"
    budget = 1800 * M
    rc, peak_mb, stdout, stderr = peak_of(["-m", "bortconv", "export", str(reference[CASE].params), "--target",
                                           target, "-o", str(out), "--max-memory", "1800M", "--no-bench",
                                           "--quiet", "--json", "--threads", "2"])
    assert rc == 0, stderr
    summary = json.loads(stdout)
    assert all(r["passed"] for rep in summary["parity"] for r in rep["rows"])
    assert peak_mb * M < budget, f"peak {peak_mb:.0f} MB"
    assert summary["max_memory_mb"] == 1800 and 0 < summary["peak_rss_mb"] <= peak_mb * 1.02, (summary, peak_mb)
