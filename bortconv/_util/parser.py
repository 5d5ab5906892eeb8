"""The argument parser every bortconv command line uses: a usage error is one line naming the command, exit 2."""

from __future__ import annotations

import argparse
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in bortconv's one-line form (exit 2) instead of the usage text plus a line.

    The command is the last word of `prog`: "export" for `bortconv export`, "serve" for `python -m bortconv.serve`,
    none for `bortconv` itself.
    """

    #: the top parser's command parsers, by name (set by build_parser): an unknown flag is refused by its command's
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        command = self.prog.split()[-1].removeprefix("bortconv").removeprefix(".")
        where = f"{command}: " if command else ""
        self.exit(2, f"bortconv: error: {where}{message} (see {self.prog} --help)\n")
