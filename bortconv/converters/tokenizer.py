"""Bort's tokenizer as a Hugging Face `tokenizers` tokenizer (tokenizer.json), id for id.

What Bort saw (alexa/bort ``finetune_bort.py`` + ``utils/finetune_utils.py``, gluonnlp 0.8.3)::

    pieces = nlp.data.GPT2BPETokenizer()(text)        # GPT-2 byte-level BPE strings: 'Hello', 'Ġworld'
    A, B   = truncate_seqs_equal([pieces_a, pieces_b], max_len - 3)   # max_len - 2 for one text
    ids    = vocab[[vocab.bos_token] + A + [vocab.eos_token] + B + [vocab.eos_token]]
    batch  = Pad(pad_val=vocab[vocab.padding_token])  # right padding, plus valid_length

What the vocabulary's tokens are. ``openwebtext_ccnews_stories_books_cased`` was made by gluonnlp's
``scripts/conversion_tools/convert_fairseq_model.py`` from fairseq's RoBERTa ``dict.txt``. That file lists GPT-2
ids written as decimal strings ("13", "262", ...); the script maps each one back, through gluonnlp's
``openai_webtext`` vocabulary, to its GPT-2 *BPE string*, and keeps dict.txt's order for the ids. So the gluonnlp
Vocab maps BPE strings (``Ġthe``) straight to Bort ids, which is what lets Bort's code call
``vocab[GPT2BPETokenizer()(text)]`` with nothing in between; the same script asserts that these ids equal fairseq's
``roberta.encode``. A vocabulary whose tokens are still the decimal ids would send every word to ``<unk>`` in
gluonnlp too; :func:`build_tokenizer` refuses it (and any vocabulary that lacks a string the merges can produce,
which Hugging Face's BPE model cannot express as ``<unk>``).

Differences from Hugging Face RoBERTa that matter for ids: a pair is ``<s> A </s> B </s>`` (one separator, not
``</s></s>``); special-token text such as ``"<mask>"`` inside the input is ordinary text for gluonnlp, so the
specials are plain vocabulary entries here, not added tokens, and transformers is given ``split_special_tokens``
(insert a mask by id); and Bort has no token types (all 0, and not among the model inputs).

Truncation. Bort truncates a pair with ``truncate_seqs_equal``: the shorter text is kept whole if it fits in half,
otherwise both are cut to half and, when the budget is odd, the *first* text gets the extra token. The
tokenizer.json uses ``longest_first``, which is the same except that on an odd budget it gives the extra token to
the *longer* text (the second one on a tie). With max_len 512 the pair budget is 509 (odd), so the two differ by
one token exactly when both texts have at least 255 tokens and the first is not the longer. tokenizer.json has no
way to express Bort's rule, so tokenizer_config.json records it (:mod:`bortconv.runtime.pair_truncation`): bortconv's
runtime and OpenVINO tokenizer apply it, as :class:`BortEncoder` does; stock loaders cut by tokenizer.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortconv.errors import InputError, MissingDependencyError, TokenizerError
from bortconv.layout import TOKENIZER_FILE
from bortconv.runtime.pair_truncation import BORT_RULE, PAIR_TRUNCATION_KEY, bort_truncated_lengths

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
DEFAULT_MAX_LENGTH = 512

#: sha1 of the merges file gluonnlp's GPT2BPETokenizer verifies before it will run (OpenAI's vocab.bpe)
GLUON_MERGES_SHA1 = "396d4d8ec90cb02f4d56e049e0e4add868bcd943"
#: the identifiers a Bort vocabulary must name; the mask token is optional (MLM use only)
REQUIRED_SPECIALS = ("unknown_token", "padding_token", "bos_token", "eos_token")
_LEGACY_SPECIALS = ("padding_token", "bos_token", "eos_token")
_SPECIAL_ROLES = {"unknown_token": "unk_token", "padding_token": "pad_token", "bos_token": "bos_token",
                  "eos_token": "eos_token", "mask_token": "mask_token"}


@dataclass(frozen=True)
class GluonVocab:
    """A gluonnlp Vocab as read from its JSON file: ids, tokens and the special tokens it names."""

    idx_to_token: tuple[str, ...]
    token_to_idx: Mapping[str, int]
    unknown_token: str
    padding_token: str
    bos_token: str
    eos_token: str
    mask_token: str | None = None
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def id_of(self, token: str) -> int:
        """Id of `token`; unknown strings get the unknown token's id, as gluonnlp's lookup does."""
        return self.token_to_idx.get(token, self.token_to_idx[self.unknown_token])

    @property
    def specials(self) -> dict[str, str]:
        """Hugging Face role (``bos_token``, ``pad_token``...) -> token, for the tokens this vocab names."""
        out = {role: getattr(self, name) for name, role in _SPECIAL_ROLES.items()}
        return {role: tok for role, tok in out.items() if tok is not None}

    def to_json(self, *, legacy: bool = False) -> str:
        """Serialize as gluonnlp 0.8.3's ``Vocab.to_json`` does (``legacy``: pre-0.7 top-level special keys)."""
        named = {"mask_token": self.mask_token, "padding_token": self.padding_token,
                 "bos_token": self.bos_token, "eos_token": self.eos_token}
        d: dict[str, Any] = {
            "idx_to_token": list(self.idx_to_token),
            "token_to_idx": dict(self.token_to_idx),
            "reserved_tokens": [t for t in named.values() if t is not None],
            "unknown_token": self.unknown_token,
        }
        if legacy:
            d.update({k: named[k] for k in _LEGACY_SPECIALS})
        else:
            d["identifiers_to_tokens"] = named
        return json.dumps(d)


