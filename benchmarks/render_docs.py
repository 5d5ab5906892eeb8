"""Render the docs' figure tables from the benchmark results: every figure in README.md and docs/ is one a
benchmark script wrote to benchmarks/results/NAME.json (benchmarks/_result.py), never typed by hand.

    python benchmarks/render_docs.py            # rewrite the tables in place
    python benchmarks/render_docs.py --check    # exit 1 if any table differs from its result (what CI checks)

A table lives between two markers; NAME is the result file, TABLE one of its tables (default: NAME):

    <!-- table: NAME[/TABLE] -->
    ...generated: the table, then one line naming the machine, versions, date, commit and command...
    <!-- end table -->

tests/test_docs.py fails when a table differs from what its result renders, or a marker has no result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- table: (?P<ref>[A-Za-z0-9_./-]+) -->\n(?P<body>.*?)<!-- end table -->", re.S)
#: the CPU features a caption names, in this order
FEATURES = ("avx2", "avx512", "vnni", "avx512_bf16", "amx", "fp16", "arm_bf16", "i8mm")
#: the versions a caption names (the result file keeps them all)
CAPTION_LIBS = ("openvino", "onnxruntime", "torch", "transformers")


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def load(ref: str, results: Path = RESULTS) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result document, table) for a marker reference NAME or NAME/TABLE; KeyError names what is missing."""
    name, _, which = ref.partition("/")
    path = results / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no result file benchmarks/results/{name}.json for table '{ref}'")
    doc = json.loads(path.read_text(encoding="utf-8"))
    tables = doc.get("tables", {})
    key = which or name
    if key not in tables:
        raise KeyError(f"benchmarks/results/{name}.json has no table '{key}' (it has {', '.join(tables) or 'none'})")
    return doc, tables[key]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def provenance(doc: dict[str, Any]) -> str:
    """One line: the machine, the versions, the date, the commit and the command of a result."""
    m = doc["machine"]
    have = [f for f in FEATURES if m["flags"].get(f)]
    lack = [f for f in FEATURES if f in m["flags"] and not m["flags"][f]]
    feats = ", ".join(have) + (f"; no {', '.join(lack)}" if lack else "")
    libs = ", ".join(f"{k} {doc['versions'][k]}" for k in CAPTION_LIBS if k in doc["versions"])
    sha = doc["commit"].get("sha")
    commit = f"commit {sha[:10]}{' + local changes' if doc['commit'].get('dirty') else ''}" if sha else "no commit"
    load = f", load average {m['load_avg_1min']} at the end" if m.get("load_avg_1min") is not None else ""
    return (f"Measured on {m['cpu']} ({m['cores']} cores; {feats}{load}), {libs}; {doc['date']}, {commit}; "
            f"`{doc['command']}`.")


def render_table(doc: dict[str, Any], tab: dict[str, Any]) -> str:
    """The Markdown a marker holds: the table, its caption and the provenance line."""
    right = set(tab.get("right", ()))
    cols = tab["columns"]
    lines = ["| " + " | ".join(_cell(c) for c in cols) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(cols))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in tab["rows"]]
    caption = tab.get("caption")
    caption = (caption or "").rstrip(".")  # the provenance line follows after a full stop of its own
    tail = (caption[0].upper() + caption[1:] + ". " if caption else "") + provenance(doc)
    return "\n".join(lines) + "\n\n" + tail + "\n"


def render_text(text: str, results: Path = RESULTS) -> str:
    """`text` with every marker's body replaced by its rendering (KeyError if a marker has no result)."""
    def sub(m: re.Match[str]) -> str:
        doc, tab = load(m["ref"], results)
        return f"<!-- table: {m['ref']} -->\n{render_table(doc, tab)}<!-- end table -->"
    return MARKER.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    args = ap.parse_args(argv)
    stale, missing = [], []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        try:
            new = render_text(text)
        except KeyError as exc:
            missing.append(f"{path.relative_to(ROOT)}: {exc.args[0]}")
            continue
        if new != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for line in missing:
        print(f"error: {line}", file=sys.stderr)
    verb = "stale" if args.check else "rewritten"
    for name in stale:
        print(f"{verb}: {name}")
    return 1 if missing or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
