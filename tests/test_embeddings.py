"""`--embeddings int8|int4`: the word-embedding table stored and gathered compressed (issue 19), on real trained
weights (all-MiniLM-L6-v2), judged against transformers' own fp32 AutoModel -- not bortconv's runner -- on
tests/data/heldout_en.txt (neither calibration text nor the text the export/quantize gate ran on), loaded by
bortconv's runtime and by the stock loaders (tests/test_precision.py's `_runner`).

The table: target x embeddings, int4 under --precision int8 (the issue's size target), and under fp32 int8 (ONNX)
and int4 (OpenVINO, whose stock load is bf16 on bf16 CPUs: table and bf16 error together, at int8's gate). The
int8 + int4 artifacts are the session's shared MiniLM int8 ones (tests/conftest.py: `quantize` with the scheme
forced and MINILM_INT8_EMBEDDINGS' int4 table); the choice among schemes is tested elsewhere.
`--embeddings auto` (the int8 default) has one test of its own, test_auto_choice, on the suite's small Bort.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import MINILM, MINILM_INT8_EMBEDDINGS, run_bortconv
from test_precision import _cos, _pad, _pooled, _runner, _texts

from bortconv.config import Int8Options

#: (target, precision, embeddings): int4 with int8 (quantize), int8 and int4 with fp32 (export)
ROWS = [("onnx", "int8", "int4"), ("openvino", "int8", "int4"), ("onnx", "fp32", "int8"),
        ("openvino", "fp32", "int4")]
MEAN_MIN, WORST_MIN = 0.995, 0.98  # the targets (= the int8 gate's)
SIZE_MB = 18.0  # the target for --precision int8 --embeddings int4 with every encoder layer in int8
LENGTHS = (8, 31, 32, 64, 128, 255, 256, 384, 511, 512)
LOADERS = ("bortconv", "stock")


@pytest.fixture(scope="module")
def batches() -> list[tuple[str, dict[str, np.ndarray]]]:
    """120 held-out sentences (batch 1), passages of the rest cut to LENGTHS, and one padded batch of 4."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    texts = _texts()
    sentences = [e.ids for e in tok.encode_batch(texts[:120])]
    passage = tok.encode(" ".join(t.rstrip(".") + "." for t in texts[200:])).ids
    rows = {n: [passage[0]] + passage[1 + 41 * k:1 + 41 * k + n - 2] + [passage[-1]] for k, n in enumerate(LENGTHS)}
    assert all(len(r) == n for n, r in rows.items())
    out = [(f"sentence {i}", _pad([r])) for i, r in enumerate(sentences)]
    out += [(f"length {n}", _pad([r])) for n, r in rows.items()]
    out.append(("padded b4", _pad([rows[512], rows[255], rows[8], sentences[0]])))
    return out


@pytest.fixture(scope="module")
def transformers_pooled(batches) -> dict[str, np.ndarray]:
    import torch
    import transformers
    model = transformers.AutoModel.from_pretrained(str(MINILM)).eval()
    with torch.inference_mode():
        return {name: _pooled(model(**{k: torch.from_numpy(v) for k, v in f.items()}).last_hidden_state.numpy(),
                              f["attention_mask"]) for name, f in batches}