# ---------------------------------------------------------------------------------------------- reading


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise TokenizerError(f"{path}: is a directory, not a {what} file") from None
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not a {what} file (not UTF-8 text at byte {e.start})") from None
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read the {what} file ({e.strerror})") from None


def _vocab_specials(d: dict[str, Any], token_to_idx: Mapping[str, int], path: Path) -> dict[str, str | None]:
    """The special tokens a vocab JSON names, from either layout; refuses missing or dangling ones."""
    named = d.get("identifiers_to_tokens")
    named = dict(named) if isinstance(named, dict) else {}
    for key in _LEGACY_SPECIALS:  # pre-0.7 layout: top-level keys (gluonnlp's from_json merges them the same way)
        if key in d:
            named.setdefault(key, d[key])
    named["unknown_token"] = d.get("unknown_token")
    if named.get("mask_token") is None and "<mask>" in token_to_idx:
        named["mask_token"] = "<mask>"  # the legacy layout has no mask key; Bort's mask is "<mask>"
    missing = [k for k in REQUIRED_SPECIALS if not isinstance(named.get(k), str)]
    if missing:
        raise TokenizerError(f"{path}: vocabulary does not name its special tokens {', '.join(missing)} "
                             f"(a Bort vocabulary names {', '.join(REQUIRED_SPECIALS)})")
    dangling = [f"{k} {named[k]!r}" for k in (*REQUIRED_SPECIALS, "mask_token")
                if isinstance(named.get(k), str) and named[k] not in token_to_idx]
    if dangling:
        raise TokenizerError(f"{path}: vocabulary names special tokens it does not contain: {', '.join(dangling)}")
    return {k: named.get(k) for k in (*REQUIRED_SPECIALS, "mask_token")}


def _check_index(idx_to_token: Any, token_to_idx: Any, path: Path) -> None:
    if not isinstance(idx_to_token, list) or not all(isinstance(t, str) for t in idx_to_token):
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary ('idx_to_token' is not a list of strings)")
    if not isinstance(token_to_idx, dict) or not all(type(i) is int for i in token_to_idx.values()):
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary ('token_to_idx' is not a token -> int map)")
    if len(token_to_idx) != len(idx_to_token):
        raise TokenizerError(f"{path}: corrupt vocabulary: {len(idx_to_token)} tokens in 'idx_to_token' but "
                             f"{len(token_to_idx)} in 'token_to_idx'")
    bad = next((i for i, t in enumerate(idx_to_token) if token_to_idx.get(t) != i), None)
    if bad is not None:
        raise TokenizerError(f"{path}: corrupt vocabulary: 'token_to_idx' does not give id {bad} to "
                             f"{idx_to_token[bad]!r}, which 'idx_to_token' puts there")


