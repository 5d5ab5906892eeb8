"""`bortconv trim`: a Hugging Face directory whose vocabulary keeps what a domain's text needs.

The rule ``domain`` (the default) takes tokens in this order until the budget is spent::

    required    the special tokens, and every single-character piece (WordPiece: c and ##c; BPE: the byte
                symbols), so no word becomes [UNK]
    corpus      every token the corpus's choosing split uses, most used first: those words tokenize exactly as
                before (:mod:`bortconv.converters.trim_vocab` says why, for WordPiece and BPE)
    pieces      every word-inner piece of 2-3 characters (##ing, ##ed): words no text showed split as before
    short       every whole word of 2-3 letters (pe, tty): a short held-out word split into letters moves a short
                text's vector as much as a long one, and there are few of them (1,357 in MiniLM's vocabulary)
    english     every token bortconv's shipped English calibration text uses: general words stay whole
    common      the tokens of the 2,000 most frequent English words (ENGLISH_WORDS: wordfreq's list of the 28,917
                words used at least once per million): any domain's text uses them
    related     every other token, ranked by a weighted mean of two ranks, until the budget: half its closeness
                to the corpus's words (the highest cosine of its row, in the model's own word-embedding table, to
                a corpus word's row: inflections, near synonyms and the domain's other terms, timer -> clock,
                regression -> correlation), half its English frequency (the rank of the most frequent word of
                ENGLISH_WORDS it is a token of; last if none). The list is lowercase and each word is taken after
                a space: in a cased vocabulary (Bort's) the capitalized and text-initial forms rank last by
                frequency, so after the listed words as close as they are
    frequency   the vocabulary's earliest ids not yet kept, until the budget: BERT's WordPiece, GPT-2's merges and
                fairseq's dict.txt (Bort) list tokens by frequency in their training text

The budget is ``--keep N``, by default half the vocabulary (or what the steps before ``related`` need, if more);
``--keep auto`` tries AUTO_FRACTIONS of the vocabulary, smallest first, and keeps the first that passes the gate.
The rule ``corpus`` is the naive baseline: required + corpus only (plus the frequency fill up to ``--keep``, if
given).
The rows of the word embeddings, of the MLM decoder and of its bias follow their tokens; this module writes the
directory (no torch). The gate against the untrimmed model is :mod:`bortconv.pipeline.trim`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import KEEP_AUTO, TrimOptions, as_path
from bortconv.converters import trim_vocab as tv
from bortconv.errors import InputError
from bortconv.layout import CONFIG_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, WEIGHT_FILES

log = logging.getLogger(__name__)

#: the record a trimmed directory carries
TRIM_RECORD = "bortconv_trim.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
#: fewest corpus lines: most choose the tokens, the rest (at least 2) are the gate's
MIN_CORPUS_LINES = 10
DEFAULT_HELDOUT_MAX = 300
SPLIT_SEED = 0
#: weights whose rows are the vocabulary's (any prefix: "", "bert.")
ROW_KEYS = ("embeddings.word_embeddings.weight", "cls.predictions.decoder.weight")
BIAS_KEYS = ("cls.predictions.bias", "cls.predictions.decoder.bias")
#: files of the source rewritten (not copied), and model files of other formats that would go stale
REWRITTEN = {CONFIG_FILE, TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, "vocab.txt", "vocab.json", "merges.txt",
             TRIM_RECORD, *WEIGHT_FILES}
CARRIED_SUFFIXES = (".json", ".txt", ".md")
#: tokens no text produces (BERT's [unusedN], Bort's madeupwordNNNN): never taken to fill the budget
PLACEHOLDER = re.compile(r"\[unused\d+\]|madeupword\d+")


@dataclass(frozen=True)
class Corpus:
    """The --corpus file: its hash, the lines that choose tokens and the held-out lines the gate reads."""

    path: str
    sha256: str
    choose: tuple[str, ...]
    heldout: tuple[str, ...]
    duplicates: int = 0  # lines dropped as repeats of an earlier line


def read_corpus(path: str | os.PathLike[str], heldout: int | None) -> Corpus:
    """Distinct non-blank lines of a UTF-8 text file, split by a seeded permutation (the file may be sorted by
    topic)."""
    p = as_path(path, "corpus")  # "" is no path (Path("") is the current directory)
    if not p.is_file():
        raise InputError(f"corpus: {p}: {'not a file' if p.exists() else 'no such file'}", option="corpus")
    data = p.read_bytes()
    boms = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
            (b"\xfe\xff", "UTF-16"))
    encoding = next((name for bom, name in boms if data.startswith(bom)), None)
    if encoding:  # NUL bytes too, but a text editor's UTF-16 or UTF-32 is not binary
        raise InputError(f"corpus: {p}: {encoding} text (its byte order mark); save it as UTF-8", option="corpus")
    if b"\x00" in data:
        raise InputError(f"corpus: {p}: binary, not text (a NUL byte at offset {data.index(0)})", option="corpus")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"corpus: {p}: not UTF-8 text (byte {e.start})", option="corpus") from None
    stripped = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # each line once: a line both held out and among the choosing ones would let the gate read what chose the tokens
    lines = list(dict.fromkeys(stripped))
    if not lines:
        raise InputError(f"corpus: {p}: empty (no line with text)", option="corpus")
    if len(lines) < MIN_CORPUS_LINES:
        raise InputError(f"corpus: {p}: {len(lines)} distinct line{'s' * (len(lines) != 1)}; need at least "
                         f"{MIN_CORPUS_LINES} (most choose the tokens, the rest are held out for the gate)",
                         option="corpus")
    n = heldout if heldout is not None else min(DEFAULT_HELDOUT_MAX, len(lines) // 5)
    if not 2 <= n <= len(lines) - 2:
        raise InputError(f"heldout: {n} lines of {len(lines)}; must be between 2 and {len(lines) - 2}",
                         option="heldout")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(lines))
    held = set(order[:n].tolist())
    return Corpus(str(p.resolve()), hashlib.sha256(data).hexdigest(),
                  tuple(t for i, t in enumerate(lines) if i not in held),
                  tuple(t for i, t in enumerate(lines) if i in held), len(stripped) - len(lines))


@dataclass(frozen=True)
class KeepPlan:
    """The old ids a trimmed vocabulary keeps (ascending: their new ids are their ranks) and why."""

    kept: tuple[int, ...]
    total: int
    reasons: dict[str, int]
    budget: int

    @property
    def new_id(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept)}


#: English words, most frequent first (bortconv/data; benchmarks/english_words.py writes it from wordfreq 3.1.1)
ENGLISH_WORDS = "english_words.txt"


@dataclass(frozen=True)
class Rule:
    """A rule's candidate tokens: `groups` taken in order (whole, without --keep), then `fills` and the earliest
    ids up to the budget (--keep, else `budget`); and the English text it read, for the record."""

    groups: list[tuple[str, Counter[int]]]
    fills: list[tuple[str, Counter[int]]]
    english: str | None
    budget: int | None


PIECE_CHARS = 3  # the longest word-inner piece kept by rule domain
SHORT_WORD_CHARS = 3  # the longest whole word kept by rule domain's short step
COMMON_WORDS = 2000  # the most frequent English words kept whole by rule domain's common step
#: the related step's weight of closeness to the corpus; English frequency has the rest. Chosen on the development
#: splits of two corpora of different kinds, docstrings and news (docs/compression.md): 0.75 was best on docstrings
#: and worst on news; 0.5 had the highest mean sentence cosine over both
CLOSENESS_WEIGHT = 0.5


def default_budget(total: int) -> int:
    """The budget of rule domain without --keep: half the vocabulary (the first groups may ask for more)."""
    return total // 2


#: the budgets --keep auto tries, smallest first, as fractions of the vocabulary
AUTO_FRACTIONS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def auto_budgets(vocab: tv.Vocabulary) -> list[int]:
    """The budgets of --keep auto, ascending: AUTO_FRACTIONS of the vocabulary, those above its required tokens."""
    least = len(vocab.required)
    return [n for n in (int(f * len(vocab)) for f in AUTO_FRACTIONS) if n > least]


def check_keep(vocab: tv.Vocabulary, keep: int | str | None) -> None:
    """Refuse a budget below what every trimmed vocabulary keeps, or above what it can (auto: none to try)."""
    least = len(vocab.required)
    if keep == KEEP_AUTO:
        if not auto_budgets(vocab):
            raise InputError(f"keep: auto has no budget to try: {least} of the {len(vocab)} tokens are required "
                             f"(the special tokens and single characters)", option="keep")
        return
    # placeholders are never taken to fill a budget (unless required: a special token)
    most = len(vocab.required | {i for i, t in enumerate(vocab.tokens) if not PLACEHOLDER.fullmatch(t)})
    if keep is not None and not least <= keep <= most:
        raise InputError(f"keep: {keep} is outside {least}..{most} (the special tokens and single characters "
                         f"every trimmed vocabulary keeps .. every token but the {len(vocab) - most} placeholders "
                         f"no text produces)", option="keep")


def choose_tokens(vocab: tv.Vocabulary, groups: Sequence[tuple[str, Counter[int]]], keep: int | None,
                  budget: int | None = None, fills: Sequence[tuple[str, Counter[int]]] = ()) -> KeepPlan:
    """The required ids, then each group's ids (most counted first), then each of `fills` (most counted first),
    then the earliest ids, within `keep` (None: the groups whole, then the fills and the earliest ids up to
    `budget`). A token comes with its BPE closure."""
    required = vocab.required
    check_keep(vocab, keep)
    kept: set[int] = set()
    for t in required:
        kept |= vocab.closure(t, kept)
    reasons = {"required": len(kept)}
    for name, counts in groups:
        reasons[name] = _take(vocab, kept, _ranked(counts), keep)
    limit = keep if keep is not None else max(len(kept), budget or 0)
    for name, counts in fills:
        reasons[name] = _take(vocab, kept, _ranked(counts), limit)
    frequent = (i for i, t in enumerate(vocab.tokens) if not PLACEHOLDER.fullmatch(t))
    reasons["frequency"] = _take(vocab, kept, frequent, limit)
    return KeepPlan(tuple(sorted(kept)), len(vocab), reasons, max(limit, len(kept)))


def _ranked(counts: Counter[int]) -> list[int]:
    return sorted(counts, key=lambda i: (-counts[i], i))


def related(vocab: tv.Vocabulary, table: np.ndarray, counts: Counter[int], word_scores: Counter[int],
            weight: float = CLOSENESS_WEIGHT) -> Counter[int]:
    """Every candidate token (:meth:`~bortconv.converters.trim_vocab.Vocabulary.candidates`; no placeholder) scored by
    ``1 - (weight * closeness rank + (1 - weight) * frequency rank)``, both as fractions (0 first). Closeness: the
    token's rank among the candidates by the highest cosine of its row of the word-embedding `table` to the row of
    a whole word in `counts`. Frequency: the position, as a fraction of the list, of the most frequent word of
    `word_scores` (:func:`word_ranks`) it is a token of, 1 if none. With no whole word in `counts` closeness is
    unknown and frequency alone ranks (weight 0)."""
    cand = np.array([i for i in vocab.candidates() if not PLACEHOLDER.fullmatch(vocab.tokens[i])], dtype=np.int64)
    if not len(cand):
        return Counter()
    words = np.array(vocab.words(counts), dtype=np.int64)
    src = np.searchsorted(cand, words[np.isin(words, cand)])  # positions among the candidates
    if not len(src):
        weight = 0.0
    unit = table[cand].astype(np.float32)  # normalized once: each chunk's corpus words are rows of it
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    close = np.full(len(cand), -1.0, dtype=np.float32)
    for start in range(0, len(src), 512):
        close = np.maximum(close, (unit[src[start:start + 512]] @ unit.T).max(0))
    close_rank = np.empty(len(cand))
    close_rank[np.argsort(-close, kind="stable")] = np.arange(len(cand)) / len(cand)
    top = max(word_scores.values(), default=0)
    freq_rank = np.array([(top - word_scores[i]) / top if i in word_scores else 1.0 for i in cand.tolist()])
    score = 1.0 - (weight * close_rank + (1.0 - weight) * freq_rank)
    return Counter(dict(zip(cand.tolist(), score.tolist())))


def english_words() -> list[str]:
    """ENGLISH_WORDS' words, most frequent first."""
    from importlib import resources

    text = resources.files("bortconv.data").joinpath(ENGLISH_WORDS).read_text(encoding="utf-8")
    return [w for w in text.splitlines() if w and not w.startswith("#")]


