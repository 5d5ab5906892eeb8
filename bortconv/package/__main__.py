"""`python -m bortconv.package ARTIFACT_DIR --format triton|ovms -o REPO`: the package command on its own."""

from __future__ import annotations

import sys

from bortconv._util.standalone_command import run_standalone
from bortconv.package.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    return run_standalone("python -m bortconv.package", "Write a Triton or OVMS model repository for a bortconv artifact", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
