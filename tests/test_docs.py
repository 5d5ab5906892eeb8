"""The docs a user reads: README.md and docs/ stay short, complete and true to the benchmark results.

- every figure table is generated: between `<!-- table: NAME -->` and `<!-- end table -->` stands exactly what
  benchmarks/render_docs.py renders from benchmarks/results/NAME.json, and every marker has its result;
- every result file names its machine, versions, date and commit;
- no placeholder (TODO, TBD, XXX, FIXME, or an ALL_CAPS_NAME outside code) and no broken relative link
  (pages, images, directories, #anchors) anywhere in README.md or docs/;
- README.md is at most 200 lines, and docs/ holds at least 5 guides.

Each checker is itself tested on a table of bad and good snippets, so none of these can pass vacuously.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
MIN_GUIDES = 5


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


render = _load("render_docs")
DOCS = render.doc_files(ROOT)
RESULT_FILES = sorted((ROOT / "benchmarks" / "results").glob("*.json"))

# ------------------------------------------------------------------------------------------------ checkers

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"<!--.*?-->", re.S)
PLACEHOLDER = re.compile(r"\b(TODO|TBD|XXX+|FIXME)\b|\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """`text` without fenced blocks, inline code and HTML comments (where names like `CACHE_DIR` belong)."""
    return CODE.sub("", FENCE.sub("", COMMENT.sub("", text)))


def placeholders(text: str) -> list[str]:
    return [m.group(0) for m in PLACEHOLDER.finditer(prose(text))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """Relative links in `path` (or `text` as if it were `path`) whose file, directory or #anchor is missing."""
    text = path.read_text(encoding="utf-8") if text is None else text
    out = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            out.append(target)
        elif anchor and dest.is_file() and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(target)
    return out


# ------------------------------------------------------------------------------- the checkers catch faults

PLACEHOLDER_CASES = [
    ("BUDGET_FILLED_TABLE\n", ["BUDGET_FILLED_TABLE"]),
    ("Where the time goes (BENCH_SETTINGS):", ["BENCH_SETTINGS"]),
    ("TODO: write this", ["TODO"]),
    ("the figure is TBD", ["TBD"]),
    ("measured XXX ms", ["XXX"]),
    ("pin `INFERENCE_PRECISION_HINT` to f32", []),
    ("```\nexport BORTCONV_GATE_SWEEP=quick\n```\n", []),
    ("<!-- table: headline -->", []),
    ("OpenVINO IR, ONNX, BERT, AMX and CPU are words", []),
]


@pytest.mark.parametrize("text,found", PLACEHOLDER_CASES, ids=[c[0][:24] for c in PLACEHOLDER_CASES])
def test_placeholder_checker(text, found):
    assert placeholders(text) == found


def test_link_checker(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# A guide\n\n## Loading an artifact\n\ntext\n")
    (tmp_path / "docs" / "img.png").write_bytes(b"\x89PNG")
    page = tmp_path / "README.md"
    cases = {"[g](docs/guide.md)": [], "[g](docs/guide.md#loading-an-artifact)": [], "![p](docs/img.png)": [],
             "[d](docs/)": [], "[w](https://example.com/x)": [], "[g](docs/missing.md)": ["docs/missing.md"],
             "[g](docs/guide.md#no-such-heading)": ["docs/guide.md#no-such-heading"],
             "![p](docs/missing.png)": ["docs/missing.png"], "[s](#a-guide)": ["#a-guide"],
             "```\n[x](nowhere.md)\n```": []}
    for text, want in cases.items():
        assert broken_links(page, text) == want, text


def test_stale_table_is_detected(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    doc = {"name": "demo", "command": "python benchmarks/bench_demo.py", "date": "2026-01-01 00:00 UTC",
           "commit": {"sha": "0123456789abcdef", "dirty": False},
           "machine": {"cpu": "Some CPU", "cores": 2, "flags": {"avx2": True, "amx": False}},
           "versions": {"openvino": "1.0"}, "tables": {"demo": {"columns": ["a", "ms"], "rows": [["x", "1.5"]],
                                                                 "right": [1], "caption": "one run"}}}
    (results / "demo.json").write_text(json.dumps(doc))
    page = "intro\n<!-- table: demo -->\n| a | ms |\n|---|---:|\n| x | 9.9 |\n<!-- end table -->\n"
    fresh = render.render_text(page, results)
    assert fresh != page and "| x | 1.5 |" in fresh and "Some CPU (2 cores; avx2; no amx)" in fresh
    assert "commit 0123456789" in fresh and render.render_text(fresh, results) == fresh
    with pytest.raises(KeyError, match="no result file"):
        render.render_text("<!-- table: absent -->\n<!-- end table -->", results)


# --------------------------------------------------------------------------------------- the docs themselves


def test_readme_is_short_and_guides_exist():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"
    guides = [p for p in (ROOT / "docs").glob("*.md")]
    assert len(guides) >= MIN_GUIDES, f"docs/ has {len(guides)} guides: {[p.name for p in guides]}"


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_tables_are_rendered_from_results(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("<!-- table: ") == text.count("<!-- end table -->"), f"{path.name}: unbalanced table markers"
    assert render.render_text(text) == text, \
        f"{path.relative_to(ROOT)}: a table differs from its result; run `python benchmarks/render_docs.py`"


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_no_placeholders_or_broken_links(path):
    text = path.read_text(encoding="utf-8")
    assert placeholders(text) == [], f"{path.relative_to(ROOT)}: placeholders"
    assert broken_links(path) == [], f"{path.relative_to(ROOT)}: broken relative links"


def test_figure_tables_are_backed():
    """The README's headline table and at least two guide tables come from result files."""
    used = {m["ref"].partition("/")[0] for p in DOCS for m in render.MARKER.finditer(p.read_text(encoding="utf-8"))}
    readme = render.MARKER.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme, "README.md has no generated headline table"
    assert len(used) >= 3, used


@pytest.mark.parametrize("path", RESULT_FILES, ids=[p.name for p in RESULT_FILES])
def test_result_files_name_their_machine(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["name"] == path.stem
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] >= 1 and doc["machine"]["flags"]
    assert doc["commit"]["sha"] and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", doc["date"])
    assert doc["versions"] and doc["command"].startswith("python benchmarks/")
    assert doc["tables"] and all(t["rows"] for t in doc["tables"].values())


def test_gate_thresholds_table_is_the_code():
    """docs/export.md's threshold table states GATE_DEFAULTS (a constant, not a measurement, but typed by hand)."""
    from bortconv.config import GATE_DEFAULTS

    fields = ("token_cosine", "sentence_cosine", "sentence_cosine_p5", "sentence_cosine_worst", "top1_agreement",
              "label_agreement")
    rows = {}
    for line in (ROOT / "docs" / "export.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("int8", "bf16, fp16") and all(re.fullmatch(r"0\.\d+", c) for c in cells[1:]):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    assert set(rows) == {"int8", "bf16, fp16"}
    for label, precisions in (("int8", ("int8",)), ("bf16, fp16", ("bf16", "fp16"))):
        for p in precisions:
            assert rows[label] == [getattr(GATE_DEFAULTS[p], f) for f in fields], (label, p)