def read_gluon_vocab(path: str | os.PathLike[str]) -> GluonVocab:
    """Read a gluonnlp Vocab JSON (``identifiers_to_tokens`` layout, or the older top-level special keys).

    Raises :class:`TokenizerError` naming the file if it is unreadable, not a gluonnlp vocabulary, internally
    inconsistent, or lacks the unknown/padding/bos/eos tokens.
    """
    path = Path(path)
    try:
        d = json.loads(_read_text(path, "vocabulary"))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary (not JSON: {e.msg} at line {e.lineno})") from None
    except (ValueError, RecursionError) as e:  # a number of > 4300 digits; nesting deeper than the stack
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary (JSON the parser refuses: "
                             f"{str(e).split(':')[0][:100]})") from None
    if not isinstance(d, dict):
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary (JSON {type(d).__name__}, not an object)")
    absent = [k for k in ("idx_to_token", "token_to_idx") if k not in d]
    if absent:
        raise TokenizerError(f"{path}: not a gluonnlp vocabulary (no {' or '.join(repr(k) for k in absent)} key)")
    _check_index(d["idx_to_token"], d["token_to_idx"], path)
    sp = _vocab_specials(d, d["token_to_idx"], path)
    vocab = GluonVocab(tuple(d["idx_to_token"]), d["token_to_idx"], sp["unknown_token"], sp["padding_token"],
                       sp["bos_token"], sp["eos_token"], sp["mask_token"], path)
    log.debug("%s: %d tokens, specials %s", path, len(vocab), vocab.specials)
    return vocab


