"""The tokenizer side of `bortconv trim`: which ids a trimmed vocabulary must keep, and tokenizer.json re-indexed.

Two tokenizer models, and why the kept set keeps them exact:

    WordPiece   greedy longest match per word. Kept: every single character and ##character, so no word that
                tokenized without [UNK] gets [UNK]; and every token a corpus word uses. A longer match than
                the one the full vocabulary picked would be in the full vocabulary too, so each corpus word
                tokenizes exactly as before.
    BPE         merges applied by rank. Kept: the byte symbols, and with every token the two it is merged
                from (closed under merges). A merge stays iff both parts and its result are kept. A word whose
                tokens were kept meets the same lowest-rank merge at every step, so it tokenizes as before;
                any other word stops at kept tokens (the bytes at worst).

Ids: the kept old ids in their old order get 0, 1, 2...; every id a tokenizer.json, tokenizer_config.json or
config.json names is moved with its token (special tokens keep their meaning, e.g. Bort's <mask> 50264 -> last).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bortconv.errors import InputError

KINDS = ("BPE", "WordPiece")
#: tokens_map / tokenizer_config keys that name special tokens (as strings)
SPECIAL_KEYS = ("unk_token", "pad_token", "bos_token", "eos_token", "cls_token", "sep_token", "mask_token")


@dataclass(frozen=True)
class Vocabulary:
    """A tokenizer.json's ids: tokens by id, the ids that must be kept, and (BPE) what each token is merged from."""

    kind: str  # "BPE" or "WordPiece"
    tokens: tuple[str, ...]
    ids: Mapping[str, int]
    specials: frozenset[int]
    singles: frozenset[int]
    parents: Mapping[int, tuple[int, int]]

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, token: str) -> tuple[bool, str]:
        """(whether `token` begins a word, its text without the marker): WordPiece marks a word's inner pieces
        (##ing), byte-level BPE a word's start (Ġthe)."""
        if self.kind == "WordPiece":
            return (False, token[2:]) if token.startswith("##") and len(token) > 2 else (True, token)
        return (True, token[1:]) if token.startswith("\u0120") and len(token) > 1 else (False, token)

    def words(self, ids: Iterable[int] | None = None, min_chars: int = 3) -> list[int]:
        """Ids (of `ids`, default all) of whole alphabetic words of at least `min_chars` letters. Byte-level BPE
        writes the bytes that are not printable (space, newline) as the letters U+0100..U+0143 (Ġ, Ċ): a token
        holding one (ĠĠĠ, a run of spaces) is not a word."""
        out = []
        for i in range(len(self.tokens)) if ids is None else ids:
            start, core = self.split(self.tokens[i])
            if start and len(core) >= min_chars and core.isalpha() and not (
                    self.kind == "BPE" and any("\u0100" <= c <= "\u0143" for c in core)):
                out.append(i)
        return out

    def short_words(self, max_chars: int = 3) -> list[int]:
        """Ids of whole alphabetic words of 2..`max_chars` letters (WordPiece: pe, tty; BPE: Ġpe): a short held-out
        word split into letters moves a short text's vector as much as a long one, and they are few."""
        return [i for i in self.words(min_chars=2) if len(self.split(self.tokens[i])[1]) <= max_chars]

    def candidates(self) -> list[int]:
        """Ids of every token that is not required (:attr:`required`): what a fill ranks. For byte-level BPE that
        includes a word's start of one character (Ġ1, Ġ$)."""
        required = self.required
        return [i for i in range(len(self.tokens)) if i not in required]

    def short_pieces(self, max_chars: int = 3) -> list[int]:
        """Ids of word-inner pieces of 2..`max_chars` characters (##ing, ##ed; BPE's ing, ed): what words no text
        showed fall apart into, so a kept set of them keeps unseen words' splits close to the full vocabulary's."""
        out = []
        for i, t in enumerate(self.tokens):
            start, core = self.split(t)
            if not start and 2 <= len(core) <= max_chars:
                out.append(i)
        return out

    @property
    def required(self) -> set[int]:
        """What every trimmed vocabulary keeps: the special tokens and the single-character pieces."""
        return set(self.specials | self.singles)

    def closure(self, token_id: int, kept: set[int] | frozenset[int] = frozenset()) -> set[int]:
        """`token_id` and (BPE) every token it is merged from, minus what `kept` already holds."""
        out, todo = set(), [token_id]
        while todo:
            t = todo.pop()
            if t in out or t in kept:
                continue
            out.add(t)
            todo.extend(self.parents.get(t, ()))
        return out


def _merge_pair(m: Any) -> tuple[str, str]:
    return (m[0], m[1]) if isinstance(m, list) else tuple(m.split(" ", 1))  # type: ignore[return-value]


def _parents(model: Mapping[str, Any], ids: Mapping[str, int]) -> dict[int, tuple[int, int]]:
    prefix = model.get("continuing_subword_prefix") or ""
    out: dict[int, tuple[int, int]] = {}
    for m in model.get("merges") or ():
        a, b = _merge_pair(m)
        result = a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)
        if result in ids and a in ids and b in ids:
            out.setdefault(ids[result], (ids[a], ids[b]))  # the lowest-rank merge is the one BPE applies
    return out


def _singles(kind: str, model: Mapping[str, Any], tokens: Iterable[str], ids: Mapping[str, int]) -> set[int]:
    prefix = model.get("continuing_subword_prefix") or ("##" if kind == "WordPiece" else "")
    out = set()
    for t in tokens:
        core = t[len(prefix):] if prefix and t.startswith(prefix) and len(t) > len(prefix) else t
        if len(core) == 1:
            out.add(ids[t])
    return out


