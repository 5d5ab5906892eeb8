"""Fidelity of artifacts on emulated aarch64 CPUs against x86 fp32 transformers (tests/test_arm.py, docs/arm.md).

The host computes the reference: transformers' own ``AutoModel`` in fp32, mean-pooled over the attention mask.
The guest (tests/reference/armenv.py) runs each artifact under bortconv's runtime and under the stock loaders
and writes sentence vectors; the host compares. Texts are held out from everything bortconv calibrates or gates
on: short real texts (tests/data/short_en.txt: one- to three-word reviews, queries, tags), the tests' WordNet
sentences (tests/data/heldout_en.txt) and passages of licence prose cut to at most 510 tokens
(tests/data/passages_en.txt).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
MAX_TOKENS = 510  # wordpieces of a passage, without the two special tokens

#: runs in the guest: argv[1] a job (JSON), argv[2] where to write the vectors (.npz) and argv[2].json the info
GUEST = r'''
import json, sys, time
import numpy as np

job = json.load(open(sys.argv[1]))
texts, rows = job["texts"], job["ids"]
vectors, info = {}, {}


def exec_graph(compiled):
    """(layer type, runtime precision) -> count, over the compiled model's execution graph."""
    counts = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        key = f"{rt['layerType'].astype(str)}|{rt['runtimePrecision'].astype(str)}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def stock(a):
    feeds = [{"input_ids": np.array([r], np.int64), "attention_mask": np.ones((1, len(r)), np.int64),
              "token_type_ids": np.zeros((1, len(r)), np.int64)} for r in rows]
    if a["target"] == "openvino":
        import openvino as ov
        compiled = ov.Core().compile_model(a["dir"] + "/openvino_model.xml", "CPU")
        names = {p.get_any_name() for p in compiled.inputs}
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: its short name, e.g. "f16"
        meta = {"precision": getattr(hint, "get_type_name", lambda: str(hint))()}
        if a.get("graph"):
            meta["exec_graph"] = exec_graph(compiled)
            pinned = ov.Core().compile_model(a["dir"] + "/openvino_model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            meta["exec_graph_f32"] = exec_graph(pinned)
        run = lambda f: compiled({k: v for k, v in f.items() if k in names})[0]
    else:
        import onnxruntime as ort
        sess = ort.InferenceSession(a["dir"] + "/model.onnx", disabled_optimizers=["SkipLayerNormFusion"],
                                    providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        meta = {"precision": "ort"}
        run = lambda f: sess.run(None, {k: v for k, v in f.items() if k in names})[0]
    return np.stack([run(f)[0].mean(axis=0) for f in feeds]), meta


for a in job["artifacts"]:
    t0 = time.time()
    if a["loader"] == "bortconv":
        from bortconv.runtime.bort import BortRuntime
        rt = BortRuntime(a["dir"], threads=job.get("threads"), batch_size=job.get("batch_size") or 16)
        vecs = rt.encode(texts)
        meta = {"ids": [list(r) for r in rt.tokenize(texts)]}  # its own truncation: the reference follows it
    elif a["loader"] == "ov-tokenizer":
        from bortconv.runtime.bort import BortRuntime
        rt = BortRuntime(a["dir"], tokenizer="openvino")
        vecs, meta = np.zeros((len(texts), 1)), {"ids": rt.tokenize(texts)}
    else:
        vecs, meta = stock(a)
    meta["seconds"] = round(time.time() - t0, 1)
    vectors[a["tag"]], info[a["tag"]] = vecs.astype(np.float32), meta
    print(a["tag"], meta.get("precision"), meta["seconds"], flush=True)
np.savez(sys.argv[2], **vectors)
json.dump(info, open(sys.argv[2] + ".json", "w"))
'''


def _lines(name: str) -> list[str]:
    return [s.strip() for s in (DATA / name).read_text(encoding="utf-8").splitlines() if s.strip()]


def heldout_texts(tokenizer, n_short: int, n_medium: int, n_long: int, max_tokens: int = MAX_TOKENS) -> list[str]:
    """Short texts, then WordNet sentences, then passages cut (at word ends) to at most `max_tokens` wordpieces."""
    passages = []
    for p in _lines("passages_en.txt")[:n_long]:
        words = p.split()
        while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) > max_tokens:
            words = words[:-8]
        passages.append(" ".join(words))
    return _lines("short_en.txt")[:n_short] + _lines("heldout_en.txt")[:n_medium] + passages


def reference(model_dir: Path, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
    """Token ids (transformers' tokenizer, cut to MAX_TOKENS + 2) and their fp32 sentence vectors."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    rows = [tok(t, truncation=True, max_length=MAX_TOKENS + 2)["input_ids"] for t in texts]
    return rows, reference_rows(model_dir, rows)


def reference_rows(model_dir: Path, rows: list[list[int]]) -> np.ndarray:
    """fp32 mean-pooled sentence vectors of token-id rows from transformers' AutoModel, one row at a time."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        return np.stack([model(input_ids=torch.tensor([r]), attention_mask=torch.ones(1, len(r), dtype=torch.long),
                               token_type_ids=torch.zeros(1, len(r), dtype=torch.long)).last_hidden_state[0]
                         .mean(dim=0).numpy() for r in rows])


def run_guest(armenv, pythonpath: Path, cpu: str, artifacts: list[dict], texts: list[str], ids: list[list[int]],
              *, timeout: float = 1800, threads: int | None = 2,
              batch_size: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Run GUEST on `cpu`; returns (tag -> vectors, tag -> info). Raises with the guest's stderr on failure.
    `batch_size`: bortconv's runtime's (default 16)."""
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.npz"
        job.write_text(json.dumps({"artifacts": artifacts, "texts": texts, "ids": ids, "threads": threads,
                                    "batch_size": batch_size}))
        try:
            proc = armenv.run(GUEST, cpu, args=(str(job), str(out)), pythonpath=(pythonpath,), timeout=timeout)
        except subprocess.TimeoutExpired:  # the command line is the whole GUEST script: say it in one line
            raise RuntimeError(f"guest on {cpu}: {len(artifacts)} runs of {len(texts)} texts took over "
                               f"{timeout:.0f} s (emulation on a busy machine?)") from None
        if proc.returncode:
            raise RuntimeError(f"guest on {cpu} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with np.load(out) as z:
            vectors = {k: z[k] for k in z.files}
        return vectors, json.loads(Path(str(out) + ".json").read_text())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def summary(cos: np.ndarray, texts: list[str]) -> dict:
    worst = int(np.argmin(cos))
    return {"mean": float(cos.mean()), "worst": float(cos[worst]), "worst_text": texts[worst][:40],
            "worst_index": worst}


if __name__ == "__main__":  # python tests/arm_probe.py: print the texts' token counts
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    for t in heldout_texts(tok, 99, 5, 9):
        print(len(tok(t)["input_ids"]), t[:60])
