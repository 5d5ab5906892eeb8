"""`python -m bortconv.serve ARTIFACT_DIR ...`: the serve command on its own (the same as `bortconv serve`)."""

from __future__ import annotations

import argparse
import sys

from bortconv.errors import BortconvError
from bortconv.serve.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bortconv.serve",
                                     description="Serve a bortconv artifact (KServe v2 REST)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BortconvError as exc:
        print(f"bortconv: error: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