def _named_ids(tok: Mapping[str, Any]) -> set[int]:
    """Ids tokenizer.json itself names: added tokens, the post-processor's specials, the padding id."""
    found = {int(a["id"]) for a in tok.get("added_tokens") or ()}
    found |= set(_processor_ids(tok.get("post_processor")))
    if tok.get("padding"):
        found.add(int(tok["padding"]["pad_id"]))
    return found


def _processor_ids(proc: Any) -> list[int]:
    if not isinstance(proc, dict):
        return []
    if proc.get("type") == "Sequence":
        return [i for p in proc.get("processors", ()) for i in _processor_ids(p)]
    out = [int(i) for s in (proc.get("special_tokens") or {}).values() for i in s.get("ids", ())]
    return out + [int(proc[k][1]) for k in ("sep", "cls") if isinstance(proc.get(k), list)]


def read_vocabulary(tok: Mapping[str, Any], where: str, special_strings: Iterable[str] = (),
                    special_ids: Iterable[int] = ()) -> Vocabulary:
    """The :class:`Vocabulary` of a parsed tokenizer.json (`where` names it in errors). `special_strings` and
    `special_ids`: what tokenizer_config.json, special_tokens_map.json and config.json name besides."""
    model = tok.get("model") or {}
    kind = model.get("type")
    if kind not in KINDS:
        raise InputError(f"{where}: a {kind} tokenizer; trim handles BPE (Bort's byte-level BPE) and WordPiece")
    ids = dict(model["vocab"])
    for a in tok.get("added_tokens") or ():
        ids.setdefault(a["content"], int(a["id"]))
    tokens = sorted(ids, key=ids.__getitem__)
    if [ids[t] for t in tokens] != list(range(len(tokens))):
        raise InputError(f"{where}: token ids are not 0..{len(tokens) - 1} without gaps; cannot re-index them")
    specials = _named_ids(tok) | {int(i) for i in special_ids if 0 <= int(i) < len(tokens)}
    specials |= {ids[s] for s in special_strings if s in ids}
    if model.get("unk_token") in ids:
        specials.add(ids[model["unk_token"]])
    parents = _parents(model, ids) if kind == "BPE" else {}
    return Vocabulary(kind, tuple(tokens), ids, frozenset(specials), frozenset(_singles(kind, model, tokens, ids)),
                      parents)


def remap_tokenizer(tok: dict[str, Any], vocab: Vocabulary, new_id: Mapping[int, int]) -> dict[str, Any]:
    """A copy of tokenizer.json with only the kept tokens (`new_id`: old id -> new id), merges closed under them."""
    out = dict(tok)
    model = dict(tok["model"])
    model["vocab"] = {t: new_id[i] for t, i in model["vocab"].items() if i in new_id}
    if vocab.kind == "BPE":
        prefix = model.get("continuing_subword_prefix") or ""
        kept = model["vocab"]
        model["merges"] = [m for m in model.get("merges") or () if _keeps(_merge_pair(m), kept, prefix)]
    out["model"] = model
    out["added_tokens"] = [{**a, "id": new_id[int(a["id"])]} for a in tok.get("added_tokens") or ()]
    out["post_processor"] = _remap_processor(tok.get("post_processor"), new_id)
    if tok.get("padding"):
        out["padding"] = {**tok["padding"], "pad_id": new_id[int(tok["padding"]["pad_id"])]}
    return out


def _keeps(pair: tuple[str, str], kept: Mapping[str, int], prefix: str) -> bool:
    a, b = pair
    result = a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)
    return a in kept and b in kept and result in kept


def _remap_processor(proc: Any, new_id: Mapping[int, int]) -> Any:
    if not isinstance(proc, dict):
        return proc
    out = dict(proc)
    if proc.get("type") == "Sequence":
        out["processors"] = [_remap_processor(p, new_id) for p in proc.get("processors", ())]
    if "special_tokens" in proc:
        out["special_tokens"] = {k: {**s, "ids": [new_id[int(i)] for i in s.get("ids", ())]}
                                 for k, s in proc["special_tokens"].items()}
    for k in ("sep", "cls"):
        if isinstance(proc.get(k), list):
            out[k] = [proc[k][0], new_id[int(proc[k][1])]]
    return out


def remap_config(cfg: Mapping[str, Any], new_id: Mapping[int, int]) -> dict[str, Any]:
    """config.json with the new vocabulary size and its special-token ids moved with their tokens."""
    out = dict(cfg)
    out["vocab_size"] = len(new_id)
    for k, v in cfg.items():
        if k.endswith("_token_id") and type(v) is int and v in new_id:
            out[k] = new_id[v]
    return out


def config_special_ids(cfg: Mapping[str, Any]) -> list[int]:
    return [v for k, v in cfg.items() if k.endswith("_token_id") and type(v) is int]


def special_strings(*configs: Mapping[str, Any]) -> set[str]:
    """Special-token strings that tokenizer_config.json / special_tokens_map.json name (str or {"content": ...})."""
    out = set()
    for c in configs:
        for k in SPECIAL_KEYS:
            v = c.get(k)
            v = v.get("content") if isinstance(v, dict) else v
            if isinstance(v, str):
                out.add(v)
        for v in c.get("additional_special_tokens") or ():
            out.add(v.get("content") if isinstance(v, dict) else v)
    return out