def most_frequent(word_scores: Counter[int], n: int) -> Counter[int]:
    """The ids of :func:`word_ranks`' `word_scores` that tokenize one of its `n` most frequent words (each 1)."""
    top = max(word_scores.values(), default=0)
    return Counter({i: 1 for i, score in word_scores.items() if score > top - n})


def word_ranks(tokenizer: Any, words: Sequence[str]) -> Counter[int]:
    """Each id that tokenizes one of `words` (as a word in running text: after a space), scored by the most
    frequent such word (`words` most frequent first): taken in that order, a word's new tokens come before any
    less frequent word's, so the budget keeps the most frequent words whole (but at its edge, where a token whose
    BPE closure does not fit is skipped)."""
    scores: Counter[int] = Counter()
    encodings = tokenizer.encode_batch([" " + w for w in words], add_special_tokens=False)
    for rank, enc in enumerate(encodings):
        for i in enc.ids:
            scores.setdefault(i, len(words) - rank)
    return scores


def _take(vocab: tv.Vocabulary, kept: set[int], ranked: Any, budget: int | None) -> int:
    """Add `ranked` ids (each with its closure) to `kept` while they fit `budget`; returns how many were added."""
    before = len(kept)
    for t in ranked:
        if budget is not None and len(kept) >= budget:
            break
        new = vocab.closure(t, kept)
        if budget is None or len(kept) + len(new) <= budget:
            kept |= new
    return len(kept) - before


