"""An artifact carries its own proof (``proof.npz``: the deployment gate's probes and the fp32 reference's outputs
on them), and `bortconv validate` re-runs the gate from it where neither torch nor the source is: here in a
subprocess whose import system refuses torch and transformers (what ``pip install 'bortconv[runtime]'`` gives).

Real MiniLM int8 artifacts (the `minilm` fixture): a fresh one passes with the numbers its export measured; a
changed weight byte fails integrity; a proof that disagrees with the model, or a model that disagrees with the
proof, under a re-hashed manifest, fails the gate itself; a missing or malformed proof is bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bortconv.layout import PROOF_FILE
from bortconv.manifest import file_hashes
from bortconv.fidelity.heldout import Probe
from bortconv.fidelity.metrics import deployed_fidelity
from bortconv.fidelity.proof import read_proof, write_proof

#: `python -c` prelude: torch and transformers cannot be imported; an import of them (not a look-up of whether
#: they are installed, importlib.util.find_spec) is reported on stderr at exit
NO_TORCH = """
import atexit, runpy, sys
tried = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            f = sys._getframe(1)
            while f is not None and f.f_code.co_name != "_find_and_load":
                f = f.f_back
            if f is not None:
                tried.append(name)
            raise ImportError(f"{name} is not installed here")
        return None
