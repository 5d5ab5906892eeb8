"""`python -m bortconv.serve ARTIFACT_DIR ...`: the serve command on its own (the same as `bortconv serve`)."""

from __future__ import annotations

import sys

from bortconv._util.standalone_command import run_standalone
from bortconv.serve.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    return run_standalone("python -m bortconv.serve", "Serve a bortconv artifact (KServe v2 REST)", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
