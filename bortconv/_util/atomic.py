"""Write a directory atomically: build it beside its destination, rename it into place at the end.

A crash, SIGKILL or Ctrl-C leaves either the old state or the complete new directory, never a half-written
one; on an exception (including KeyboardInterrupt and SIGTERM) the temporary directory is removed.

Only SIGKILL (or a power cut) can leave a temporary directory behind:
``.bortconv-tmp-<OUT name>-<pid>-<host tag>-<random>`` beside OUT. The next run writing the same OUT removes
it, once it is sure the owner is gone: same OUT name, same host, and no process with that pid (POSIX only).
A ``.bortconv-tmp-<OUT name>-old-*`` directory (a kill between the two renames of --force) holds the previous
output and is never removed automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import threading
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bortconv._util.signals import raise_if_signalled
from bortconv.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

TMP_MARK = ".bortconv-tmp-"
#: what follows "<TMP_MARK><OUT name>-" in a temporary directory's name: pid, host tag, mkdtemp's suffix
_OWNER = re.compile(r"(\d{1,10})-([0-9a-f]{8})-[a-z0-9_]{8}")
#: outputs this process completed (renamed into place), outermost only: an interrupt that lands after the
#: rename must not claim that nothing was written
committed: list[Path] = []
#: what an interrupted run deliberately keeps for later (e.g. finetune's work directory for --resume), said by the CLI
kept: list[str] = []


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX: signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove temporary directories that killed runs left beside `out`; returns what was removed.

    Only directories named for this very OUT, made on this host, whose process no longer exists. A reused
    pid or another host's directory is left alone (the safe direction)."""
    if os.name != "posix":  # elsewhere os.kill(pid, 0) would terminate the process, not probe it
        return []
    parent = out.parent if str(out.parent) else Path(".")
    prefix, host, removed = f"{TMP_MARK}{out.name}-", _host_tag(), []
    try:
        entries = [e for e in parent.iterdir() if e.name.startswith(prefix)]
    except OSError:
        return []
    for entry in entries:
        m = _OWNER.fullmatch(entry.name[len(prefix):])
        if not m or m.group(2) != host or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.info("removed %s, left by a killed bortconv run (pid %d)", entry, pid)
        removed.append(entry)
    return removed


def check_output_dir(out: Path, force: bool, reads: Sequence[str | os.PathLike[str] | None] = ()) -> None:
    """Refuse an output path that is a file, or a directory that holds files unless `force`, or one that is, holds
    or lies inside a path the run `reads`: replacing it would destroy the run's own input, --force or not, and
    writing inside an input directory changes it (an artifact with a file its manifest does not list no longer
    validates, nor quantizes or packages)."""
    for given in reads:
        if given is None or str(given) == "":  # "" is no path (its reader refuses it, naming the option), and
            continue  # Path("") would resolve to the working directory, which holds every relative output
        src, dest = Path(given).resolve(), out.resolve()
        if src == dest or dest in src.parents:
            what = "is" if src == dest else "holds"
            raise InputError(f"{out}: {what} the input {given}; writing there would replace what the run reads "
                             f"(choose another output directory)")
        if src in dest.parents:
            raise InputError(f"{out}: inside the input {given}; writing there would change what the run reads "
                             f"(choose another output directory)")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: directory is not empty (pass --force to replace it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{out}: parent directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{out}: {parent} is not a directory")
    with interrupts_deferred():  # a probe, not os.access: root passes that on read-only and special file systems
        os.rmdir(_temporary(out, parent))


def check_output_file(path: Path, option: str, reads: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Refuse a file output (a report, a plot) that could not be written when the run ends: a directory, a parent
    that is missing or not a directory, a place the OS takes no new file, or a place inside a directory the run
    `reads` (a report written into an artifact would change it). Called before the run's work, so a typo in the
    path costs no minutes and loses no results."""
    for given in reads:
        if Path(given).resolve() in path.resolve().parents:
            raise InputError(f"{option}: {path}: inside {given}, which the run reads; write it elsewhere",
                             option=option)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option}: {path}: is a directory", option=option)
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(f"{option}: {path}: {parent} {why}", option=option)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise InputError(f"{option}: {path}: cannot create a file in {parent} ({exc.strerror or exc})",
                         option=option) from None
    os.close(fd)
    os.unlink(probe)


def _temporary(out: Path, parent: Path) -> Path:
    """A fresh directory beside `out`, named so :func:`remove_stale_temporaries` knows its owner. The OS refusing
    it (permissions, a read-only or special file system) is a fault of the output path the user gave."""
    try:
        return Path(tempfile.mkdtemp(prefix=f"{TMP_MARK}{out.name}-{os.getpid()}-{_host_tag()}-", dir=parent))
    except OSError as exc:
        raise InputError(f"{out}: cannot create a directory in {parent} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while a temporary directory is made and its path recorded, and while the
    finished output is swapped in.

    Without this a Ctrl-C landing between mkdtemp's mkdir and the assignment of its result leaves a
    directory nobody knows the name of (CI caught exactly that). A signal mask would not do: the OS hands a
    process-directed signal to any thread that does not block it (torch, onnxruntime and OpenVINO keep
    pools), so the Python-level handlers are swapped for a recorder instead, and what arrived is re-raised
    in this thread, to the handlers it was meant for, once the step is done.

    The exporter also holds interrupts around torch.onnx.export and OpenVINO's PyTorch conversion: a
    KeyboardInterrupt raised inside TorchScript tracing can leave torch's C++ state broken, and CI once saw
    such a run die with SIGSEGV instead of cleaning up. Ctrl-C there takes effect when the call returns."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only; elsewhere there is nothing to defer
        return
    arrived: list[int] = []
    held = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike[str], *, force: bool = False,
                     reads: Sequence[str | os.PathLike[str] | None] = ()) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces `out` (never one that is or holds `reads`)."""
    out = Path(out)
    check_output_dir(out, force, reads)
    parent = out.parent if str(out.parent) else Path(".")
    remove_stale_temporaries(out)
    tmp: Path | None = None
    try:
        with interrupts_deferred():
            tmp = _temporary(out, parent)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result should look like any mkdir'd dir
        yield tmp
        from bortconv._util.memory import check_budget
        check_budget()  # a --max-memory passed since the watchdog's last look: fail before anything lands
        check_output_dir(out, force)  # something may have appeared there meanwhile
        # the swap and its record happen as one step for Ctrl-C: never the old output moved aside with the
        # new one not yet in place, never a finished output the interrupt message says was not written
        with interrupts_deferred():
            raise_if_signalled()  # an interrupt a library swallowed must not let the output land
            if out.exists():
                trash = Path(tempfile.mkdtemp(prefix=TMP_MARK + out.name + "-old-", dir=parent))
                os.rename(out, trash / "old")
                os.rename(tmp, out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(tmp, out)
            if not any(part.startswith(TMP_MARK) for part in out.resolve().parts):
                committed.append(out)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
