"""Benchmark: `bortconv trim` of all-MiniLM-L6-v2 on a Python-docstring corpus, per rule and budget.

    python benchmarks/bench_trim.py [--work DIR] [--threads 2] [--no-bort] [--result FILE]

The corpus is the one docs/compression.md describes (tests/docstring_corpus.py writes it: 1,800 first paragraphs of
Python standard-library docstrings); `trim` keeps 1,500 lines to choose tokens and holds 300 out for its gate.
Then the same at half the vocabulary, and the smallest budget whose held-out mean reaches 0.99, on each domain of
another kind (benchmarks/trim_corpora.py: news sentences, computing fortunes, quotations), naive rule and default.
Each row is one `bortconv.trim` run with the gate's thresholds at 0, so every row has its figures: the tokens
kept, the weights file, and the gate's own measurement (sentence cosine of the trimmed model against the
untrimmed one, fp32 transformers, mean-pooled) on the held-out domain lines and on bortconv's shipped general
English held-out text. None of those texts chose a token.

Then the same corpus on a full-size Bort (`bortconv make-demo`'s released shape and layout, random weights, converted
with GPT-2's BPE in Bort's vocabulary layout): what the default rule keeps and what the weights file becomes, and
`bortconv export --target onnx --precision int8` of the trimmed directory with each compressed word table, under
the int8 gate. Its weights are random, so its fidelity figures say nothing about trimmed Bort; sizes and the
gates' verdicts are what it shows. Writes benchmarks/results/trim.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _result import add_result_option, table, write_result  # noqa: E402
from _models import minilm  # noqa: E402

#: (row label, trim keywords besides the corpus); budgets as fractions of the vocabulary, resolved per model
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("`--rule corpus` (the naive baseline)", {"rule": "corpus"}),
    ("`--rule corpus --keep {keep}`", {"rule": "corpus", "keep": 0.5}),
    ("(default)", {}),
    ("`--keep {keep}`", {"keep": 0.6}),
    ("`--keep {keep}`", {"keep": 0.8}),
    # the budget searched under a gate: the default thresholds, then the worst text's lowered to 0.5
    ("`--keep auto`, default gate", {"keep": "auto", "domain_min": 0.99, "domain_worst_min": 0.95}),
    ("`--keep auto --domain-worst-min 0.5`", {"keep": "auto", "domain_min": 0.99, "domain_worst_min": 0.5}),
]
#: the gate of the other rows: switched off, so that every row has its figures
NO_GATE = {"domain_min": 0.0, "domain_worst_min": 0.0}
#: the domains table: corpora of other kinds (benchmarks/trim_corpora.py), each with these rows
DOMAINS = ("docstrings", "news", "fortunes-computing", "fortunes-quotes")
DOMAIN_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("`--rule corpus --keep {keep}`", {"rule": "corpus", "keep": 0.5}),
    ("(default)", {}),
    ("`--keep auto --domain-worst-min 0`", {"keep": "auto", "domain_min": 0.99, "domain_worst_min": 0.0}),
]
#: the worst text's default bound: the domains table counts the held-out texts below it
WORST_MIN = 0.95


def _keywords(spec: dict[str, Any], total: int) -> dict[str, Any]:
    """A row's trim keywords: NO_GATE, then the row's own, a fractional --keep resolved against `total` tokens."""
    return {**NO_GATE, **{k: (int(v * total) if k == "keep" and v != "auto" else v) for k, v in spec.items()}}


def _figures(part: dict[str, Any]) -> str:
    return " / ".join(f"{part[k]:.4f}" for k in ("sentence_cosine_mean", "sentence_cosine_p5",
                                                  "sentence_cosine_worst"))


def bort(work: Path, corpus: Path, threads: int) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """The full-size demo Bort: make, convert with the tokenizer, trim (default rule), export int8 per word table."""
    import bortconv
    from bortconv.errors import AccuracyGateError
    from bort_vocab import write_bort_vocab  # not test_tokenizer: it imports conftest, which sets the suite's sweep

    vocab, merges = write_bort_vocab(work / "bort-vocab.json")
    from bortconv.converters.demo import write_demo_checkpoint
    params = write_demo_checkpoint(work / "bort-demo.params")
    hf, trimmed = work / "bort-hf", work / "bort-trimmed"
    for d in (hf, trimmed):
        shutil.rmtree(d, ignore_errors=True)
    bortconv.convert(params, hf, vocab=vocab, merges=merges)
    t0 = time.perf_counter()
    res = bortconv.trim(hf, trimmed, corpus=str(corpus), threads=threads, domain_min=0.0, domain_worst_min=0.0,
                        progress=False)
    seconds = time.perf_counter() - t0
    tokens = res.record["tokens"]
    before, after = (hf / "model.safetensors").stat().st_size / 1e6, res.files["model.safetensors"] / 1e6
    rows = [["untrimmed (fp32 safetensors)", f"{tokens['total']:,}", f"{before:.1f} MB", "-", "-"],
            ["trimmed (fp32 safetensors)", f"{tokens['kept']:,}", f"{after:.1f} MB", "-", "-"]]
    data: list[dict[str, Any]] = [{"kept": tokens["kept"], "total": tokens["total"], "before_mb": round(before, 1),
                                   "after_mb": round(after, 1), "trim_seconds": round(seconds, 1)}]
    for table_scheme in ("int8", "int4"):
        out = work / f"bort-trimmed-onnx-int8-{table_scheme}"
        shutil.rmtree(out, ignore_errors=True)
        try:
            r = bortconv.export(trimmed, out, target="onnx", precision="int8", embeddings=table_scheme,
                                threads=threads, bench=False, progress=False)
        except AccuracyGateError as exc:
            rows.append([f"ONNX int8, {table_scheme} word table", f"{tokens['kept']:,}", "-", "-",
                         "refused; best " + str(exc).rpartition("best was ")[2]])
            data.append({"embeddings": table_scheme, "refused": str(exc)})
            continue
        emb = r.manifest["int8"]["embeddings"]  # an int8 export records its word table under int8
        gate = r.manifest["int8"]["gate"]["results"]["bortconv"]["metrics"]
        rows.append([f"ONNX int8, {table_scheme} word table", f"{tokens['kept']:,}",
                     f"{r.files['model.onnx'] / 1e6:.1f} MB", f"{emb.get('table_bytes', 0) / 1e6:.1f} MB",
                     f"passed (mean {gate['sentence_cosine_mean']:.5f}, worst {gate['sentence_cosine_worst']:.5f})"])
        data.append({"embeddings": table_scheme, "model_mb": round(r.files["model.onnx"] / 1e6, 1),
                     "embeddings_record": emb, "gate": gate})
    for row in rows:
        print(" | ".join(row), flush=True)
    return rows, data


def minilm_row(label: str, src: Path, out: Path, corpus: Path, kw: dict[str, Any], threads: int, total: int,
               data: list[dict[str, Any]]) -> list[str]:
    """One `bortconv.trim` of MiniLM: its table row (a refusal is a row too), its record appended to `data`."""
    import bortconv
    from bortconv.errors import AccuracyGateError

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        rec = bortconv.trim(src, out, corpus=str(corpus), threads=threads, progress=False, **kw).record
    except AccuracyGateError as exc:
        data.append({"flags": kw, "refused": str(exc), "seconds": round(time.perf_counter() - t0, 1)})
        print(label, "refused:", exc, flush=True)
        return [label, "refused", "-", str(exc).partition(" (at ")[2].partition(")")[0] or str(exc), "-"]
    seconds = time.perf_counter() - t0
    weights_mb = (out / "model.safetensors").stat().st_size / 1e6
    kept, gate = rec["tokens"]["kept"], rec["gate"]
    row = [label, f"{kept:,} ({100 * kept / total:.1f}%)", f"{weights_mb:.1f} MB", _figures(gate["domain"]),
           _figures(gate["general"])]
    data.append({"flags": kw, "kept": kept, "total": total, "weights_mb": round(weights_mb, 1),
                 "seconds": round(seconds, 1), "gate": gate, "corpus": rec["corpus"],
                 **({"budgets_tried": rec["rule"]["budgets_tried"]} if "budgets_tried" in rec["rule"] else {})})
    print(" | ".join(row), f"({seconds:.0f} s)", flush=True)
    return row


def below(src: Path, out: Path, corpus: Path, threads: int) -> int:
    """How many of trim's held-out lines of `corpus` score under WORST_MIN in the trimmed directory `out`."""
    from bortconv.converters.trim import read_corpus
    from bortconv.pipeline.trim import Reference, text_cosines

    reference = Reference(src, read_corpus(corpus, None).heldout, [], threads)
    return int((text_cosines(reference, "domain", out)[0] < WORST_MIN).sum())


