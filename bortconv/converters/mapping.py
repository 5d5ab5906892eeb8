"""Map a parsed `.params` file onto Hugging Face BERT keys: detect the head, infer the variant, account for
every tensor. Pure: takes a :class:`ParamsFile`, returns a :class:`ConversionPlan`; reads no data except to
check for NaN/Inf."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from bortconv.config import KNOWN_HEADS, BortVariant, ConvertOptions, Head, heads_from_name
from bortconv.converters import gluon_names as gn
from bortconv.converters.params_reader import FLOAT_TYPES, ParamsFile, TensorRecord
from bortconv.errors import BadWeightsError, MappingError, shown

LIST_LIMIT = 12  # how many names an error message lists before it says "and N more"


@dataclass(frozen=True)
class TargetTensor:
    """One tensor of the Hugging Face model and where its values come from."""

    key: str
    shape: tuple[int, ...]
    source: TensorRecord | None  # None: synthesized zeros (Bort has no token-type embedding)
    source_name: str | None


@dataclass(frozen=True)
class ConversionPlan:
    variant: BortVariant
    head: Head
    num_labels: int | None
    source_dtype: str
    tensors: tuple[TargetTensor, ...]
    deduplicated: bool  # the tied embedding was stored once, as decoder.3.weight

    @property
    def parameter_count(self) -> int:
        return sum(int(np.prod(t.shape)) for t in self.tensors)


def _listing(names: list[str]) -> str:
    names = sorted(names)
    more = f" and {len(names) - LIST_LIMIT} more" if len(names) > LIST_LIMIT else ""
    return ", ".join(map(shown, names[:LIST_LIMIT])) + more


def _layer_index(name: str) -> int | None:
    """The layer number of an ``encoder.transformer_cells.{i}.*`` name; None if `i` is not ASCII digits.

    Never parses a long digit string: Python refuses ints of more than 4300 digits, and any index beyond a
    billion is out of range anyway."""
    part = name.split(".")[2]
    if not (part.isascii() and part.isdigit()):
        return None
    return int(part) if len(part) <= 9 else 10**9


def canonical_records(params: ParamsFile) -> dict[str, TensorRecord]:
    """Stored name -> record, keyed by the canonical Gluon structural name. Unknown names fail, all at once."""
    if not params.has_names:
        raise MappingError(
            f"{params.path}: holds {len(params)} unnamed arrays (a list save); bortconv needs the named "
            f"parameters that Gluon's save_parameters writes")
    out: dict[str, TensorRecord] = {}
    unknown: list[str] = []
    for rec in params.records:
        assert rec.name is not None
        canon = gn.canonical_name(rec.name)
        if canon is None:
            unknown.append(rec.name)
        elif canon in out:
            raise MappingError(f"{params.path}: '{shown(rec.name)}' and '{shown(str(out[canon].name))}' both map to "
                               f"'{shown(canon)}'")
        else:
            out[canon] = rec
    if unknown:
        raise MappingError(f"{params.path}: unknown tensors not used by any Bort head: {_listing(unknown)}")
    return out


def detect_head(names: set[str]) -> Head:
    has_dec = any(n.startswith("decoder.") for n in names)
    has_cls = any(n.startswith("classifier.") for n in names)
    if has_dec and has_cls:
        raise MappingError("checkpoint has both an MLM decoder (decoder.*) and a classifier (classifier.*)")
    return Head.MLM if has_dec else Head.CLASSIFIER if has_cls else Head.ENCODER


def _shape_of(recs: dict[str, TensorRecord], name: str, path: object) -> tuple[int, ...]:
    rec = recs.get(name)
    if rec is None or rec.shape is None:
        raise MappingError(f"{path}: missing tensor '{name}', needed to infer the model's shape")
    return rec.shape


def infer_variant(recs: dict[str, TensorRecord], options: ConvertOptions, path: object) -> BortVariant:
    """Layers, widths and vocabulary from the tensor shapes; heads from --variant, --heads or the known table."""
    embed_name = gn.WORD_EMBED if gn.WORD_EMBED in recs else gn.TIED_DECODER
    embed = _shape_of(recs, embed_name, path)
    pos = _shape_of(recs, "encoder.position_weight", path)
    layer_ids = {i for n in recs
                 if n.startswith("encoder.transformer_cells.") and (i := _layer_index(n)) is not None}
    num_layers = max(layer_ids) + 1 if layer_ids else 0
    if num_layers == 0:
        raise MappingError(f"{path}: no encoder.transformer_cells.* tensors: not a Bort/BERT encoder")
    # Every layer needs its own tensors, so a layer number beyond what the file holds is not a layer (and
    # planning for it would cost time and memory out of all proportion to the file).
    if num_layers > len(recs) // len(gn.LAYER_TABLE) + 1:
        raise MappingError(
            f"{path}: tensor names number layers up to {num_layers - 1}, but {len(recs)} tensors cannot hold that "
            f"many layers ({len(gn.LAYER_TABLE)} tensors each); layer numbers found: "
            f"{', '.join(map(str, sorted(layer_ids)[:LIST_LIMIT]))}{' ...' if len(layer_ids) > LIST_LIMIT else ''}")
    # The FFN width by majority over layers, so one damaged layer is reported as the odd one out.
    ffn_shapes = Counter(recs[n].shape for n in recs if n.endswith(".ffn.ffn_1.weight") and recs[n].shape)
    if not ffn_shapes:
        raise MappingError(f"{path}: no encoder.transformer_cells.*.ffn.ffn_1.weight tensors: not a Bort encoder")
    ffn = ffn_shapes.most_common(1)[0][0]
    if len(embed) != 2 or len(pos) != 2 or len(ffn) != 2:
        raise MappingError(f"{path}: embedding, position and FFN weights must be 2-D, got {embed}, {pos}, {ffn}")
    vocab, units = embed
    intermediate = ffn[0]
    heads = options.heads
    if options.variant is not None:
        v_layers, v_heads, v_ffn, v_units = heads_from_name(options.variant)
        found = (num_layers, intermediate, units)
        if (v_layers, v_ffn, v_units) != found:
            raise MappingError(
                f"{path}: --variant {options.variant}: the checkpoint's shapes say layers={num_layers}, "
                f"ffn={intermediate}, units={units}")
        if heads is not None and heads != v_heads:
            raise MappingError(f"{path}: --heads {heads} contradicts --variant {options.variant}")
        heads = v_heads
    if heads is None:
        heads = KNOWN_HEADS.get((num_layers, intermediate, units))
        if heads is None:
            raise MappingError(
                f"{path}: cannot tell the number of attention heads of a {num_layers}-layer, ffn {intermediate}, "
                f"units {units} model from its tensors; pass --heads N or --variant bort_L_H_F_U")
    try:
        return BortVariant(num_layers=num_layers, num_heads=heads, intermediate_size=intermediate,
                           hidden_size=units, vocab_size=vocab, max_position_embeddings=pos[0])
    except MappingError as exc:
        raise MappingError(f"{path}: {exc.message}") from None


def expected_shapes(v: BortVariant, head: Head, num_labels: int | None) -> dict[str, tuple[int, ...]]:
    """The shape every Gluon tensor must have for this variant and head."""
    u, f = v.hidden_size, v.intermediate_size
    per_layer = {
        "attention_cell.proj_query.weight": (u, u), "attention_cell.proj_query.bias": (u,),
        "attention_cell.proj_key.weight": (u, u), "attention_cell.proj_key.bias": (u,),
        "attention_cell.proj_value.weight": (u, u), "attention_cell.proj_value.bias": (u,),
        "proj.weight": (u, u), "proj.bias": (u,), "layer_norm.gamma": (u,), "layer_norm.beta": (u,),
        "ffn.ffn_1.weight": (f, u), "ffn.ffn_1.bias": (f,), "ffn.ffn_2.weight": (u, f), "ffn.ffn_2.bias": (u,),
        "ffn.layer_norm.gamma": (u,), "ffn.layer_norm.beta": (u,),
    }
    shapes: dict[str, tuple[int, ...]] = {
        gn.WORD_EMBED: (v.vocab_size, u), "encoder.position_weight": (v.max_position_embeddings, u),
        "encoder.layer_norm.gamma": (u,), "encoder.layer_norm.beta": (u,),
    }
    for i in range(v.num_layers):
        shapes.update({gn.LAYER_SOURCE.format(i=i) + k: s for k, s in per_layer.items()})
    if head is Head.MLM:
        shapes.update({"decoder.0.weight": (u, u), "decoder.0.bias": (u,), "decoder.2.gamma": (u,),
                       "decoder.2.beta": (u,), "decoder.3.bias": (v.vocab_size,),
                       gn.TIED_DECODER: (v.vocab_size, u)})
    elif head is Head.CLASSIFIER:
        assert num_labels is not None
        shapes.update({"classifier.1.weight": (u, u), "classifier.1.bias": (u,),
                       "classifier.3.weight": (num_labels, u), "classifier.3.bias": (num_labels,)})
    return shapes


def _check_tied_copies(params: ParamsFile, recs: dict[str, Any], path: Any) -> None:
    """Both copies of the tied word-embedding/decoder matrix are stored: they must be identical."""
    a = params.array_for(recs[gn.WORD_EMBED]).reshape(-1)
    b = params.array_for(recs[gn.TIED_DECODER]).reshape(-1)
    step = 1 << 22  # compare in chunks: no full-size temporary
    same = a.dtype == b.dtype
    for i in range(0, a.size, step):
        same = same and np.array_equal(a[i:i + step], b[i:i + step], equal_nan=True)
        params.release()
    if not same:
        raise MappingError(
            f"{path}: '{shown(str(recs[gn.TIED_DECODER].name))}' differs from "
            f"'{shown(str(recs[gn.WORD_EMBED].name))}'; "
            f"Bort ties the MLM decoder to the word embedding, so they must be identical")


def plan_conversion(params: ParamsFile, options: ConvertOptions) -> ConversionPlan:
    """Account for every stored tensor and every Hugging Face key; fail listing all problems at once."""
    recs = canonical_records(params)
    path = params.path
    head = detect_head(set(recs))
    num_labels = None
    if head is Head.CLASSIFIER:
        cls_shape = _shape_of(recs, "classifier.3.weight", path)
        if len(cls_shape) != 2 or cls_shape[0] == 0:
            raise MappingError(f"{path}: '{shown(str(recs['classifier.3.weight'].name))}' must be (classes, units) "
                               f"with at least one class, found shape {cls_shape}")
        num_labels = cls_shape[0]
    variant = infer_variant(recs, options, path)
    shapes = expected_shapes(variant, head, num_labels)

    deduplicated = head is Head.MLM and gn.WORD_EMBED not in recs and gn.TIED_DECODER in recs
    if deduplicated:  # save_parameters(deduplicate=True) keeps the decoder's copy of the tied weight
        recs = dict(recs)
        recs[gn.WORD_EMBED] = recs.pop(gn.TIED_DECODER)
    pairs = gn.expected_names(head.value, variant.num_layers)

    unused = sorted(set(recs) - set(shapes))
    missing = sorted(n for n in shapes if n not in recs and not (n == gn.TIED_DECODER))
    problems = []
    if missing:
        problems.append(f"missing tensors: {_listing(missing)}")
    if unused:
        stored = [recs[n].name or n for n in unused]
        problems.append(f"unused tensors (not part of a {variant.name} {head.value} model): {_listing(stored)}")
    wrong = [f"'{shown(str(recs[n].name))}' expected {shapes[n]}, found {recs[n].shape}"
             for n in sorted(shapes) if n in recs and recs[n].shape != shapes[n]]
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong[:LIST_LIMIT])
                        + (f" and {len(wrong) - LIST_LIMIT} more" if len(wrong) > LIST_LIMIT else ""))
    if problems:
        raise MappingError(f"{path}: " + "; ".join(problems))

    nonfloat = sorted(r.name or "?" for r in recs.values() if r.dtype not in FLOAT_TYPES)
    if nonfloat:
        raise MappingError(f"{path}: tensors are not floating point: {_listing(nonfloat)}")
    dtypes = {r.dtype for r in recs.values()}
    source_dtype = dtypes.pop() if len(dtypes) == 1 else "mixed"

    if gn.TIED_DECODER in recs:  # both copies stored: Bort ties them, so they must be equal
        _check_tied_copies(params, recs, path)

    tensors = [TargetTensor(key=dst, shape=shapes[src], source=recs[src], source_name=recs[src].name)
               for src, dst in pairs]
    bert = gn.BASE_PREFIX[head.value]
    tensors.insert(2, TargetTensor(key=gn.TOKEN_TYPE_KEY.format(bert=bert), shape=(1, variant.hidden_size),
                                   source=None, source_name=None))
    return ConversionPlan(variant=variant, head=head, num_labels=num_labels, source_dtype=source_dtype,
                          tensors=tuple(tensors), deduplicated=deduplicated)


def count_nonfinite(params: ParamsFile, plan: ConversionPlan, chunk: int = 1 << 18) -> dict[str, int]:
    """Stored name -> number of NaN/Inf values, for every tensor that has any.

    Reads the stored values in chunks, never a converted copy: temporaries stay under a megabyte whatever
    the tensor's size (bfloat16 is tested on its raw bits: all-ones exponent means Inf or NaN)."""
    bad: dict[str, int] = {}
    for t in plan.tensors:
        if t.source is None:
            continue
        flat = params.array_for(t.source).reshape(-1)
        bf16 = t.source.dtype == "bfloat16"
        n = 0
        for i in range(0, flat.size, chunk):
            part = flat[i:i + chunk]
            if bf16:
                n += int(np.count_nonzero((part & 0x7F80) == 0x7F80))
            else:
                n += part.size - int(np.count_nonzero(np.isfinite(part)))
            if i % (chunk * 16) == 0:
                params.release()
        if n:
            bad[t.source_name or t.key] = n
    return bad


def check_finite(params: ParamsFile, plan: ConversionPlan) -> None:
    """Fail on NaN/Inf, naming every bad tensor and how many bad values it holds."""
    bad = count_nonfinite(params, plan)
    if bad:
        listing = ", ".join(f"'{shown(k)}' ({n} non-finite values)" for k, n in sorted(bad.items()))
        raise BadWeightsError(f"{params.path}: NaN/Inf in {listing}")
