"""Happy paths of the CLI and the Python API: what they print, return and write."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import run_bortconv

import bortconv
from bortconv._util.hashing import sha256_file
from bortconv.cli import COMMANDS, build_parser


def run(*args: str) -> subprocess.CompletedProcess:
    return run_bortconv(*args)


def test_inspect_json(reference):
    proc = run("inspect", str(reference["bort4_mlm_full_fp16"].params), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["variant"]["name"] == "bort_4_8_768_1024" and info["head"] == "mlm"
    assert info["dtype"] == "float16" and info["variant"]["vocab_size"] == 50265
    # word embedding 51.5M + encoder incl. positions 23.6M + MLM decoder 1.1M (bort-facts), + token-type row
    assert info["parameter_count"] == 50265 * 1024 + 512 * 1024 + 2 * 1024 + 4 * (
        4 * (1024 * 1024 + 1024) + 2 * 768 * 1024 + 768 + 1024 + 4 * 1024) + 1024 * 1024 + 3 * 1024 + 50265 + 1024
    tensors = {t["name"]: t for t in info["tensors"]}
    assert len(tensors) == 74
    assert tensors["decoder.3.weight"]["hf_key"] is None  # tied
    assert tensors["encoder.transformer_cells.3.proj.weight"]["hf_key"] == \
        "bert.encoder.layer.3.attention.output.dense.weight"
    assert tensors["encoder.transformer_cells.3.ffn.ffn_2.weight"]["hf_key"] == "bert.encoder.layer.3.output.dense.weight"


def test_inspect_text_legacy_classifier(reference):
    proc = run("inspect", str(reference["bort2_cls_legacy"].params))
    assert proc.returncode == 0, proc.stderr
    assert "bort_2_16_512_1024" in proc.stdout and "classifier (5 classes)" in proc.stdout
    # instance-numbered legacy names (bortclassifier<N>_dense1_weight: N depends on what the process built)
    import re
    assert re.search(r"bortclassifier\d+_dense1_weight +float32 +5x1024 +-> classifier.weight", proc.stdout)
    assert re.search(r"bertencoder\d+_transformer1_proj_weight .*-> bert.encoder.layer.1.attention.output.dense.weight",
                     proc.stdout)


def test_convert_json_and_record(reference, tmp_path):
    ckpt = reference["bort2_cls_fp16"].params
    proc = run("convert", str(ckpt), "-o", str(tmp_path / "o"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["head"] == "classifier" and summary["num_labels"] == 2 and summary["dtype"] == "fp32"
    record = json.loads((tmp_path / "o" / "bortconv_conversion.json").read_text())
    assert record["source_sha256"] == sha256_file(ckpt) == summary["source_sha256"]
    assert record["variant"]["name"] == "bort_2_16_512_1024" and record["source_dtype"] == "float16"
    assert summary["files"]["model.safetensors"] == (tmp_path / "o" / "model.safetensors").stat().st_size


def test_api_returns_value(reference, tmp_path):
    result = bortconv.convert(reference["custom_enc_fp32"].params, tmp_path / "o", heads=4)
    assert result.variant.name == "bort_3_4_256_128" and result.head.value == "encoder"
    assert result.parameter_count == 500 * 128 + 64 * 128 + 128 + 2 * 128 + 3 * (
        4 * 128 * 128 + 4 * 128 + 2 * 256 * 128 + 256 + 128 + 4 * 128)
    info = bortconv.inspect_checkpoint(reference["custom_enc_fp32"].params, variant="bort_3_4_256_128")
    assert info.variant == result.variant


def test_deduplicated_and_full_files_give_identical_weights(reference, tmp_path):
    """deduplicate=True drops word_embed.0.weight; the converted model must not notice. The full file is the
    same parameters re-saved by mxnet with both names of the tied matrix."""
    from safetensors.numpy import load_file

    from conftest import run_reference
    dedup = reference["bort4_mlm_dedup"].params
    full = tmp_path / "full.params"
    run_reference("resave_full.py", str(dedup), str(full))
    assert full.stat().st_size > dedup.stat().st_size + 4000 * 1024 * 4  # the second copy of the 4000x1024 table
    a, b = (load_file(bortconv.convert(src, tmp_path / name).output_dir + "/model.safetensors")
            for name, src in (("a", dedup), ("b", full)))
    assert set(a) == set(b) and "bert.embeddings.word_embeddings.weight" in a
    assert a["bert.embeddings.word_embeddings.weight"].any()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not any(k.startswith("cls.predictions.decoder") for k in a)


def test_every_command_has_tests():
    """Meta-test: every CLI command is exercised by some test file."""
    from pathlib import Path
    here = Path(__file__).parent
    text = "\n".join(p.read_text() for p in here.glob("test_*.py"))
    parser_cmds = set(build_parser()._subparsers._group_actions[0].choices)
    assert parser_cmds == set(COMMANDS)
    for cmd in COMMANDS:
        assert f'"{cmd}"' in text, f"no test runs `bortconv {cmd}`"


def test_lean_import():
    """`import bortconv` and building the CLI import no heavy library (bortconv --help is instant)."""
    code = ("import sys, bortconv, bortconv.cli; bortconv.cli.build_parser(); "
            "heavy = {'torch', 'transformers', 'onnx', 'onnxruntime', 'openvino', 'numpy', 'tokenizers'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert np  # numpy is a dependency, just not an import-time one


def test_make_demo_has_the_released_layout(reference, tmp_path):
    """`bortconv make-demo` (the README's default input) writes what mxnet writes for full-size Bort: the same
    names, shapes, dtypes and byte count as the mxnet-saved fp16 bort_4_8_768_1024 MLM checkpoint; seeded, so
    the same bytes every time; an existing file is kept unless --force, and refused if another seed made it."""
    from bortconv.converters.params_reader import read_params
    demo = tmp_path / "demo.params"
    proc = run_bortconv("make-demo", str(demo))
    assert proc.returncode == 0, proc.stderr
    mx = read_params(reference["bort4_mlm_full_fp16"].params)
    ours = read_params(demo)
    assert sorted((r.name, r.shape, r.dtype) for r in ours.records) == sorted((r.name, r.shape, r.dtype) for r in mx.records)
    assert demo.stat().st_size == reference["bort4_mlm_full_fp16"].params.stat().st_size == 255_365_668
    info = bortconv.inspect_checkpoint(demo)
    assert info.variant.name == "bort_4_8_768_1024" and info.head.value == "mlm"
    digest = sha256_file(demo)
    again = run_bortconv("make-demo", str(demo))
    assert again.returncode == 0 and "kept it" in again.stdout and sha256_file(demo) == digest
    other_seed = run_bortconv("make-demo", str(demo), "--seed", "1")  # not what is there: refused, file kept
    refusal = (f"bortconv: error: {demo}: exists and is not the demo checkpoint of --seed 1; pass --force to "
               "replace it, or another path\n")
    assert (other_seed.returncode, other_seed.stderr) == (2, refusal) and sha256_file(demo) == digest
    forced = run_bortconv("make-demo", str(demo), "--force")
    assert forced.returncode == 0 and sha256_file(demo) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.params"]
