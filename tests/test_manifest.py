"""The typed manifest: what exports write validates against the shipped JSON schema (checked by `jsonschema`, not
by bortconv's own reader), the one reader gives typed fields, and a broken manifest is refused naming the field."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest

from bortconv.errors import InputError
from bortconv.manifest import FileRecord, Manifest, read_manifest, schema


@pytest.mark.parametrize("which", ["onnx-fp32", "ov-fp32"])
def test_written_manifests_follow_the_schema(minilm, which):
    d = minilm(which)
    data = json.loads((d / "manifest.json").read_text())
    jsonschema.validate(data, schema())  # the reference validator, on the file as written
    m = read_manifest(d)
    assert isinstance(m, Manifest) and m.target == data["target"] and m.precision == "fp32"
    assert m.files and all(isinstance(f, FileRecord) and len(f.sha256) == 64 for f in m.files.values())
    assert m["loading"] == m.loading == data["loading"] and dict(m) == data


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("precision"), "missing precision"),
    (lambda d: d.update(target="tflite"), "target 'tflite' is not one of onnx, openvino"),
    (lambda d: d.update(files=[]), "files is not of type object"),
    (lambda d: d["files"].update({"x.bin": {"bytes": 3}}), "files['x.bin'] lacks its sha256"),
])
def test_a_broken_manifest_is_refused_naming_the_field(minilm, tmp_path, edit, message):
    d = tmp_path / "a"
    shutil.copytree(minilm("onnx-fp32"), d)
    data = json.loads((d / "manifest.json").read_text())
    edit(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(d)
