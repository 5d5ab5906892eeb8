"""`bortconv serve`: a real KServe model server in a subprocess on 127.0.0.1, spoken to with a real HTTP client.

Every wait is bounded (server start 120 s, a request 60 s, shutdown 60 s) and every loop has a fixed count.
Results are compared with BortRuntime run directly on the same texts: within 1e-5 (fp32; the server merges
concurrent requests, so a text is padded with different neighbours than in the direct call).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from test_ov_tokenizer import HELDOUT, long_texts, ov_artifact, with_ov_tokenizer

from bortconv.bench.cold_start import measure_cold_start
from bortconv.errors import InputError
from bortconv.runtime.bort import BortRuntime
from bortconv.serve.body import too_large_message

TOL = 1e-5
CLIENTS, PER_CLIENT = 8, 96  # 8 concurrent clients x 96 requests each (768 in all)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def infer(self, texts: list[str], pairs: list[str] | None = None, model: str = "bort",
              session: requests.Session | None = None) -> requests.Response:
        inputs = [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]
        if pairs is not None:
            inputs.append({"name": "text_b", "shape": [len(pairs)], "datatype": "BYTES", "data": pairs})
        return (session or requests).post(f"{self.url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=60)

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/v2/health/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> int:
        """SIGTERM; the exit code (bounded wait)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(artifact_dir: Path, log: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bortconv.serve", str(artifact_dir), "--port", str(port),
                                 "--name", "bort", "--log-level", "info", "--threads", "2", *extra],
                                stdout=subprocess.DEVNULL, stderr=err)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 120
        while not server.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            server.stop()


def outputs(resp: requests.Response) -> dict[str, np.ndarray]:
    assert resp.status_code == 200, resp.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in resp.json()["outputs"]}


#: the v2 binary extension's datatypes, as numpy reads them
BINARY_DTYPES = {"FP32": np.float32, "INT64": np.int64}


def binary_outputs(resp: requests.Response) -> dict[str, np.ndarray]:
    """A response in the binary extension: a JSON header of Inference-Header-Content-Length bytes, then each
    output's raw little-endian bytes, in order (binary_data_size each)."""
    head = int(resp.headers["inference-header-content-length"])
    meta, raw, out = json.loads(resp.content[:head]), resp.content[head:], {}
    for o in meta["outputs"]:
        size = o["parameters"]["binary_data_size"]
        out[o["name"]] = np.frombuffer(raw[:size], BINARY_DTYPES[o["datatype"]]).reshape(o["shape"])
        raw = raw[size:]
    assert raw == b""
    return out


# ---------------------------------------------------------------------------------------------- MiniLM server


@pytest.fixture(scope="module")
def minilm(artifact, tmp_path_factory) -> Iterator[tuple[Server, BortRuntime]]:
    """all-MiniLM-L6-v2 served with the OpenVINO tokenizer IR; the runtime to compare with. Teardown: SIGTERM
    after everything the module sent, which must end the process with 0."""
    d = tmp_path_factory.mktemp("serve-minilm")
    art = with_ov_tokenizer(ov_artifact(artifact, "minilm"), d / "art")
    with serving(art, d / "server.log", "--tokenizer", "openvino") as server:
        yield server, BortRuntime(art, threads=2)
        assert server.stop() == 0, server.log.read_text()[-3000:]