def token_counts(tokenizer: Any, texts: Sequence[str]) -> Counter[int]:
    """How often each id occurs in `texts` (no special tokens, no truncation)."""
    counts: Counter[int] = Counter()
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        counts.update(enc.ids)
    return counts


# ---------------------------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class Source:
    """A Hugging Face directory to trim: its config, parsed tokenizer files and vocabulary."""

    path: Path
    config: dict[str, Any]
    tokenizer_json: dict[str, Any]
    side_configs: dict[str, dict[str, Any]]  # tokenizer_config.json, special_tokens_map.json (those present)
    vocab: tv.Vocabulary
    trim_record: dict[str, Any] | None = None  # an earlier trim's record (source_record), carried by the new one

    def tokenizer(self) -> Any:
        """The source's tokenizer (tokenizers), without padding or truncation."""
        from tokenizers import Tokenizer
        tok = Tokenizer.from_str(json.dumps(self.tokenizer_json))
        tok.no_padding()
        tok.no_truncation()
        return tok


def read_source(src: str | os.PathLike[str]) -> Source:
    from bortconv._util.jsonfile import read_json
    from bortconv.converters.hf_model import check_weights, read_config

    d = Path(src)
    if not d.is_dir():
        raise InputError(f"{d}: not a Hugging Face model directory (trim takes one; `bortconv convert` makes one "
                         f"from a .params file, with --vocab/--merges for the tokenizer)")
    cfg = read_config(d)
    check_weights(d)
    if not (d / TOKENIZER_FILE).is_file():
        raise InputError(f"{d}: no {TOKENIZER_FILE}: trim re-indexes the tokenizer with the weights")
    tok = read_json(d / TOKENIZER_FILE)
    sides = {n: read_json(d / n) for n in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP) if (d / n).is_file()}
    vocab = tv.read_vocabulary(tok, str(d / TOKENIZER_FILE), tv.special_strings(*sides.values()),
                               tv.config_special_ids(cfg))
    if len(vocab) != int(cfg["vocab_size"]):
        raise InputError(f"{d / TOKENIZER_FILE}: {len(vocab)} tokens, but config.json's vocab_size is "
                         f"{cfg['vocab_size']}: the tokenizer does not belong to these weights")
    return Source(d, cfg, tok, sides, vocab, source_record(d))


