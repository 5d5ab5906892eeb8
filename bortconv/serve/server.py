"""Run an artifact behind KServe's model server (REST, Open Inference Protocol v2), on one host and port.

Endpoints (KServe's own): ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/NAME``
(metadata), ``GET /v2/models/NAME/ready``, ``POST /v2/models/NAME/infer``.

Two things differ from ``kserve.ModelServer.start``, which this subclass replaces: it binds the host it is
given (kserve hard-codes 0.0.0.0; bortconv defaults to 127.0.0.1), and SIGTERM/SIGINT end it with exit
code 0 after uvicorn's graceful shutdown (no new connections, requests in flight answered, up to
`grace_seconds`). kserve's own handler only stops its multi-process and gRPC servers, and uvicorn re-raises
the signal once it has drained, which would otherwise kill the process by the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bortconv.config import checked_arguments
from bortconv.errors import InputError, MissingDependencyError
from bortconv.runtime.bort import BortRuntime, artifact_name, check_name
from bortconv.serve.batcher import check_batching
from bortconv.serve.body import DEFAULT_MAX_REQUEST_MB, MIN_REQUEST_MB, RequestBody

log = logging.getLogger("bortconv.serve")

LOG_LEVELS = ("debug", "info", "warning", "error")


@contextlib.contextmanager
def _argv_hidden() -> Iterator[None]:
    """kserve parses sys.argv when it is imported; bortconv's own options must not reach its parser."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def import_serving() -> Any:
    """bortconv.serve.model (which imports kserve), or MissingDependencyError naming the extra."""
    import warnings

    # kserve 0.21 passes FastAPI's deprecated ORJSONResponse; nothing a user of bortconv can act on
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    try:
        with _argv_hidden():
            from bortconv.serve import model
    except ImportError as exc:
        raise MissingDependencyError(f"serving needs kserve: pip install 'bortconv[serve]' ({exc.name} is "
                                     f"missing)") from None
    return model


class _OneLineClientErrors(logging.Filter):
    """kserve logs every 4xx it answers (bad input, unknown model) as an ERROR with a traceback; a client's
    mistake is not the server's error: one INFO line instead."""

    HANDLERS = {"invalid_input_handler", "model_not_found_handler", "model_not_ready_handler"}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName in self.HANDLERS and record.exc_info:
            exc = record.exc_info[1]
            record.msg, record.args = "request refused (%s): %s", (type(exc).__name__, exc)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger("kserve").isEnabledFor(logging.INFO)
        return True


#: how pydantic names the members of a union in an error's loc ("parameters", "a", "float"): a type, not a field
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|bytes|none|list|dict|tuple|set)(\[.*\])?$")


def _field_path(loc: Sequence[Any]) -> str:
    """``inputs[0].shape`` for loc ("inputs", 0, "shape"); kserve's model name is not a field."""
    path = ""
    for part in loc:
        if part != "InferenceRequest":
            path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path


def request_error(errors: list[dict[str, Any]]) -> str:
    """One line for FastAPI's validation errors of a request: the body that is not JSON, or the first field that
    does not fit the Open Inference Protocol (``inputs[0].shape: Input should be a valid list``)."""
    # kserve's infer body is Union[InferenceRequest, bytes]: each error's loc is ("body", the alternative, field...);
    # the bytes alternative's own complaint says nothing to a client who sent JSON
    errors = [e for e in errors if tuple(e.get("loc", ()))[1:2] != ("bytes",)] or errors
    if not errors:
        return "request body: not a valid inference request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error")
        return f"request body: not JSON{f' ({why})' if why else ''}"
    loc = tuple(first.get("loc", ()))[1:]
    # a value that fits none of a union's members (parameters' values) fails once per member, each loc ending in
    # the member's type: one complaint about the field, naming the types it may have
    members = [e["loc"][-1] for e in errors if tuple(e.get("loc", ()))[1:-1] == loc[:-1]
               and isinstance(e["loc"][-1], str) and _UNION_MEMBER.match(e["loc"][-1])]
    if len(members) > 1 and loc[-1] in members:
        loc, message = loc[:-1], f"Input should be one of {', '.join(members)}"
    else:
        members, message = [], first.get("msg", "invalid")
    path = _field_path(loc)
    if not path and first.get("type") == "missing":
        return "request body: empty"
    others = len(errors) - max(len(members), 1)
    more = f" (and {others} more)" if others else ""
    return " ".join(f"request field {path or 'body'}: {message}{more}".split())  # one line


