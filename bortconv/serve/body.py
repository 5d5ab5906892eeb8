"""What the server does to a request body before kserve's app sees it: a bound on its size (413 and one line past
it), and a body not marked binary read as JSON.

Why: a request's texts are tokenized whole before truncation to the model's positions, and the tokenizer holds about
16 bytes per character while it works. 256 texts of 100,000 characters (a 25 MB body) took 9.8 s and 1.4 GB on
MiniLM's tokenizer; an edge box runs out of memory first. Neither kserve nor uvicorn bounds a body; Triton
(``--http-max-input-size``) and TorchServe (``max_request_size``) do.

The body is read here, counted as it arrives (a chunked body declares no length), and handed on whole. A body
declared too large is not kept: it is read and dropped, up to a point, so that a client still sending gets the 413;
a client that waits for ``100 Continue`` before sending gets the 413 instead, and sends nothing.

kserve reads a body as the Open Inference Protocol's binary extension whenever its Content-Type is not JSON, and then
refuses it for lacking the ``Inference-Header-Content-Length`` header: ``curl -d`` (form-encoded by default) got
"the 'inference-header-content-length' header is missing". The protocol marks a binary body by that header, not
by its Content-Type, and Triton reads any other body as JSON; so does this server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("bortconv.serve")

#: the default bound, MiB: 256 texts of 16,000 characters, several times what 256 texts of 512 tokens take
DEFAULT_MAX_REQUEST_MB = 4.0

#: the least bound taken, MiB (1 KiB: one request of a few texts; 1e-9 made a bound of 0 bytes)
MIN_REQUEST_MB = 0.001

#: a refused body is read and dropped up to this many times the bound (then the connection is closed unread)
DRAIN_FACTOR = 16

#: the binary extension's header (kserve's INFERENCE_CONTENT_LENGTH_HEADER), the JSON types kserve reads as JSON,
#: and the Expect value of a client that waits before sending its body
BINARY_HEADER = b"inference-header-content-length"
JSON = (b"application/json", b"application/cloudevents+json")
CONTINUE = b"100-continue"

Scope = dict[str, Any]
Message = dict[str, Any]


def too_large_message(size: int | None, max_bytes: int) -> str:
    """The one line a client gets: the body's size when known, and the bound."""
    told = f"{size:,} bytes" if size is not None else f"more than {max_bytes:,} bytes (sent chunked)"
    return f"request body: {told}; this server takes at most {max_bytes:,} bytes per request (--max-request-mb)"


class RequestBody:
    """ASGI middleware: an HTTP request whose body is over `max_bytes` gets 413 ``{"error": ...}`` and never
    reaches the app; any other is passed on with its body replayed, as JSON unless it is marked binary."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, headers = _content_length(scope), dict(scope.get("headers", []))
        if declared is not None and declared > self.max_bytes and headers.get(b"expect", b"").lower() == CONTINUE:
            await _refuse(send, too_large_message(declared, self.max_bytes), closes=True)  # nothing was sent
            return
        if BINARY_HEADER not in headers and headers.get(b"content-type", b"").split(b";")[0].strip() not in JSON:
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-type"]
                         + [(b"content-type", b"application/json")])
        messages: list[Message] = []
        size = 0
        while declared is None or declared <= self.max_bytes:  # a chunked body declares no length: count it
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes or not _more(message):
                break
        if (declared or 0) > self.max_bytes or size > self.max_bytes:
            unread = not messages or _more(messages[-1])
            closes = unread and not await _drained(receive, size, self.max_bytes)
            await _refuse(send, too_large_message(declared, self.max_bytes), closes)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()  # then the client's disconnect, as uvicorn gives it

        await self.app(scope, replayed, send)


def _more(message: Message) -> bool:
    return message["type"] == "http.request" and bool(message.get("more_body", False))


async def _drained(receive: Any, size: int, max_bytes: int) -> bool:
    """Read and drop the rest of a refused body, so that the client, still sending, reads the 413 rather than a
    reset connection; True when it ended within DRAIN_FACTOR times the bound (else the connection is closed)."""
    more = True
    while more and size <= DRAIN_FACTOR * max_bytes:
        message = await receive()
        size += len(message.get("body", b""))
        more = _more(message)
    return not more


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn refuses a malformed length itself
    return None


async def _refuse(send: Any, message: str, closes: bool) -> None:
    log.info("request refused: %s", message)
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413,
                "headers": headers + ([(b"connection", b"close")] if closes else [])})
    await send({"type": "http.response.body", "body": body})
