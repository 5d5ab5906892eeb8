"""The training record (``bortconv_finetune.json`` in OUT_DIR): what was asked, what was decided where the sources
are silent, what the search tried and found, and where the time went."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bortconv._version import __version__

RECORD_FILE = "bortconv_finetune.json"
RECORD_VERSION = 1

#: what the Agora sources leave open, and what bortconv does (also in the README's fine-tuning section)
DECISIONS: dict[str, str] = {
    "transformation": "masked-LM substitution with the source's own MLM head (15% of a text's tokens, at least "
                      "one, each resampled from the top 20 without the original token, one forward pass per "
                      "variant) mixed half and half with word-level token operations (delete, swap, insert, "
                      "substitute a training-set word, crop); token operations alone when the source has no MLM "
                      "head. Pluggable: any callable (examples, per_example, rng) -> examples.",
    "points_per_mistake": "per_mistake new points (default 4) per dev mistake of the round's best candidate, at "
                          "most max_generated per round (default: the size of the training file); exact "
                          "duplicates of training, dev or earlier generated text are dropped.",
    "teacher_labels": "soft targets by default: the teacher's probabilities, trained with cross-entropy like the "
                      "one-hot labels of the training file (teacher_targets='hard' for its argmax).",
    "retraining": "every round trains each surviving configuration from the pretrained source on the grown "
                  "training set (the loop reads that way); the candidate seed stays the same across rounds.",
    "pruning": "after a round the configurations are sorted by dev accuracy and the leading run tied with the "
               "worst is removed (at least one per round), the notes page's 'longest common sequence rooted at "
               "the first element'.",
    "replay": "when a round's best dev accuracy does not beat the best seen before it, the round is repeated "
              "once (max_replays) without pruning, with freshly generated data, if it fits the time left.",
    "last_round": "no data is generated after the round that empties the search: nothing would train on it.",
    "selection": "the best model seen in any round by dev accuracy (ties: lower dev loss); inside a training "
                 "the best epoch by the same rule.",
    "held_out": "dev mistakes seed the training data, so dev accuracy turns optimistic over the rounds: judge "
                "the result on a split neither the search nor the teacher saw.",
    "plain": "the same sampled configurations trained once each on the training file and the best kept by dev "
             "accuracy (enumerating the configurations: the baseline of the paper's guarantee); no teacher, no "
             "generated data. Later rounds would retrain the same configurations on the same data and, being "
             "deterministic, repeat round 1.",
    "budget": "wall time. A probe times training steps, scoring, generation and teacher labelling here; the "
              "search space is a seeded permutation of the grid and the longest prefix whose estimated cost "
              "fits 85% of the budget is trained (agora assumes one configuration pruned per round and a third "
              "of dev wrong). If the estimate is exceeded, no new training starts after the budget and a running "
              "one stops after its current epoch.",
    "multi_class_and_pairs": "the guarantees are for binary tasks; the same loop runs for any number of labels "
                             "and for pairs (the generator changes one text of a pair).",
    "head": "BertForSequenceClassification's pooler (Dense+tanh on the first token) and classifier are Bort's "
            "classifier.1 and classifier.3; a head the source lacks is initialised normal(0, 0.02) with zero "
            "biases (gluon's uniform(-0.5, 0.5) saturates a 1024-wide tanh); a pooler or classifier the source "
            "has is kept.",
    "epochs": "a fixed number per training (default 3); the author's 50-100 epochs for small problems do not "
              "fit a CPU budget.",
}


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"bortconv": __version__}
    for pkg in ("torch", "transformers", "tokenizers", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    path = out_dir / RECORD_FILE
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path


def read_record(model_dir: str | Path) -> dict[str, Any]:
    """The training record of a fine-tuned directory."""
    from bortconv._jsonfile import read_json

    return read_json(Path(model_dir) / RECORD_FILE)  # type: ignore[no-any-return]


def header(method: str) -> dict[str, Any]:
    return {"record_version": RECORD_VERSION, "tool": f"bortconv {__version__}", "method": method}