def test_metadata_and_health(minilm):
    server, _ = minilm
    meta = requests.get(f"{server.url}/v2/models/bort", timeout=10).json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("text", "BYTES", [-1]),
                                                                             ("text_b", "BYTES", [-1])]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert requests.get(f"{server.url}/v2/models/bort/ready", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200


def test_embeddings_equal_the_runtime(minilm):
    server, rt = minilm
    texts = HELDOUT[:6] + long_texts()[:1] + ["", "Café naïve 中文 😀"]
    got = outputs(server.infer(texts))["embedding"]
    want = rt.encode(texts)
    assert got.shape == (len(texts), 384) and np.abs(got - want).max() <= TOL
    got = outputs(server.infer(texts[:3], texts[3:6]))["embedding"]
    assert np.abs(got - rt.encode(texts[:3], text_pairs=texts[3:6])).max() <= TOL


def test_concurrent_clients(minilm):
    """8 clients x 96 requests each (768) of 1-2 texts: 0 errors, every result the runtime's."""
    server, rt = minilm
    pool = HELDOUT[:200]
    want = dict(zip(pool, rt.encode(pool)))
    errors, worst, lock = [], [0.0], threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            for _ in range(PER_CLIENT):
                texts = rng.sample(pool, rng.randint(1, 2))
                try:
                    got = outputs(server.infer(texts, session=session))["embedding"]
                    diff = float(np.abs(got - np.stack([want[t] for t in texts])).max())
                    with lock:
                        worst[0] = max(worst[0], diff)
                except Exception as exc:  # counted, not raised: the number of errors is the assertion
                    with lock:
                        errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and worst[0] <= TOL, (errors[:3], worst)


def test_a_failing_request_does_not_fail_the_requests_batched_with_it(minilm):
    """Two requests merged into one call, one of which the runtime refuses (a lone surrogate, which the server's
    request check now stops first): the call fails, each request is run alone, and only the bad one fails (both
    got the error, HTTP 500, when a client sent "\udcff" beside another's text)."""
    import asyncio

    from bortconv.serve.batcher import LengthBatcher

    _, rt = minilm
    calls: list[int] = []

    def run(items: list) -> list:
        calls.append(len(items))
        return list(rt.encode([text for text, _ in items]))

    batcher = LengthBatcher(run, max_wait_ms=500)

    async def together() -> list:
        return await asyncio.gather(batcher.submit([("hello world", None), ("a second text", None)]),
                                    batcher.submit([("\udcff", None)]), return_exceptions=True)
    try:
        good, bad = asyncio.run(together())
    finally:
        batcher.shutdown()
    assert isinstance(bad, InputError) and bad.message.startswith("texts[0]: not valid Unicode text"), bad
    assert np.abs(np.stack(good) - rt.encode(["hello world", "a second text"])).max() <= TOL
    assert calls == [3, 2, 1]  # merged, then each alone (one call's order: the queue's)
    assert (batcher.calls, batcher.items_run) == (1, 2)  # only the good request's call succeeded


MALFORMED = [  # (row, path, body, expected status, what the error names)
    ("not JSON", "bort", b"{this is not json", 400, "request body: not JSON (Expecting property name"),
    ("empty body", "bort", b"", 400, "request body: empty"),
    ("inputs not a list", "bort", {"inputs": "text"}, 400, "request field inputs: Input should be a valid list"),
    ("shape not a list", "bort", {"inputs": [{"name": "text", "shape": "1", "datatype": "BYTES", "data": ["a"]}]},
     400, "request field inputs[0].shape: Input should be a valid list"),
    ("parameter of no allowed type", "bort", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                          "data": ["a"]}], "parameters": {"top_k": [1]}},
     400, "request field parameters.top_k: Input should be one of float, int, bool, str"),  # no type tag as a field
    ("a text ending in NUL, OpenVINO tokenizer", "bort", {"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["ok", "bad\u0000"]}]},
     400, "input 'text': element 1 ends with a NUL character"),  # named texts[1], the runtime's argument
    ("an output the model has not", "bort", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                         "data": ["a"]}], "outputs": [{"name": "logits"}]},
     400, "output 'logits' is not one of this model's: embedding"),
    ("top_k for another task", "bort", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                    "data": ["a"]}], "parameters": {"top_k": 5}},
     400, "parameter 'top_k' is for fill-mask models; this one is feature-extraction"),
    ("no inputs", "bort", {"inputs": []}, 400, "no inputs"),
    ("lone surrogate", "bort", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["\udcff"]}]},
     400, "input 'text': element 0 is not valid Unicode text (surrogates not allowed at character 0)"),
    ("body not UTF-8", "bort", b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["\xff"]}]}',
     400, "request body: not JSON (not UTF-8, or nested too deeply to parse)"),
    ("wrong datatype", "bort", {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.5]}]},
     400, "must be BYTES"),
    ("wrong shape", "bort", {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
     400, "shape [n]"),
    ("2-D shape", "bort", {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]},
     400, "shape [n]"),
    ("unknown input", "bort", {"inputs": [{"name": "sentence", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     400, "unknown input 'sentence'"),
    ("pair without text", "bort", {"inputs": [{"name": "text_b", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     400, "needs 'text'"),
    ("pair count differs", "bort", {"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
        {"name": "text_b", "shape": [1], "datatype": "BYTES", "data": ["c"]}]}, 400, "but 'text_b' 1"),
    ("too many texts", "bort", {"inputs": [{"name": "text", "shape": [300], "datatype": "BYTES",
                                            "data": ["a"] * 300}]}, 400, "send 1 to 256"),
    ("unknown model", "nope", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     404, "nope"),
]


@pytest.mark.parametrize(("row", "model", "body", "status", "says"), MALFORMED, ids=[r[0] for r in MALFORMED])
def test_malformed_requests_get_4xx_and_the_server_stays_ready(row, model, body, status, says, minilm):
    server, rt = minilm
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = requests.post(f"{server.url}/v2/models/{model}/infer", data=data, timeout=30,
                         headers={"content-type": "application/json"})
    assert resp.status_code == status and says.lower() in resp.text.lower(), resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert list(resp.json()) == ["error"] and "\n" not in resp.json()["error"], resp.text  # docs/deploy.md's form
    assert server.ready()
    assert np.abs(outputs(server.infer(["still serving"]))["embedding"] - rt.encode(["still serving"])).max() <= TOL


def _chunks(body: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    """A generator body: requests sends it chunked, with no Content-Length to refuse it by."""
    for i in range(0, len(body), size):
        yield body[i:i + size]


LONG_TEXT = " ".join(HELDOUT) * 40  # far past 512 tokens: truncated by the runtime, as one text of a big request

BODY_SIZES = [  # (row, texts, chunked, expected status): the served default bound is 4 MiB
    ("1 MB of long texts, declared", [LONG_TEXT[:60_000]] * 16, False, 200),
    ("1 MB of long texts, chunked", [LONG_TEXT[:60_000]] * 16, True, 200),
    ("5 MB, declared", [LONG_TEXT[:20_000]] * 256, False, 413),
    ("5 MB, chunked", [LONG_TEXT[:20_000]] * 256, True, 413),
]


@pytest.mark.parametrize(("row", "texts", "chunked", "status"), BODY_SIZES, ids=[r[0] for r in BODY_SIZES])
def test_a_body_over_the_bound_gets_413_before_it_is_tokenized(row, texts, chunked, status, minilm):
    """A body over --max-request-mb (4 MiB by default) is refused with 413 and one line, declared or chunked, and
    the client gets the answer rather than a reset connection; a large body under the bound is served."""
    server, rt = minilm
    body = json.dumps({"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]})
    resp = requests.post(f"{server.url}/v2/models/bort/infer", data=_chunks(body.encode()) if chunked
                         else body.encode(), headers={"content-type": "application/json"}, timeout=60)
    assert resp.status_code == status, resp.text[:500]
    if status == 413:
        assert resp.json() == {"error": too_large_message(None if chunked else len(body.encode()), 4 << 20)}
        assert resp.json()["error"].startswith("request body: more than 4,194,304 bytes (sent chunked); this server"
                                               if chunked else f"request body: {len(body.encode()):,} bytes; this")
    else:
        assert np.abs(outputs(resp)["embedding"][-1] - rt.encode(texts[-1:])[0]).max() <= TOL
    assert np.abs(outputs(server.infer(["still serving"]))["embedding"] - rt.encode(["still serving"])).max() <= TOL


def _through_body_limit(messages: list[dict], headers: list[tuple[bytes, bytes]], max_bytes: int) -> tuple[int, bytes]:
    """(status, body the app saw) for a request of `messages` through RequestBody alone, with an app answering 200
    with the body it read: the bound's edges, without a server."""
    import asyncio

    from bortconv.serve.body import RequestBody

    seen, sent = bytearray(), []
    feed = iter(messages)

    async def app(scope, receive, send):
        more = True
        while more:
            m = await receive()
            seen.extend(m.get("body", b""))
            more = m.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive():
        return next(feed, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    asyncio.run(RequestBody(app, max_bytes)({"type": "http", "headers": headers}, receive, send))
    return sent[0]["status"], bytes(seen)


def _chunks_of(*sizes: int) -> list[dict]:
    return [{"type": "http.request", "body": b"x" * n, "more_body": i < len(sizes) - 1} for i, n in enumerate(sizes)]


BOUND_EDGES = [  # (row, messages, headers, status): the bound is 10 bytes
    ("declared, exactly the bound", _chunks_of(10), [(b"content-length", b"10")], 200),
    ("declared, one byte over", _chunks_of(11), [(b"content-length", b"11")], 413),
    ("chunked, exactly the bound, with empty chunks", _chunks_of(0, 4, 0, 6, 0), [], 200),
    ("chunked, one byte over", _chunks_of(4, 7), [], 413),
    ("over, and waiting for 100 Continue (any case)", [], [(b"content-length", b"11"), (b"expect", b"100-Continue")],
     413),  # answered before a byte is read: the feed is empty
]


@pytest.mark.parametrize(("row", "messages", "headers", "status"), BOUND_EDGES, ids=[r[0] for r in BOUND_EDGES])
def test_the_body_bound_at_its_edges(row, messages, headers, status):
    got, seen = _through_body_limit(messages, headers, 10)
    assert got == status
    assert seen == (b"".join(m["body"] for m in messages) if status == 200 else b"")  # a refused body never reaches it


def _binary(element: bytes) -> tuple[bytes, dict[str, str]]:
    """A request in the Open Inference Protocol's binary extension: a JSON header, then one length-prefixed BYTES
    element (what tritonclient sends with binary_data=True)."""
    header = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 4 + len(element)}}]}).encode()
    return (header + len(element).to_bytes(4, "little") + element,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})


STILL = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["still serving"]}]})
HEADER_CASES = [  # (row, body, headers, expected status, the error or None)
    ("no Content-Type: JSON, as Triton reads it", STILL.encode(), {}, 200, None),  # was 400 asking for the binary
    ("form-encoded, as curl -d sends it", STILL.encode(), {"Content-Type": "application/x-www-form-urlencoded"},
     200, None),  # header of the binary extension
    ("binary extension, UTF-8", *_binary(b"still serving"), 200, None),
    ("binary extension, not UTF-8", *_binary(b"\xff\xfe"), 400,
     "request body: a BYTES element of the binary data is not UTF-8 text"),  # was 500 and a logged traceback
]


