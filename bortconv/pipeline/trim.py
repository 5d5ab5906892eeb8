"""`bortconv trim` as one gated run: choose the tokens (:mod:`bortconv.converters.trim`), write the directory, and
judge it against the untrimmed model before it is kept.

Here and not in converters/ because the gate is the deployment gate's code (:mod:`bortconv.fidelity`), which sits
above the converters. The gate: mean-pooled sentence vectors of the trimmed model (its own tokenizer) and of the
untrimmed one (its own), their cosine per text, on

    domain    the corpus lines held out from choosing tokens      gated: mean >= --domain-min, worst >= ...
    general   bortconv's shipped general-English held-out text    reported; gated with --general-min

Nothing is written unless it passes (AccuracyGateError, exit 1). ``--keep auto`` writes and gates each budget of
AUTO_FRACTIONS in turn, smallest first, in the same temporary directory, against one :class:`Reference` (the
untrimmed model's vectors, computed once per text), and keeps the first that passes.
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
from bortconv.config import KEEP_AUTO, Task, TrimOptions, as_path, check_options_type, max_positions, option_keyword
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
    its record, ``bortconv_trim.json``. Raises AccuracyGateError (nothing written) if it fails the gate; with
    ``keep="auto"``, the smallest budget of :data:`bortconv.converters.trim.AUTO_FRACTIONS` that passes is kept,
    and the error comes only if none does.

    Options are a :class:`bortconv.config.TrimOptions`, or the same as keywords (``corpus="domain.txt"``)."""
    if options is not None and keywords:
        raise InputError(f"trim: pass a TrimOptions or keywords, not both (got {', '.join(sorted(keywords))})")
    opts = trim_options(**keywords) if options is None else options
    check_options_type(opts, TrimOptions, "trim")
    out = as_path(output_dir, "output_dir")
    source = as_path(source, "source")
    check_output_dir(out, opts.force, reads=[source, opts.corpus])
    src = tr.read_source(source)  # bad input is refused before any work (and any progress line)
    corpus = tr.read_corpus(opts.corpus, opts.heldout)
    tr.check_keep(src.vocab, opts.keep)
    auto = opts.keep == KEEP_AUTO
    prog = Progress(1 + (len(tr.auto_budgets(src.vocab)) if auto else 2), enabled=opts.progress)
    with prog.step("choosing tokens"):
        tensors = tr.load_weights(src.path)
        rule = _rule(src, corpus, tensors, opts)
    reference = Reference(src.path, corpus.heldout, heldout.shipped_texts(), opts.threads)
    with atomic_directory(out, force=opts.force) as tmp:
        if auto:
            plan, files, gate, tried = _search(src, rule, tensors, tmp, reference, opts, prog)
        else:
            plan = _choose(src, rule, opts.keep)
            with prog.step(f"writing {len(plan.kept):,} of {plan.total:,} tokens"):
                files = tr.write_trimmed(src, plan, tensors, tmp)
                tensors.clear()  # the source's weights are not needed by the gate (which loads both directories)
            with prog.step("gate: trimmed vs untrimmed model on held-out text"):
                gate, tried = _judged(_gate(reference, tmp, opts)), []
        rec = tr.record(src, corpus, plan, opts, rule.english, gate, tried)
        _dump_record(tmp, rec)
        files[tr.TRIM_RECORD] = (tmp / tr.TRIM_RECORD).stat().st_size
    return TrimResult(out, files, rec)


def _rule(source: tr.Source, corpus: tr.Corpus, tensors: dict[str, np.ndarray], opts: TrimOptions) -> tr.Rule:
    """The rule's candidate tokens: its groups in order, its fills, the English text it used, its default budget."""
    from collections import Counter

    tok, vocab = source.tokenizer(), source.vocab
    used = tr.token_counts(tok, corpus.choose)
    if opts.rule != "domain":
        return tr.Rule([("corpus", used)], [], None, None)
    english, lines = text_split.load_texts(None)
    ranks = tr.word_ranks(tok, tr.english_words())
    groups = [("corpus", used), ("pieces", Counter(dict.fromkeys(vocab.short_pieces(tr.PIECE_CHARS), 1))),
              ("short", Counter(dict.fromkeys(vocab.short_words(tr.SHORT_WORD_CHARS), 1))),
              ("english", tr.token_counts(tok, lines)), ("common", tr.most_frequent(ranks, tr.COMMON_WORDS))]
    related = tr.related(vocab, tr.word_table(source.path, tensors), used, ranks)
    return tr.Rule(groups, [("related", related)], english,
                   tr.default_budget(len(vocab)))


def _choose(source: tr.Source, rule: tr.Rule, keep: int | None) -> tr.KeepPlan:
    plan = tr.choose_tokens(source.vocab, rule.groups, keep, rule.budget, rule.fills)
    log.info("keeping %d of %d tokens: %s", len(plan.kept), plan.total, plan.reasons)
    return plan