@pytest.fixture(scope="module")
def compressed(minilm, artifact):
    """(target, precision, embeddings) -> artifact: int8 is the session's shared MiniLM int8 artifact (`quantize`
    of its fp32 one, 100 calibration sentences, this CPU's preferred scheme), fp32 the session's export."""
    def get(target: str, precision: str, embeddings: str) -> Path:
        if precision == "int8":
            assert embeddings == MINILM_INT8_EMBEDDINGS, (target, precision, embeddings)
            return minilm(f"{'ov' if target == 'openvino' else 'onnx'}-int8")
        return artifact(str(MINILM), target, embeddings=embeddings)

    return get


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _record(m: dict) -> dict:
    return m.get("embeddings") or m["int8"]["embeddings"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("target,precision,embeddings", ROWS, ids=["-".join(r) for r in ROWS])
def test_fidelity_against_transformers(compressed, batches, transformers_pooled, target, precision, embeddings,
                                       loader):
    art = compressed(target, precision, embeddings)
    run = _runner(art, loader)
    cos = {name: _cos(_pooled(run(f), f["attention_mask"]), transformers_pooled[name]) for name, f in batches}
    flat = np.concatenate([np.atleast_1d(v) for v in cos.values()])
    worst = min(cos, key=lambda k: float(np.min(cos[k])))
    print(f"{target} {precision} embeddings {embeddings} ({loader}): mean {flat.mean():.5f}, worst "
          f"{flat.min():.5f} at {worst}")
    assert flat.mean() >= MEAN_MIN and flat.min() >= WORST_MIN, (flat.mean(), flat.min(), worst)


def test_a_fresh_compressed_artifact_validates(compressed):
    """`validate` right after export, on the machine that exported it: an fp32 artifact with a compressed word table
    is judged as export judged it, by the gate at the table's thresholds against the fp32 PyTorch source (it
    failed 1e-4 parity: max diff 0.17, 9 of 25 checks)."""
    import bortconv

    art = compressed("onnx", "fp32", "int8")
    report = bortconv.validate(art, threads=2)
    assert report.passed, [c.to_dict() for c in report.failures]
    worst = [c for c in report.checks if c.name == "worst sentence cosine"]
    table = _record(_manifest(art))["gate"]["thresholds"]["sentence_cosine_worst"]
    assert {c.group for c in worst} == {"fidelity/bortconv", "fidelity/stock"}
    assert all(c.tolerance == pytest.approx(1 - table) for c in worst)
    assert not [c for c in report.checks if c.group.startswith("parity/")]


def test_quantize_refuses_a_compressed_table_and_a_changed_artifact(compressed, artifact, tmp_path):
    """quantize builds on an fp32 artifact's float table: one stored int4 was kept while the manifest said fp32
    (exit 0); and a file changed after export was carried into the int8 artifact with fresh hashes. Both are now
    refused as bad input (exit 2)."""
    import shutil

    art = compressed("openvino", "fp32", "int4")
    proc = run_bortconv("quantize", str(art), "-o", str(tmp_path / "q1"), "--embeddings", "fp32")
    assert (proc.returncode, proc.stderr) == (2, f"bortconv: error: {art}: its word table is stored int4; quantize "
                                                 "takes an artifact with the fp32 table (export --embeddings fp32), "
                                                 "or export --precision int8 --embeddings int4 from the source\n")
    changed = tmp_path / "changed"
    shutil.copytree(artifact(str(MINILM), "onnx"), changed)  # the session's fp32 artifact, fp32 table
    (changed / "tokenizer.json").write_text((changed / "tokenizer.json").read_text() + " ")
    proc = run_bortconv("quantize", str(changed), "-o", str(tmp_path / "q2"))
    assert proc.returncode == 2 and f"{changed / 'tokenizer.json'}: sha256 " in proc.stderr, proc.stderr
    (changed / "tokenizer.json").write_bytes((artifact(str(MINILM), "onnx") / "tokenizer.json").read_bytes())
    (changed / "notes.txt").write_text("added after export")  # would be copied into the int8 artifact, re-hashed
    proc = run_bortconv("quantize", str(changed), "-o", str(tmp_path / "q3"))
    assert proc.returncode == 2 and f"{changed / 'notes.txt'}: not listed in its manifest; the artifact changed" \
        in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changed"]


def _layer_weights(config: dict) -> int:
    h, i = int(config["hidden_size"]), int(config["intermediate_size"])
    return 4 * h * h + 2 * h * i


@pytest.mark.parametrize("target,precision,embeddings", ROWS, ids=["-".join(r) for r in ROWS])
def test_stored_compressed_and_recorded(compressed, target, precision, embeddings):
    """The table is stored at 4 or 8 bits in the model file, the manifest records scheme, group and bytes saved,
    and int4 + int8 meets the issue's size: 18 MB with every layer int8, plus 3 bytes per weight of each layer
    the int8 gate kept in fp32 on this CPU (what fp32 costs over int8)."""
    art = compressed(target, precision, embeddings)
    m, config = _manifest(art), json.loads((art / "config.json").read_text())
    rec = _record(m)
    vocab, hidden = int(config["vocab_size"]), int(config["hidden_size"])
    bits = 4 if embeddings == "int4" else 8
    assert rec["scheme"] == embeddings and rec["table_shape"] == [vocab, hidden], rec
    assert rec["table_bytes_fp32"] == 4 * vocab * hidden
    saved_min = (1 - bits / 32 - 0.07) * 4 * vocab * hidden  # values at `bits`; scales/zero points under 7%
    assert rec["bytes_saved"] == rec["table_bytes_fp32"] - rec["table_bytes"] > saved_min
    assert rec["gate"]["results"]["bortconv"]["passed"] if "gate" in rec else m["int8"]["gate"]["passed"]
    if "gate" in rec:  # the export summary shows the table's own verdict per loader
        from bortconv.pipeline.summary import table_gate_lines
        text = "\n".join(table_gate_lines(m))
        for loader, v in rec["gate"]["results"].items():
            mean = v["metrics"]["sentence_cosine_mean"]
            assert f"{loader:<9} load ({v['inference_precision']}): sentence cosine mean {mean:.5f}" in text, text
    if target == "onnx":
        import onnx
        model = onnx.load(str(art / "model.onnx"))
        table = next(i for i in model.graph.initializer if list(i.dims) == [vocab, hidden])
        assert table.data_type == (onnx.TensorProto.UINT4 if bits == 4 else onnx.TensorProto.UINT8)
        assert [n.op_type for n in model.graph.node].count("GatherBlockQuantized") == 2  # words, positions
        assert "EmbedLayerNormalization" not in {n.op_type for n in model.graph.node}
        from bortconv.converters.onnx_export import FUSED_OPS
        ops = [n.op_type for n in model.graph.node]
        fused = {op: ops.count(op) for op in FUSED_OPS if op in ops}
        assert fused == m["fused_ops"] and "EmbedLayerNormalization" not in fused  # the rewritten graph's counts
        files = (art / "model.onnx").stat().st_size
    else:
        import openvino as ov
        model = ov.Core().read_model(str(art / "openvino_model.xml"))
        kinds = {op.get_element_type().get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"
                 and int(np.prod(list(op.get_output_shape(0)))) == vocab * hidden}
        assert kinds == ({"u4"} if bits == 4 else {"i8"}), kinds
        files = (art / "openvino_model.bin").stat().st_size + (art / "openvino_model.xml").stat().st_size
    if precision == "int8" and embeddings == "int4":
        kept = [g for g in m["int8"]["kept_fp32"]["groups"] if g.startswith("layer.")]
        bound = SIZE_MB * 1e6 + 3 * _layer_weights(config) * len(kept)
        print(f"{target} int8 + int4 embeddings: {files / 1e6:.1f} MB, fp32 layers kept by the gate: {kept}")
        assert files <= bound, (files, kept)


@pytest.mark.parametrize("args,message", [
    (["--target", "onnx", "--portable", "--embeddings", "int4"], "--embeddings int4: the portable graph"),
    (["--target", "onnx", "--embedding-group-size", "32"], "--embedding-group-size needs embeddings int8 or int4"),
    # refused before the export starts (one line: no progress line before it), not at its compression step
    (["--target", "onnx", "--embeddings", "int4", "--embedding-group-size", "7"],
     "--embedding-group-size: 7 must be a power of two >= 16"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    r = run_bortconv("export", str(MINILM), "-o", str(tmp_path / "out"), *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["quantize", "export"])
def test_bad_group_size_exit_2(minilm, tmp_path, command):
    """A power of two that does not divide MiniLM's 384 values per row: known once the model is read (export
    refused it only after building and checking the fp32 artifact)."""
    src = str(minilm("onnx-fp32")) if command == "quantize" else str(MINILM)
    r = run_bortconv(command, src, "-o", str(tmp_path / "q"), "--embeddings", "int4", "--embedding-group-size", "256",
                     "--threads", "2", *(["--target", "onnx", "--no-bench"] if command == "export" else []))
    errors = [ln for ln in r.stderr.splitlines() if not ln.startswith("[1/")]  # export's progress: step 1 only
    assert r.returncode == 2 and len(errors) == 1 and "[2/" not in r.stderr, r.stderr
    assert "--embedding-group-size: 256 must be a power of two >= 16 dividing the hidden size 384" in errors[0]
    assert not (tmp_path / "q").exists()


def test_fill_mask_refused_exit_2(reference, tmp_path):
    """The MLM decoder shares the word table: refused right after the model loads, nothing written."""
    r = run_bortconv("export", str(reference["bort4_mlm_fp32"].params), "-o", str(tmp_path / "e"), "--target",
                     "onnx", "--task", "fill-mask", "--embeddings", "int4", "--no-bench", "--quiet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "fill-mask decoder shares" in r.stderr, r.stderr
    assert not (tmp_path / "e").exists()


def test_auto_choice(artifact, tmp_path):
    """`--embeddings auto` with int8 (the default): on the encoder the int8 search chose, the tables are tried
    smallest file first (int4 group 128, int4 group 32, int8 at its default group; int4 then int8 at a group
    --embedding-group-size pins), at most three gate runs; the first that passes is kept (else the int8
    scheme's own table), and the manifest names the rule and every try's figures. On the suite's small Bort
    (2 layers, random weights, the shared fp32 artifact; ONNX, dynamic-s8 forced, group pinned to 64: two gate
    runs at most): the mechanism, not MiniLM's accuracy (on MiniLM's OpenVINO int8 encoder from 100 calibration sentences, auto measured int4 at groups
    128 and 32 just under the gate and kept int8)."""
    from bortconv.config import ExportOptions
    from bortconv.quantize.embeddings import AUTO_RULE, auto_ladder, stored_bytes
    from bortconv.quantize.pipeline import quantize_directory

    assert Int8Options().embeddings == "auto"  # the default of int8 (export --precision int8, quantize) ...
    assert ExportOptions(target="onnx").embeddings == "fp32"  # ... and fp32 for the other precisions
    assert ExportOptions(target="onnx", precision="int8").embeddings == "auto"
    assert ExportOptions(target="onnx", precision="int8", portable=True).quantized.embeddings == "fp32"
    assert auto_ladder(384, None) == [("int4", 128), ("int4", 32), ("int8", 128)]
    assert auto_ladder(1024, 64) == [("int4", 64), ("int8", 64)]  # --embedding-group-size pins the group

    out = tmp_path / "auto"
    quantize_directory(artifact("bort2_enc_fp16", "onnx"), out,
                       opts=Int8Options(threads=2, samples=48, scheme="dynamic-s8", embedding_group_size=64))
    m, config = _manifest(out), json.loads((out / "config.json").read_text())
    vocab, hidden = int(config["vocab_size"]), int(config["hidden_size"])
    rec = m["int8"]["embeddings"]
    choice = rec["choice"]
    assert choice["rule"] == AUTO_RULE
    ladder = auto_ladder(hidden, 64)
    assert choice["order"] == [f"{sc} group {g}" for sc, g in ladder] + ["int8 scheme's own"]
    tried = choice["tried"]
    passed = [t["passed"] for t in tried]
    assert 1 <= len(tried) <= 2 and [f"{t['scheme']} group {t['group_size']}" for t in tried] == choice["order"][:len(tried)]
    assert not any(passed[:-1]), tried  # tried until the first that passes, and no further
    sizes = [stored_bytes(t["scheme"], t["group_size"], vocab * hidden) for t in tried]
    assert sizes == sorted(sizes) and [t["table_bytes"] for t in tried] == sizes
    if passed[-1]:  # kept: its record, and the gate of the files shipped is the one that passed it
        assert (rec["scheme"], rec["group_size"], rec["table_bytes"]) == (tried[-1]["scheme"],
                                                                          tried[-1]["group_size"], sizes[-1])
        assert m["int8"]["gate"]["results"] == tried[-1]["gate"] and m["int8"]["gate"]["passed"]
        import onnx
        ops = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node]
        assert ops.count("GatherBlockQuantized") == 2 and "EmbedLayerNormalization" not in ops
    else:  # none passed: the encoder as the int8 search chose it
        assert len(tried) == len(ladder) and rec["scheme"] == "fp32"
    print(f"auto: {[(t['scheme'], t['group_size'], t['passed']) for t in tried]}")
