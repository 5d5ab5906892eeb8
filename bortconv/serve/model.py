"""The artifact as a KServe model: Open Inference Protocol (v2) tensors in, BortRuntime's results out.

Request: ``text`` BYTES [n] (UTF-8 strings), and ``text_b`` BYTES [n] for pairs (``<s> A </s> B </s>``).
Request parameter (fill-mask only): ``top_k``, the tokens given at each position (1 to 100; default 5). A request
may name the outputs it wants (``outputs``), each in JSON or, with ``binary_data``, the binary extension (also
``binary_data_output`` for all), as Triton answers.
Response: :mod:`bortconv.serve.outputs` (``embedding``; ``logits`` + ``label``; fill-mask ``token_ids`` +
``scores`` + ``input_ids`` + ``attention_mask``). A request that is not well formed gets HTTP 400 with
``{"error": "..."}`` (kserve's InvalidInput); the server goes on serving.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from bortconv.errors import BortconvError
from bortconv.runtime.bort import (DEFAULT_TOP_K, TEXT_INPUT, TEXT_PAIR_INPUT, BortRuntime, first_trailing_nul,
                                   top_k_problem)
from bortconv.serve.batcher import Item, LengthBatcher
from bortconv.serve.outputs import MAX_PREDICTIONS, check_predictions, output_types, pool, response_arrays

log = logging.getLogger("bortconv.serve")

#: texts one request may carry (a bound on one request's memory and time)
MAX_TEXTS = 256


def parse_request(payload: Any) -> list[Item]:
    """The (text, text_b or None) items of a v2 request; InvalidInput (HTTP 400) naming what is wrong."""
    inputs = list(getattr(payload, "inputs", None) or [])
    if not inputs:
        raise InvalidInput(f"no inputs: send {TEXT_INPUT!r} as BYTES [n] (and {TEXT_PAIR_INPUT!r} for pairs)")
    by_name: dict[str, list[str]] = {}
    for tensor in inputs:
        if tensor.name not in (TEXT_INPUT, TEXT_PAIR_INPUT):
            raise InvalidInput(f"unknown input {tensor.name!r}: this model takes {TEXT_INPUT!r} and "
                               f"{TEXT_PAIR_INPUT!r}")
        if tensor.name in by_name:
            raise InvalidInput(f"input {tensor.name!r} given twice")
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"input {tensor.name!r} has datatype {tensor.datatype}; it must be BYTES")
        shape, data = list(tensor.shape or []), tensor.data
        if len(shape) != 1 or not isinstance(data, list) or shape[0] != len(data):
            raise InvalidInput(f"input {tensor.name!r} must have shape [n] with n strings; got shape {shape} "
                               f"and {len(data) if isinstance(data, list) else type(data).__name__} values")
        if not all(isinstance(t, str) for t in data):
            raise InvalidInput(f"input {tensor.name!r}: every element must be a string")
        for i, text in enumerate(data):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate ("\udcff"): JSON allows it, no tokenizer takes it
                raise InvalidInput(f"input {tensor.name!r}: element {i} is not valid Unicode text ({exc.reason} at "
                                   f"character {exc.start})") from None
        by_name[tensor.name] = data
    texts, pairs = by_name.get(TEXT_INPUT), by_name.get(TEXT_PAIR_INPUT)
    if texts is None:
        raise InvalidInput(f"{TEXT_PAIR_INPUT!r} needs {TEXT_INPUT!r}: the pair's first texts")
    if not 1 <= len(texts) <= MAX_TEXTS:
        raise InvalidInput(f"{TEXT_INPUT!r} has {len(texts)} texts; send 1 to {MAX_TEXTS} per request")
    if pairs is not None and len(pairs) != len(texts):
        raise InvalidInput(f"{TEXT_INPUT!r} has {len(texts)} texts but {TEXT_PAIR_INPUT!r} {len(pairs)}")
    return list(zip(texts, pairs if pairs is not None else [None] * len(texts)))


def check_no_trailing_nul(items: Sequence[Item]) -> None:
    """InvalidInput naming the field and element of a text that ends in NUL, for a server with the OpenVINO
    tokenizer (its string tensors drop trailing NULs: BortRuntime refuses such a text, naming its own argument)."""
    for k, name in enumerate((TEXT_INPUT, TEXT_PAIR_INPUT)):
        bad = first_trailing_nul([item[k] for item in items])
        if bad is not None:
            raise InvalidInput(f"input {name!r}: element {bad} ends with a NUL character, which this server's "
                               f"OpenVINO tokenizer would drop; remove it")


def check_requested_outputs(payload: Any, available: Sequence[str]) -> None:
    """InvalidInput naming an output the request asks for (v2 ``outputs``) that this model does not give."""
    for out in getattr(payload, "request_outputs", None) or []:
        if out.name not in available:
            raise InvalidInput(f"output {out.name!r} is not one of this model's: {', '.join(available)}")


def parse_top_k(payload: Any, task: str, vocab: int) -> int:
    """The request's ``top_k`` parameter (fill-mask only; default DEFAULT_TOP_K); InvalidInput naming it."""
    params = getattr(payload, "parameters", None) or {}
    if "top_k" not in params:
        return DEFAULT_TOP_K
    if task != "fill-mask":
        raise InvalidInput(f"parameter 'top_k' is for fill-mask models; this one is {task}")
    value = params["top_k"]
    if hasattr(value, "WhichOneof"):  # gRPC's InferParameter: the field that was set
        value = getattr(value, value.WhichOneof("parameter_choice") or "int64_param")
    why = top_k_problem(value, vocab)
    if why:
        raise InvalidInput(f"parameter 'top_k' {why}")
    return int(value)