@pytest.mark.parametrize(("row", "body", "headers", "status", "says"), HEADER_CASES, ids=[r[0] for r in HEADER_CASES])
def test_a_body_is_json_unless_marked_binary(row, body, headers, status, says, minilm):
    server, rt = minilm
    resp = requests.post(f"{server.url}/v2/models/bort/infer", data=body, headers=headers, timeout=60)
    assert resp.status_code == status, resp.text
    if says:
        assert resp.json() == {"error": says}
    else:
        assert np.abs(outputs(resp)["embedding"] - rt.encode(["still serving"])).max() <= TOL


def test_a_client_waiting_for_100_continue_gets_the_413_without_sending(minilm):
    """curl sends `Expect: 100-continue` for a body over 1 MB and waits before sending it: a body declared over the
    bound is refused at once (it was sent 100 Continue and drained, up to 64 MiB)."""
    import http.client

    server, _ = minilm
    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=20)
    conn.putrequest("POST", "/v2/models/bort/infer")
    for name, value in (("Content-Type", "application/json"), ("Content-Length", str(5 << 20)),
                        ("Expect", "100-continue")):
        conn.putheader(name, value)
    conn.endheaders()  # and no body
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())["error"]) == (413, too_large_message(5 << 20, 4 << 20))
    conn.close()
    assert server.ready()


