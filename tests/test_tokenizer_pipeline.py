"""The tokenizer through the pipeline: convert --vocab/--merges writes it beside the model, export carries it,
the torch-free runtime encodes text with it; `bortconv tokenizer` alone; bad tokenizer input through the CLI."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from conftest import run_bortconv

import bortconv
from bortconv.runtime.bort import BortRuntime


def run(*args: str) -> subprocess.CompletedProcess:
    return run_bortconv(*args)  # in-process: exit code, stdout and stderr as a real run gives them


def test_convert_export_runtime_with_tokenizer(reference, bort_tokenizer_files, tmp_path):
    vocab, merges = bort_tokenizer_files
    hf = tmp_path / "hf"
    res = bortconv.convert(reference["bort4_mlm_full_fp16"].params, hf, vocab=vocab, merges=merges)
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(res.files)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(hf)
    assert tok("Hello world")["input_ids"][0] == 0 and tok("Hello world")["input_ids"][-1] == 2

    art = tmp_path / "onnx"
    bortconv.export(hf, art, target="onnx", threads=2, bench=False, progress=False)
    manifest = json.loads((art / "manifest.json").read_text())
    assert "tokenizer.json" in manifest["files"]
    rt = BortRuntime(art, threads=2)
    texts = ["The quick brown fox.", "Bort is a small BERT.", "a"]
    vecs = rt.encode(texts)
    assert vecs.shape == (3, 1024) and np.isfinite(vecs).all()
    # the runtime's ids are the tokenizer's ids, and batching by length does not change a row's result
    alone = rt.encode(texts[1:2])
    assert np.abs(alone[0] - vecs[1]).max() < 1e-4


def test_export_params_with_vocab_writes_tokenizer(artifact, bort_tokenizer_files):
    vocab, merges = bort_tokenizer_files
    # the session's export (test_export's full-size OpenVINO row checks the same artifact against MXNet)
    out = artifact("bort4_mlm_full_fp16", "openvino", vocab=str(vocab), merges=str(merges))
    assert (out / "tokenizer.json").is_file()
    assert BortRuntime(out).encode(["one sentence"]).shape == (1, 1024)


def test_tokenizer_command(bort_tokenizer_files, tmp_path):
    vocab, merges = bort_tokenizer_files
    proc = run("tokenizer", "--vocab", str(vocab), "--merges", str(merges), "-o", str(tmp_path / "t"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["files"]) == {"tokenizer.json", "tokenizer_config.json",
                                                     "special_tokens_map.json"}


def test_vocab_size_mismatch_is_refused(reference, bort_tokenizer_files, tmp_path):
    vocab, merges = bort_tokenizer_files
    out = tmp_path / "hf"
    proc = run("convert", str(reference["bort2_mlm_fp32"].params), "-o", str(out), "--vocab", str(vocab),
               "--merges", str(merges))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "50265" in line and "4000" in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_merges_file_is_refused(reference, bort_tokenizer_files, tmp_path):
    vocab, _ = bort_tokenizer_files
    bad = tmp_path / "merges.txt"
    bad.write_text("this is not\na merges file at all\n\x00\x01")
    out = tmp_path / "t"
    proc = run("tokenizer", "--vocab", str(vocab), "--merges", str(bad), "-o", str(out))
    assert proc.returncode == 2 and str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
