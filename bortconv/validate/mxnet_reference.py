"""The original MXNet/GluonNLP forward of a Bort `.params` file, as a parity reference for `bortconv validate`.

Used only with ``--reference-backend mxnet`` in an interpreter where ``import mxnet`` works (mxnet 1.9.1 and
gluonnlp 0.8.3, the versions Bort was released with). The model is built from gluonnlp's own BERT blocks with
the construction alexa/bort uses (no token types, no pooler; classifier = Dropout, Dense(tanh), Dropout, Dense)
and filled with the arrays mxnet's own loader reads from the file, every parameter accounted for.

This module imports only numpy, mxnet, gluonnlp and bortconv's name table, so it also runs in the tests'
separate mxnet environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bortconv.converters.gluon_names import TIED_DECODER, WORD_EMBED, canonical_name

Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def mxnet_import_error() -> str | None:
    """None if mxnet and gluonnlp import in this interpreter, else why not (one line)."""
    for name in ("mxnet", "gluonnlp"):
        try:
            __import__(name)
        except Exception as exc:  # ImportError, or OSError from a missing libmxnet.so
            return f"import {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def build_net(record: Mapping[str, Any]) -> tuple[Any, Any]:
    """(net, bort): the Gluon model for a conversion record's variant and head, parameters initialized."""
    import mxnet as mx
    from gluonnlp.model.bert import BERTEncoder, BERTModel
    from mxnet.gluon import HybridBlock, nn

    v = record["variant"]
    head = record["head"]

    class BortModel(BERTModel):  # alexa/bort's BortModel: no token types, no pooler
        def __init__(self, encoder: Any, use_decoder: bool) -> None:
            super().__init__(encoder, vocab_size=v["vocab_size"], token_type_vocab_size=None,
                             units=v["hidden_size"], embed_size=v["hidden_size"], embed_dropout=0.0,
                             word_embed=None, token_type_embed=None, use_pooler=False, use_decoder=use_decoder,
                             use_classifier=False, use_token_type_embed=False)

        def __call__(self, inputs: Any, valid_length: Any = None, masked_positions: Any = None) -> Any:
            return super().__call__(inputs, [], valid_length=valid_length,
                                    masked_positions=[] if masked_positions is None else masked_positions)

    class BortClassifier(HybridBlock):  # alexa/bort's classifier head on the first token
        def __init__(self, bort: Any, num_classes: int) -> None:
            super().__init__()
            self.bort = bort
            self._units = bort._units
            with self.name_scope():
                self.classifier = nn.HybridSequential()
                self.classifier.add(nn.Dropout(rate=0.0))
                self.classifier.add(nn.Dense(units=self._units, activation="tanh"))
                self.classifier.add(nn.Dropout(rate=0.0))
                self.classifier.add(nn.Dense(units=num_classes))

        def hybrid_forward(self, F: Any, inputs: Any, valid_length: Any = None) -> Any:
            seq_out = self.bort(inputs, valid_length)
            first = seq_out.slice(begin=(0, 0, 0), end=(None, 1, None)).reshape(shape=(-1, self._units))
            return self.classifier(first)

    enc = BERTEncoder(attention_cell="multi_head", num_layers=v["num_layers"], units=v["hidden_size"],
                      hidden_size=v["intermediate_size"], max_length=v["max_position_embeddings"],
                      num_heads=v["num_heads"], scaled=True, dropout=0.0, output_attention=False,
                      output_all_encodings=False, use_residual=True, activation="gelu",
                      layer_norm_eps=v.get("layer_norm_eps", 1e-5))
    bort = BortModel(enc, use_decoder=head == "mlm")
    net = BortClassifier(bort, int(record["num_labels"])) if head == "classifier" else bort
    net.initialize(mx.init.Zero())
    x, vl = mx.nd.array([[0, 5, 2]]), mx.nd.array([3])  # deferred shapes: one pass materializes them
    if head == "mlm":
        bort(x, vl, mx.nd.array([[0, 1, 2]]))
        eps = record.get("decoder_layer_norm_eps")
        if eps is not None:
            bort.decoder[2]._epsilon = float(eps)
    else:
        net(x, vl)
    return net, bort


def _load_arrays(path: str) -> dict[str, Any]:
    """mxnet's own loader; files saved with numpy shape semantics (mx.npx.save) must be read under them."""
    import mxnet as mx

    try:
        return dict(mx.nd.load(path))
    except mx.base.MXNetError as exc:
        if "np shape" not in str(exc):
            raise
    with mx.util.np_shape(True), mx.util.np_array(True):
        arrays = mx.npx.load(path)
        return {k: v.as_nd_ndarray().copy() for k, v in arrays.items()}


def load_weights(net: Any, params_path: str | os.PathLike[str]) -> None:
    """Fill every parameter of `net` from the file as mxnet reads it; refuse missing or unused arrays."""
    from bortconv.errors import MappingError

    loaded = {canonical_name(k): v for k, v in _load_arrays(str(params_path)).items()}
    params = net._collect_params_with_prefix()
    if "bort." + WORD_EMBED in params:  # the classifier wraps the model as `bort.`
        params = {k.removeprefix("bort."): p for k, p in params.items()}
    # the MLM decoder's weight is the embedding's parameter: a deduplicated file stores one of the two names
    tied = {TIED_DECODER: WORD_EMBED, WORD_EMBED: TIED_DECODER}
    missing = sorted(k for k in params if k not in loaded and tied.get(k) not in loaded)
    unused = sorted(str(k) for k in loaded if k not in params)
    if missing or unused:
        raise MappingError(f"{params_path}: MXNet model and file disagree: missing {missing[:5]}, unused {unused[:5]}")
    for name, p in params.items():
        arr = loaded[name] if name in loaded else loaded[tied[name]]
        if tuple(arr.shape) != tuple(p.shape):
            raise MappingError(f"{params_path}: '{name}' is {tuple(arr.shape)} in the file, MXNet expects {p.shape}")
        p.set_data(arr.astype("float32"))  # fp16 files run in fp32 on their fp16-rounded weights, as released


def mxnet_runner(params_path: str | os.PathLike[str], record: Mapping[str, Any], task: str) -> Runner:
    """feeds (input_ids, attention_mask; right-padded) -> the MXNet output for `task`, as numpy float32."""
    import mxnet as mx

    net, bort = build_net(record)
    load_weights(net, params_path)
    head = record["head"]
    if task == "fill-mask" and head != "mlm" or task == "text-classification" and head != "classifier":
        from bortconv.errors import InputError
        raise InputError(f"{params_path}: a {head} checkpoint has no output for task {task}")

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        ids = np.asarray(feeds["input_ids"])
        x = mx.nd.array(ids)
        vl = mx.nd.array(np.asarray(feeds["attention_mask"]).sum(axis=1))
        if task == "text-classification":
            return net(x, vl).asnumpy()
        if head == "mlm":  # gluonnlp's decoder needs positions: ask for every position
            positions = mx.nd.array(np.tile(np.arange(ids.shape[1]), (ids.shape[0], 1)))
            seq, logits = bort(x, vl, positions)
            return (logits if task == "fill-mask" else seq).asnumpy()
        return bort(x, vl).asnumpy()
    return run