def domain_rows(src: Path, work: Path, threads: int, total: int) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Each corpus of DOMAINS with each of DOMAIN_ROWS: kept, domain figures, texts under WORST_MIN."""
    from docstring_corpus import write_corpus as docstrings
    from trim_corpora import write_corpus

    rows, data = [], []
    for name in DOMAINS:
        path = work / f"{name}.txt"
        corpus = docstrings(path) if name == "docstrings" else write_corpus(name, path)
        for label, spec in DOMAIN_ROWS:
            kw = _keywords(spec, total)
            out = work / f"{name}-{len(data)}"
            row = minilm_row(label.format(**kw), src, out, corpus, kw, threads, total, data)
            data[-1]["domain"] = name
            if row[1] == "refused":
                rows.append([name, row[0], "refused", row[3], "-"])
                continue
            data[-1]["below_worst_min"] = n = below(src, out, corpus, threads)
            held = data[-1]["corpus"]["heldout_lines"]
            rows.append([f"{name} ({data[-1]['corpus']['choose_lines']:,} + {held})", row[0], row[1], row[3],
                         f"{n} of {held}"])
            shutil.rmtree(out, ignore_errors=True)
    return rows, data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="threads of the gate's PyTorch runs")
    ap.add_argument("--work", type=Path, help="keep the corpus and trimmed directories here (default: a temporary "
                                              "directory)")
    ap.add_argument("--no-bort", action="store_true", help="skip the full-size demo Bort rows (~4 minutes)")
    add_result_option(ap, "trim")
    args = ap.parse_args(argv)

    from docstring_corpus import write_corpus

    src = minilm()
    total = sum(1 for _ in (src / "vocab.txt").open(encoding="utf-8"))
    untrimmed_mb = (src / "model.safetensors").stat().st_size / 1e6
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-trim-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, data = [], []
    try:
        corpus = write_corpus(work / "docstrings.txt")
        for label, spec in ROWS:
            kw = _keywords(spec, total)
            rows.append(minilm_row(label.format(**kw), src, work / f"trim-{len(data)}", corpus, kw, args.threads,
                                   total, data))
        domains, domain_data = domain_rows(src, work, args.threads, total)
        bort_rows, bort_data = ([], []) if args.no_bort else bort(work, corpus, args.threads)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    tab = table(["flags", f"kept of {total:,}", "weights", "domain mean / p5 / worst",
                 "general English mean / p5 / worst"], rows, right=(1, 2),
                caption=f"The untrimmed weights are {untrimmed_mb:.1f} MB. all-MiniLM-L6-v2; "
                     f"`bortconv.trim(MINILM, OUT, corpus=docstrings.txt, threads={args.threads}, domain_min=0, "
                     "domain_worst_min=0, ...)`: the gate switched off so that every row has its figures, except "
                     "the `--keep auto` rows, whose gate chooses the budget (mean >= 0.99 and the worst shown); "
                     f"{data[0]['corpus']['choose_lines']:,} corpus lines choose the tokens, "
                     f"{data[0]['corpus']['heldout_lines']:,} are held out")
    tables = {"trim": tab, "trim_domains": table(
        ["domain (choose + held out)", "flags", f"kept of {total:,}", "domain mean / p5 / worst",
         f"texts under {WORST_MIN}"], domains, right=(2, 4),
        caption="MiniLM (all-MiniLM-L6-v2) on each corpus of benchmarks/trim_corpora.py and the docstrings, the "
                "gate off but in the `--keep auto` rows, which keep the smallest budget of 20% .. 90% whose "
                "held-out mean reaches 0.99 (the worst text not gated)")}
    if bort_rows:
        tables["trim_bort"] = table(["artifact", "tokens", "weights or model file", "word table", "gate"], bort_rows,
                                    right=(1, 2, 3), caption="Full-size demo Bort (random weights, released shape), "
                                    "the docstring corpus, the default rule; int8 artifacts by "
                                    "`bortconv.export(TRIMMED, OUT, target='onnx', precision='int8', embeddings=...)` "
                                    "under the int8 gate")
    write_result("trim", tables, {"minilm": data, "domains": domain_data, "bort": bort_data},
                 settings={"threads": args.threads},
                 path=args.result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