# ---------------------------------------------------------------------------------------------- classifier


def test_classifier_served_then_sigterm_drains(artifact, tmp_path):
    """Bort text-classification (logits + labels, singles and pairs); then SIGTERM with requests in flight:
    every one of them is answered, the process exits 0, and the log holds one line per request."""
    art = with_ov_tokenizer(ov_artifact(artifact, "bort2_cls_fp16"), tmp_path / "art")
    rt = BortRuntime(art, threads=2)
    texts = HELDOUT[20:26] + long_texts()[2:]
    with serving(art, tmp_path / "server.log") as server:
        out = outputs(server.infer(texts, texts[::-1]))
        want = rt.predict(texts, text_pairs=texts[::-1])
        assert np.abs(out["logits"] - np.array([p["logits"] for p in want])).max() <= TOL
        assert out["label"].tolist() == [p["label"] for p in want]
        results: list[int] = []
        def client() -> None:
            results.append(server.infer(long_texts() * 4).status_code)
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # the requests are in flight (each takes longer than this on 2 cores)
        code = server.stop()
        for t in threads:
            t.join(timeout=60)
    log = (tmp_path / "server.log").read_text()
    assert code == 0, log[-3000:]
    assert results == [200] * 6, (results, log[-3000:])
    assert len(re.findall(r"bortconv\.serve INFO infer bort ", log)) == 7
    assert "stopped on signal 15" in log


