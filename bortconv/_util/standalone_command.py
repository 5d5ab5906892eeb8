"""A stage's command run on its own (``python -m bortconv.serve``, ``python -m bortconv.package``): its parser, and
errors turned into the same one-line message and exit code as ``bortconv`` itself gives."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bortconv._util.parser import Parser
from bortconv.errors import BortconvError, InputError


def run_standalone(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                   run: Callable[[argparse.Namespace], int], argv: list[str] | None = None) -> int:
    """Parse `argv` with the command's own arguments and run it; BortconvError -> "bortconv: error: ..." + its
    exit code."""
    parser = Parser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BortconvError as exc:
        message = exc.message
        if isinstance(exc, InputError) and exc.option:  # an API parameter it names, shown as its flag
            message = exc.for_flag("--" + exc.option.replace("_", "-"))
        print(f"bortconv: error: {message}", file=sys.stderr)
        return exc.exit_code
