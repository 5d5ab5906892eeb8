"""No unsafe deserialization: a `pytorch_model.bin` whose pickle runs code is refused without running it.

bortconv reads `.params` with its own parser, HF weights from safetensors, and a `pytorch_model.bin` only with
`torch.load(weights_only=True)`. Each hostile file here is live: plain unpickling it creates the marker file
(checked first); `bortconv export` on it must exit 2 with one line naming the file and what it tried to call,
leave no output, and leave no marker. A legitimate `pytorch_model.bin` exports exactly like the safetensors
it was saved from.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bortconv
from bortconv._util.hashing import sha256_file
from bortconv._util.atomic import TMP_MARK

BORTCONV = [sys.executable, "-m", "bortconv"]


class _Call:
    """Pickles as `func(*args)`: what a hostile checkpoint's __reduce__ does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _zip_with_data_pkl(data_pkl: bytes) -> bytes:
    """A real torch.save zip archive whose data.pkl is replaced (the layout torch.load expects)."""
    import torch
    buf = io.BytesIO()
    torch.save({"embeddings.word_embeddings.weight": torch.ones(2, 2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, data_pkl if item.filename.endswith("/data.pkl") else src.read(item.filename))
    return out.getvalue()


def _legacy_os_system(marker: Path) -> bytes:
    return pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=2)


def _zip_os_system(marker: Path) -> bytes:
    return _zip_with_data_pkl(pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=2))


def _zip_exec(marker: Path) -> bytes:
    return _zip_with_data_pkl(pickle.dumps(_Call(exec, f"open({str(marker)!r}, 'w').close()"), protocol=3))


def _zip_subprocess(marker: Path) -> bytes:
    return _zip_with_data_pkl(pickle.dumps(_Call(subprocess.call, ["touch", str(marker)]), protocol=3))


# (id, payload, how to prove it is live, words the one-line refusal must contain)
HOSTILE = [
    ("legacy-pickle-os.system", _legacy_os_system, "pickle", "its pickle calls posix.system"),
    ("torch-zip-os.system", _zip_os_system, "torch", "its pickle calls posix.system"),
    ("torch-zip-exec", _zip_exec, "torch", "its pickle calls exec,"),
    ("torch-zip-subprocess", _zip_subprocess, "torch", "its pickle calls subprocess.call"),
]


def _prove_live(payload: bytes, how: str, tmp: Path) -> None:
    """Unpickle the payload the unsafe way, once, in this process: it must run (else the test proves nothing)."""
    f = tmp / "live.bin"
    f.write_bytes(payload)
    if how == "pickle":
        pickle.loads(payload)
    else:
        import torch
        torch.load(f, weights_only=False)


@pytest.fixture(scope="module")
def hf_dir(reference, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hf") / "custom"
    bortconv.convert(reference["custom_enc_fp32"].params, d, heads=4)
    return d


@pytest.fixture(scope="module")
def refusals(hf_dir, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path, Path]]:
    """`bortconv export` on every hostile directory, run concurrently: id -> (process, marker, OUT)."""
    root = tmp_path_factory.mktemp("hostile")
    procs = {}
    for rid, make, how, _ in HOSTILE:
        d = root / rid
        d.mkdir()
        live_marker = d / "proof-it-runs"
        _prove_live(make(live_marker), how, d)
        assert live_marker.exists(), f"{rid}: the payload did not run when unpickled unsafely"
        model = d / "model"
        model.mkdir()
        shutil.copy(hf_dir / "config.json", model / "config.json")
        marker = d / "MARKER"
        (model / "pytorch_model.bin").write_bytes(make(marker))
        out = d / "out"
        procs[rid] = (subprocess.Popen([*BORTCONV, "export", str(model), "--target", "onnx", "-o", str(out)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), marker, out)
    done = {}
    for rid, (p, marker, out) in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        done[rid] = (subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr), marker, out)
    return done


@pytest.mark.parametrize("row", HOSTILE, ids=[r[0] for r in HOSTILE])
def test_hostile_pickle_is_refused_unexecuted(refusals, row):
    rid, _make, _how, words = row
    proc, marker, out = refusals[rid]
    assert not marker.exists(), f"{rid}: the pickle's code ran"
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("[")]  # progress lines aside
    assert len(lines) == 1 and lines[0].startswith("bortconv: error: "), proc.stderr
    assert str(out.parent / "model" / "pytorch_model.bin") in lines[0] and "refused" in lines[0]
    assert words in lines[0] and "weights_only` set to `False`" not in lines[0]  # never torch's unsafe advice
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(TMP_MARK)]


def test_safetensors_is_preferred_and_bin_never_opened(hf_dir, tmp_path):
    """With model.safetensors present, a hostile pytorch_model.bin beside it is never read."""
    model = tmp_path / "both"
    shutil.copytree(hf_dir, model)
    marker = tmp_path / "MARKER"
    (model / "pytorch_model.bin").write_bytes(_legacy_os_system(marker))
    res = bortconv.export(model, tmp_path / "out", target="onnx", threads=2, bench=False, progress=False)
    assert not marker.exists() and res.parity[0]["passed"]
    assert res.manifest["source_sha256"] == sha256_file(model / "model.safetensors")


# (id, bin content, words) -- files weights_only loads but that are not a state dict, and broken files
NOT_STATE_DICTS = [
    ("list-of-tensors", lambda torch: _saved(torch, [torch.ones(2)]), "holds a list"),
    ("int-keys", lambda torch: _saved(torch, {1: torch.ones(2)}), "holds a dict that is not a state dict"),
    ("strings-not-tensors", lambda torch: _saved(torch, {"a": "b"}), "holds a dict that is not a state dict"),
    ("truncated-zip", lambda torch: _saved(torch, {"a": torch.ones(2)})[:300], "failed reading zip archive"),
    ("empty", lambda torch: b"", "EOFError"),
]


def _saved(torch, obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("row", NOT_STATE_DICTS, ids=[r[0] for r in NOT_STATE_DICTS])
def test_bin_that_is_not_a_state_dict_is_refused(tmp_path, row):
    import torch

    from bortconv.converters.hf_model import weight_keys
    from bortconv.errors import InputError
    _rid, make, words = row
    (tmp_path / "pytorch_model.bin").write_bytes(make(torch))
    with pytest.raises(InputError) as err:
        weight_keys(tmp_path)
    assert words in err.value.message and "\n" not in err.value.message


def test_legit_pytorch_model_bin_exports_like_its_safetensors(hf_dir, tmp_path):
    """torch.save of the converted state dict: loads through from_pretrained(None, state_dict=...) and gives the
    very same ONNX bytes as the safetensors directory it came from."""
    import torch
    from safetensors.torch import load_file
    model = tmp_path / "bin"
    model.mkdir()
    shutil.copy(hf_dir / "config.json", model / "config.json")
    torch.save(load_file(hf_dir / "model.safetensors"), model / "pytorch_model.bin")
    from_bin = bortconv.export(model, tmp_path / "from-bin", target="onnx", threads=2, bench=False, progress=False)
    from_st = bortconv.export(hf_dir, tmp_path / "from-st", target="onnx", threads=2, bench=False, progress=False)
    assert from_bin.parity[0]["passed"] and from_bin.task == "feature-extraction"
    assert from_bin.manifest["source_sha256"] == sha256_file(model / "pytorch_model.bin")
    assert from_bin.manifest["files"]["model.onnx"]["sha256"] == from_st.manifest["files"]["model.onnx"]["sha256"]
