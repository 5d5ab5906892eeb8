"""`bortconv trim` as one gated run: choose the tokens (:mod:`bortconv.converters.trim`), write the directory, and
judge it against the untrimmed model before it is kept.

Here and not in converters/ because the gate is the deployment gate's code (:mod:`bortconv.fidelity`), which sits
above the converters. The gate: mean-pooled sentence vectors of the trimmed model (its own tokenizer) and of the
untrimmed one (its own), their cosine per text, on

    domain    the corpus lines held out from choosing tokens      gated: mean >= --domain-min, worst >= ...
    general   bortconv's shipped general-English held-out text    reported; gated with --general-min

Nothing is written unless it passes (AccuracyGateError, exit 1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortconv._util.atomic import atomic_directory, check_output_dir
from bortconv._util.progress import Progress
from bortconv.config import Task, TrimOptions, max_positions, option_keyword
from bortconv.converters import trim as tr
from bortconv.errors import AccuracyGateError, InputError
from bortconv.fidelity import heldout, text_split
from bortconv.fidelity.metrics import cosine, summarize
from bortconv.measure import pad_batch

log = logging.getLogger(__name__)

BATCH = 64
GATE_KEYS = ("sentence_cosine_mean", "sentence_cosine_p5", "sentence_cosine_worst")


@dataclass(frozen=True)
class TrimResult:
    """What :func:`trim` wrote: the directory, its files and its record (bortconv_trim.json)."""

    output_dir: Path
    files: dict[str, int]
    record: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "files": self.files, **self.record}


def trim_options(**keywords: Any) -> TrimOptions:
    """The :class:`TrimOptions` of trim's keyword arguments (the CLI's options, by the same names), checked."""
    names = {option_keyword(f) for f in TrimOptions.__dataclass_fields__.values()}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise InputError(f"trim: unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    if keywords.get("corpus") is None:
        raise InputError("corpus: trim needs the domain's text (--corpus FILE)", option="corpus")
    return TrimOptions(**keywords)


def trim(source: str | os.PathLike[str], output_dir: str | os.PathLike[str], options: TrimOptions | None = None,
         **keywords: Any) -> TrimResult:
    """Trim the vocabulary of the Hugging Face directory `source` to what the corpus needs, write the result to
    `output_dir` (it loads with stock ``AutoModel`` / ``AutoTokenizer``, and ``bortconv export`` takes it) with
    its record, ``bortconv_trim.json``. Raises AccuracyGateError (nothing written) if it fails the gate.

    Options are a :class:`bortconv.config.TrimOptions`, or the same as keywords (``corpus="domain.txt"``)."""
    if options is not None and keywords:
        raise InputError(f"trim: pass a TrimOptions or keywords, not both (got {', '.join(sorted(keywords))})")
    opts = trim_options(**keywords) if options is None else options
    out = Path(output_dir)
    check_output_dir(out, opts.force)
    src = tr.read_source(source)  # bad input is refused before any work (and any progress line)
    corpus = tr.read_corpus(opts.corpus, opts.heldout)
    tr.check_keep(src.vocab, opts.keep)
    prog = Progress(3, enabled=opts.progress)
    with prog.step("choosing tokens"):
        tensors = tr.load_weights(src.path)
        plan, english = _plan(src, corpus, tensors, opts)
    with atomic_directory(out, force=opts.force) as tmp:
        with prog.step(f"writing {len(plan.kept):,} of {plan.total:,} tokens"):
            files = tr.write_trimmed(src, plan, tensors, tmp)
            del tensors
        with prog.step("gate: trimmed vs untrimmed model on held-out text"):
            gate = _gate(src.path, tmp, corpus.heldout, opts)
        rec = tr.record(src, corpus, plan, opts, english, gate)
        _dump_record(tmp, rec)
        files[tr.TRIM_RECORD] = (tmp / tr.TRIM_RECORD).stat().st_size
    return TrimResult(out, files, rec)


def _plan(source: tr.Source, corpus: tr.Corpus, tensors: dict[str, np.ndarray],
          opts: TrimOptions) -> tuple[tr.KeepPlan, str | None]:
    """The rule's groups of candidate tokens, in order, and the plan they give within the budget."""
    from collections import Counter

    tok, vocab = source.tokenizer(), source.vocab
    used = tr.token_counts(tok, corpus.choose)
    groups = [("corpus", used)]
    english, budget = None, None
    if opts.rule == "domain":
        english, lines = text_split.load_texts(None)
        groups += [("neighbours", tr.neighbours(vocab, tr.word_table(source.path, tensors), used)),
                   ("pieces", Counter(dict.fromkeys(vocab.short_pieces(tr.PIECE_CHARS), 1))),
                   ("english", tr.token_counts(tok, lines))]
        budget = tr.default_budget(len(vocab))
    plan = tr.choose_tokens(vocab, groups, opts.keep, budget)
    log.info("keeping %d of %d tokens: %s", len(plan.kept), plan.total, plan.reasons)
    return plan, english