def _tensor(name: str, array: np.ndarray, datatype: str) -> InferOutput:
    out = InferOutput(name, list(array.shape), datatype)
    out.set_data_from_numpy(array, binary_data=False)
    return out


class BortModel(kserve.Model):
    """A bortconv artifact served through KServe's model server, requests batched by :class:`LengthBatcher`."""

    def __init__(self, name: str, runtime: BortRuntime, *, max_batch: int = 64, max_wait_ms: float = 5.0) -> None:
        super().__init__(name)
        self.runtime = runtime
        self.task = runtime.task
        self.batcher = LengthBatcher(self.run_items, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.ready = True

    # ------------------------------------------------------------------ what runs in the worker thread

    def run_items(self, items: list[Item]) -> list[Any]:
        """One output per (text, text_b, top_k) item (pooled for feature-extraction; a fill-mask text's TopTokens at
        the largest top_k of the requests merged into the call, which each request then cuts to its own): singles
        and pairs each in one runtime call."""
        out: list[Any] = [None] * len(items)
        for pairs in (False, True):
            idx = [i for i, item in enumerate(items) if (item[1] is not None) == pairs]
            if not idx:
                continue
            texts = [items[i][0] for i in idx]
            seconds = [items[i][1] for i in idx] if pairs else None
            if self.task == "fill-mask":
                rows: list[Any] = self.runtime.top_tokens(texts, top_k=max(items[i][2] for i in idx),
                                                          text_pairs=seconds)  # type: ignore[arg-type]
            else:
                rows = [pool(self.task, r) for r in self.runtime.run_texts(texts, seconds)]  # type: ignore[arg-type]
            for i, row in zip(idx, rows):
                out[i] = row
        return out

    def _token_counts(self, items: Sequence[Item]) -> list[int]:
        texts, seconds = [item[0] for item in items], [item[1] for item in items]
        pairs = seconds[0] is not None  # a request is all singles or all pairs (parse_request)
        rows = self.runtime.tokenize_pairs(texts, seconds) if pairs else self.runtime.tokenize(texts)
        return [len(r) for r in rows]

    async def _check_answer_size(self, items: Sequence[Item], top_k: int) -> None:
        """Refuse a fill-mask answer over MAX_PREDICTIONS before the model runs: by the most tokens a text can have,
        or, where that could be over, by the request's own token counts (tokenized in the worker thread)."""
        if len(items) * self.runtime.max_tokens * top_k > MAX_PREDICTIONS:
            check_predictions(len(items), max(await self.batcher.in_worker(self._token_counts, items)), top_k)

    # ------------------------------------------------------------------ the v2 protocol

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]},
                {"name": TEXT_PAIR_INPUT, "datatype": "BYTES", "shape": [-1], "optional": True}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return output_types(self.task, self.runtime.config, len(self.runtime.id2label))

    def outputs_for(self, rows: Sequence[Any], top_k: int = DEFAULT_TOP_K) -> list[InferOutput]:
        """The response tensors of one request's rows."""
        return [_tensor(name, array, datatype)
                for name, array, datatype in response_arrays(self.task, rows, self.runtime.label_of, top_k)]

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        t0 = time.perf_counter()
        items, top_k = parse_request(payload), parse_top_k(payload, self.task, self.runtime.vocab_size)
        check_requested_outputs(payload, [o["name"] for o in self.get_output_types()])
        if self.runtime.tokenizer_backend == "openvino":
            check_no_trailing_nul(items)
        try:
            if self.task == "fill-mask":
                await self._check_answer_size(items, top_k)
            rows = await self.batcher.submit([(*item, top_k) for item in items])
            outputs = self.outputs_for(rows, top_k)
        except BortconvError as exc:  # e.g. a text longer than a static-shape artifact takes
            raise InvalidInput(exc.message) from None
        response_id = getattr(payload, "id", None) or str(uuid.uuid4())
        # the outputs the request names, each in JSON or (binary_data) the binary extension, as Triton answers
        response = InferResponse(response_id=response_id, model_name=self.name, infer_outputs=outputs,
                                 requested_outputs=getattr(payload, "request_outputs", None),
                                 use_binary_outputs=bool(getattr(payload, "use_binary_outputs", False)))
        log.info("infer %s id=%s texts=%d pairs=%s %.1f ms", self.name, response_id, len(items),
                 items[0][1] is not None, (time.perf_counter() - t0) * 1e3)
        return response
