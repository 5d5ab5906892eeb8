"""Torch-free inference on an exported artifact directory: tokenizer + ONNX Runtime or OpenVINO.

Install with ``pip install 'bortconv[runtime]'`` (no torch, no transformers)::

    from bortconv.runtime import BortRuntime
    rt = BortRuntime("out/bort-openvino")
    vectors = rt.encode(["a sentence", "another one"])   # mean-pooled, one row per text
    labels = rt.predict(["great film"])                   # text-classification artifacts
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.errors import InputError, MissingDependencyError

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
OV_XML = "openvino_model.xml"
OV_BIN = "openvino_model.bin"
#: ONNX Runtime graph optimizers an artifact's session must not run (see bortconv.converters.onnx_export)
ORT_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


class Session:
    """One compiled model: `run(feeds) -> output array`, feeds keyed by input name (int64 arrays)."""

    input_names: list[str]
    output_name: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class OrtSession(Session):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("ONNX artifacts need: pip install onnxruntime") from None
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's SkipLayerNormFusion would rebuild a fused op that is slower on CPU than the Add + LayerNormalization
        # the artifact holds (bortconv.converters.onnx_export); the list is also in the manifest for other loaders
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], {k: feeds[k] for k in self.input_names})[0]


class OpenVinoSession(Session):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 model: Any = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise MissingDependencyError("OpenVINO artifacts need: pip install openvino") from None
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        # fp32 stays fp32: the CPU plugin would otherwise pick bf16/f16 inference on CPUs that have it
        config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model if model is not None else str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_name = self.compiled.outputs[0].get_any_name()

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        res = self.request.infer({k: feeds[k] for k in self.input_names})
        return np.array(res[self.compiled.outputs[0]])


def open_session(artifact_dir: str | os.PathLike[str], threads: int | None = None) -> Session:
    """The session for whichever model file the directory holds."""
    d = Path(artifact_dir)
    if (d / OV_XML).is_file():
        return OpenVinoSession(d / OV_XML, threads)
    if (d / ONNX_FILE).is_file():
        return OrtSession(d / ONNX_FILE, threads)
    raise InputError(f"{d}: holds neither {ONNX_FILE} nor {OV_XML}")


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, length: int | None = None,
              with_types: bool = False) -> dict[str, np.ndarray]:
    """Right-pad id lists into input_ids/attention_mask (and zero token_type_ids) int64 arrays."""
    n = length or max(len(r) for r in rows)
    ids = np.full((len(rows), n), pad_id, np.int64)
    mask = np.zeros((len(rows), n), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return feeds


class BortRuntime:
    """An exported artifact directory ready to run: tokenizer + session, batching by length."""

    def __init__(self, artifact_dir: str | os.PathLike[str], *, threads: int | None = None,
                 batch_size: int = 16) -> None:
        self.dir = Path(artifact_dir)
        mpath = self.dir / MANIFEST
        if not mpath.is_file():
            raise InputError(f"{self.dir}: no {MANIFEST}; not a bortconv artifact directory")
        self.manifest = json.loads(mpath.read_text())
        self.task = self.manifest["task"]
        self.session = open_session(self.dir, threads)
        self.batch_size = batch_size
        static = self.manifest.get("static_shape")
        self.static_shape = tuple(static) if static else None
        cfg = json.loads((self.dir / "config.json").read_text())
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        self.id2label = cfg.get("id2label") or {}
        self._tokenizer = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            path = self.dir / "tokenizer.json"
            if not path.is_file():
                raise InputError(f"{self.dir}: no tokenizer.json; pass token ids to run_ids() instead")
            try:
                from tokenizers import Tokenizer
            except ImportError:
                raise MissingDependencyError("text input needs: pip install tokenizers") from None
            self._tokenizer = Tokenizer.from_file(str(path))
            self._tokenizer.no_padding()
        return self._tokenizer

    def run_ids(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Run token-id rows; returns one output per row (sequence outputs cut to the row's length).

        Rows are sorted by length and batched so short texts are not padded to the longest one.
        """
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: list[np.ndarray | None] = [None] * len(rows)
        bs, length = (self.static_shape if self.static_shape else (self.batch_size, None))
        with_types = "token_type_ids" in self.session.input_names
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            batch = [rows[i] for i in idx]
            if self.static_shape:
                if max(len(r) for r in batch) > length:
                    raise InputError(f"a text has {max(len(r) for r in batch)} tokens; this artifact's "
                                     f"static shape allows {length}")
                batch = batch + [[self.pad_id]] * (bs - len(batch))
            result = self.session.run(pad_batch(batch, self.pad_id, length, with_types))
            for j, i in enumerate(idx):
                out[i] = result[j, :len(rows[i])] if result.ndim == 3 else result[j]
        return out  # type: ignore[return-value]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], *, pooling: str = "mean") -> np.ndarray:
        """Sentence vectors: mean over tokens (or the first token with pooling="first") of the encoder output."""
        if self.task != "feature-extraction":
            raise InputError(f"{self.dir}: encode() needs a feature-extraction artifact, this one is {self.task}")
        outs = self.run_ids(self.tokenize(texts))
        return np.stack([o.mean(axis=0) if pooling == "mean" else o[0] for o in outs])

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Labels and probabilities for a text-classification artifact."""
        if self.task != "text-classification":
            raise InputError(f"{self.dir}: predict() needs a text-classification artifact, this one is {self.task}")
        logits = np.stack(self.run_ids(self.tokenize(texts)))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return [{"label": self.id2label.get(str(int(p.argmax())), str(int(p.argmax()))),
                 "score": float(p.max()), "logits": lg.tolist()} for p, lg in zip(probs, logits)]