def _dump_record(directory: Path, rec: dict[str, Any]) -> None:
    import json
    (directory / tr.TRIM_RECORD).write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- the gate


def pooled(model_dir: Path, rows: Sequence[Sequence[int]], threads: int | None) -> np.ndarray:
    """Mean-pooled last hidden states of token-id `rows` in fp32 PyTorch (the task model export traces)."""
    from bortconv.converters.hf_model import pytorch_runner, read_config

    run = pytorch_runner(model_dir, Task.FEATURE_EXTRACTION, threads=threads)
    pad = int(read_config(model_dir).get("pad_token_id") or 0)
    out: dict[int, np.ndarray] = {}
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        feeds = pad_batch([rows[i] for i in idx], pad)
        mask = feeds["attention_mask"][..., None]
        out.update(zip(idx, (run(feeds).astype(np.float64) * mask).sum(1) / mask.sum(1)))
    return np.stack([out[i] for i in range(len(rows))])


def _encode(model_dir: Path, texts: Sequence[str]) -> list[tuple[list[int], tuple[str, ...]]]:
    """(ids, token strings) of `texts` by the directory's own tokenizer, cut at text_split.MAX_TOKENS (or the
    model's positions, when fewer) with the closing special token kept."""
    from bortconv.converters.hf_model import read_config

    tok = text_split.load_tokenizer(model_dir)
    n = min(text_split.MAX_TOKENS, max_positions(read_config(model_dir)))
    return [(e.ids if len(e.ids) <= n else e.ids[:n - 1] + e.ids[-1:],
             tuple(e.tokens if len(e.tokens) <= n else e.tokens[:n - 1] + e.tokens[-1:]))
            for e in tok.encode_batch(list(texts))]


def text_cosines(src: Path, trimmed: Path, texts: Sequence[str],
                 threads: int | None) -> tuple[np.ndarray, list[int]]:
    """Per text: sentence cosine of the trimmed model (its tokenizer) to the untrimmed one (its own); and which
    texts were re-tokenized. A text tokenized into the same strings by both gets the same rows (the written
    weights are checked bit for bit), so the same output: it scores 1 without running; the others are run."""
    a, b = _encode(src, texts), _encode(trimmed, texts)
    differ = [i for i in range(len(texts)) if a[i][1] != b[i][1]]
    per_text = np.ones(len(texts))
    if differ:
        per_text[differ] = cosine(pooled(src, [a[i][0] for i in differ], threads),
                                  pooled(trimmed, [b[i][0] for i in differ], threads))
    return per_text, differ


def fidelity(per_text: np.ndarray, texts: Sequence[str], retokenized: int) -> dict[str, Any]:
    """Mean, 5th percentile and worst sentence cosine over `texts`, and the worst text."""
    scores = [(float(v), f"text {i}", 0) for i, v in enumerate(per_text)]
    stats = summarize(per_text.tolist(), scores, "feature-extraction")  # (no token cosine: tokens differ)
    return {"texts": len(texts), "texts_retokenized": retokenized,
            **{k: round(float(stats[k]), 6) for k in GATE_KEYS},
            "worst_text": texts[int(stats["worst_at"].split()[1])]}


def _gate(src: Path, trimmed: Path, domain: Sequence[str], opts: TrimOptions) -> dict[str, Any]:
    general = heldout.shipped_texts()
    per_text, differ = text_cosines(src, trimmed, [*domain, *general], opts.threads)
    n = len(domain)
    result = {"domain": fidelity(per_text[:n], domain, sum(i < n for i in differ)),
              "general": fidelity(per_text[n:], general, sum(i >= n for i in differ)),
              "general_text": f"bortconv/data/{heldout.HELDOUT_FILE}",
              "thresholds": {"domain_mean": opts.domain_min, "domain_worst": opts.domain_worst_min,
                             "general_mean": opts.general_min},
              "reference": "the untrimmed model, fp32 PyTorch (transformers), mean-pooled last hidden state"}
    failed = _failures(result, opts)
    log.info("trim gate: domain %s, general %s -> %s", result["domain"], result["general"], failed or "pass")
    if failed:
        raise AccuracyGateError(f"trim: the trimmed model fails the gate: {'; '.join(failed)}. Nothing was "
                                f"written; keep more tokens (--keep N) or give a larger corpus of this domain")
    return result


def _failures(result: dict[str, Any], opts: TrimOptions) -> list[str]:
    checks = [("domain", "sentence_cosine_mean", "mean", opts.domain_min),
              ("domain", "sentence_cosine_worst", "worst", opts.domain_worst_min),
              ("general", "sentence_cosine_mean", "mean", opts.general_min)]
    return [f"held-out {part} text {label} sentence cosine {result[part][key]:.4f} < {limit}"
            for part, key, label, limit in checks if limit is not None and result[part][key] < limit]