def read_merges(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read a GPT-2 merges file (``#version`` line, then one ``left right`` pair per line), as gluonnlp does.

    gluonnlp keeps ``text.split('\\n')[1:-1]``: the header and whatever follows the last newline are not merges.
    """
    path = Path(path)
    text = _read_text(path, "merges")
    lines = text.split("\n")
    if not lines[0].startswith("#version"):
        raise TokenizerError(f"{path}: not a GPT-2 merges file (the first line is not a '#version' header)")
    if lines[-1].strip():
        log.warning("%s: no newline after the last line; gluonnlp ignores that line, and so does bortconv", path)
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(lines[1:-1], start=2):
        parts = line.split()
        if len(parts) != 2:
            raise TokenizerError(f"{path}: not a GPT-2 merges file (line {n} is not two space-separated symbols)")
        pair = (parts[0], parts[1])
        if pair in seen:
            raise TokenizerError(f"{path}: line {n} repeats the merge {line.strip()!r}")
        seen.add(pair)
        merges.append(pair)
    if not merges:
        raise TokenizerError(f"{path}: not a GPT-2 merges file (no merges after the header)")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    if digest != GLUON_MERGES_SHA1:
        log.warning("%s: not the merges file Bort used (sha1 %s, gluonnlp requires %s)", path, digest[:8],
                    GLUON_MERGES_SHA1[:8])
    return merges


def check_vocab_size(vocab: GluonVocab, embedding_rows: int, vocab_path: str | os.PathLike[str]) -> None:
    """Refuse a vocabulary whose size differs from the checkpoint's word-embedding rows."""
    if len(vocab) != embedding_rows:
        raise TokenizerError(f"{vocab_path}: vocabulary has {len(vocab)} tokens but the checkpoint's word "
                             f"embedding has {embedding_rows} rows")


# ---------------------------------------------------------------------------------------------- building


def _byte_symbols() -> list[str]:
    """GPT-2's byte -> printable-character table (gluonnlp ``_GPT2BPE``, HF ``ByteLevel``): 256 symbols."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(shifted)) for b in range(256)]


def _check_coverage(vocab: GluonVocab, merges: Sequence[tuple[str, str]], merges_path: Path) -> None:
    """Every string BPE can produce must be a vocabulary token (see the module docstring for why)."""
    produced = dict.fromkeys(_byte_symbols())
    for a, b in merges:
        produced.update(dict.fromkeys((a, b, a + b)))
    missing = [s for s in produced if s not in vocab.token_to_idx]
    if not missing:
        return
    where = vocab.path or "vocabulary"
    if sum(t.isdigit() for t in vocab.idx_to_token) > len(vocab) // 2:
        raise TokenizerError(f"{where}: tokens are GPT-2 ids written as numbers (fairseq dict.txt), not BPE "
                             f"strings; gluonnlp would map every word to <unk>")
    shown = ", ".join(repr(s) for s in missing[:5])
    raise TokenizerError(f"{where}: lacks {len(missing)} of the BPE strings {merges_path} produces "
                         f"(e.g. {shown}); it does not belong to these merges")


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise MissingDependencyError("the tokenizer needs the 'tokenizers' package: "
                                     "pip install 'bortconv[tokenizer]'") from None
    return tokenizers


def _assemble(vocab: GluonVocab, merges: list[tuple[str, str]], max_length: int) -> Tokenizer:
    tk = _tokenizers()
    model = tk.models.BPE(vocab=dict(vocab.token_to_idx), merges=merges, unk_token=vocab.unknown_token)
    tok = tk.Tokenizer(model)
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = tk.decoders.ByteLevel()
    bos, eos = vocab.bos_token, vocab.eos_token
    tok.post_processor = tk.processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0", pair=f"{bos}:0 $A:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, vocab.token_to_idx[bos]), (eos, vocab.token_to_idx[eos])])
    # No added tokens: the specials are plain vocabulary entries, so "<mask>" or "<s>" inside text is split like
    # any text, as gluonnlp did. (An added token would be matched in text; `encode_special_tokens` would stop
    # that but is not saved in tokenizer.json.) transformers is told the same with `split_special_tokens`.
    tok.enable_truncation(max_length, strategy="longest_first")
    tok.enable_padding(direction="right", pad_id=vocab.token_to_idx[vocab.padding_token],
                       pad_token=vocab.padding_token)
    return tok


def build_tokenizer(vocab_path: str | os.PathLike[str], merges_path: str | os.PathLike[str], *,
                    max_length: int = DEFAULT_MAX_LENGTH) -> Tokenizer:
    """Bort's tokenizer: GPT-2 byte-level BPE + the gluonnlp vocabulary + ``<s> A </s> [B </s>]``.

    Truncates to `max_length` including the special tokens (``longest_first`` for pairs; see the module
    docstring for the one case where that differs from Bort, and :class:`BortEncoder` for the exact rule) and
    pads batches to their longest member with the vocabulary's padding token. (On truncation `tokenizers` also
    builds every overflow window, for a pair (len_a/max_length) x (len_b/max_length) of them: costly for very
    long pairs at tiny lengths. :class:`BortEncoder` does not.)
    """
    if type(max_length) is not int or max_length < 4:
        raise InputError(f"max_length must be an integer >= 4, got {max_length!r}", option="max_length")
    vocab = read_gluon_vocab(vocab_path)
    merges = read_merges(merges_path)
    _check_coverage(vocab, merges, Path(merges_path))
    return _assemble(vocab, merges, max_length)


# ---------------------------------------------------------------------------------------------- exact encoding


class BortEncoder:
    """Bort's fine-tuning preprocessing, exactly, on top of a tokenizer from :func:`build_tokenizer`.

    Use it where pairs may need truncation: tokenizer.json's ``longest_first`` differs from Bort's rule by one
    token on odd budgets (module docstring). Returns unpadded id lists (``valid_length`` is their length).
    """

    def __init__(self, tokenizer: Tokenizer, vocab: GluonVocab, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if type(max_length) is not int or max_length < 4:
            raise InputError(f"max_length must be an integer >= 4, got {max_length!r}", option="max_length")
        self._tok = _tokenizers().Tokenizer.from_str(tokenizer.to_str())  # a copy: its settings stay put
        self._tok.no_truncation()
        self._tok.no_padding()
        self.max_length = max_length
        self.bos_id = vocab.token_to_idx[vocab.bos_token]
        self.eos_id = vocab.token_to_idx[vocab.eos_token]

    def encode(self, text: str, pair: str | None = None) -> list[int]:
        """Ids of one text or pair, as Bort's ``convert_examples_to_features`` made them."""
        return self.encode_batch([text if pair is None else (text, pair)])[0]

    def encode_batch(self, items: Sequence[str | tuple[str, str]]) -> list[list[int]]:
        """Ids of many texts and/or ``(first, second)`` pairs (tokenized in parallel)."""
        segments = [[it] if isinstance(it, str) else list(it) for it in items]
        flat = [s for seg in segments for s in seg]
        encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)  # no offsets: tokenizers>=0.21
        pieces = iter(e.ids for e in encode(flat, add_special_tokens=False))
        return [self._layout([next(pieces) for _ in seg]) for seg in segments]

    def _layout(self, seqs: list[list[int]]) -> list[int]:
        keep = bort_truncated_lengths([len(s) for s in seqs], self.max_length - 1 - len(seqs))
        ids = [self.bos_id]
        for seq, n in zip(seqs, keep, strict=True):
            ids += seq[:n] + [self.eos_id]
        return ids


