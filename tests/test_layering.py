"""The package's structure, read from the source (nothing is imported, so no import side effects):

- imports go downward only: a part imports the parts below it in :data:`LAYERS` and nothing above;
- no import cycle between modules, nor between parts, counting lazy imports inside functions (the ones that
  hid the old exporter -> quantize -> validate -> exporter cycle);
- serving and packaging reach only the torch-free runtime, the layout and the manifest;
- no function in bortconv/ is longer than :data:`MAX_FUNCTION_LINES`.

The `test_lean_import` habit (torchao) applied to structure.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bortconv"
MAX_FUNCTION_LINES = 60

#: part -> layer. A part may import its own modules and parts of a lower layer only.
LAYERS: dict[str, float] = {
    # shared leaves: import no stage
    "errors": 0, "_version": 0, "layout": 0,
    "_util": 1, "config": 1, "measure": 1,
    "manifest": 2,
    # the torch-free runtime: sessions, tokenization, BortRuntime, loaders, CPU facts
    "runtime": 3,
    # stages, bottom up
    "converters": 4,
    "fidelity": 4.5,  # the deployment gate judges every precision: below quantize and validate
    "quantize": 5,
    "validate": 6,
    "finetune": 6,  # above converters: produces a Hugging Face directory that export takes
    "serve": 6, "package": 6,  # deployment: torch-free, see SERVING_MAY_IMPORT
    # the export pipeline orchestrates the stages; bench builds its baselines through it; the facades on top
    "pipeline": 7,
    "bench": 7.5,
    "cli": 9, "__init__": 9, "__main__": 10,
}
#: serving and packaging use only the torch-free runtime, the layout and the manifest (and the leaves under them)
SERVING_MAY_IMPORT = {"errors", "_version", "layout", "_util", "runtime", "manifest", "config"}
SERVING = ("serve", "package")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _part(module: str) -> str:
    bits = module.split(".")
    return "__init__" if len(bits) == 1 else bits[1]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """bortconv modules that `module` imports anywhere in its source (module level or inside functions)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    out = set()
    for name in found:
        while name and name not in MODULES:  # `import bortconv.x.y` names a module; `from m import f` resolves to m
            name = name.rpartition(".")[0]
        if name.startswith("bortconv") and name != module:
            out.add(name)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_part_has_a_layer():
    assert sorted({_part(m) for m in MODULES} - set(LAYERS)) == []


def test_no_import_cycle_between_modules():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_parts():
    parts: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        parts.setdefault(_part(m), set()).update(_part(d) for d in deps if _part(d) != _part(m))
    assert _cycles(parts) == []


def test_imports_go_downward_only():
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
                    if _part(d) != _part(m) and LAYERS[_part(d)] >= LAYERS[_part(m)])
    assert upward == []


@pytest.mark.parametrize("part", SERVING)
def test_serving_uses_only_runtime_layout_manifest(part):
    reached = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _part(m) == part for d in deps
                     if _part(d) != part and _part(d) not in SERVING_MAY_IMPORT)
    assert reached == []


def test_no_function_over_the_limit():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {n} lines")
    assert long == []


