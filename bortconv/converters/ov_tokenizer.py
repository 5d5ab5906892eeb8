"""The tokenizer as OpenVINO string ops, beside an OpenVINO artifact's model, checked id for id.

Two IRs, from the artifact's ``tokenizer.json``:

- ``openvino_tokenizer.xml/.bin`` (Optimum-Intel's name): one string input ``text`` [n];
- ``openvino_tokenizer_pair.xml/.bin``: two string inputs ``text`` and ``text_b`` [n] each, in the model's pair
  layout (Bort ``<s> A </s> B </s>``, BERT ``[CLS] A [SEP] B [SEP]``). A two-input IR refuses single texts, so
  single texts need the first IR.

Both give ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` where the tokenizer makes them), padded to
the longest row, truncated at tokenizer.json's ``truncation.max_length``. What the graph does::

    text   ─► StringTensorUnpack ─► SpecialTokensSplit ─► normalize ─► pre-tokenize ─► BPE | WordPiece ─┐
    text_b ─► (the same; pair IR only) ──────────────────────────────────────────────────────────────────┤
                      Truncate(longest_first) ◄──────────────────────────────────────────────────────────┘
                      ─► CombineSegments (the template: <s> A </s> [B </s>]) ─► RaggedToDense ─► ids, mask

``openvino_tokenizers.convert_tokenizer`` builds it; two of its choices differ from tokenizer.json and are
corrected here (both found by the id check, which then gave 0 mismatches):

1. *Which strings in the text are special tokens.* The converter splits out every special token transformers
   knows of, so ``"<s>"`` typed in a text became id 0. tokenizer.json matches only its own ``added_tokens``
   (Bort's has none: ``<s>`` in text is ordinary text, as it was for gluonnlp). The split pattern is rebuilt
   from tokenizer.json's added tokens; with none it is ``[^\\s\\S]``, which matches nothing (the converter
   cannot build a BPE graph without the split step at all: its BPETokenizer then gets the wrong input count).
2. *Which text of a pair keeps the odd token* when both must be cut to an odd budget. The Truncate op gives it
   to the longer text, the first on a tie; ``tokenizers``' longest_first to the longer, the second on a tie;
   Bort's ``truncate_seqs_equal`` always to the first. The pair rule the tokenizer files declare
   (:mod:`bortconv.runtime.pair_truncation`) decides: for Bort's, the Truncate node is replaced by that rule in standard
   ops (:func:`_truncate_as_bort`), so the IR gives gluonnlp 0.8.3's ids; for tokenizer.json's, the texts go
   into Truncate swapped and come out swapped back, which gives "the longer one, the second on a tie".

The check (:func:`check_against_tokenizer_json`) runs the saved IRs against ``tokenizers`` on the caller's
texts and pairs; one mismatch fails the export (:class:`ExportError`) and the IRs are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bortconv.errors import ExportError, InputError, MissingDependencyError, shown
from bortconv.layout import (
    CONFIG_FILE,
    OV_TOKENIZER_BIN,
    OV_TOKENIZER_PAIR_BIN,
    OV_TOKENIZER_PAIR_XML,
    OV_TOKENIZER_XML,
    TOKENIZER_FILE,
    TOKENIZER_FILES,
)
from bortconv.runtime.pair_truncation import BORT_RULE, pair_rule
from bortconv.runtime.bort import (
    TEXT_INPUT,
    TEXT_PAIR_INPUT,
    OpenVinoTokenizer,
    tokenizers_installed,
    TokenizersBackend,
    import_openvino_tokenizers,
)

log = logging.getLogger(__name__)

#: a regular expression that matches no text (PCRE2, which the SpecialTokensSplit op uses)
MATCH_NOTHING = r"[^\s\S]"
#: texts per call of the IR during the check (longer texts make the dense [n, longest] tensors large)
CHECK_CHUNK = 64
IR_FILES = (OV_TOKENIZER_XML, OV_TOKENIZER_BIN, OV_TOKENIZER_PAIR_XML, OV_TOKENIZER_PAIR_BIN)
#: the tokenizer IRs this process converted (their files' bytes and facts), by what the conversion reads: a script
#: that exports one model at several precisions converts its tokenizer once (about 3 s for Bort's 50,265 tokens).
#: The converted IRs are still checked against tokenizer.json in each artifact
CONVERTED_KEPT = 4
_converted: OrderedDict[str, tuple[dict[str, bytes], dict[str, Any]]] = OrderedDict()
_converted_lock = threading.Lock()


def conversion_key(artifact_dir: Path) -> str:
    """sha256 of what a conversion reads: the tokenizer files and config.json (AutoTokenizer's class comes from it),
    and the converter's and OpenVINO's versions."""
    import openvino

    h = hashlib.sha256(f"{import_openvino_tokenizers().__version__}\0{openvino.__version__}\0".encode())
    for name in (CONFIG_FILE, *TOKENIZER_FILES):
        path = artifact_dir / name
        if path.is_file():
            h.update(f"{name}\0{path.stat().st_size}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _converted_files(artifact_dir: Path) -> dict[str, Any]:
    """Save the two tokenizer IRs into `artifact_dir`, converted now or copied from this process's earlier
    conversion of the same files; the conversion's facts."""
    import openvino as ov

    key = conversion_key(artifact_dir)
    with _converted_lock:
        hit = _converted.get(key)
        if hit is not None:
            _converted.move_to_end(key)
    if hit is not None:
        files, facts = hit
        for name, data in files.items():
            (artifact_dir / name).write_bytes(data)
        return dict(facts)
    single, pair, facts = convert_openvino_tokenizers(artifact_dir)
    ov.save_model(single, str(artifact_dir / OV_TOKENIZER_XML), compress_to_fp16=False)
    ov.save_model(pair, str(artifact_dir / OV_TOKENIZER_PAIR_XML), compress_to_fp16=False)
    with _converted_lock:
        _converted[key] = ({name: (artifact_dir / name).read_bytes() for name in IR_FILES}, dict(facts))
        while len(_converted) > CONVERTED_KEPT:
            _converted.popitem(last=False)
    return facts


def _tokenizer_json(artifact_dir: Path) -> dict[str, Any]:
    path = artifact_dir / TOKENIZER_FILE
    if not path.is_file():
        raise InputError(f"{artifact_dir}: no {TOKENIZER_FILE}; nothing to convert to an OpenVINO tokenizer")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a tokenizers tokenizer.json (not a JSON object)")
    return data


def _split_pattern(added_tokens: Sequence[dict[str, Any]]) -> str:
    """The SpecialTokensSplit pattern for exactly these added tokens (the converter's own construction)."""
    from openvino_tokenizers.utils import quote_meta

    groups: dict[tuple[bool, bool], list[str]] = {}
    for tok in added_tokens:
        groups.setdefault((bool(tok.get("lstrip")), bool(tok.get("rstrip"))), []).append(tok["content"])
    parts = [r"(?:\s*)" * left + "(" + "|".join(quote_meta(t) for t in sorted(toks, reverse=True)) + ")"
             + r"(?:\s*)" * right for (left, right), toks in groups.items()]
    return "|".join(parts) or MATCH_NOTHING


def _restrict_special_split(model: Any, pattern: str) -> int:
    """Give every SpecialTokensSplit node `pattern` (its last input, a u8 constant); returns how many."""
    import numpy as np
    import openvino as ov

    count = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() == "SpecialTokensSplit":
            const = ov.op.Constant(np.frombuffer(pattern.encode("utf-8"), dtype=np.uint8))
            node.input(node.get_input_size() - 1).replace_source_output(const.output(0))
            count += 1
    return count


def _longest_first_ties_to_second(model: Any) -> int:
    """Swap the two texts going into (and coming out of) every Truncate node; returns how many.

    Truncate's inputs are (begins, ends, ids) of the first text, the same of the second, then max_length,
    side and mode; its outputs the truncated (begins, ends, ids) of the first text, then of the second.
    """
    count = 0
    for node in [n for n in model.get_ordered_ops() if n.get_type_name() == "Truncate"]:
        _check_truncate_signature(node)
        sources = [node.input_value(i) for i in range(6)]
        consumers = [list(node.output(i).get_target_inputs()) for i in range(6)]
        for i in range(6):
            node.input(i).replace_source_output(sources[(i + 3) % 6])
        for i in range(6):
            for target in consumers[i]:
                target.replace_source_output(node.output((i + 3) % 6))
        count += 1
    return count


def _truncate_as_bort(model: Any) -> int:
    """Replace every pair Truncate node with Bort's ``truncate_seqs_equal`` in standard ops; returns how many.

    A ragged text is (begins, ends, ids): cutting on the right keeps begins and ids and moves ends. With
    lengths ``la``, ``lb`` and budget ``B`` (Truncate's max_length input, the specials already taken off)::

        la + lb <= B   ->  (la, lb)            # nothing to cut
        la <= B // 2   ->  (la, B - la)        # the short text whole, the other the rest
        lb <= B // 2   ->  (B - lb, lb)
        otherwise      ->  (B - B // 2, B // 2)   # both cut; the first takes the odd token
    """
    import numpy as np
    from openvino import opset13 as ops

    count = 0
    for node in [n for n in model.get_ordered_ops() if n.get_type_name() == "Truncate"]:
        _check_truncate_signature(node)
        begin_a, end_a, ids_a, begin_b, end_b, ids_b = (node.input_value(i) for i in range(6))
        budget = node.input_value(6)
        la, lb = ops.subtract(end_a, begin_a), ops.subtract(end_b, begin_b)
        half = ops.divide(budget, ops.constant(np.int32(2)))  # i32: floor division (budget >= 0)
        fits = ops.less_equal(ops.add(la, lb), budget)
        a_short, b_short = ops.less_equal(la, half), ops.less_equal(lb, half)
        keep_a = ops.select(fits, la, ops.select(a_short, la, ops.select(b_short, ops.subtract(budget, lb),
                                                                            ops.subtract(budget, half))))
        keep_b = ops.select(fits, lb, ops.select(a_short, ops.subtract(budget, la), ops.select(b_short, lb, half)))
        replacement = [begin_a, ops.add(begin_a, keep_a).output(0), ids_a,
                       begin_b, ops.add(begin_b, keep_b).output(0), ids_b]
        for i in range(6):
            for target in list(node.output(i).get_target_inputs()):
                target.replace_source_output(replacement[i])
        count += 1
    return count


def _check_truncate_signature(node: Any) -> None:
    if node.get_input_size() < 9 or node.get_output_size() != 6:
        raise ExportError(f"openvino_tokenizers' Truncate op has {node.get_input_size()} inputs and "
                          f"{node.get_output_size()} outputs, not the 9 and 6 bortconv knows; pin "
                          f"openvino-tokenizers to the version in bortconv's [export] extra")


def _name_inputs(model: Any, names: Sequence[str]) -> None:
    for param, name in zip(model.inputs, names, strict=True):
        param.get_tensor().set_names({name})


def _number_nodes(model: Any) -> None:
    """Name every node by its type and topological position: OpenVINO's default names carry a process-wide
    counter, so the same tokenizer saved twice (or after other conversions) gave different .xml bytes."""
    for i, node in enumerate(model.get_ordered_ops()):
        node.set_friendly_name(f"{node.get_type_name()}_{i}")


def _convert_one(hf_tokenizer: Any, pattern: str, max_length: int | None, inputs: int, rule: str) -> Any:
    import openvino_tokenizers as ot

    model = ot.convert_tokenizer(hf_tokenizer, with_detokenizer=False, truncation=max_length is not None,
                                 max_length=max_length, number_of_inputs=inputs)
    if not _restrict_special_split(model, pattern):
        raise ExportError("openvino_tokenizers built no SpecialTokensSplit step; bortconv cannot set which "
                          "special tokens are matched in text")
    retruncate = _truncate_as_bort if rule == BORT_RULE else _longest_first_ties_to_second
    if inputs == 2 and not retruncate(model):
        raise ExportError("openvino_tokenizers built no Truncate step for pairs; bortconv cannot match "
                          "tokenizer.json's truncation")
    model.validate_nodes_and_infer_types()
    _name_inputs(model, (TEXT_INPUT, TEXT_PAIR_INPUT)[:inputs])
    _number_nodes(model)
    return model


def convert_openvino_tokenizers(artifact_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(single-text IR, pair IR, facts) converted from the tokenizer.json in `artifact_dir` (nothing saved).

    Raises :class:`ExportError` if openvino_tokenizers cannot convert it."""
    d = Path(artifact_dir)
    tj = _tokenizer_json(d)
    ot = import_openvino_tokenizers()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependencyError("converting the tokenizer to OpenVINO needs transformers: "
                                     "pip install 'bortconv[export]'") from None
    truncation = tj.get("truncation") or None
    max_length = int(truncation["max_length"]) if truncation else None
    pattern = _split_pattern([t for t in tj.get("added_tokens") or [] if isinstance(t, dict)])
    rule = pair_rule(d)
    try:
        hf = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        single = _convert_one(hf, pattern, max_length, 1, rule)
        pair = _convert_one(hf, pattern, max_length, 2, rule)
    except ExportError:
        raise
    except Exception as exc:  # the converter raises whatever its parsers hit; one line, named
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"{d / TOKENIZER_FILE}: openvino_tokenizers {ot.__version__} cannot convert it to "
                          f"OpenVINO ops ({type(exc).__name__}: {first})") from exc
    facts = {"max_length": max_length, "truncation": truncation and truncation.get("strategy"),
             "pair_truncation": rule,
             "special_split": pattern, "openvino_tokenizers": ot.__version__}
    return single, pair, facts


def _reference_encodings(artifact_dir: Path, items: Sequence[Any]) -> list[Any]:
    """tokenizer.json's encodings through the runtime's `tokenizers` backend: pairs cut by the declared rule."""
    if not tokenizers_installed():
        raise MissingDependencyError("checking the OpenVINO tokenizer needs: pip install tokenizers")
    return TokenizersBackend(artifact_dir / TOKENIZER_FILE).encode_batch(list(items))


def _first_difference(got: Any, want: Any, has_types: bool) -> str | None:
    if list(got.ids) != list(want.ids):
        k = next((i for i, (a, b) in enumerate(zip(got.ids, want.ids)) if a != b), min(len(got.ids), len(want.ids)))
        return (f"ids differ at position {k}: OpenVINO {list(got.ids[k:k + 4])} ({len(got.ids)} tokens), "
                f"tokenizer.json {list(want.ids[k:k + 4])} ({len(want.ids)} tokens)")
    if has_types and list(got.type_ids) != list(want.type_ids):
        return f"token type ids differ: OpenVINO {list(got.type_ids)}, tokenizer.json {list(want.type_ids)}"
    return None


def check_against_tokenizer_json(artifact_dir: str | Path, texts: Sequence[str],
                                 pairs: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Run the saved IRs on `texts` and `pairs` and compare ids with tokenizer.json, pairs cut by the declared rule (and token type ids, where
    the IR gives them: without, the runtime feeds zeros, as for Bort, whose template makes every type id 0).

    Returns ``{"texts": n, "pairs": m, "mismatches": 0}``; raises :class:`ExportError` naming the first
    mismatch (and how many there were) otherwise."""
    d = Path(artifact_dir)
    ovt = OpenVinoTokenizer(d)
    has_types = ovt.gives_token_types
    items: list[Any] = [*texts, *pairs]
    want = _reference_encodings(d, items)
    got = []
    for start in range(0, len(texts), CHECK_CHUNK):
        got += ovt.encode_texts(texts[start:start + CHECK_CHUNK])
    for start in range(0, len(pairs), CHECK_CHUNK):
        chunk = pairs[start:start + CHECK_CHUNK]
        got += ovt.encode_pairs([a for a, _ in chunk], [b for _, b in chunk])
    bad = [(i, why) for i, (g, w) in enumerate(zip(got, want, strict=True))
           if (why := _first_difference(g, w, has_types)) is not None]
    if bad:
        i, why = bad[0]
        what = f"text {shown(items[i], 80)}" if i < len(texts) else f"pair {shown(repr(items[i]), 80)}"
        raise ExportError(f"{d}: the OpenVINO tokenizer disagrees with tokenizer.json on {len(bad)} of "
                          f"{len(items)} inputs; first, {what}: {why}")
    return {"texts": len(texts), "pairs": len(pairs), "mismatches": 0}


def write_openvino_tokenizers(artifact_dir: str | Path, texts: Sequence[str],
                              pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Convert the artifact's tokenizer.json to the two OpenVINO tokenizer IRs, save them into `artifact_dir`
    and check them against tokenizer.json on `texts` and `pairs` (held-out text; 0 mismatches required).

    Returns the manifest fields: ``{"openvino_tokenizer": {"single": ..., "pair": ..., "inputs": ...,
    "max_length": ..., "check": {...}, "openvino_tokenizers": version, ...}}``. On any failure the IR files are
    removed and :class:`ExportError` (conversion or mismatch) or :class:`MissingDependencyError` is raised:
    an artifact never ships without its tokenizer IR silently.
    """
    d = Path(artifact_dir)
    if not texts or not pairs:
        raise InputError("the OpenVINO tokenizer check needs at least one text and one pair")
    try:
        facts = _converted_files(d)
        check = check_against_tokenizer_json(d, texts, pairs)
    except BaseException:
        for name in IR_FILES:
            (d / name).unlink(missing_ok=True)
        raise
    log.info("%s: OpenVINO tokenizer written, %d texts and %d pairs agree with tokenizer.json", d,
             check["texts"], check["pairs"])
    return {"openvino_tokenizer": {"single": OV_TOKENIZER_XML, "pair": OV_TOKENIZER_PAIR_XML,
                                   "inputs": {"single": [TEXT_INPUT], "pair": [TEXT_INPUT, TEXT_PAIR_INPUT]},
                                   **facts, "check": check}}
