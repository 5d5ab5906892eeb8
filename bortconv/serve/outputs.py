"""The response tensors of each task, as numpy arrays (no kserve import: the model wraps them for the protocol).

=====================  ==============================================================================
feature-extraction     ``embedding`` FP32 [n, hidden]: the mean over each text's tokens (BortRuntime.encode)
text-classification    ``logits`` FP32 [n, classes] and ``label`` BYTES [n] (config.json id2label)
fill-mask              ``logits`` FP32 [n, L, vocab] and ``attention_mask`` INT64 [n, L]; L is the request's
                       longest text in tokens, shorter rows are zero past their length
=====================  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

def output_types(task: str, config: dict[str, Any], classes: int) -> list[dict[str, Any]]:
    """The v2 metadata of the outputs of `task` (hidden, classes, vocab from the artifact's config.json)."""
    if task == "feature-extraction":
        return [{"name": "embedding", "datatype": "FP32", "shape": [-1, config.get("hidden_size", -1)]}]
    if task == "text-classification":
        return [{"name": "logits", "datatype": "FP32", "shape": [-1, classes or -1]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    return [{"name": "logits", "datatype": "FP32", "shape": [-1, -1, config.get("vocab_size", -1)]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]}]


def pool(task: str, row: np.ndarray) -> np.ndarray:
    """What one text's model output becomes before it is sent: the mean over its tokens for embeddings."""
    return row.mean(axis=0) if task == "feature-extraction" else row


def response_arrays(task: str, rows: Sequence[np.ndarray],
                    label_of: Callable[[int], str]) -> list[tuple[str, np.ndarray, str]]:
    """(name, array, v2 datatype) of the response to one request whose texts gave `rows` (pooled already)."""
    if task == "feature-extraction":
        return [("embedding", np.stack(rows).astype(np.float32), "FP32")]
    if task == "text-classification":
        logits = np.stack(rows).astype(np.float32)
        labels = np.array([label_of(int(k)) for k in logits.argmax(axis=1)], dtype=object)
        return [("logits", logits, "FP32"), ("label", labels, "BYTES")]
    longest = max(len(r) for r in rows)
    logits = np.zeros((len(rows), longest, rows[0].shape[-1]), np.float32)
    mask = np.zeros((len(rows), longest), np.int64)
    for i, r in enumerate(rows):
        logits[i, :len(r)], mask[i, :len(r)] = r, 1
    return [("logits", logits, "FP32"), ("attention_mask", mask, "INT64")]
