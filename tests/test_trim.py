"""`bortconv trim`: a vocabulary cut to a domain, re-indexed consistently, gated against the untrimmed model.

Real model and real text: all-MiniLM-L6-v2 (WordPiece, real weights) trimmed to a domain corpus of 1,800 Python
standard-library docstring summaries (tests/docstring_corpus.py: 1,500 choose the tokens, 300 are held out), judged
here with stock transformers (AutoModel / AutoTokenizer), not with bortconv's loaders. Bort's byte-level BPE on a
small BERT in Bort's layout (the 4,000-token GPT-2 BPE of test_ov_tokenizer, an MLM head, random weights): merges
closed, ids of the specials, MLM decoder rows and bias, Bort's pair rule carried. Then bad input, in a table.

`python -I -S tests/docstring_corpus.py FILE` writes the domain corpus (docs/compression.md's measurement uses it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import MINILM, run_bortconv  # noqa: E402
from docstring_corpus import write_corpus  # noqa: E402

from bortconv.converters.trim import AUTO_FRACTIONS, TRIM_RECORD, read_corpus  # noqa: E402

# ---------------------------------------------------------------------------------------------- stock transformers


def stock_pooled(model_dir: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled last hidden states from transformers' own AutoModel + AutoTokenizer, fp32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).float().eval()
    with torch.inference_mode():
        enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        return ((hidden * mask).sum(1) / mask.sum(1)).double().numpy()


def stock_tokens(model_dir: Path, texts: list[str]) -> list[list[str]]:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    return [tok.convert_ids_to_tokens(ids) for ids in tok(texts, truncation=True, max_length=128)["input_ids"]]


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ---------------------------------------------------------------------------------------------- MiniLM, WordPiece


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "docstrings.txt")


@pytest.fixture(scope="module")
def trimmed(corpus, tmp_path_factory) -> tuple[Path, dict]:
    """MiniLM trimmed once with the default rule, the budget searched (--keep auto): (directory, the --json
    output)."""
    out = tmp_path_factory.mktemp("trim") / "minilm-docs"
    proc = run_bortconv("trim", MINILM, "--corpus", corpus, "-o", out, "--threads", "2", "--domain-worst-min", "0.5",
                        "--keep", "auto", "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_minilm_keeps_at_most_half_and_passes_against_stock_transformers(trimmed, corpus):
    out, summary = trimmed
    record = json.loads((out / TRIM_RECORD).read_text())
    assert {k: summary[k] for k in record} == record
    tokens = record["tokens"]
    assert tokens["total"] == 30522 and tokens["kept"] <= tokens["total"] // 2
    assert json.loads((out / "config.json").read_text())["vocab_size"] == tokens["kept"]
    import hashlib
    assert record["corpus"]["sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert record["corpus"]["choose_lines"] == 1500 and record["corpus"]["heldout_lines"] == 300
    assert record["rule"]["name"] == "domain" and record["rule"]["keep"] == "auto"
    # --keep auto: the budgets tried are the ladder's, smallest first, up to the first that passes (the one kept);
    # each one before it fails on its own figures
    tried = record["rule"]["budgets_tried"]
    assert [t["keep"] for t in tried] == [int(f * 30522) for f in AUTO_FRACTIONS[:len(tried)]]
    assert [t["passed"] for t in tried] == [False] * (len(tried) - 1) + [True]
    assert tokens["kept"] == tried[-1]["keep"] == record["rule"]["budget"]
    for t in tried[:-1]:
        assert t["domain"]["sentence_cosine_mean"] < 0.99 or t["domain"]["sentence_cosine_worst"] < 0.5, t
    assert {k: record["gate"]["domain"][k] for k in tried[-1]["domain"]} == tried[-1]["domain"]
    # the gate's figures, re-measured with stock transformers on the held-out split (never used to choose). The
    # weights are the source's, row for row (test_wordpiece_vocabulary_is_consistent), so a text the two stock
    # tokenizers split into the same strings has the same output: the texts that differ are run
    heldout = list(read_corpus(corpus, None).heldout)
    differ = [i for i, (a, b) in enumerate(zip(stock_tokens(MINILM, heldout), stock_tokens(out, heldout))) if a != b]
    assert 0 < len(differ) == record["gate"]["domain"]["texts_retokenized"] < len(heldout) // 5
    stock = np.ones(len(heldout))
    texts = [heldout[i] for i in differ]
    stock[differ] = cos(stock_pooled(MINILM, texts), stock_pooled(out, texts))
    # mean >= 0.99 at the budget auto kept (at most half the vocabulary); 95% of the held-out texts >= 0.9. The
    # worst text is not: a short docstring whose one unseen word falls apart ("rendering" -> re ##nder ##ing)
    # drops to ~0.6 at any budget that saves much (docs/compression.md), so this run lowers --domain-worst-min
    assert stock.mean() >= 0.99 and np.percentile(stock, 5) >= 0.9, (stock.mean(), np.percentile(stock, 5))
    assert stock.min() >= 0.5
    domain = record["gate"]["domain"]
    assert abs(domain["sentence_cosine_mean"] - stock.mean()) < 1e-4
    assert abs(domain["sentence_cosine_worst"] - stock.min()) < 1e-4
    general = record["gate"]["general"]
    assert general["texts"] == 600 and 0 < general["sentence_cosine_worst"] <= general["sentence_cosine_mean"] <= 1


def test_wordpiece_vocabulary_is_consistent(trimmed, corpus):
    """Every single character and ##character is kept (no word becomes [UNK]); the specials keep their rows;
    vocab.txt is tokenizer.json's order; the choosing split's words tokenize exactly as before."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    out, _ = trimmed
    old, new = Tokenizer.from_file(str(MINILM / "tokenizer.json")), Tokenizer.from_file(str(out / "tokenizer.json"))
    old_vocab, new_vocab = old.get_vocab(), new.get_vocab()
    singles = [t for t in old_vocab if len(t) == 1 or (t.startswith("##") and len(t) == 3)]
    assert len(singles) > 1900 and all(t in new_vocab for t in singles)
    assert (out / "vocab.txt").read_text(encoding="utf-8").splitlines() == sorted(new_vocab, key=new_vocab.get)
    before, after = load_file(str(MINILM / "model.safetensors")), load_file(str(out / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    kept_old = [old_vocab[t] for t in sorted(new_vocab, key=new_vocab.get)]
    assert np.array_equal(after[key], before[key][kept_old])  # every row follows its token
    assert set(after) == set(before) and all(np.array_equal(after[k], before[k]) for k in before if k != key)
    for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        assert np.array_equal(after[key][new_vocab[t]], before[key][old_vocab[t]]), t
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == new_vocab["[PAD]"]
    choose = list(read_corpus(corpus, None).choose)
    assert [e.tokens for e in new.encode_batch(choose)] == [e.tokens for e in old.encode_batch(choose)]
    # the 'common' step keeps the most frequent English words whole: by the stock tokenizers they tokenize as
    # before; the 'related' step fills the rest of the budget (the record says how many tokens it added)
    from bortconv.converters.trim import COMMON_WORDS, english_words
    record = json.loads((out / TRIM_RECORD).read_text())
    assert record["rule"]["order"][-2:] == ["related", "frequency"] and record["tokens"]["by_reason"]["related"] > 1000
    assert record["rule"]["parameters"] == {"piece_chars": 3, "short_word_chars": 3, "common_words": COMMON_WORDS,
                                            "closeness_weight": 0.5}
    common = english_words()[:COMMON_WORDS]
    same = [a.tokens == b.tokens for a, b in zip(old.encode_batch(common), new.encode_batch(common))]
    assert all(same), common[same.index(False)]
    odd = "Zebras quixotically photosynthesize überlong words"  # pieces, never [UNK]
    assert "[UNK]" not in new.encode(odd).tokens
    assert (out / "1_Pooling" / "config.json").is_file()  # sentence-transformers' files are carried


# ---------------------------------------------------------------------------------------------- Bort's BPE


@pytest.fixture(scope="module")
def small_bort(tmp_path_factory) -> Path:
    """A small BERT MLM (random weights) with Bort's tokenizer over the 4,000-token GPT-2 BPE, as a HF directory."""
    import torch
    from test_ov_tokenizer import small_bpe_files
    from transformers import BertConfig, BertForMaskedLM

    from bortconv.converters.tokenizer import build_tokenizer, read_gluon_vocab, write_tokenizer

    vocab_file, merges_file = small_bpe_files()
    gv = read_gluon_vocab(vocab_file)
    d = tmp_path_factory.mktemp("bpe") / "small-bort"
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(gv), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
                     bos_token_id=0, eos_token_id=2)
    model = BertForMaskedLM(cfg).eval()
    with torch.no_grad():
        model.cls.predictions.bias.normal_()  # a bias that is not all zeros, so its re-indexing shows
    model.save_pretrained(str(d))
    write_tokenizer(build_tokenizer(vocab_file, merges_file, max_length=128), d, gv)
    return d


def test_bort_bpe_trim_is_closed_and_keeps_mlm_rows(small_bort, corpus, tmp_path):
    import torch
    import bortconv
    from tokenizers import Tokenizer
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from bortconv.runtime.pair_truncation import BORT_RULE, PAIR_TRUNCATION_KEY

    out = tmp_path / "trimmed"
    proc = run_bortconv("trim", small_bort, "--corpus", corpus, "-o", out, "--keep", "1500", "--domain-min", "-1",
                        "--domain-worst-min", "-1", "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    tok = json.loads((out / "tokenizer.json").read_text())
    vocab, merges = tok["model"]["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                            for m in tok["model"]["merges"]]
    assert len(vocab) == 1500 == json.loads(proc.stdout)["tokens"]["kept"]
    assert all(a in vocab and b in vocab and a + b in vocab for a, b in merges)  # closed
    made = {a + b for a, b in merges}
    assert all(len(t) == 1 or t in made or t.startswith(("<", "madeup")) for t in vocab)  # every token reachable
    # specials keep their meaning: config ids, the post-processor and padding point at the same strings
    cfg = json.loads((out / "config.json").read_text())
    assert [cfg[k] for k in ("bos_token_id", "pad_token_id", "eos_token_id")] == [vocab[t] for t in
                                                                                   ("<s>", "<pad>", "</s>")]
    assert vocab["<mask>"] == 1499 and tok["padding"]["pad_id"] == vocab["<pad>"]
    assert json.loads((out / "tokenizer_config.json").read_text())[PAIR_TRUNCATION_KEY] == BORT_RULE
    # the choosing lines tokenize as before and round-trip; the MLM head's decoder rows and bias follow the ids
    old, new = Tokenizer.from_file(str(small_bort / "tokenizer.json")), Tokenizer.from_file(str(out / "tokenizer.json"))
    for t in (old, new):
        t.no_truncation()
    choose = list(read_corpus(corpus, None).choose)[:200]
    same = [t for t in choose if new.encode(t).tokens == old.encode(t).tokens]
    assert len(same) > 20 and all(new.decode(new.encode(t, add_special_tokens=False).ids) == t for t in choose)
    stock_tok = AutoTokenizer.from_pretrained(str(out))
    assert stock_tok(same[0])["input_ids"] == new.encode(same[0]).ids
    m_old, m_new = (AutoModelForMaskedLM.from_pretrained(str(p)).eval() for p in (small_bort, out))
    old_vocab = old.get_vocab()
    kept_old = [old_vocab[t] for t in sorted(vocab, key=vocab.get)]
    with torch.inference_mode():
        a = m_old(input_ids=torch.tensor([old.encode(same[0]).ids])).logits[0][:, kept_old]
        b = m_new(input_ids=torch.tensor([new.encode(same[0]).ids])).logits[0]
    assert torch.allclose(a, b, atol=1e-5)
    # trimmed again: the new record carries the first one (it was overwritten)
    first = json.loads((out / TRIM_RECORD).read_text())
    again = bortconv.trim(out, tmp_path / "again", corpus=corpus, keep=1400, domain_min=-1, domain_worst_min=-1,
                          threads=2, progress=False)
    rec = json.loads((again.output_dir / TRIM_RECORD).read_text())
    assert rec["tokens"]["kept"] == 1400 and rec["source_record"] == first and "source_record" not in first


@pytest.mark.parametrize("keep,says", [("300", "the trimmed model fails the gate"),
                                       ("auto", "no budget up to 3,600 of 4,000 tokens passes the gate")])
def test_gate_failure_writes_nothing(small_bort, corpus, tmp_path, keep, says):
    out = tmp_path / "refused"
    proc = run_bortconv("trim", small_bort, "--corpus", corpus, "-o", out, "--keep", keep, "--domain-min", "0.9999",
                        "--quiet")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "held-out domain text mean" in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob(".bortconv-tmp-*"))


# ---------------------------------------------------------------------------------------------- bad input

LINES = b"".join(b"line %d of the text\n" % i for i in range(20))  # 20 distinct lines: a corpus the checks pass
BAD_INPUT = [
    # (id, corpus bytes or None for a missing file, extra flags, what the one line must name)
    ("empty corpus", b"\n  \n\n", [], "--corpus"),
    ("binary corpus", b"\x7fELF\x02\x01\x01\x00\x00" * 20, [], "--corpus"),
    ("not UTF-8", "caf\xe9 au lait\n".encode("latin-1") * 20, [], "--corpus"),
    ("UTF-16", LINES.decode().encode("utf-16"), [], "UTF-16 text (its byte order mark); save it as UTF-8"),
    ("too few lines", b"one\ntwo\nthree\n", [], "--corpus"),
    ("missing corpus", None, [], "--corpus"),
    ("corpus a directory", "dir", [], "--corpus"),
    ("keep 0", LINES, ["--keep", "0"], "--keep"),
    ("keep below the required tokens", LINES, ["--keep", "100"], "--keep"),
    ("keep above the vocabulary", LINES, ["--keep", "40000"], "--keep"),
    ("keep above what can be kept", LINES, ["--keep", "30000"], "--keep: 30000 is outside 1999..29528"),  # was
    # taken, and 29,528 kept: the 994 [unusedN] are never taken
    ("keep neither a number nor auto", LINES, ["--keep", "half"], "--keep"),
    ("keep a superscript digit", LINES, ["--keep", "\u00b2"], "--keep"),  # was exit 3
    ("one line repeated", b"the same line of text\n" * 200, [], "--corpus: "),  # held out = chosen: gate passed 1.0
    ("heldout too large", LINES, ["--heldout", "19"], "--heldout"),
    ("threshold out of range", LINES, ["--domain-min", "2"], "--domain-min"),
    # a source whose earlier trim record is not JSON: refused before the work, not after the gate
    ("source's trim record broken", LINES, ["@broken-record"], "bortconv_trim.json: not a readable trim record"),
]


@pytest.mark.parametrize("content,flags,named", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(tmp_path, content, flags, named):
    corpus = tmp_path / "corpus.txt"
    if content == "dir":
        corpus.mkdir()
    elif content is not None:
        corpus.write_bytes(content)
    source = MINILM
    if flags == ["@broken-record"]:  # MiniLM's files, linked, beside a record cut short
        source, flags = tmp_path / "minilm-trimmed", []
        source.mkdir()
        for f in MINILM.iterdir():
            (source / f.name).symlink_to(f)
        (source / TRIM_RECORD).write_text('{"format_version": 1, "tok')
    proc = run_bortconv("trim", source, "--corpus", corpus, "-o", tmp_path / "out", *flags)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bortconv: error: ") and named in lines[0], lines
    assert not (tmp_path / "out").exists()