def _search(source: tr.Source, rule: tr.Rule, tensors: dict[str, np.ndarray], tmp: Path, reference: Reference,
            opts: TrimOptions,
            prog: Progress) -> tuple[tr.KeepPlan, dict[str, int], dict[str, Any], list[dict[str, Any]]]:
    """--keep auto: each budget of tr.auto_budgets, smallest first, written to `tmp` and gated; the first that
    passes is kept. None passing raises AccuracyGateError with the largest budget's failures (nothing written)."""
    budgets = tr.auto_budgets(source.vocab)
    tried: list[dict[str, Any]] = []
    for n in budgets:
        with prog.step(f"keep {n:,} of {len(source.vocab):,} tokens: write and gate"):
            plan = _choose(source, rule, n)
            files = tr.write_trimmed(source, plan, tensors, tmp)
            gate = _gate(reference, tmp, opts, general=False)  # the general English only for the one kept
            tried.append({"keep": n, "fraction": round(n / plan.total, 2), "passed": not gate["failed"],
                          **{part: {k: gate[part][k] for k in GATE_KEYS} for part in ("domain", "general")
                             if part in gate}})
            if not gate["failed"]:
                gate.setdefault("general", fidelity(reference, "general", tmp))
        if not gate["failed"]:
            return plan, files, _judged(gate), tried
    raise AccuracyGateError(f"trim: no budget up to {budgets[-1]:,} of {len(source.vocab):,} tokens passes the gate "
                            f"(at {budgets[-1]:,}: {'; '.join(gate['failed'])}). Nothing was written; give a larger "
                            f"corpus of this domain, or lower --domain-worst-min")


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
    return [(heldout.cut(e.ids, n), tuple(heldout.cut(e.tokens, n))) for e in tok.encode_batch(list(texts))]


class Reference:
    """The untrimmed model's side of the gate on its two parts, the held-out ``domain`` text and the ``general``
    English: their tokens, and pooled vectors computed once per text that a trimmed tokenizer splits differently
    (--keep auto gates several budgets against the same reference)."""

    def __init__(self, src: Path, domain: Sequence[str], general: Sequence[str], threads: int | None) -> None:
        self.src, self.threads = src, threads
        self.texts = {"domain": list(domain), "general": list(general)}
        self.encoded = {part: _encode(src, texts) for part, texts in self.texts.items()}
        self._pooled: dict[tuple[str, int], np.ndarray] = {}

    def pooled(self, part: str, idx: Sequence[int]) -> np.ndarray:
        todo = [i for i in idx if (part, i) not in self._pooled]
        if todo:
            rows = pooled(self.src, [self.encoded[part][i][0] for i in todo], self.threads)
            self._pooled.update(((part, i), v) for i, v in zip(todo, rows))
        return np.stack([self._pooled[part, i] for i in idx])


def text_cosines(reference: Reference, part: str, trimmed: Path) -> tuple[np.ndarray, list[int]]:
    """Per text of `part`: sentence cosine of the trimmed model (its tokenizer) to the untrimmed one (its own);
    and which texts were re-tokenized. A text tokenized into the same strings by both gets the same rows (the
    written weights are checked bit for bit), so the same output: it scores 1 without running; the others run."""
    a, b = reference.encoded[part], _encode(trimmed, reference.texts[part])
    differ = [i for i in range(len(a)) if a[i][1] != b[i][1]]
    per_text = np.ones(len(a))
    if differ:
        per_text[differ] = cosine(reference.pooled(part, differ),
                                  pooled(trimmed, [b[i][0] for i in differ], reference.threads))
    return per_text, differ


def fidelity(reference: Reference, part: str, trimmed: Path) -> dict[str, Any]:
    """Mean, 5th percentile and worst sentence cosine over the texts of `part`, and the worst text."""
    per_text, differ = text_cosines(reference, part, trimmed)
    scores = [(float(v), f"text {i}", 0) for i, v in enumerate(per_text)]
    stats = summarize(per_text.tolist(), scores, "feature-extraction")  # (no token cosine: tokens differ)
    return {"texts": len(per_text), "texts_retokenized": len(differ),
            **{k: round(float(stats[k]), 6) for k in GATE_KEYS},
            "worst_text": reference.texts[part][int(stats["worst_at"].split()[1])]}


def _gate(reference: Reference, trimmed: Path, opts: TrimOptions, general: bool = True) -> dict[str, Any]:
    """The gate's figures and what failed (``failed``: empty if it passes). The general English is measured when
    `general` (the figures a written directory reports) or when it is gated (--general-min)."""
    result = {"domain": fidelity(reference, "domain", trimmed),
              "general_text": f"bortconv/data/{heldout.HELDOUT_FILE}",
              "thresholds": {"domain_mean": opts.domain_min, "domain_worst": opts.domain_worst_min,
                             "general_mean": opts.general_min},
              "reference": "the untrimmed model, fp32 PyTorch (transformers), mean-pooled last hidden state"}
    if general or opts.general_min is not None:
        result["general"] = fidelity(reference, "general", trimmed)
    result["failed"] = _failures(result, opts)
    log.info("trim gate: domain %s, general %s -> %s", result["domain"], result.get("general"),
             result["failed"] or "pass")
    return result


def _judged(gate: dict[str, Any]) -> dict[str, Any]:
    """The gate's figures, or AccuracyGateError (nothing written) if they fail."""
    if gate["failed"]:
        raise AccuracyGateError(f"trim: the trimmed model fails the gate: {'; '.join(gate['failed'])}. Nothing "
                                f"was written; keep more tokens (--keep N or auto) or give a larger corpus of this "
                                f"domain")
    return {k: gate[k] for k in ("domain", "general", "general_text", "thresholds", "reference")}


def _failures(result: dict[str, Any], opts: TrimOptions) -> list[str]:
    checks = [("domain", "sentence_cosine_mean", "mean", opts.domain_min),
              ("domain", "sentence_cosine_worst", "worst", opts.domain_worst_min),
              ("general", "sentence_cosine_mean", "mean", opts.general_min)]
    return [f"held-out {part} text {label} sentence cosine {result[part][key]:.4f} < {limit}"
            for part, key, label, limit in checks
            if limit is not None and not result[part][key] >= limit]  # NaN fails
