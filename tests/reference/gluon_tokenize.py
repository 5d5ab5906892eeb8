"""Reference tokenizer: runs in the *reference* environment (mxnet 1.9.1 + gluonnlp 0.8.3).

Tokenizes texts and pairs the way Bort's fine-tuning did (alexa/bort utils/finetune_utils.py
``convert_examples_to_features`` with ``truncate_seqs_equal`` from data/preprocessing_utils.py), using gluonnlp's
own ``GPT2BPETokenizer`` for the BPE and gluonnlp's own ``Vocab.from_json`` + lookup for the ids, and pads groups
with ``gluonnlp.data.batchify.Pad`` as Bort's batchify did.

    python gluon_tokenize.py INPUTS.json OUT.json MERGES VOCAB [VOCAB ...]

INPUTS: {"cases": [{"a": str, "b": str | null, "max_len": int}, ...], "pad_groups": [[case index, ...], ...]}.
OUT: {"seconds": s, "vocabs": [{"len", "specials", "to_json", "ids", "padded"}, ...]}, one entry per VOCAB, in
order; "seconds" is the wall time of BPE + truncation + lookup of every case with the first vocabulary (imports
and file loading excluded; the benchmark reads it). MERGES must be OpenAI's vocab.bpe (sha1 396d4d8e...):
gluonnlp verifies that hash and would try to download otherwise, so it is copied into a temporary MXNET_HOME.
Never imported by the product.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

BPE_FILE, BPE_SHA1 = "openai_webtext_bpe_ranks-396d4d8e.json", "396d4d8ec90cb02f4d56e049e0e4add868bcd943"


def staged_mxnet_home(merges_path):
    """A fresh MXNET_HOME whose models/ holds the merges under the name and hash gluonnlp checks."""
    with open(merges_path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    if digest != BPE_SHA1:
        sys.exit(f"{merges_path}: sha1 {digest}, but gluonnlp's GPT2BPETokenizer only accepts {BPE_SHA1}")
    home = tempfile.mkdtemp(prefix="gluon-tokenize-")
    os.makedirs(os.path.join(home, "models"))
    shutil.copyfile(merges_path, os.path.join(home, "models", BPE_FILE))
    return home


def truncate_equal(seqs, budget):
    """Bort's truncate_seqs_equal, step by step as it runs: repeatedly set aside the shortest sequence (first
    on ties, numpy.ma argmin) if it fits in an equal share of what is left; otherwise cut every remaining one
    to the share, the earliest ``remainder`` of them getting one token more."""
    import numpy.ma as ma
    lens = [len(s) for s in seqs]
    if sum(lens) <= budget:
        return seqs
    lens = ma.masked_array(lens, mask=[0] * len(lens))
    while True:
        i = lens.argmin()
        shortest = int(lens[i])
        share, extra = divmod(budget, len(lens) - int(sum(lens.mask)))
        if shortest <= share:
            lens.mask[i] = 1
            budget -= shortest
        else:
            lens.data[~lens.mask] = [share + 1 if k < extra else share for k in range(lens.count())]
            break
    return [s[:n] for s, n in zip(seqs, lens.data.tolist(), strict=True)]


def bort_tokens(tokenizer, vocab, case):
    """<s> A </s> [B </s>] as token strings, truncated to max_len as Bort's fine-tuning did."""
    texts = [case["a"]] if case.get("b") is None else [case["a"], case["b"]]
    budget = case["max_len"] - 2 if len(texts) == 1 else case["max_len"] - 3
    seqs = truncate_equal([tokenizer(t) for t in texts], budget)
    out = [vocab.bos_token]
    for seq in seqs:
        out += seq + [vocab.eos_token]
    return out


def padded(vocab, ids, groups):
    import gluonnlp as nlp
    pad = nlp.data.batchify.Pad(axis=0, pad_val=vocab[vocab.padding_token], ret_length=True)
    out = []
    for group in groups:
        arr, length = pad([ids[i] for i in group])
        out.append({"ids": arr.asnumpy().astype("int64").tolist(),
                    "valid_length": length.asnumpy().astype("int64").tolist()})
    return out


def main():
    inputs_path, out_path, merges_path, *vocab_paths = sys.argv[1:]
    home = staged_mxnet_home(merges_path)
    os.environ["MXNET_HOME"] = home
    try:
        import gluonnlp as nlp
        with open(inputs_path, encoding="utf-8") as f:
            spec = json.load(f)
        vocabs = []
        for p in vocab_paths:
            with open(p, encoding="utf-8") as f:
                vocabs.append(nlp.Vocab.from_json(f.read()))
        tokenizer = nlp.data.GPT2BPETokenizer(root=os.path.join(home, "models"))
        t0 = time.perf_counter()
        tokens = [bort_tokens(tokenizer, vocabs[0], c) for c in spec["cases"]]
        first_ids = [vocabs[0][t] for t in tokens]
        seconds = time.perf_counter() - t0
        result = {"seconds": seconds, "vocabs": []}
        for k, vocab in enumerate(vocabs):
            ids = first_ids if k == 0 else [vocab[t] for t in tokens]
            names = ("unknown_token", "padding_token", "bos_token", "eos_token", "mask_token")
            specials = {n: vocab[getattr(vocab, n)] for n in names if getattr(vocab, n, None) is not None}
            result["vocabs"].append({"len": len(vocab), "specials": specials, "to_json": json.loads(vocab.to_json()),
                                     "ids": ids, "padded": padded(vocab, ids, spec.get("pad_groups", []))})
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(result, f)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
