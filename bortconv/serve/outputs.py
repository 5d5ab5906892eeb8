"""The response tensors of each task, as numpy arrays (no kserve import: the model wraps them for the protocol).

=====================  ==============================================================================
feature-extraction     ``embedding`` FP32 [n, hidden]: the mean over each text's tokens (BortRuntime.encode)
text-classification    ``logits`` FP32 [n, classes] and ``label`` BYTES [n] (config.json id2label)
fill-mask              ``token_ids`` INT64 [n, L, k] and ``scores`` FP32 [n, L, k]: the k most likely tokens at
                       each position, best first, with their probabilities (BortRuntime.top_tokens); ``input_ids``
                       INT64 [n, L], what each text became, so that a mask is found by its id; and
                       ``attention_mask`` INT64 [n, L]. L is the request's longest text in tokens; past a text's
                       length ids are -1 and scores 0. k is the request's ``top_k`` parameter (default 5).
=====================  ==============================================================================

A fill-mask model's whole logits ([n, L, vocab]: 25.7 M floats for one 512-token Bort text) are not sent: a
request's answer is bounded by top_k instead (:data:`MAX_PREDICTIONS`). In-process, ``BortRuntime.run_texts``
gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bortconv.errors import InputError
from bortconv.runtime.bort import DEFAULT_TOP_K

#: the most (text, position, token) predictions one fill-mask answer holds: 256 texts of 512 tokens at top_k 16.
#: As JSON that is about 60 MB (some 30 bytes a prediction); the whole logits of those texts would be 6.6 G floats
MAX_PREDICTIONS = 2**21


def output_types(task: str, config: dict[str, Any], classes: int) -> list[dict[str, Any]]:
    """The v2 metadata of the outputs of `task` (hidden, classes, vocab from the artifact's config.json)."""
    if task == "feature-extraction":
        return [{"name": "embedding", "datatype": "FP32", "shape": [-1, config.get("hidden_size", -1)]}]
    if task == "text-classification":
        return [{"name": "logits", "datatype": "FP32", "shape": [-1, classes or -1]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    return [{"name": "token_ids", "datatype": "INT64", "shape": [-1, -1, -1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, -1, -1]},
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]}]


def pool(task: str, row: np.ndarray) -> np.ndarray:
    """What one text's model output becomes before it is sent: the mean over its tokens for embeddings."""
    return row.mean(axis=0) if task == "feature-extraction" else row


def check_predictions(texts: int, longest: int, top_k: int) -> None:
    """InputError unless a fill-mask answer of texts x longest x top_k predictions fits :data:`MAX_PREDICTIONS`."""
    if texts * longest * top_k > MAX_PREDICTIONS:
        raise InputError(f"the answer would hold {texts * longest * top_k:,} predictions ({texts} texts x {longest} "
                         f"tokens x top_k {top_k}); at most {MAX_PREDICTIONS:,}: send fewer texts or a smaller top_k")


def response_arrays(task: str, rows: Sequence[Any], label_of: Callable[[int], str],
                    top_k: int = DEFAULT_TOP_K) -> list[tuple[str, np.ndarray, str]]:
    """(name, array, v2 datatype) of the response to one request whose texts gave `rows` (pooled already; a
    fill-mask row is a TopTokens of at least `top_k` tokens a position)."""
    if task == "feature-extraction":
        return [("embedding", np.stack(rows).astype(np.float32), "FP32")]
    if task == "text-classification":
        logits = np.stack(rows).astype(np.float32)
        labels = np.array([label_of(int(k)) for k in logits.argmax(axis=1)], dtype=object)
        return [("logits", logits, "FP32"), ("label", labels, "BYTES")]
    longest = max(len(r.input_ids) for r in rows)
    check_predictions(len(rows), longest, top_k)
    ids = np.full((len(rows), longest, top_k), -1, np.int64)
    scores = np.zeros((len(rows), longest, top_k), np.float32)
    inputs = np.full((len(rows), longest), -1, np.int64)
    mask = np.zeros((len(rows), longest), np.int64)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n], scores[i, :n], inputs[i, :n], mask[i, :n] = r.ids[:, :top_k], r.scores[:, :top_k], r.input_ids, 1
    return [("token_ids", ids, "INT64"), ("scores", scores, "FP32"), ("input_ids", inputs, "INT64"),
            ("attention_mask", mask, "INT64")]
