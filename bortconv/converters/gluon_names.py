"""GluonNLP/Bort parameter names and their Hugging Face BERT keys, as data.

``{i}`` stands for the layer index; ``{bert}`` for the base-model prefix (``"bert."`` in models with a head,
``""`` in a bare ``BertModel``). Dense weights are stored (out, in) in both worlds: nothing is transposed.
"""

from __future__ import annotations

import re

#: Backbone names: (Gluon structural name, Hugging Face key).
BACKBONE_TABLE: tuple[tuple[str, str], ...] = (
    ("word_embed.0.weight", "{bert}embeddings.word_embeddings.weight"),
    ("encoder.position_weight", "{bert}embeddings.position_embeddings.weight"),
    ("encoder.layer_norm.gamma", "{bert}embeddings.LayerNorm.weight"),
    ("encoder.layer_norm.beta", "{bert}embeddings.LayerNorm.bias"),
)

#: Per-layer names under ``encoder.transformer_cells.{i}.`` and ``{bert}encoder.layer.{i}.``.
LAYER_TABLE: tuple[tuple[str, str], ...] = (
    ("attention_cell.proj_query.weight", "attention.self.query.weight"),
    ("attention_cell.proj_query.bias", "attention.self.query.bias"),
    ("attention_cell.proj_key.weight", "attention.self.key.weight"),
    ("attention_cell.proj_key.bias", "attention.self.key.bias"),
    ("attention_cell.proj_value.weight", "attention.self.value.weight"),
    ("attention_cell.proj_value.bias", "attention.self.value.bias"),
    ("proj.weight", "attention.output.dense.weight"),
    ("proj.bias", "attention.output.dense.bias"),
    ("layer_norm.gamma", "attention.output.LayerNorm.weight"),
    ("layer_norm.beta", "attention.output.LayerNorm.bias"),
    ("ffn.ffn_1.weight", "intermediate.dense.weight"),
    ("ffn.ffn_1.bias", "intermediate.dense.bias"),
    ("ffn.ffn_2.weight", "output.dense.weight"),
    ("ffn.ffn_2.bias", "output.dense.bias"),
    ("ffn.layer_norm.gamma", "output.LayerNorm.weight"),
    ("ffn.layer_norm.beta", "output.LayerNorm.bias"),
)
LAYER_SOURCE = "encoder.transformer_cells.{i}."
LAYER_TARGET = "{bert}encoder.layer.{i}."

#: Head names per head kind. `decoder.3.weight` is not here: it is tied to `word_embed.0.weight`.
HEAD_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "encoder": (),
    "mlm": (
        ("decoder.0.weight", "cls.predictions.transform.dense.weight"),
        ("decoder.0.bias", "cls.predictions.transform.dense.bias"),
        ("decoder.2.gamma", "cls.predictions.transform.LayerNorm.weight"),
        ("decoder.2.beta", "cls.predictions.transform.LayerNorm.bias"),
        ("decoder.3.bias", "cls.predictions.bias"),
    ),
    "classifier": (
        ("classifier.1.weight", "bert.pooler.dense.weight"),
        ("classifier.1.bias", "bert.pooler.dense.bias"),
        ("classifier.3.weight", "classifier.weight"),
        ("classifier.3.bias", "classifier.bias"),
    ),
}
TIED_DECODER = "decoder.3.weight"
WORD_EMBED = "word_embed.0.weight"
TOKEN_TYPE_KEY = "{bert}embeddings.token_type_embeddings.weight"  # Bort has none: one zero row

#: HF class and base-model prefix per head.
HF_ARCHITECTURES = {"encoder": "BertModel", "mlm": "BertForMaskedLM", "classifier": "BertForSequenceClassification"}
BASE_PREFIX = {"encoder": "", "mlm": "bert.", "classifier": "bert."}

#: Names written by `collect_params().save()` (pre-structural Gluon): instance-numbered prefixes such as
#: ``bertencoder0_transformer3_...``. The numbers after the top-level blocks change per instance and per
#: process, so they are matched, not spelled. Order matters: first match wins.
_ENC = r"(?:\w+?_)?bertencoder\d+_"
LEGACY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), t) for p, t in (
    (_ENC + r"position_weight", "encoder.position_weight"),
    (_ENC + r"transformer(?P<i>\d+)_multiheadattentioncell\d+_(?P<p>query|key|value)_(?P<k>weight|bias)",
     "encoder.transformer_cells.{i}.attention_cell.proj_{p}.{k}"),
    (_ENC + r"transformer(?P<i>\d+)_proj_(?P<k>weight|bias)", "encoder.transformer_cells.{i}.proj.{k}"),
    (_ENC + r"transformer(?P<i>\d+)_bertpositionwiseffn\d+_ffn_(?P<n>[12])_(?P<k>weight|bias)",
     "encoder.transformer_cells.{i}.ffn.ffn_{n}.{k}"),
    (_ENC + r"transformer(?P<i>\d+)_bertpositionwiseffn\d+_bertlayernorm\d+_(?P<k>gamma|beta)",
     "encoder.transformer_cells.{i}.ffn.layer_norm.{k}"),
    (_ENC + r"transformer(?P<i>\d+)_bertlayernorm\d+_(?P<k>gamma|beta)", "encoder.transformer_cells.{i}.layer_norm.{k}"),
    (_ENC + r"bertlayernorm\d+_(?P<k>gamma|beta)", "encoder.layer_norm.{k}"),
    (r"(?:\w+?_)?(?:bort|bert)model\d+_word_embed_embedding\d+_weight", "word_embed.0.weight"),
    # The decoder's output Dense shares the embedding's parameter dict, so its bias carries that prefix.
    (r"(?:\w+?_)?(?:bort|bert)model\d+_word_embed_embedding\d+_bias", "decoder.3.bias"),
    (r"(?:\w+?_)?(?:bort|bert)model\d+_dense\d+_(?P<k>weight|bias)", "decoder.0.{k}"),
    (r"(?:\w+?_)?(?:bort|bert)model\d+_bertlayernorm\d+_(?P<k>gamma|beta)", "decoder.2.{k}"),
    (r"bortclassifier\d+_dense0_(?P<k>weight|bias)", "classifier.1.{k}"),
    (r"bortclassifier\d+_dense1_(?P<k>weight|bias)", "classifier.3.{k}"),
))


def canonical_name(name: str) -> str | None:
    """The Gluon structural name for a stored name, or None if it is not a Bort parameter name.

    Handles structural names (``encoder.transformer_cells.0...``), the fine-tuned classifier's ``bort.``
    prefix, Module-style ``arg:``/``aux:`` prefixes, and legacy instance-prefixed names.
    """
    for prefix in ("arg:", "aux:"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if "." in name:
        return name[len("bort."):] if name.startswith("bort.") else name
    for pattern, target in LEGACY_PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return target.format(**m.groupdict())
    return None


def expected_names(head: str, num_layers: int) -> list[tuple[str, str]]:
    """Every (Gluon name, HF key) pair a model with this head and depth must provide."""
    bert = BASE_PREFIX[head]
    pairs = [(src, dst.format(bert=bert)) for src, dst in BACKBONE_TABLE]
    for i in range(num_layers):
        src_base = LAYER_SOURCE.format(i=i)
        dst_base = LAYER_TARGET.format(bert=bert, i=i)
        pairs += [(src_base + s, dst_base + d) for s, d in LAYER_TABLE]
    pairs += list(HEAD_TABLES[head])
    return pairs