# ---------------------------------------------------------------------------------------------- writing


def _transformers_config(tokenizer: Tokenizer, vocab: GluonVocab) -> tuple[dict[str, Any], dict[str, str]]:
    specials = vocab.specials
    aliases = {"cls_token": vocab.bos_token, "sep_token": vocab.eos_token}  # Bort's cls/sep in fine-tuning
    special_map = {**specials, **aliases}
    trunc = tokenizer.truncation
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "model_max_length": trunc["max_length"] if trunc else DEFAULT_MAX_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "split_special_tokens": True,  # "<mask>" in text is text, as it was for gluonnlp
        "model_input_names": ["input_ids", "attention_mask"],  # Bort has no token types
        "clean_up_tokenization_spaces": False,
        PAIR_TRUNCATION_KEY: BORT_RULE,  # bortconv's runtime and OpenVINO tokenizer cut pairs as Bort did
    }
    return config, special_map


_PROBE = ("Hello <mask> wörld 123 中文 😀", "  second\ttext")


def _check_written(tokenizer: Tokenizer, path: Path) -> None:
    """Re-read the written tokenizer.json: it must tokenize a probe pair as the in-memory tokenizer does."""
    again = _tokenizers().Tokenizer.from_file(str(path))
    if again.encode(*_PROBE).ids != tokenizer.encode(*_PROBE).ids:
        raise TokenizerError(f"{path}: the written tokenizer.json does not tokenize like the tokenizer it came from")


@contextlib.contextmanager
def _staged(out_dir: Path, names: Sequence[str]) -> Iterator[dict[str, Path]]:
    """Temp paths in `out_dir` for `names`; renamed onto the real names only if the block succeeds."""
    tmp = {n: Path(tempfile.mkstemp(prefix=f".{n}.", suffix=".tmp", dir=out_dir)[1]) for n in names}
    try:
        yield tmp
        for n, p in tmp.items():
            os.chmod(p, 0o644)
            os.replace(p, out_dir / n)
    finally:
        for p in tmp.values():
            p.unlink(missing_ok=True)


def write_tokenizer(tokenizer: Tokenizer, out_dir: str | os.PathLike[str], vocab: GluonVocab) -> dict[str, Path]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `out_dir` (created if absent).

    The files load offline with ``transformers.AutoTokenizer.from_pretrained(out_dir)``. Each file is written to
    a temporary name and renamed into place; other files in `out_dir` are left alone. Returns name -> path.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    missing = [t for t in vocab.specials.values() if tokenizer.token_to_id(t) != vocab.token_to_idx[t]]
    if missing:
        raise TokenizerError(f"{vocab.path or 'vocabulary'}: the tokenizer does not map {', '.join(missing)} to "
                             f"the vocabulary's ids; build it from this vocabulary")
    config, special_map = _transformers_config(tokenizer, vocab)
    blobs = {TOKENIZER_FILE: tokenizer.to_str(pretty=False),
             TOKENIZER_CONFIG_FILE: json.dumps(config, indent=2, ensure_ascii=False) + "\n",
             SPECIAL_TOKENS_MAP_FILE: json.dumps(special_map, indent=2, ensure_ascii=False) + "\n"}
    created = not out.exists()
    out.mkdir(exist_ok=True)
    try:
        with _staged(out, list(blobs)) as tmp:
            for name, text in blobs.items():
                tmp[name].write_text(text, encoding="utf-8")
            _check_written(tokenizer, tmp[TOKENIZER_FILE])
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    log.info("wrote %s to %s", ", ".join(blobs), out)
    return {name: out / name for name in blobs}