sys.meta_path.insert(0, Block())
atexit.register(lambda: tried and sys.stderr.write("BLOCKED IMPORTS: " + ",".join(sorted(set(tried))) + "\\n"))
sys.argv = ["bortconv"] + sys.argv[1:]
runpy.run_module("bortconv", run_name="__main__")
"""


def validate_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, "validate", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def rehash(d: Path) -> None:
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"] = file_hashes(d)
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))


def flip_weight_byte(d: Path) -> None:
    """One byte of the model file, in the middle of its weights."""
    path = d / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def proof_disagrees(d: Path) -> None:
    """The proof's reference sentence vectors of two rows swapped (a valid proof of other outputs), re-hashed."""
    with np.load(d / PROOF_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    s = arrays["sentence"]
    s[[0, 5]] = s[[5, 0]]
    with open(d / PROOF_FILE, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    rehash(d)


def reverse_int8_weights(d: Path) -> None:
    """The largest 8-bit initializer (an encoder weight matrix) reversed where it lies in model.onnx: the same
    values in other places, a valid model computing something else. Re-hashed."""
    import onnx
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    big = max((t for t in onnx.load(str(d / "model.onnx")).graph.initializer if t.data_type in eight_bit),
              key=lambda t: len(t.raw_data))
    assert len(big.raw_data) > 1 << 17
    data = (d / "model.onnx").read_bytes()
    at = data.find(big.raw_data)
    assert at > 0
    (d / "model.onnx").write_bytes(data[:at] + big.raw_data[::-1] + data[at + len(big.raw_data):])
    rehash(d)


def nan_weights(d: Path) -> None:
    """The last float initializer of 384 values or more (in the MiniLM int8 graph, the last attention's qkv weight
    scales) set to NaN where it lies in model.onnx: the model then computes NaN. Re-hashed."""
    import onnx
    floats = [t for t in onnx.load(str(d / "model.onnx")).graph.initializer
              if t.data_type == onnx.TensorProto.FLOAT and len(t.raw_data) >= 384 * 4]
    vec = floats[-1]
    data = (d / "model.onnx").read_bytes()
    at = data.find(vec.raw_data)
    assert at > 0 and data.count(vec.raw_data) == 1
    nan = np.full(len(vec.raw_data) // 4, np.nan, dtype="<f4").tobytes()
    (d / "model.onnx").write_bytes(data[:at] + nan + data[at + len(vec.raw_data):])
    rehash(d)


# (id, tamper, extra CLI args, exit code, failing rows that must be there (prefix), words in their detail)
ROWS = [
    ("fresh", None, [], 0, [], ""),
    ("weight-byte", flip_weight_byte, ["--fail-fast"], 1, ["integrity sha256 model.onnx"], "manifest says"),
    ("proof-disagrees-rehashed", proof_disagrees, [], 1,
     ["fidelity/bortconv worst sentence cosine", "fidelity/stock worst sentence cosine"], "worst at text"),
    ("weights-changed-rehashed", reverse_int8_weights, [], 1, ["fidelity/bortconv", "fidelity/stock"], "load, f32"),
    # outputs that are not numbers fail every fidelity row (NaN is not at or above a threshold), in one line each
    ("weights-nan-rehashed", nan_weights, [], 1, ["fidelity/bortconv", "fidelity/stock"], "nan <"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_validate_from_the_proof_without_torch(minilm, tmp_path, row):
    _, tamper, extra, code, must_fail, words = row
    art = tmp_path / "art"
    shutil.copytree(minilm("onnx-int8"), art)
    if tamper is not None:
        tamper(art)
    proc = validate_without_torch(str(art), "--threads", "2", "--json", str(tmp_path / "r.json"), *extra)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "BLOCKED IMPORTS" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    checks = json.loads((tmp_path / "r.json").read_text())["artifacts"][0]["checks"]
    rows = {f"{c['group']} {c['name']}": c for c in checks}
    assert "torch and transformers not installed here" in rows["reference source"]["detail"]
    assert not [c for c in checks if c["group"].startswith("parity/")]  # no source: no atol parity
    failed = [k for k, c in rows.items() if c["status"] == "fail"]
    for prefix in must_fail:
        hit = [k for k in failed if k.startswith(prefix)]
        assert hit and any(words in rows[k]["detail"] for k in hit), (prefix, failed, proc.stdout)
    if tamper is not None and tamper is not flip_weight_byte:  # re-hashed: only the gate can have caught it
        assert not [k for k in failed if k.startswith("integrity")], failed
    if tamper is None:
        # on the CPU that made it, the proof gives the numbers the export's own gate measured (the same probes
        # and reference outputs; token cosine is estimated from <= TOKEN_BUDGET tokens, fp16)
        gate = json.loads((art / "manifest.json").read_text())["int8"]["gate"]["results"]
        for loader in ("bortconv", "stock"):
            got = {c["name"]: 1 - c["max_diff"] for c in checks if c["group"] == f"fidelity/{loader}"
                   and c["max_diff"] is not None}
            want = gate[loader]["metrics"]
            assert abs(got["worst sentence cosine"] - want["sentence_cosine_worst"]) < 1e-4, (got, want)
            assert abs(got["mean sentence cosine"] - want["sentence_cosine_mean"]) < 1e-5, (got, want)
            assert abs(got["mean token cosine"] - want["token_cosine_mean"]) < 2e-3, (got, want)
            assert rows[f"fidelity/{loader} worst sentence cosine"]["where"] == f"worst at {want['worst_at']}"
        size = (art / PROOF_FILE).stat().st_size  # MiniLM, quick sweep: ~0.8 MB beside a 23 MB int8 model
        assert size == json.loads((art / "manifest.json").read_text())["proof"]["bytes"] < 2_000_000


def _without_proof(d: Path) -> str:
    (d / PROOF_FILE).unlink()
    rehash(d)
    return "torch and transformers not installed here; pass --reference SOURCE"


def _garbage_proof(d: Path) -> str:
    (d / PROOF_FILE).write_bytes(b"PK\x03\x04 not a proof")
    rehash(d)
    return f"{PROOF_FILE}: not a readable bortconv proof"


def _no_thresholds(d: Path) -> str:
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["proof"]["thresholds"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    return "records no complete gate thresholds"


@pytest.mark.parametrize("make_bad", [_without_proof, _garbage_proof, _no_thresholds],
                         ids=["no-proof", "garbage-proof", "no-thresholds"])
def test_bad_proof_exits_2(minilm, tmp_path, make_bad):
    art = tmp_path / "art"
    shutil.copytree(minilm("onnx-int8"), art)
    words = make_bad(art)
    proc = validate_without_torch(str(art))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
    assert proc.stdout == ""


def _probes(rng: np.random.Generator) -> list[Probe]:
    """Three probes of real shapes: batch 1 and a right-padded batch of 3."""
    out = []
    for label, lengths in (("text 0", [5]), ("length 9", [9]), ("padded b3-l7", [7, 6, 2])):
        n = max(lengths)
        mask = (np.arange(n)[None] < np.array(lengths)[:, None]).astype(np.int64)
        ids = rng.integers(4, 50, (len(lengths), n)) * mask
        out.append(Probe("padded" if len(lengths) > 1 else "text", label,
                         {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}))
    return out


# (task, output width, noise): fill-mask and classification heads compared by the proof's reduced form
HEADS = [("fill-mask", 300, 0.3), ("fill-mask", 300, 1.5), ("text-classification", 4, 0.4),
         ("feature-extraction", 32, 0.2)]


@pytest.mark.parametrize("task,width,noise", HEADS, ids=[f"{h[0]}-{h[2]}" for h in HEADS])
def test_proof_metrics_equal_the_gate(tmp_path, task, width, noise):
    """The reduced proof gives the gate's own numbers (deployed_fidelity on full outputs) for every task."""
    rng = np.random.default_rng(7)
    probes = _probes(rng)
    shape = (lambda p: p.feeds["input_ids"].shape + (width,)) if task != "text-classification" else \
        (lambda p: (len(p.feeds["input_ids"]), width))
    refs = [rng.normal(size=shape(p)).astype(np.float32) for p in probes]
    cands = {p.label: r + noise * rng.normal(size=r.shape).astype(np.float32) for p, r in zip(probes, refs)}
    write_proof(tmp_path / PROOF_FILE, probes, iter(refs), task)
    proof = read_proof(tmp_path / PROOF_FILE)
    assert [p.label for p in proof.probes] == [p.label for p in probes]
    assert all(np.array_equal(a.feeds["input_ids"], b.feeds["input_ids"]) for a, b in zip(proof.probes, probes))
    by_ids = {p.feeds["input_ids"].tobytes(): p.label for p in probes}  # the runner sees feeds only

    def run(feeds):
        return cands[by_ids[feeds["input_ids"].tobytes()]]

    got, want = proof.fidelity(run), deployed_fidelity(refs, run, probes, task)
    assert got.keys() == want.keys() and got["worst_at"] == want["worst_at"]
    for k, v in want.items():
        if isinstance(v, float):  # fp16 storage: cosines to ~1e-6; agreement rates exactly
            assert abs(got[k] - v) < (1e-5 if "cosine" in k else 1e-12), (k, got[k], v)
