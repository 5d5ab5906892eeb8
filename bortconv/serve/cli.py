"""`bortconv serve ARTIFACT_DIR [--host 127.0.0.1] [--port N] [--name NAME] [--log-level L] [--cache-dir DIR]`."""

from __future__ import annotations

import argparse
import json
import sys

from bortconv.config import THREADS_HELP, TOKENIZER_BACKENDS
from bortconv.serve.body import DEFAULT_MAX_REQUEST_MB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument("artifact", metavar="ARTIFACT_DIR", help="an artifact directory written by bortconv export")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--name", help="model name in the URLs (default: the artifact directory's name)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="info logs one line per request (default info)")
    parser.add_argument("--cache-dir", help="OpenVINO compiled-model cache: later starts load it instead of "
                                            "compiling (OpenVINO artifacts)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--tokenizer", default="auto", choices=TOKENIZER_BACKENDS,
                        help="tokenizer.json via `tokenizers`, or the OpenVINO tokenizer IR (default auto: "
                             "tokenizers if installed)")
    parser.add_argument("--max-batch-size", type=int, default=64,
                        help="texts one batched call may hold (default 64)")
    parser.add_argument("--max-batch", type=int, dest="max_batch_size", help=argparse.SUPPRESS,
                        action=_deprecated("--max-batch-size"))
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long the first request of a call waits for others (default 5 ms)")
    parser.add_argument("--max-request-mb", type=float, default=DEFAULT_MAX_REQUEST_MB,
                        help="a larger request body gets 413 before it is read further (default "
                             f"{DEFAULT_MAX_REQUEST_MB:g} MiB: texts are tokenized whole, ~16 bytes per character)")
    parser.add_argument("--json", action="store_true",
                        help="when ready, one JSON line on stdout: model, url, task, tokenizer, load seconds")


def _deprecated(instead: str) -> type[argparse.Action]:
    class Deprecated(argparse._StoreAction):  # an old spelling kept for one release: warns, then stores
        def __call__(self, parser, ns, values, option_string=None):  # type: ignore[no-untyped-def]
            print(f"bortconv: warning: {option_string} is deprecated; use {instead}", file=sys.stderr)
            super().__call__(parser, ns, values, option_string)
    return Deprecated


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean drain (bad input raises BortconvError: exit 2)."""
    from bortconv.serve.server import serve

    def announce(info: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(info, sort_keys=True) + "\n")
        sys.stdout.flush()

    return serve(args.artifact, host=args.host, port=args.port, name=args.name, log_level=args.log_level,
                 cache_dir=args.cache_dir, threads=args.threads, tokenizer=args.tokenizer,
                 max_batch=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_request_mb=args.max_request_mb,
                 announce=announce if args.json else None)
