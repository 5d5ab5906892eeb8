"""Reproducible exports: the same source exported twice gives byte-identical model, weights, tokenizer and
config files (same sha256), for every target, graph and precision, in one process and across processes.

manifest.json is not compared: it records timings and absolute paths by design.

Causes found and fixed: OpenVINO names the nodes it creates from a process-wide counter (`Constant_18280`,
`Model4`), so the second conversion of the same graph wrote different XML; and the OpenVINO route was chosen
by timing two equally fast routes, so the IR's origin changed from run to run (now `--openvino-from auto`
keeps the PyTorch route only when it is clearly faster; near-ties go to ONNX).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bortconv
from bortconv._util.hashing import sha256_file
from bortconv.config import BortVariant, Head

MANIFEST = "manifest.json"
TOKENIZER = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
# A Bort-vocabulary model small enough to export in seconds: the tokenizer needs the full 50265 rows.
TINY_50K = BortVariant(num_layers=1, num_heads=2, intermediate_size=32, hidden_size=16, vocab_size=50265,
                       max_position_embeddings=512)

# (id, export options, model files the artifact must hold)
ROWS = [
    ("onnx-fused-fp32", dict(target="onnx"), {"model.onnx"}),
    ("onnx-portable-fp32", dict(target="onnx", portable=True), {"model.onnx"}),
    ("onnx-fused-fp16", dict(target="onnx", fp16=True), {"model.onnx"}),
    # (portable fp16 is left out: the fp16 pass is the fused row's, and the portable graph is the fp32 row's)
    ("openvino-fp32", dict(target="openvino"), {"openvino_model.xml", "openvino_model.bin"}),
    ("openvino-fp16", dict(target="openvino", fp16=True, openvino_from="onnx"), {"openvino_model.xml", "openvino_model.bin"}),
    # int8 with the scheme the manifest recorded passed back (--int8-scheme): built, calibrated (text in file order,
    # fixed seeds) and gated as users get it. Bytes are reproducible given the scheme; the scheme itself is chosen
    # by timing, and on this 1-layer, hidden-16 model (1-5 ms) under the other worker's load noise was once
    # confirmed twice as a difference (nncf-ptq kept in one export, nncf-weights-only in the next), so the timed
    # choice is tested where it is a real difference (test_int8), not here. The word table stays fp32:
    # `--embeddings auto` is decided by the gate alone (no timing), and test_embeddings tests it
    ("onnx-int8", dict(target="onnx", int8=True, samples=48, embeddings="fp32", int8_scheme="dynamic-s8"),
     {"model.onnx"}),
    ("openvino-int8", dict(target="openvino", int8=True, samples=48, embeddings="fp32", openvino_from="onnx",
                           int8_scheme="nncf-ptq"), {"openvino_model.xml", "openvino_model.bin"}),
]


def digests(artifact: Path) -> dict[str, str]:
    """sha256 of every file but the manifest, checked against what the manifest itself recorded."""
    manifest = json.loads((artifact / MANIFEST).read_text())
    got = {p.name: sha256_file(p) for p in artifact.iterdir() if p.name != MANIFEST}
    assert got == {k: v["sha256"] for k, v in manifest["files"].items()}
    return got


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(HF directory, gluonnlp vocab JSON, GPT-2 merges): a 1-layer Bort with Bort's vocabulary size."""
    from bort_vocab import write_bort_vocab

    from bortconv.converters.demo import demo_arrays
    from bortconv.converters.params_writer import write_params
    d = tmp_path_factory.mktemp("tiny50k")
    write_params(d / "tiny.params", demo_arrays(TINY_50K, seed=11, dtype="float32", head=Head.ENCODER))
    bortconv.convert(d / "tiny.params", d / "hf", heads=TINY_50K.num_heads)
    vocab, merges = write_bort_vocab(d / "vocab.json")
    return d / "hf", vocab, merges


