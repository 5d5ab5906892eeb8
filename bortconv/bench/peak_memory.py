"""Child process of `bortconv bench`: load one model, run it once, print as JSON its memory high-water mark
after the load (``load_peak_rss_mb``) and after the first inference (``peak_rss_mb``), the load time and the
first inference's latency (``first_inference_ms``, at the shape given).

    python -m bortconv.bench.peak_memory artifact|pytorch PATH THREADS BATCH LENGTH

A fresh process is the only clean way to attribute peak memory to one candidate (see bortconv.bench.harness).
:func:`peak_of` runs any command that way (benchmarks/bench_export.py and the --max-memory tests use it).
On Linux the peak is ``VmHWM`` of /proc/self/status: the high-water mark of this process's own address space.
``ru_maxrss`` is not used there because Linux carries the parent's high-water mark into a forked-and-exec'd
child, so a child of a large benchmark process would report the parent's size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bortconv._util.memory import peak_rss_bytes, rss_bytes
from bortconv.layout import CONFIG_FILE, OV_XML


def _ru_maxrss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _rss_mb() -> float:
    now = rss_bytes()
    return now / 2**20 if now is not None else _ru_maxrss_mb()


def _peak_mb() -> float:
    peak = peak_rss_bytes()
    return peak / 2**20 if peak is not None else _ru_maxrss_mb()


def main(argv: list[str]) -> int:
    kind, path, threads, batch, length = argv[0], Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    cfg = json.loads((path / CONFIG_FILE).read_text())
    from bortconv.measure import make_feeds
    if kind == "pytorch":
        from bortconv.converters.hf_model import pytorch_runner
        __import__("torch")
        before = _rss_mb()
        t0 = time.perf_counter()
        run = pytorch_runner(path, "feature-extraction", threads=threads, attn_implementation="sdpa")
        load_s, load_peak = time.perf_counter() - t0, _peak_mb()
        feeds = make_feeds([length] * batch, length, int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0), 0,
                           int(cfg.get("type_vocab_size", 1)) > 1)
    else:
        from bortconv.runtime.bort import open_session
        __import__("openvino" if (path / OV_XML).is_file() else "onnxruntime")
        before = _rss_mb()
        t0 = time.perf_counter()
        session = open_session(path, threads)
        load_s, load_peak = time.perf_counter() - t0, _peak_mb()
        feeds = make_feeds([length] * batch, length, int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0), 0,
                           "token_type_ids" in session.input_names)
        run = session.run
    t1 = time.perf_counter()
    run(feeds)  # the first inference: what a cold start waits for after the load
    first_ms = (time.perf_counter() - t1) * 1e3
    print(json.dumps({"rss_after_imports_mb": before, "load_peak_rss_mb": load_peak, "first_inference_ms": first_ms,
                      "peak_rss_mb": _peak_mb(), "load_s": load_s}))
    return 0


# Forks once more before exec: the grandchild's ru_maxrss starts from this small launcher, not from the caller.
_PEAK_OF = ("import json, os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
            "_, status, usage = os.wait4(pid, 0)\n"
            "sys.stderr.write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]) + '\\n')\n")


def peak_of(args: list[str]) -> tuple[int, float, str, str]:
    """Run ``python ARGS`` and return (exit code, its own peak RSS in MB, stdout, stderr) (POSIX).

    ru_maxrss of a direct child of a large process (pytest, a benchmark holding torch) would include the
    parent's high-water mark, which Linux carries across fork and exec; the launcher forks once more from a
    small interpreter, so the figure is the command's own."""
    import subprocess
    proc = subprocess.run([sys.executable, "-c", _PEAK_OF, *args], capture_output=True, text=True)
    *rest, last = proc.stderr.splitlines() or [""]
    rc, peak_kb = json.loads(last)
    return rc, peak_kb / 1024, proc.stdout, "".join(line + "\n" for line in rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