#: a 1-layer Bort with an MLM head and Bort's 50,265-token vocabulary: text in, the whole vocabulary out
TINY_MLM = dict(num_layers=1, num_heads=2, intermediate_size=64, hidden_size=32, vocab_size=50265,
                max_position_embeddings=512)
#: fill-mask probabilities, relative: a probability moves by the fraction its logit moves less the log-normaliser's
#: move; the fused fp32 graph's logits are within about 2e-4 of PyTorch's over the 50,265-wide decoder (measured:
#: 3.7e-4 at most on these texts)
SCORE_RTOL = 1e-3
#: 1 to 512 tokens: the longest cut to the model's 512 positions by both tokenizers
FILL_MASK_TEXTS = ["The capital of France is Paris.", "a", HELDOUT[3], " ".join(HELDOUT[:12]), " ".join(HELDOUT) * 4]


@pytest.fixture(scope="module")
def tiny_fill_mask(bort_tokenizer_files, tmp_path_factory) -> tuple[Path, Path]:
    """(Hugging Face directory, its ONNX fill-mask artifact), with Bort's tokenizer."""
    import bortconv
    from bortconv.config import BortVariant, Head
    from bortconv.converters.demo import demo_arrays
    from bortconv.converters.params_writer import write_params

    d = tmp_path_factory.mktemp("fill-mask")
    write_params(d / "tiny.params", demo_arrays(BortVariant(**TINY_MLM), seed=5, dtype="float32", head=Head.MLM))
    vocab, merges = bort_tokenizer_files
    bortconv.convert(d / "tiny.params", d / "hf", heads=TINY_MLM["num_heads"], vocab=vocab, merges=merges)
    bortconv.export(d / "hf", d / "onnx", target="onnx", task="fill-mask", threads=2, bench=False, progress=False)
    return d / "hf", d / "onnx"


