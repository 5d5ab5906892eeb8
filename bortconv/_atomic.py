"""Write a directory atomically: build it beside its destination, rename it into place at the end.

A crash, SIGKILL or Ctrl-C leaves either the old state or the complete new directory, never a half-written
one; on an exception (including KeyboardInterrupt) the temporary directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bortconv.errors import InputError, OutputExistsError

TMP_MARK = ".bortconv-tmp-"


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse an output path that is a file, or a directory that holds files unless `force`."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: directory is not empty (pass --force to replace it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{out}: parent directory {parent} does not exist")


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces `out`."""
    out = Path(out)
    check_output_dir(out, force)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=TMP_MARK + out.name + "-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result should look like any mkdir'd directory
    try:
        yield tmp
        check_output_dir(out, force)  # something may have appeared there meanwhile
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=TMP_MARK + out.name + "-old-", dir=parent))
            os.rename(out, trash / "old")
            os.rename(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
