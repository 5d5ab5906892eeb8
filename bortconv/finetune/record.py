"""The training record (``bortconv_finetune.json`` in OUT_DIR): what was asked, what was decided where the sources
are silent, what the search tried and found, and where the time went."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bortconv._version import __version__
from bortconv.finetune.search import SWITCH_P

RECORD_FILE = "bortconv_finetune.json"
RECORD_VERSION = 2

#: what the Agora sources leave open, and what bortconv does (also in the README's fine-tuning section)
DECISIONS: dict[str, str] = {
    "containment": "plain and Agora plan round 1 identically: the same stratified sample, sized to round1_share "
                   "of the planned budget, trained on the same data with the same seeds and scored on the same "
                   "selection split. Plain stops there; Agora's round 1 is therefore plain's whole search and "
                   "plain's model is one of Agora's candidates. Plain leaves the rest of its budget unused.",
    "selection": "dev is split per label (selection_share, default 3/4, seeded) into a selection split S and a "
                 "mistakes split F. S picks each training's epoch and the result; the generator sees F's mistakes "
                 "and the training file, never S, so no generated point comes from a point that judges it. The "
                 "result is round 1's best model (by S accuracy; ties: lower S loss), unless a later round's best "
                 "is clearly better on S: among the S examples exactly one of the two gets right, it is right so "
                 f"often that a fair coin would do it with probability at most {SWITCH_P} (one-sided exact sign "
                 "test; each later round's row records wins, losses and p as vs_kept). One S example ahead is "
                 "noise on small dev splits.",
    "sampling": "no uniform draw of the space: its seeded order is stratified over the learning rate (one "
                "configuration of each learning rate in turn), so k sampled configurations hold min(k, |lr|) "
                "learning rates. The default space's learning rates {1e-4, 3e-5, 3e-4} were measured for "
                "all-MiniLM-L6-v2 on a few hundred examples (docs/finetune.md); the README's {1e-4, 1e-5, 9e-6} "
                "and weight decays up to 350 are Bort's for GLUE-sized data (--space bort).",
    "epochs": "up to epochs (default 10) per training with early stopping: a training stops after patience "
              "(default 3) epochs without a better S score; the best epoch is kept. The author's 50-100 epochs "
              "for small problems do not fit a CPU budget.",
    "teacher_check": "after round 1 the teacher's accuracy on dev (S and F, measured before the search) is "
                     "compared with round 1's best model's on the same examples. Only a teacher strictly more "
                     "accurate runs Agora's later rounds: one no more accurate cannot teach the student through its "
                     "labels. Otherwise round 2 extends plain's search with the next configurations of its seeded "
                     "order (those that fit the time left, up to max_candidates in all; with no budget, as many as "
                     "round 1), trained on the training file alone, and the result is the best of rounds 1 and 2 by "
                     "plain's rule (S accuracy, then S loss). Round 1's row records the comparison (teacher_check) "
                     "and the extension.",
    "later_rounds": "after round 1 the configurations are ranked by S; the run tied with the worst S score is "
                    "pruned (none when the round is replayed) and the best-ranked ones whose trainings fit the "
                    "time left are trained again from the pretrained source on the grown training set.",
    "transformation": "masked-LM substitution with the source's own MLM head (15% of a text's tokens, at least "
                      "one, each resampled from the top 20 without the original token) mixed half and half with "
                      "word-level token operations (delete, swap, insert, substitute a training-set word, crop); "
                      "token operations alone when the source has no MLM head. Token operations never delete, "
                      "substitute, insert, move or crop away a negation word. Pluggable: any callable "
                      "(examples, per_example, rng) -> examples.",
    "points_per_mistake": "per_mistake new points (default 4) per F mistake of the last round's best candidate; "
                          "then (generate_from 'both', the default) as many per training-file point, sampled to "
                          "fill what is left of max_generated per round (default: synthetic_ratio times the "
                          "training file), "
                          "so the teacher labels points near everything the student learns from, not only near "
                          "a few dev mistakes. Exact duplicates of training, dev or earlier generated text are "
                          "dropped.",
    "synthetic_filter": "'all' (default): every generated point is kept, trained on the teacher's targets, so its "
                        "knowledge also reaches the student where an edit changed the label; 'agree' keeps a point "
                        "only if the teacher labels it as its source point's gold label. The record gives the "
                        "share that agrees and the teacher's confidence.",
    "synthetic_cap": "synthetic points in the training set at most synthetic_ratio (default 3) times the "
                     "training file's size, and under a budget at most what lets the next round's best-ranked "
                     "configuration train in the time left (a smaller training set rather than no round; none if "
                     "not even a quarter of the training file fits): the newest round's points first, then a "
                     "seeded sample of older ones.",
    "teacher_labels": "soft targets by default: the teacher's probabilities, trained with cross-entropy like the "
                      "one-hot labels of the training file (teacher_targets='hard' for its argmax).",
    "retraining": "every round trains each configuration from the pretrained source on the grown training set; "
                  "the candidate seed stays the same across rounds.",
    "pruning": "after a round the configurations are sorted by S accuracy and the leading run tied with the "
               "worst is removed (at least one per round), the notes page's 'longest common sequence rooted at "
               "the first element'; when round 1's configurations all tie, its best-ranked one is kept for round 2.",
    "replay": "when a later round's best is not clearly better than the kept model on S, the round is repeated once "
              "(max_replays) without pruning, with freshly generated data, if it fits the time left.",
    "held_out": "S picked the model, so its score is optimistic too: judge the result on a split neither the "
                "search nor the teacher saw.",
    "plain": "round 1 only: the stratified sample trained once each on the training file, the best kept by S "
             "accuracy; no teacher, no generated data.",
    "budget": "wall time. A probe times training steps, scoring, generation and teacher labelling here; round 1 "
              "gets the longest prefix of the stratified order whose estimated cost fits round1_share x 85% of "
              "the budget. Later rounds train what fits the time left. No training starts past the budget and a "
              "running one stops after its current epoch. The record gives each round's plan and spend.",
    "multi_class_and_pairs": "the guarantees are for binary tasks; the same loop runs for any number of labels "
                             "and for pairs (the generator changes one text of a pair).",
    "head": "BertForSequenceClassification's pooler (Dense+tanh on the first token) and classifier are Bort's "
            "classifier.1 and classifier.3; a head the source lacks is initialised normal(0, 0.02) with zero "
            "biases (gluon's uniform(-0.5, 0.5) saturates a 1024-wide tanh); a pooler or classifier the source "
            "has is kept.",
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
    from bortconv._util.jsonfile import read_json

    return read_json(Path(model_dir) / RECORD_FILE)  # type: ignore[no-any-return]


def header(method: str) -> dict[str, Any]:
    return {"record_version": RECORD_VERSION, "tool": f"bortconv {__version__}", "method": method}