def _transformers_probs(hf: Path, texts: list[str]) -> tuple[list[list[int]], list[np.ndarray]]:
    """transformers' own tokenizer ids and softmax over the vocabulary at every position, text by text."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(str(hf)), AutoModelForMaskedLM.from_pretrained(str(hf)).eval()
    ids = [tok(t, truncation=True, max_length=512)["input_ids"] for t in texts]
    with torch.inference_mode():
        probs = [torch.softmax(model(torch.tensor([i])).logits[0], dim=-1).numpy() for i in ids]
    return ids, probs


FILL_MASK_REFUSED = [({"top_k": 0}, "parameter 'top_k' must be an integer from 1 to 100, got 0"),
                     ({"top_k": 101}, "got 101"), ({"top_k": "3"}, "got '3'"), ({"top_k": True}, "got True")]


def test_fill_mask_answers_the_top_k_tokens_as_transformers_scores_them(tiny_fill_mask, tmp_path):
    """A fill-mask server answers the top_k tokens at every position with their probabilities, the ids the texts
    became and the mask, not the [n, L, vocab] logits (one 512-token Bort text would be 25.7 M floats). The
    reference is transformers' model and tokenizer on the same Hugging Face directory: the ids equal, and at every
    position the scores are the reference's top_k probabilities and the ids picked carry them (ties either way)."""
    hf, art = tiny_fill_mask
    ref_ids, ref_probs = _transformers_probs(hf, FILL_MASK_TEXTS)
    with serving(art, tmp_path / "server.log") as server:
        inputs = [{"name": "text", "shape": [len(FILL_MASK_TEXTS)], "datatype": "BYTES", "data": FILL_MASK_TEXTS}]
        answers = {k: requests.post(f"{server.url}/v2/models/bort/infer", json={"inputs": inputs, **(
            {"parameters": {"top_k": k}} if k else {})}, timeout=60) for k in (None, 3)}
        # only the outputs asked for; all of them in the binary extension (Triton's clients ask for it by default)
        named = requests.post(f"{server.url}/v2/models/bort/infer", json={
            "inputs": inputs, "outputs": [{"name": "token_ids"}], "parameters": {"top_k": 3}}, timeout=60)
        binary = requests.post(f"{server.url}/v2/models/bort/infer", json={
            "inputs": inputs, "parameters": {"top_k": 3, "binary_data_output": True}}, timeout=60)
        refused = [requests.post(f"{server.url}/v2/models/bort/infer", json={"inputs": inputs, "parameters": params},
                                 timeout=60) for params, _ in FILL_MASK_REFUSED]
        # the answer's bound, judged on the request's own token counts before the model runs: 256 texts of 3 tokens
        # at top_k 100 are answered; 256 of 512 at top_k 17 (2,228,224 predictions) are refused
        many = {k: requests.post(f"{server.url}/v2/models/bort/infer", json={"inputs": [
            {"name": "text", "shape": [256], "datatype": "BYTES", "data": [text] * 256}], "parameters": {"top_k": k}},
            timeout=60) for k, text in ((100, "a"), (17, LONG_TEXT[:4000]))}
        meta = requests.get(f"{server.url}/v2/models/bort", timeout=10).json()
        triton = _tritonclient_answers(server.url, FILL_MASK_TEXTS)
    longest = max(map(len, ref_ids))
    for k, resp in answers.items():
        out, k = outputs(resp), k or 5  # transformers' pipeline default
        n_texts = len(FILL_MASK_TEXTS)
        assert longest == 512 and {n: out[n].shape for n in out} == {
            "token_ids": (n_texts, longest, k), "scores": (n_texts, longest, k), "input_ids": (n_texts, longest),
            "attention_mask": (n_texts, longest)}
        for i, (ids, probs) in enumerate(zip(ref_ids, ref_probs)):
            n = len(ids)
            assert out["input_ids"][i, :n].tolist() == ids and out["attention_mask"][i].tolist() == [1] * n + [0] * (
                longest - n)
            want, got = -np.sort(-probs, axis=1)[:, :k], out["scores"][i, :n]
            # relative: a random model spreads its probability thin (about 1/50,265 a token)
            assert np.abs(got / want - 1).max() <= SCORE_RTOL
            assert np.abs(np.take_along_axis(probs, out["token_ids"][i, :n], axis=1) / got - 1).max() <= SCORE_RTOL
            assert (out["token_ids"][i, n:] == -1).all() and not out["scores"][i, n:].any()
            assert (out["input_ids"][i, n:] == -1).all()
    assert list(outputs(named)) == ["token_ids"] and (outputs(named)["token_ids"] == outputs(answers[3])[
        "token_ids"]).all()
    assert binary.status_code == 200 and binary_outputs(binary).keys() == outputs(answers[3]).keys()
    assert all((binary_outputs(binary)[n] == a).all() for n, a in outputs(answers[3]).items())
    assert outputs(many[100])["token_ids"].shape == (256, 3, 100)
    assert many[17].status_code == 400 and many[17].json()["error"].startswith(
        "the answer would hold 2,228,224 predictions (256 texts x 512 tokens x top_k 17)"), many[17].text
    for (params, says), resp in zip(FILL_MASK_REFUSED, refused):
        assert resp.status_code == 400 and says in resp.json()["error"], (params, resp.text)
    assert [o["name"] for o in meta["outputs"]] == ["token_ids", "scores", "input_ids", "attention_mask"]
    full = outputs(answers[3])
    assert triton["all"].keys() == full.keys() and all((triton["all"][n] == a).all() for n, a in full.items())
    assert triton["named"].keys() == {"token_ids", "scores"}
    assert (triton["named"]["token_ids"] == full["token_ids"]).all() and (triton["named"]["scores"] == full[
        "scores"]).all()
    assert triton["unknown"] == ("[400] output 'logits' is not one of this model's: token_ids, scores, input_ids, "
                                 "attention_mask")