# ---------------------------------------------------------------------------------------------- writing


def write_trimmed(source: Source, plan: KeepPlan, tensors: dict[str, np.ndarray], out: Path) -> dict[str, int]:
    """Write the trimmed directory into `out` (an empty directory) from the source's `tensors`
    (:func:`load_weights`); returns file name -> bytes."""
    new_id = plan.new_id
    _write_weights(source.path, plan, tensors, out / WEIGHT_FILES[0])
    _dump(out / CONFIG_FILE, tv.remap_config(source.config, new_id))
    tok = tv.remap_tokenizer(source.tokenizer_json, source.vocab, new_id)
    (out / TOKENIZER_FILE).write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    tokens = [source.vocab.tokens[i] for i in plan.kept]
    if (source.path / "vocab.txt").is_file():
        (out / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    if (source.path / "vocab.json").is_file():
        _dump(out / "vocab.json", {t: i for i, t in enumerate(tokens)})
    if (source.path / "merges.txt").is_file():
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges") or ()]
        (out / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    side = source.side_configs.get(TOKENIZER_CONFIG_FILE)
    if side is not None:
        decoder = side.get("added_tokens_decoder")
        if isinstance(decoder, dict):  # keyed by id
            side = {**side, "added_tokens_decoder": {str(new_id[int(k)]): v for k, v in decoder.items()}}
        _dump(out / TOKENIZER_CONFIG_FILE, side)
    _carry(source.path, out)
    return {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _carry(src: Path, out: Path) -> None:
    """Copy the source's other small text files (README, sentence-transformers' pooling config, Bort's conversion
    record, special_tokens_map.json...); model files of other formats are not carried (they would be stale)."""
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if not p.is_file() or rel.as_posix() in REWRITTEN or rel.name.startswith(".") or \
                p.suffix not in CARRIED_SUFFIXES:
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out / rel)


def load_weights(src: Path) -> dict[str, np.ndarray]:
    """The source's tensors as numpy arrays (model.safetensors, or a plain-tensor pytorch_model.bin)."""
    st = src / WEIGHT_FILES[0]
    if st.is_file():
        from safetensors.numpy import load_file
        return load_file(str(st))
    from bortconv.converters.hf_model import _load_bin
    return {k: v.numpy() for k, v in _load_bin(src / WEIGHT_FILES[1]).items()}


def word_table(src: Path, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """The word-embedding table among `tensors`."""
    key = next((k for k in tensors if k.endswith(ROW_KEYS[0])), None)
    if key is None:
        raise InputError(f"{src}: no word-embedding table ({ROW_KEYS[0]}) among the weights")
    return tensors[key]


def _write_weights(src: Path, plan: KeepPlan, tensors: dict[str, np.ndarray], dest: Path) -> None:
    from safetensors.numpy import save_file

    tensors = dict(tensors)
    rows = np.asarray(plan.kept, dtype=np.int64)
    touched = []
    for key, value in tensors.items():
        if key.endswith(ROW_KEYS + BIAS_KEYS):
            if value.shape[0] != plan.total:
                raise InputError(f"{src}: {key} has {value.shape[0]} rows, the tokenizer {plan.total} tokens")
            tensors[key] = np.ascontiguousarray(value[rows])
            touched.append(key)
    log.info("re-indexed %s to %d rows", ", ".join(touched), len(rows))
    save_file(tensors, str(dest), metadata={"format": "pt"})
    os.chmod(dest, 0o644)  # safetensors writes 0600; the directory's other files are 0644
    _check_written(dest, tensors)


def _check_written(dest: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Re-read the weights: every tensor as meant, bit for bit. The gate relies on it: a text whose tokens are
    the same strings before and after gets the very same rows, so the same output, and is not run again."""
    from safetensors.numpy import load_file

    again = load_file(str(dest))
    bad = sorted(k for k, v in tensors.items() if k not in again or not np.array_equal(again[k], v))
    if bad or set(again) != set(tensors):
        raise OSError(f"{dest}: the written weights differ from the trimmed ones ({', '.join(bad[:5])})")


def record(source: Source, corpus: Corpus, plan: KeepPlan, opts: TrimOptions, english: str | None,
           gate: Mapping[str, Any], tried: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What bortconv_trim.json says: where the tokens came from, how many were kept, and the gate's figures."""
    from bortconv._version import __version__
    return {
        "format_version": 1, "bortconv_version": __version__, "source": str(source.path.resolve()),
        "tokenizer": source.vocab.kind,
        "corpus": {"path": corpus.path, "sha256": corpus.sha256, "choose_lines": len(corpus.choose),
                   "heldout_lines": len(corpus.heldout), "duplicate_lines_dropped": corpus.duplicates,
                   "split_seed": SPLIT_SEED},
        "rule": {"name": opts.rule, "keep": opts.keep, "budget": plan.budget, "english_text": english,
                 **({"english_words": f"bortconv/data/{ENGLISH_WORDS}",  # its header names its source
                     "parameters": {"piece_chars": PIECE_CHARS, "short_word_chars": SHORT_WORD_CHARS,
                                    "common_words": COMMON_WORDS, "closeness_weight": CLOSENESS_WEIGHT}}
                    if english else {}),
                 "order": list(plan.reasons), **({"budgets_tried": list(tried)} if tried else {})},
        "tokens": {"kept": len(plan.kept), "total": plan.total, "fraction": round(len(plan.kept) / plan.total, 4),
                   "by_reason": plan.reasons},
        "gate": dict(gate),
        **({"source_record": source.trim_record} if source.trim_record is not None else {}),
    }


def source_record(source: Path) -> dict[str, Any] | None:
    """The record of an earlier trim of `source` (a re-trim carries it, so the chain back to the untrimmed model
    stays readable); None for an untrimmed source."""
    path = source / TRIM_RECORD
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable trim record ({exc})") from None
    if not isinstance(rec, dict):
        raise InputError(f"{path}: not a trim record (a JSON {type(rec).__name__}, not an object)")
    return rec