def test_the_checker_sees_lazy_imports_and_cycles():
    """The analysis itself: a lazy import inside a function is an edge, and a two-module loop is a cycle."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert "bortconv.errors" in GRAPH["bortconv.cli"] or any(
        "bortconv.errors" in GRAPH[d] for d in GRAPH["bortconv.cli"])


# --- options defined once: the CLI's flags and the API's keywords come from the same fields -------------------

def _flags(command: str) -> dict[str, argparse.Action]:
    from bortconv.cli import build_parser
    sub = build_parser().commands[command]
    return {opt: a for a in sub._actions for opt in a.option_strings}


#: flags a command defines itself, beside its generated ones: what is not an options field (positionals' company,
#: output, --json) and the search space's flags, which together build one field (FinetuneOptions.space)
OWN_FLAGS = {"-h", "--help", "-o", "--output", "--json", "--force", "--max-memory", "--precision"}
FINETUNE_OWN = {"--train", "--dev", "--space", "--lr", "--weight-decay", "--warmup-ratio", "--batch-size", "--seeds"}


@pytest.mark.parametrize("command,module,fields_of", [("export", "bortconv.cli", "EXPORT_FIELDS"),
                                                      ("quantize", "bortconv.cli", "QUANTIZE_FIELDS"),
                                                      ("trim", "bortconv.cli", "TRIM_FIELDS"),
                                                      ("finetune", "bortconv.finetune.cli", "FINETUNE_FIELDS")])
def test_cli_flags_are_the_options_fields(command, module, fields_of):
    """Every CLI option of a command is an options field: same dest (= API keyword), help, choices, and no
    argparse default (the dataclass's is the one default); aliases (--fp16, --int8) store into their field."""
    import importlib

    from bortconv.config import option_flag, option_keyword
    flags = _flags(command)
    fields_ = getattr(importlib.import_module(module), fields_of)
    assert fields_, fields_of
    aliases = set()
    for f in fields_:
        action = flags[option_flag(f)]
        assert action.dest == option_keyword(f) and action.help == f.metadata["help"], f.name
        assert tuple(action.choices or ()) == tuple(f.metadata["choices"] or ()), f.name
        assert action.default is argparse.SUPPRESS, f"{f.name}: the dataclass default is the one default"
        for alias, value in f.metadata["aliases"]:
            assert flags[alias].dest == action.dest and flags[alias].const == value and value in action.choices
            aliases.add(alias)
    generated = {option_flag(f) for f in fields_} | aliases
    own = OWN_FLAGS | (FINETUNE_OWN if command == "finetune" else set())
    assert set(flags) - generated <= own, set(flags) - generated - own


#: flags that more than one command has, worded per command: the one meaning each keeps everywhere. A flag that
#: appears on a second command with other help text must be added here, or renamed (bench's baseline cache was
#: --cache-dir, which serve and BortRuntime(cache_dir=) use for OpenVINO's compiled-model cache)
SHARED_MEANINGS = {
    "--batch-size": "batch sizes, a comma-separated list",
    "--budget-minutes": "a time budget in minutes (bench: per shape; finetune: the whole run)",
    "--force": "replace what the output path holds",
    "--json": "machine-readable output on stdout",
    "--max-length": "tokens per text, special tokens included",
    "--merges": "GPT-2 BPE merges file",
    "--name": "the model's name, by default the artifact directory's",
    "-o": "the output directory", "--output": "the output directory",
    "--precision": "the precision the artifact is made in",
    "--seed": "the random seed",
    "--vocab": "gluonnlp vocabulary JSON",
}


def test_a_flag_means_one_thing_on_every_command():
    """A flag on several commands stores into one keyword, and is either worded the same on each or listed in
    SHARED_MEANINGS with the one meaning it keeps (the brief's "one meaning per flag name across commands")."""
    from bortconv.cli import build_parser
    commands = build_parser().commands
    helps: dict[str, dict[str, str]] = {}
    dests: dict[str, set[str]] = {}
    for name in commands:
        for flag, action in _flags(name).items():
            if action.help != argparse.SUPPRESS and flag not in ("-h", "--help"):
                helps.setdefault(flag, {})[name] = action.help or ""
                dests.setdefault(flag, set()).add(action.dest)
    assert not {(c, f) for f, by in helps.items() for c, h in by.items() if not h.strip()}  # every flag has help
    reworded = {flag for flag, by in helps.items() if len(set(by.values())) > 1}
    assert reworded <= set(SHARED_MEANINGS), {f: helps[f] for f in reworded - set(SHARED_MEANINGS)}
    assert set(SHARED_MEANINGS) <= reworded, set(SHARED_MEANINGS) - reworded  # no entry outlives its reason
    assert {f: d for f, d in dests.items() if len(d) > 1} == {}


@pytest.mark.parametrize("argv,dest,value,instead", [
    (["bench", "A", "--cache-dir", "c"], "baseline_cache", "c", "--baseline-cache"),
    (["bench", "A", "--budget", "30"], "budget_minutes", 0.5, "--budget-minutes"),
    (["bench", "A", "--batch", "1,4"], "batch_size", "1,4", "--batch-size"),
    (["serve", "A", "--max-batch", "8"], "max_batch_size", 8, "--max-batch-size"),
])
def test_a_deprecated_spelling_warns_and_sets_the_new_option(argv, dest, value, instead, capsys):
    """An old spelling still works for one release: it stores into the new option and names it on stderr."""
    from bortconv.cli import build_parser
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert f"{argv[2]} is deprecated; use {instead}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "bench"])
def test_json_before_a_directory_is_the_flag_and_the_artifact(command, tmp_path, capsys):
    """`--json DIR`: a directory is no report file, so it is the first artifact and --json prints on stdout (argparse
    had taken DIR as the deprecated `--json FILE` and then said ARTIFACT_DIR was missing); a FILE is still the old
    spelling of --report."""
    from bortconv.cli import _old_json_file, build_parser
    for argv, artifacts, json_, report in ([[command, "--json", str(tmp_path)], [str(tmp_path)], True, None],
                                           [[command, "--json", str(tmp_path), "B"], [str(tmp_path), "B"], True, None],
                                           [[command, "--json", "r.json", "A"], ["A"], False, "r.json"]):
        args = build_parser().parse_args(argv)
        _old_json_file(args)
        assert (args.artifacts, args.json, args.report) == (artifacts, json_, report)
    assert capsys.readouterr().err.count("--json FILE is deprecated") == 1


@pytest.mark.parametrize("cls,base", [("bortconv.finetune.options:FinetuneOptions", {"method": "plain"}),
                                      ("bortconv.config:TrimOptions", {"corpus": "c.txt"})])
def test_api_refuses_what_the_flags_do_not_offer(cls, base):
    """Every field with `choices` refuses another value through the API too (config.check_choices), naming the
    parameter: the flags' closed sets are the API's."""
    import dataclasses
    import importlib

    from bortconv.config import option_keyword
    from bortconv.errors import InputError
    module, name = cls.split(":")
    options = getattr(importlib.import_module(module), name)
    closed = [f for f in dataclasses.fields(options) if f.metadata.get("choices")]
    assert closed, name
    for f in closed:
        with pytest.raises(InputError, match=f"^{option_keyword(f)}: 'nope' is not one of") as err:
            options(**{**base, option_keyword(f): "nope"})
        assert err.value.option == option_keyword(f)


def test_finetune_flags_give_the_options_the_api_builds():
    """A finetune command line gives the FinetuneOptions its keywords give (the CLI adds nothing of its own)."""
    from bortconv.cli import build_parser
    from bortconv.finetune.cli import options_from_args
    from bortconv.finetune.options import FinetuneOptions
    args = build_parser().parse_args(["finetune", "SRC", "--train", "T", "--dev", "D", "-o", "O", "--method", "plain",
                                      "--epochs", "3", "--quiet", "--threads", "1", "--lr", "1e-4,3e-5"])
    got = options_from_args(args)
    base = FinetuneOptions(method="plain")
    from dataclasses import replace
    assert got == replace(base, epochs=3, progress=False, threads=1, space=replace(base.space, lr=(1e-4, 3e-5)))
    assert options_from_args(build_parser().parse_args(["finetune", "S", "--train", "T", "--dev", "D", "-o", "O",
                                                        "--method", "plain"])) == base


def test_export_keywords_are_the_cli_dests():
    """The keyword facade takes exactly what the CLI passes: a flag cannot exist without its keyword."""
    import inspect

    from bortconv.cli import EXPORT_FIELDS
    from bortconv.config import ExportOptions, option_keyword
    from bortconv.pipeline.export import export_options
    dests = {option_keyword(f) for f in EXPORT_FIELDS}
    opts = export_options(**{"target": "onnx", **{k: None for k in ("calibration", "samples", "int8_scheme")}})
    assert isinstance(opts, ExportOptions)
    with pytest.raises(Exception, match="unknown option"):
        export_options(target="onnx", no_such_option=1)
    from bortconv.config import Int8Options
    int8_keywords = {option_keyword(f) for f in Int8Options.__dataclass_fields__.values()}
    assert dests <= set(ExportOptions.__dataclass_fields__) | int8_keywords, dests
    assert "fp16" not in ExportOptions.__dataclass_fields__ and "bf16" not in ExportOptions.__dataclass_fields__
    assert inspect.signature(export_options).parameters.keys() == {"keywords"}


def test_one_threads_help_everywhere():
    from bortconv.cli import COMMANDS
    from bortconv.config import THREADS_HELP
    helps = {c: _flags(c)["--threads"].help for c in COMMANDS if "--threads" in _flags(c)}
    assert len(helps) >= 5 and set(helps.values()) == {THREADS_HELP}, helps


def test_every_command_has_json_on_stdout():
    """`--json` is a switch (JSON on stdout) on every command; files are --report/--junit."""
    from bortconv.cli import COMMANDS
    for command in COMMANDS:
        action = _flags(command).get("--json")
        assert action is not None, f"bortconv {command} has no --json"
        assert action.nargs in (0, "?") and action.const is True, (command, action)


def test_flat_facade():
    """bortconv.<verb> is callable for every stage, whatever was imported first; unknown keywords are refused."""
    import importlib

    import bortconv
    from bortconv.errors import InputError
    for name in bortconv.__all__:
        assert getattr(bortconv, name) is not None, name
    for verb in ("convert", "export", "quantize", "validate", "bench", "finetune", "package", "serve", "BortRuntime",
                 "load_pytorch"):
        importlib.import_module("bortconv.quantize.calibration")  # a submodule import must not hide the verb
        assert callable(getattr(bortconv, verb)), verb
    with pytest.raises(InputError, match="unknown option no_such"):
        bortconv.quantize("a", "b", no_such=1)
    with pytest.raises(InputError, match="unknown option no_such"):
        bortconv.export("a", "b", target="onnx", no_such=1)


def test_top_level_stays_small():
    """At most 12 top-level modules: everything else lives in the room of its stage (or _util, the leaves)."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def _imported_names(path: Path) -> set[str]:
    """Module names `path` imports, anywhere in the file (lazy imports included): the first part of each, and for
    ``tests.x`` / ``reference.x`` the part after it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            dotted = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in dotted:
            parts = name.split(".")
            names.add(parts[0])
            if parts[0] in ("tests", "reference") and len(parts) > 1:
                names.add(parts[1])
    return names


def test_benchmarks_never_load_the_suites_conftest():
    """A benchmark measures what users run. tests/conftest.py sets the suite's environment for every process that
    imports it (the quick gate sweep, OMP's passive wait, CI): a benchmark reaching it through a test helper would
    publish quick-sweep figures (bench_trim once did, through test_tokenizer). Test helpers it uses (tests/ and
    tests/reference/) import no conftest, directly or through another test module."""
    tests = Path(__file__).resolve().parent
    homes = (tests, tests / "reference")
    scripts = sorted((tests.parent / "benchmarks").glob("*.py"))
    assert scripts, "no benchmarks found"
    for script in scripts:
        seen, todo = set(), list(_imported_names(script))
        while todo:
            name = todo.pop()
            found = [d / f"{name}.py" for d in homes if (d / f"{name}.py").is_file()]
            if name in seen or not found:
                continue
            seen.add(name)
            assert name != "conftest", f"{script.name} imports tests/conftest.py (through {sorted(seen)})"
            for f in found:
                todo += _imported_names(f)