def _tritonclient_answers(url: str, texts: list[str]) -> dict:
    """What Triton's own HTTP client (tritonclient.http) gets from the server at top_k 3: every output (it asks for
    the binary extension by default), two named ones (one binary, one JSON), and its error for an output the model
    has not. The client sends its input in the binary extension too."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=60.0)
    text = triton.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))

    def ask(*names: tuple[str, bool]) -> triton.InferResult:
        wanted = [triton.InferRequestedOutput(name, binary_data=binary) for name, binary in names] or None
        return client.infer("bort", [text], outputs=wanted, parameters={"top_k": 3})

    try:
        every = ask()
        out = {"all": {o["name"]: every.as_numpy(o["name"]) for o in every.get_response()["outputs"]}}
        named = ask(("token_ids", True), ("scores", False))
        out["named"] = {o["name"]: named.as_numpy(o["name"]) for o in named.get_response()["outputs"]}
        try:
            ask(("logits", True))
        except InferenceServerException as err:
            out["unknown"] = f"[{err.status()}] {err.message()}"
        else:
            pytest.fail("the server answered a request for an output the model has not")
        return out
    finally:
        client.close()


#: (rows, width, k, values rounded to halves: many ties) of the top-k selection's table
LARGEST = [(128, 50265, 5, False), (7, 50265, 100, False), (9, 4000, 100, True), (3, 30, 30, True),
           (3, 30, 7, True), (5, 1000, 1, True)]


@pytest.mark.parametrize("rows,width,k,ties", LARGEST, ids=[f"{r}x{w}-k{k}{'-ties' * t}" for r, w, k, t in LARGEST])
def test_the_top_k_selection_is_a_full_sort_s_head(rows, width, k, ties):
    """BortRuntime's top-k (a bound from block maxima, then a sort of what passes it) gives what sorting each row
    whole does, ties to the lower id: numpy's lexsort is the reference."""
    from bortconv.runtime.bort import largest

    z = np.random.default_rng(rows + k).standard_normal((rows, width)).astype(np.float32)
    z = np.round(z * 2) / 2 if ties else z
    ids = np.lexsort((np.broadcast_to(np.arange(width), z.shape), -z), axis=1)[:, :k]
    got_ids, got = largest(z, k)
    assert (got_ids == ids).all() and (got == np.take_along_axis(z, ids, axis=1)).all()