async def _invalid_request(_: Any, exc: Any) -> Any:
    """FastAPI answers a body it cannot parse with 422 {"detail": [...]}; kserve answers its bad input with
    400 {"error": "..."}. One form for every bad request, as kserve's: 400 and one line naming the field."""
    from fastapi.responses import JSONResponse

    message = request_error(exc.errors())
    log.info("request refused: %s", message)
    return JSONResponse(status_code=400, content={"error": message})


#: what FastAPI says of a body it cannot decode (bytes that are not UTF-8, JSON nested past Python's recursion limit)
_UNPARSABLE = "There was an error parsing the body"


async def _http_error(_: Any, exc: Any) -> Any:
    """Starlette's own refusals (a body FastAPI cannot decode, a method a route does not take) answer
    ``{"detail": ...}``; one form for every refusal, as kserve's: ``{"error": one line}``."""
    from fastapi.responses import JSONResponse

    detail = " ".join(str(exc.detail).split())
    message = "request body: not JSON (not UTF-8, or nested too deeply to parse)" if detail == _UNPARSABLE else detail
    log.info("request refused: %s", message)
    return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=getattr(exc, "headers", None))


#: how kserve's InferenceError begins when a binary-extension BYTES element is not UTF-8 (its decoding of the request,
#: before any model code runs; kserve answers every InferenceError with 500)
_NOT_UTF8 = "Failed to encode"


async def _inference_error(request: Any, exc: Any) -> Any:
    """A BYTES element of a binary request that is not UTF-8 is the client's mistake: 400, one line, as the JSON
    path's lone surrogate. Any other InferenceError is kserve's own (500). kserve raises the same words when a
    response's BYTES do not encode, but this server's only BYTES output is `label`, config.json's strings."""
    from fastapi.responses import JSONResponse
    from kserve.errors import inference_error_handler

    if not str(exc).startswith(_NOT_UTF8):
        return await inference_error_handler(request, exc)
    message = "request body: a BYTES element of the binary data is not UTF-8 text"
    log.info("request refused: %s", message)
    return JSONResponse(status_code=400, content={"error": message})


