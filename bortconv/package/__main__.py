"""`python -m bortconv.package ARTIFACT_DIR --format triton|ovms -o REPO`: the package command on its own."""

from __future__ import annotations

import argparse
import sys

from bortconv.errors import BortconvError
from bortconv.package.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bortconv.package",
                                     description="Write a Triton or OVMS model repository for a bortconv artifact")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BortconvError as exc:
        print(f"bortconv: error: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