def test_a_fill_mask_answer_is_bounded():
    """texts x tokens x top_k predictions: 256 texts of 512 tokens at top_k 16 are answered, one more is refused
    (InputError, which the server sends as 400), before any array is made."""
    from bortconv.runtime.bort import TopTokens
    from bortconv.serve.outputs import MAX_PREDICTIONS, response_arrays

    def rows(n: int, length: int, k: int) -> list[TopTokens]:
        one = TopTokens(np.zeros(length, np.int64), np.zeros((length, k), np.int64), np.zeros((length, k), np.float32))
        return [one] * n

    assert MAX_PREDICTIONS == 256 * 512 * 16
    arrays = response_arrays("fill-mask", rows(256, 512, 16), str, top_k=16)
    assert [a.shape for _, a, _ in arrays] == [(256, 512, 16), (256, 512, 16), (256, 512), (256, 512)]
    with pytest.raises(InputError, match=r"^the answer would hold 2,097,664 predictions \(1 texts x 512 tokens x "
                                         r"top_k 4097\); at most 2,097,152"):
        response_arrays("fill-mask", rows(1, 512, 4097), str, top_k=4097)


# ---------------------------------------------------------------------------------------------- start-up


def test_bad_start_exits_2(artifact, tmp_path):
    textless = tmp_path / "no-tokenizer"  # a Bort artifact exported without --vocab/--merges
    shutil.copytree(artifact("bort2_enc_fp16", "onnx"), textless, ignore=shutil.ignore_patterns("tokenizer*"))
    rows = [([str(tmp_path / "missing")], "no such directory"),
            ([str(artifact("bort2_enc_fp16", "onnx")), "--cache-dir", str(tmp_path / "c")], "OpenVINO artifacts"),
            ([str(textless), "--port", str(free_port())], "no tokenizer.json, so it cannot read text (export"),
            ([str(artifact("bort2_enc_fp16", "onnx")), "--name", "../x"], "--name '../x': a model name is"),
            ([str(artifact("bort2_enc_fp16", "onnx")), "--threads", "0"],
             "--threads must be a positive integer, got 0"),
            ([str(artifact("bort2_enc_fp16", "onnx")), "--max-request-mb", "1e-9"],
             "--max-request-mb 1e-09: must be at least 0.001"),  # was a bound of 0 bytes
            ([str(artifact("bort2_enc_fp16", "onnx")), "--max-wait-ms", "inf"],
             "--max-wait-ms: inf is not a finite number"),  # inf hung every request
            # the runtime's own refusals (threads, cache dir, a model that does not load): test_api_errors' rows
            ([str(artifact("bort2_enc_fp16", "onnx")), "--threads", "5000"], "--threads: 5000 is more than 1024")]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        rows.append(([str(artifact("bort2_enc_fp16", "onnx")), "--port", str(busy.getsockname()[1])],
                     "cannot listen"))
        for args, says in rows:
            proc = subprocess.run([sys.executable, "-m", "bortconv.serve", *args], capture_output=True, text=True,
                                  timeout=120)
            line = proc.stderr.strip().splitlines()[-1]
            assert proc.returncode == 2 and line.startswith("bortconv: error:") and says in line, proc.stderr


def test_compiled_model_cache(artifact, tmp_path):
    """cache_dir: the first process fills the cache, the next loads from it; the outputs do not change."""
    art = ov_artifact(artifact, "minilm")
    report = measure_cold_start(art, cache_dir=tmp_path / "cache", threads=2, runs=1)
    assert report["cache_bytes"] > 0 and report["cache_hit"]["first_inference_ms"] > 0
    cached = BortRuntime(art, threads=2, cache_dir=tmp_path / "cache")
    plain = BortRuntime(art, threads=2)
    ids = [[101, 7592, 2088, 102], [101, 102]]
    for a, b in zip(cached.run_ids(ids), plain.run_ids(ids)):
        assert np.abs(a - b).max() <= TOL