def configure_logging(level: str) -> None:
    """Per-request lines (logger bortconv.serve, INFO) and kserve's/uvicorn's logs at `level`."""
    if level not in LOG_LEVELS:
        raise InputError(f"--log-level {level!r}: choose one of {', '.join(LOG_LEVELS)}")
    numeric = getattr(logging, level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    serve_log = logging.getLogger("bortconv.serve")
    serve_log.handlers = [handler]
    serve_log.propagate = False
    serve_log.setLevel(numeric)
    for name in ("kserve", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(numeric)
    kserve_log = logging.getLogger("kserve")
    if not any(isinstance(f, _OneLineClientErrors) for f in kserve_log.filters):
        kserve_log.addFilter(_OneLineClientErrors())
    # kserve.trace times every request twice (wall, cpu): debug only, like uvicorn's access line
    logging.getLogger("kserve.trace").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # uvicorn's access line repeats bortconv's per-request line: shown at debug only
    logging.getLogger("uvicorn.access").setLevel(max(numeric, logging.DEBUG if level == "debug" else logging.WARNING))


def _server_class(kserve: Any, max_request_bytes: int) -> type:
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    class _RESTServer(RESTServer):  # type: ignore[misc]
        """kserve's REST server, with FastAPI's request validation answered as kserve answers bad input, and a
        bound on a request body's size (:mod:`bortconv.serve.body`)."""

        def _add_middlewares(self, app: Any) -> None:
            super()._add_middlewares(app)
            app.add_middleware(RequestBody, max_bytes=max_request_bytes)  # outermost: before anything reads the body

        def _add_exception_handlers(self, app: Any) -> None:
            from fastapi.exceptions import RequestValidationError
            from kserve.errors import InferenceError
            from starlette.exceptions import HTTPException

            super()._add_exception_handlers(app)
            app.add_exception_handler(RequestValidationError, _invalid_request)
            app.add_exception_handler(HTTPException, _http_error)
            app.add_exception_handler(InferenceError, _inference_error)

    class HostServer(kserve.ModelServer):  # type: ignore[misc, name-defined]
        """kserve.ModelServer, one REST worker, bound to `host`, no gRPC (module docstring)."""

        def __init__(self, host: str, **kwargs: Any) -> None:
            super().__init__(workers=1, enable_grpc=False, enable_latency_logging=False, **kwargs)
            self.host = host

        def start(self, models: list[Any]) -> None:
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = _RESTServer(FASTAPI_APP_IMPORT_STRING, self.dataplane,
                                           self.model_repository_extension, self.http_port,
                                           access_log_format=self.access_log_format, workers=1,
                                           grace_period=self.grace_period, event_loop=self.event_loop,
                                           timeout_keep_alive=self.timeout_keep_alive)
            self._rest_server.config.host = self.host
            self.servers.append(self._rest_server.start())
            asyncio.run(self._serve())

    return HostServer


@contextlib.contextmanager
def _signals_noted() -> Iterator[list[int]]:
    """While serving, SIGTERM/SIGINT are uvicorn's (it drains); the copy it re-raises afterwards lands here."""
    seen: list[int] = []
    held = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, lambda signum, frame: seen.append(signum)) for s in held}
    try:
        yield seen
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_listen(host: str, port: int) -> None:
    """Refuse a port that cannot be listened on now (in use, or not a port) with exit 2, not uvicorn's exit 1."""
    import socket

    if not 0 < port < 65536:
        raise InputError(f"--port {port}: not a TCP port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as exc:
        raise InputError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


@checked_arguments
def serve(artifact_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8080, name: str | None = None,
          log_level: str = "info", cache_dir: str | Path | None = None, threads: int | None = None,
          tokenizer: str = "auto", max_batch: int = 64, max_wait_ms: float = 5.0,
          grace_seconds: int = 30, max_request_mb: float = DEFAULT_MAX_REQUEST_MB,
          announce: Callable[[dict[str, object]], None] | None = None) -> int:
    """Serve the artifact until SIGTERM or SIGINT; returns 0 after a clean drain. `announce` gets the model's
    name, URL, task, tokenizer backend and load time once the model is loaded, as the server starts. A request
    body over `max_request_mb` MiB gets 413.

    Bad input (not an artifact, a bad option, no tokenizer) raises a BortconvError before anything listens."""
    configure_logging(log_level)
    check_batching(max_batch, max_wait_ms)  # before the model loads (the batcher checks again)
    if not MIN_REQUEST_MB <= max_request_mb < 2**20:  # also refuses NaN and infinity
        raise InputError(f"--max-request-mb {max_request_mb}: must be at least {MIN_REQUEST_MB} and less than "
                         f"1048576")
    if grace_seconds < 0:
        raise InputError(f"grace_seconds {grace_seconds}: must be 0 or more", option="grace_seconds")
    if announce is not None and not callable(announce):
        raise InputError(f"announce: {type(announce).__name__} is not callable", option="announce")
    model_name = check_name(name) if name is not None else artifact_name(artifact_dir)
    _check_listen(host, port)
    serving = import_serving()
    runtime = BortRuntime(artifact_dir, threads=threads, tokenizer=tokenizer, cache_dir=cache_dir)
    runtime.tokenizer  # noqa: B018 - a server that cannot read text must fail now, with exit 2
    model = serving.BortModel(model_name, runtime, max_batch=max_batch, max_wait_ms=max_wait_ms)
    import kserve

    server = _server_class(kserve, int(max_request_mb * 2**20))(host, http_port=port, grace_period=grace_seconds)
    configure_logging(log_level)  # kserve configured its loggers when the server was made; ours win
    log.warning("serving %s (%s, %s tokenizer, load %.2f s) as %r on http://%s:%d", artifact_dir, runtime.task,
                runtime.tokenizer_backend, runtime.load_seconds, model_name, host, port)
    if announce is not None:
        announce({"model": model_name, "url": f"http://{host}:{port}/v2/models/{model_name}", "task": runtime.task,
                  "tokenizer": runtime.tokenizer_backend, "load_seconds": round(runtime.load_seconds, 3)})
    with _signals_noted() as seen:
        server.start([model])
    model.batcher.shutdown()
    log.warning("stopped%s after %d batched calls (%d texts)", f" on signal {seen[0]}" if seen else "",
                model.batcher.calls, model.batcher.items_run)
    return 0
