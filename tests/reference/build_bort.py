"""Reference builder: runs in the *reference* environment (mxnet 1.9.1 + gluonnlp 0.8.3, numpy<1.24).

Builds Bort models with the real gluonnlp BERT blocks (the same classes alexa/bort's BortModel and
BortClassifier use), fills every parameter with seeded random values (so a swapped or missing mapping cannot
hide behind default ones/zeros), saves them the ways real tooling does, and runs the MXNet forward on padded
batches. Usage: python build_bort.py SPEC.json OUT_DIR. SPEC is a list of case dicts (see tests/cases.py).
Never imported by the product.
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from gluonnlp.model.bert import BERTEncoder, BERTModel  # noqa: E402
from mxnet.gluon import HybridBlock, nn  # noqa: E402


class BortModel(BERTModel):
    """Same construction as alexa/bort's BortModel: no token types, no pooler (prefix 'bortmodel0_')."""

    def __init__(self, encoder, vocab_size, units, use_decoder):
        super().__init__(encoder, vocab_size=vocab_size, token_type_vocab_size=None, units=units,
                         embed_size=units, embed_dropout=0.0, word_embed=None, token_type_embed=None,
                         use_pooler=False, use_decoder=use_decoder, use_classifier=False,
                         use_token_type_embed=False)

    def __call__(self, inputs, valid_length=None, masked_positions=None):
        return super().__call__(inputs, [], valid_length=valid_length,
                                masked_positions=[] if masked_positions is None else masked_positions)


class BortClassifier(HybridBlock):
    """alexa/bort's classifier head: Dropout, Dense(units, tanh) on <s>, Dropout, Dense(num_classes)."""

    def __init__(self, bort, num_classes, dropout=0.1):
        super().__init__()
        self.bort = bort
        self._units = bort._units
        with self.name_scope():
            self.classifier = nn.HybridSequential()
            self.classifier.add(nn.Dropout(rate=dropout))
            self.classifier.add(nn.Dense(units=self._units, activation="tanh"))
            self.classifier.add(nn.Dropout(rate=dropout))
            self.classifier.add(nn.Dense(units=num_classes))

    def hybrid_forward(self, F, inputs, valid_length=None):
        seq_out = self.bort(inputs, valid_length)
        outputs = seq_out.slice(begin=(0, 0, 0), end=(None, 1, None)).reshape(shape=(-1, self._units))
        return self.classifier(outputs)


def build(case):
    enc = BERTEncoder(attention_cell="multi_head", num_layers=case["layers"], units=case["units"],
                      hidden_size=case["ffn"], max_length=case["max_len"], num_heads=case["heads"], scaled=True,
                      dropout=0.0, output_attention=False, output_all_encodings=False, use_residual=True,
                      activation="gelu", layer_norm_eps=1e-5)
    bort = BortModel(enc, case["vocab"], case["units"], use_decoder=case["head"] == "mlm")
    net = BortClassifier(bort, case["num_classes"]) if case["head"] == "classifier" else bort
    net.initialize(mx.init.Normal(0.02))
    # Gluon defers shapes until data flows: one dummy pass materializes every parameter.
    x, vl = mx.nd.array([[0, 5, 2]]), mx.nd.array([3])
    if case["head"] == "mlm":
        bort(x, vl, mx.nd.array([[0, 1, 2]]))
    else:
        net(x, vl)
    return net, bort


def randomize(net, seed):
    """Give every parameter distinct, realistic random values (LN gammas near 1, betas and biases small)."""
    rng = np.random.RandomState(seed)
    for name, p in sorted(net._collect_params_with_prefix().items()):
        shape = p.shape
        if name.endswith("gamma"):
            val = 1.0 + 0.1 * rng.randn(*shape)
        elif name.endswith(("beta", "bias")):
            val = 0.1 * rng.randn(*shape)
        else:
            val = 0.05 * rng.randn(*shape)
        p.set_data(mx.nd.array(val.astype(np.float32)))


def batch(case, seed):
    rng = np.random.RandomState(seed + 1)
    b, length = case["batch"], case["seq_len"]
    ids = rng.randint(3, case["vocab"], size=(b, length)).astype(np.int32)
    ids[:, 0] = 0  # <s>
    valid = np.array(case["valid_lengths"][:b], dtype=np.int32)
    for row, n in enumerate(valid):
        ids[row, n - 1] = 2  # </s>
        ids[row, n:] = 1  # <pad>
    return ids, valid


def save(net, case, path):
    mode = case["save"]
    if mode == "fp16":
        net.cast("float16")  # the released bort.params was saved after casting to fp16
        net.save_parameters(path)
        net.cast("float32")  # the reference forward then runs on the fp16-rounded weights in fp32
    elif mode == "dedup":
        net.save_parameters(path, deduplicate=True)
    elif mode == "npx":
        arrays = {k: v.data() for k, v in net._collect_params_with_prefix().items()}
        mx.npx.set_np()
        try:
            mx.npx.save(path, {k: v.as_np_ndarray() for k, v in arrays.items()})
        finally:
            mx.npx.reset_np()
    elif mode == "legacy":  # pre-structural Gluon: instance-prefixed names
        net.collect_params().save(path)
    else:
        net.save_parameters(path)


def forward(net, bort, case, ids, valid):
    x, vl = mx.nd.array(ids), mx.nd.array(valid)
    out = {}
    if case["head"] == "mlm":  # gluonnlp's decoder needs positions: ask for every position
        seq, logits = bort(x, vl, mx.nd.array(np.tile(np.arange(ids.shape[1]), (ids.shape[0], 1))))
        out["mlm_logits"] = logits.asnumpy()
    else:
        seq = bort(x, vl)
    out["hidden"] = seq.asnumpy()
    if case["head"] == "classifier":
        out["cls_logits"] = net(x, vl).asnumpy()
    return out


def mutate(path, case):
    """Real mxnet-written broken files: load with mxnet, damage, save with mxnet."""
    kind = case.get("mutate")
    if not kind:
        return
    arrays = mx.nd.load(path)
    name = sorted(k for k in arrays if k.endswith("ffn.ffn_1.weight"))[0]
    if kind == "wrong_shape":
        arrays[name] = mx.nd.zeros((arrays[name].shape[0] + 1, arrays[name].shape[1]))
    elif kind == "missing":
        del arrays[name]
    elif kind == "extra":
        arrays["encoder.transformer_cells.0.unexpected.weight"] = mx.nd.ones((3, 3))
    elif kind == "nan":
        a = arrays[name].asnumpy()
        a[0, 0] = np.nan
        a[1, 1] = np.inf
        arrays[name] = mx.nd.array(a)
    mx.nd.save(path, arrays)


def main():
    spec_path, out_dir = sys.argv[1], sys.argv[2]
    cases = json.load(open(spec_path))
    for case in cases:
        mx.random.seed(case["seed"])
        net, bort = build(case)
        randomize(net, case["seed"])
        path = f"{out_dir}/{case['name']}.params"
        save(net, case, path)
        mutate(path, case)
        if case.get("forward", True):
            ids, valid = batch(case, case["seed"])
            out = forward(net, bort, case, ids, valid)
            np.savez(f"{out_dir}/{case['name']}.npz", input_ids=ids, valid_length=valid, **out)
        print("built", case["name"], flush=True)


if __name__ == "__main__":
    main()
