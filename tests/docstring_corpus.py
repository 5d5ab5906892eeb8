"""The domain corpus of `bortconv trim`'s tests and benchmark: Python standard-library docstring summaries.

    python -I -S tests/docstring_corpus.py FILE

The pool is every documented callable the listed modules expose, so it depends on what else the interpreter has
imported (an imported submodule brings its classes into its package's members): 333 of 1,800 lines differed
between a fresh interpreter and one that had imported torch. :func:`write_corpus` therefore runs this file in a
fresh isolated interpreter (``-I``), which imports nothing but the standard library: the corpus is then the same in
any test order, in the benchmark and at the command line. ``-S`` too: no site-packages ``.pth`` file runs (some
import modules). Standard library only, on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import subprocess
import sys
import warnings
from pathlib import Path

#: standard-library modules whose docstrings make the domain corpus (those that import here)
DOC_MODULES = (
    "abc argparse array ast asyncio base64 binascii bisect bz2 calendar cmd codecs collections collections.abc "
    "colorsys concurrent.futures configparser contextlib contextvars copy csv dataclasses datetime decimal difflib "
    "dis doctest email email.message email.utils enum filecmp fnmatch fractions ftplib functools gettext getopt glob "
    "graphlib gzip hashlib heapq hmac html http.client http.cookiejar http.cookies http.server imaplib importlib "
    "inspect io ipaddress itertools json keyword linecache locale logging logging.handlers lzma mailbox math "
    "mimetypes mmap multiprocessing netrc numbers operator optparse os os.path pathlib pickle pkgutil platform "
    "plistlib poplib pprint pstats queue random re reprlib runpy sched secrets select selectors shelve shlex shutil "
    "signal smtplib socket socketserver sqlite3 ssl stat statistics string struct subprocess symtable sysconfig "
    "tarfile tempfile textwrap threading time timeit tokenize trace traceback types typing unicodedata unittest "
    "urllib.parse urllib.request uuid warnings wave weakref xml.etree.ElementTree xmlrpc.client zipfile zoneinfo"
).split()
CORPUS_LINES = 1800


def docstring_corpus(n: int = CORPUS_LINES, seed: int = 0) -> list[str]:
    """`n` distinct first paragraphs (25-200 characters) of the docstrings of DOC_MODULES' functions, classes and
    methods, a seeded sample: one domain (API documentation) of short real texts, offline on any CPython."""
    seen: dict[str, None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in DOC_MODULES:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            for _, obj in inspect.getmembers(mod):
                members = [v for k, v in sorted(vars(obj).items()) if not k.startswith("_")] \
                    if inspect.isclass(obj) else []
                for o in [obj, *members]:
                    if callable(o) or inspect.isclass(o):
                        first = " ".join((inspect.getdoc(o) or "").split("\n\n")[0].split())
                        if 25 <= len(first) <= 200 and not re.match(r"[\w.]+\(", first):
                            seen.setdefault(first, None)
    texts = list(seen)
    assert len(texts) >= n, f"only {len(texts)} docstrings"
    return random.Random(seed).sample(texts, n)


def write_corpus(path: Path) -> Path:
    """Write the corpus to `path` from a fresh isolated interpreter (the module docstring says why)."""
    subprocess.run([sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(path)], check=True)
    return path


def _write(path: Path) -> None:
    path.write_text("\n".join(docstring_corpus()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _write(Path(sys.argv[1]))
