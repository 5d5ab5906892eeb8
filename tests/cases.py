"""The table of reference checkpoints the tests build with real mxnet + gluonnlp 0.8.3.

Each row is one checkpoint: a Bort shape, a head, a way of saving it. Rows with `mutate` are real
mxnet-written files damaged in a specific way (for the bad-input table).
"""

from __future__ import annotations

BORT4 = dict(layers=4, heads=8, ffn=768, units=1024, max_len=512)  # bort_4_8_768_1024 (released)
BORT2 = dict(layers=2, heads=16, ffn=512, units=1024, max_len=512)  # bort_2_16_512_1024
CUSTOM = dict(layers=3, heads=4, ffn=256, units=128, max_len=64)  # any other shape: heads via --heads
SMALL_VOCAB = 4000  # real Bort vocab is 50265; the full-size row uses it, the rest stay small and quick
PADDED = dict(batch=4, seq_len=32, valid_lengths=[32, 23, 7, 1])


def _case(name: str, shape: dict, head: str, save: str = "fp32", vocab: int = SMALL_VOCAB, **kw: object) -> dict:
    return dict(name=name, head=head, save=save, vocab=vocab, num_classes=kw.pop("num_classes", 3),
                seed=sum(map(ord, name)), **shape, **PADDED) | kw


PARITY_CASES: list[dict] = [
    # the released model, full size, saved fp16 like bort.params; longer, padded batch
    _case("bort4_mlm_full_fp16", BORT4, "mlm", "fp16", vocab=50265, batch=3, seq_len=96,
          valid_lengths=[96, 50, 7]),
    _case("bort4_mlm_fp32", BORT4, "mlm"),
    _case("bort2_mlm_fp32", BORT2, "mlm"),
    _case("bort4_cls_fp32", BORT4, "classifier", num_classes=3),
    _case("bort2_cls_fp16", BORT2, "classifier", "fp16", num_classes=2),
    _case("bort4_enc_fp32", BORT4, "encoder"),
    _case("bort2_enc_fp16", BORT2, "encoder", "fp16"),
    _case("bort4_mlm_dedup", BORT4, "mlm", "dedup"),
    _case("bort2_mlm_npx", BORT2, "mlm", "npx"),
    _case("bort4_mlm_legacy", BORT4, "mlm", "legacy"),
    _case("bort2_cls_legacy", BORT2, "classifier", "legacy", num_classes=5),
    _case("custom_enc_fp32", CUSTOM, "encoder", vocab=500, seq_len=24, valid_lengths=[24, 11, 3, 1]),
]

BROKEN_CASES: list[dict] = [
    _case(f"broken_{kind}", CUSTOM, "mlm", vocab=500, mutate=kind, forward=False)
    for kind in ("wrong_shape", "missing", "extra", "nan")
]

ALL_CASES = PARITY_CASES + BROKEN_CASES