@pytest.fixture(scope="module")
def exported(tiny_source, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Every row exported twice in this process."""
    hf, vocab, merges = tiny_source
    root = tmp_path_factory.mktemp("twice")
    out = {}
    for rid, options, _ in ROWS:
        pair = []
        for run in ("a", "b"):
            d = root / f"{rid}-{run}"
            bortconv.export(hf, d, threads=2, bench=False, progress=False, vocab=str(vocab), merges=str(merges),
                            **options)
            pair.append(d)
        out[rid] = tuple(pair)
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_export_twice_is_byte_identical(exported, row):
    rid, options, model_files = row
    first, second = (digests(d) for d in exported[rid])
    tokenizer_ir = {"openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_tokenizer_pair.xml",
                    "openvino_tokenizer_pair.bin"} if options["target"] == "openvino" else set()
    assert set(first) == model_files | TOKENIZER | tokenizer_ir | {"config.json", "bortconv_conversion.json",
                                                                   "proof.npz"}
    assert first == second, {k for k in first if first[k] != second.get(k)}


def test_openvino_route_is_measured_and_recorded(exported):
    """Both routes were converted and timed; the kept one and the rule are in the manifest, and a near-tie
    (anything short of a clear PyTorch win) went to ONNX."""
    from bortconv.measure import clearly_faster
    for d in exported["openvino-fp32"]:  # the other OpenVINO rows take one route (openvino_from="onnx")
        manifest = json.loads((d / MANIFEST).read_text())
        ms = manifest["openvino_candidates"]
        assert set(ms) == {"onnx", "pytorch"} and manifest["openvino_from"] == "auto"
        rounds = manifest["openvino_candidates_rounds_ms"]
        clear = clearly_faster(ms["pytorch"], ms["onnx"], rounds["pytorch"], rounds["onnx"])
        choice = manifest["openvino_choice"]
        if clear:  # a departure from the preferred route stands only if a second run confirms it
            again = choice["second_run_ms"], choice["second_run_rounds_ms"]
            confirmed = clearly_faster(again[0]["pytorch"], again[0]["onnx"], again[1]["pytorch"], again[1]["onnx"])
            assert choice["confirmed"] == confirmed, choice
            clear = confirmed
        assert manifest["openvino_source"] == ("pytorch" if clear else "onnx") == choice["kept"], ms


def test_int8_choice_is_recorded(exported):
    for rid in ("onnx-int8", "openvino-int8"):
        a, b = (json.loads((d / MANIFEST).read_text())["int8"] for d in exported[rid])
        forced = next(r[1] for r in ROWS if r[0] == rid)["int8_scheme"]
        assert a["scheme"] == b["scheme"] == forced and a["kept_fp32"] == b["kept_fp32"] and a["chosen_because"]


def test_fp16_and_fp32_differ(exported):
    """The comparison is not vacuous: changing the precision does change the model bytes."""
    a, b = digests(exported["onnx-fused-fp32"][0]), digests(exported["onnx-fused-fp16"][0])
    assert a["model.onnx"] != b["model.onnx"] and a["tokenizer.json"] == b["tokenizer.json"]


@pytest.mark.parametrize("rid", ["openvino-fp32", "onnx-fused-fp32"])
def test_fresh_process_gives_the_same_bytes(exported, tiny_source, tmp_path, rid):
    """A `bortconv export` in a new process matches the in-process exports (node counters start elsewhere)."""
    hf, vocab, merges = tiny_source
    options = dict(next(r[1] for r in ROWS if r[0] == rid))
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "bortconv", "export", str(hf), "--target", options["target"],
                           "-o", str(out), "--vocab", str(vocab), "--merges", str(merges), "--no-bench", "--quiet",
                           "--threads", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert digests(out) == digests(exported[rid][0])


def test_bort_checkpoint_exports_identically(reference, artifact, tmp_path):
    """A Bort-shaped `.params` source (conversion inside the export) through OpenVINO, against the session's
    shared artifact of the same source and options (the export matrix's row, so only one new export here)."""
    again = tmp_path / "again"
    bortconv.export(reference["bort2_mlm_npx"].params, again, target="openvino", threads=2, bench=False,
                    progress=False, openvino_from="onnx")  # the shared artifact's route
    first = digests(artifact("bort2_mlm_npx", "openvino"))
    assert first == digests(again) and {"openvino_model.xml", "openvino_model.bin"} <= set(first)


@pytest.mark.parametrize("ms,kept", [
    ({"onnx": 10.0, "pytorch": 9.0}, "onnx"),  # 10% faster: noise, the preferred option stays
    ({"onnx": 10.0, "pytorch": 8.0}, "pytorch"),  # 20% and 2 ms: a real difference
    ({"onnx": 1.0, "pytorch": 0.6}, "onnx"),  # 40% but 0.4 ms: below what a shared machine resolves
    ({"a": 10.0, "b": 8.0, "c": 7.0}, "b"),  # c is 12.5% faster than b, the option it would replace
])
def test_measured_choices_keep_the_preferred_option_within_noise(ms, kept):
    """The one rule both measured choices (OpenVINO route, int8 scheme) use; what makes them reproducible."""
    from bortconv.measure import keep_preferred
    assert keep_preferred(ms) == kept


@pytest.mark.parametrize("rounds,kept", [
    ({"onnx": [10.0, 10.2, 9.9, 10.1], "pytorch": [7.9, 8.1, 8.0, 7.8]}, "pytorch"),  # faster in every round
    # the same medians, but one round of the preferred option was faster (a burst of load on the other):
    # the choice is not clear, and the preferred option stays
    ({"onnx": [10.0, 10.2, 7.5, 10.1], "pytorch": [7.9, 8.1, 8.0, 7.8]}, "onnx"),
])
def test_a_clear_win_holds_in_every_round(rounds, kept):
    """Under load one round can move a median past the 15% margin; the win must hold in each round."""
    import numpy as np

    from bortconv.measure import keep_preferred
    ms = {k: float(np.median(v)) for k, v in rounds.items()}
    assert keep_preferred(ms) == "pytorch"  # the medians alone would switch
    assert keep_preferred(ms, rounds) == kept


@pytest.mark.parametrize("second,kept", [
    ({"onnx": [10.0, 10.1, 9.9, 10.0], "pytorch": [7.0, 7.1, 6.9, 7.0]}, "pytorch"),  # confirmed
    ({"onnx": [10.0, 10.1, 9.9, 10.0], "pytorch": [9.8, 10.2, 9.7, 10.0]}, "onnx"),  # the first run was fooled
])
def test_a_departure_from_the_preferred_option_needs_a_second_run(second, kept):
    """Measured on a loaded 2-vCPU machine: the same tiny int8 schemes at 14.0 vs 16.0 ms in one export and
    6.8 vs 3.3 ms in the next. A choice other than the preferred one must hold in an independent second run."""
    import numpy as np

    from bortconv.measure import Latency, confirmed_choice

    def lat(rounds: list[float]) -> Latency:
        return Latency(float(np.median(rounds)), max(rounds), max(rounds), len(rounds), 0.0, tuple(rounds))

    first = {"onnx": lat([10.0, 10.2, 9.9, 10.1]), "pytorch": lat([6.0, 6.1, 6.2, 5.9])}
    asked = []

    def retime(keys):
        asked.append(keys)
        return {k: lat(second[k]) for k in keys}

    choice, record = confirmed_choice(first, retime)
    assert asked == [["onnx", "pytorch"]] and choice == kept == record["kept"]
    assert record["confirmed"] is (kept == "pytorch") and record["first_run_choice"] == "pytorch"
    same, _ = confirmed_choice({"onnx": lat([10.0] * 4), "pytorch": lat([9.5] * 4)}, retime)
    assert same == "onnx" and len(asked) == 1  # no departure, no second run
