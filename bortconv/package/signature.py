"""What an artifact's model file really takes and gives: tensor names, element types and shapes, read from the
model itself (ONNX Runtime for model.onnx, OpenVINO for the IR), never from the manifest's summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bortconv.errors import InputError, MissingDependencyError
from bortconv.layout import ONNX_FILE, OV_XML
from bortconv.runtime.bort import loading

#: ONNX Runtime's type strings and OpenVINO's element type names -> numpy-style names
_ORT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float)": "float32",
              "tensor(float16)": "float16", "tensor(bool)": "bool", "tensor(string)": "string",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(double)": "float64"}
_OV_TYPES = {"i64": "int64", "i32": "int32", "f32": "float32", "f16": "float16", "boolean": "bool",
             "string": "string", "i8": "int8", "u8": "uint8", "f64": "float64"}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, element type ("int64", "float32", "string"...) and shape (-1: dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """The model file of an artifact and its tensors."""

    model_file: str
    runtime: str  # "onnxruntime" or "openvino"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def batch_dynamic(self) -> bool:
        """True if every tensor's first axis (the batch) is dynamic."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))


def _onnx_signature(path: Path) -> Signature:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("reading an ONNX artifact needs: pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the declared signature
    with loading(path):
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def spec(t: object) -> TensorSpec:
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in t.shape)  # type: ignore[attr-defined]
        return TensorSpec(t.name, _ORT_TYPES.get(t.type, t.type), dims)  # type: ignore[attr-defined]

    return Signature(path.name, "onnxruntime", tuple(map(spec, sess.get_inputs())),
                     tuple(map(spec, sess.get_outputs())))


def openvino_specs(ports: list) -> tuple[TensorSpec, ...]:
    """TensorSpecs of OpenVINO model ports (inputs or outputs of an ov.Model or a compiled model)."""
    out = []
    for p in ports:
        shape = p.get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else -1 for d in shape)
        et = p.get_element_type().get_type_name()
        out.append(TensorSpec(p.get_any_name(), _OV_TYPES.get(et, et), dims))
    return tuple(out)


def _openvino_signature(path: Path) -> Signature:
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("reading an OpenVINO artifact needs: pip install openvino") from None
    with loading(path):
        model = ov.Core().read_model(str(path))
    return Signature(path.name, "openvino", openvino_specs(model.inputs), openvino_specs(model.outputs))


def read_signature(artifact_dir: Path) -> Signature:
    """The signature of the model file in `artifact_dir` (the OpenVINO IR if there is one, else model.onnx)."""
    if (artifact_dir / OV_XML).is_file():
        return _openvino_signature(artifact_dir / OV_XML)
    if (artifact_dir / ONNX_FILE).is_file():
        return _onnx_signature(artifact_dir / ONNX_FILE)
    raise InputError(f"{artifact_dir}: holds neither {ONNX_FILE} nor {OV_XML}; not an exported artifact")
