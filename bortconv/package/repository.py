"""`bortconv package`: an artifact directory -> a model repository that Triton or OVMS loads unchanged.

Written with :func:`bortconv._util.atomic.atomic_directory`: the repository is built beside REPO and renamed into
place only when complete, so a failure leaves REPO as it was.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from bortconv._util.atomic import atomic_directory, check_output_dir
from bortconv.config import PACKAGE_FORMATS, as_path, checked_arguments
from bortconv.errors import InputError
from bortconv.manifest import check_unchanged, read_manifest
from bortconv.package.ovms import TEXT_PAIR_SUFFIX
from bortconv.runtime.bort import MAX_NAME, artifact_name, check_name

log = logging.getLogger(__name__)

FORMATS = PACKAGE_FORMATS


@checked_arguments
def package_artifact(artifact_dir: str | os.PathLike[str], repo: str | os.PathLike[str], *, fmt: str,
                     name: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write a `fmt` ("triton" or "ovms") model repository for the artifact at `artifact_dir` into `repo`.

    Returns a summary: format, repo, models written (name -> files), seconds. Raises InputError (not an
    artifact, unknown format, bad name) or OutputExistsError (REPO not empty, without `force`): exit 2.
    """
    from bortconv.package.signature import read_signature

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    src, out = as_path(artifact_dir, "artifact_dir"), as_path(repo, "repo")
    manifest = read_manifest(src)
    if "task" not in manifest:
        raise InputError(f"{src}: its manifest names no task; not an artifact written by bortconv export")
    model_name = check_name(name) if name is not None else artifact_name(src)
    room = MAX_NAME - len(TEXT_PAIR_SUFFIX)
    if fmt == "ovms" and len(model_name) > room:  # its text-in models' names must be model names too
        if name is not None:
            raise InputError(f"--name: {len(name)} characters; an OVMS repository also holds the model "
                             f"NAME{TEXT_PAIR_SUFFIX}, so the name takes at most {room}")
        model_name = model_name[:room]
    check_output_dir(out, force, reads=[src])  # refuse before reading the model
    check_unchanged(src, manifest)
    t0 = time.perf_counter()
    sig = read_signature(src)
    with atomic_directory(out, force=force) as tmp:
        if fmt == "triton":
            from bortconv.package.triton import write_triton
            written = write_triton(src, tmp, model_name, sig, manifest)
        else:
            from bortconv.package.ovms import write_ovms
            written = write_ovms(src, tmp, model_name, sig, manifest)
    log.info("wrote a %s repository for %s to %s", fmt, src, out)
    return {"format": fmt, "repo": str(out), "artifact": str(src), "task": manifest["task"],
            "runtime": sig.runtime, **written, "seconds": round(time.perf_counter() - t0, 2)}
