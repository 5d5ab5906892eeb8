"""`bortconv package`: Triton and OVMS model repositories from real exported artifacts.

Triton's config is parsed with Triton's own schema (tritonclient's model_config_pb2, which rejects unknown
fields) and its tensors compared with the model file read independently (the onnx package, OpenVINO). OVMS's
config.json is validated against the JSON schema OVMS validates with (src/schema.cpp, copied in
bortconv.package.ovms_schema). The text-in OVMS model runs in OpenVINO on strings and is compared with
BortRuntime.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from test_ov_tokenizer import HELDOUT, long_texts, ov_artifact, with_ov_tokenizer
from tritonclient.grpc import model_config_pb2

from bortconv._util.hashing import sha256_file
from bortconv.errors import InputError, OutputExistsError
from bortconv.package import package_artifact
from bortconv.package.ovms_schema import OVMS_SCHEMA, validate
from bortconv.runtime.bort import BortRuntime

ONNX_TYPE = {1: "float32", 7: "int64"}  # ONNX TensorProto element types in these models
PB_TYPE = {"int64": model_config_pb2.TYPE_INT64, "float32": model_config_pb2.TYPE_FP32}


def model_tensors(path: Path) -> tuple[list[tuple], list[tuple]]:
    """(name, dtype, dims with -1 for dynamic) of inputs and outputs, read with onnx / openvino directly."""
    if path.suffix == ".onnx":
        import onnx

        g = onnx.load(str(path), load_external_data=False).graph
        def spec(v):
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
            return v.name, ONNX_TYPE[v.type.tensor_type.elem_type], dims
        return [spec(v) for v in g.input], [spec(v) for v in g.output]
    import openvino as ov

    m = ov.Core().read_model(str(path))
    def ports(ps):
        return [(p.get_any_name(), {"i64": "int64", "f32": "float32"}[p.get_element_type().get_type_name()],
                 tuple(d.get_length() if d.is_static else -1 for d in p.get_partial_shape())) for p in ps]
    return ports(m.inputs), ports(m.outputs)


def parse_triton(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


# (row id, source of the artifact, export options, the platform/backend, max_batch_size)
TRITON_ROWS = [
    ("bort2-enc-onnx", "bort2_enc_fp16", "onnx", {}, "onnxruntime_onnx", 16),
    ("bort2-cls-onnx-static", "bort2_cls_fp16", "onnx", {"static_shape": "1,16"}, "onnxruntime_onnx", 0),
    ("bort2-enc-openvino", "bort2_enc_fp16", "openvino", {}, "openvino", 16),
    ("minilm-openvino", "minilm", "openvino", {}, "openvino", 16),
]


def _artifact(artifact, source: str, target: str, options: dict) -> Path:
    return ov_artifact(artifact, "minilm") if source == "minilm" else artifact(source, target, **options)


@pytest.mark.parametrize(("row", "source", "target", "options", "engine", "max_batch"), TRITON_ROWS,
                         ids=[r[0] for r in TRITON_ROWS])
def test_triton_config_is_tritons_schema_and_the_models_tensors(row, source, target, options, engine, max_batch,
                                                                artifact, tmp_path):
    art = _artifact(artifact, source, target, options)
    res = package_artifact(art, tmp_path / "repo", fmt="triton", name="bort")
    cfg = parse_triton((tmp_path / "repo" / "bort" / "config.pbtxt").read_text())
    assert cfg.name == "bort" and cfg.max_batch_size == max_batch == res["models"]["bort"]["max_batch_size"]
    assert (cfg.platform or cfg.backend) == engine
    model_file = tmp_path / "repo" / "bort" / "1" / ("model.onnx" if target == "onnx" else "model.xml")
    assert model_file.is_file() and (target == "onnx" or model_file.with_suffix(".bin").is_file())
    ins, outs = model_tensors(model_file)
    for declared, real in ((cfg.input, ins), (cfg.output, outs)):
        assert [t.name for t in declared] == [r[0] for r in real]
        for t, (_, dtype, dims) in zip(declared, real):
            assert t.data_type == PB_TYPE[dtype]
            assert tuple(t.dims) == (dims[1:] if max_batch else dims)  # no batch axis in dims when batching
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    threads = json.loads((art / "manifest.json").read_text())["parity_threads"]
    if target == "onnx":
        assert params["intra_op_thread_count"] == str(threads) and cfg.optimization.graph.level == -1
    else:
        assert params["INFERENCE_NUM_THREADS"] == str(threads) and params["PERFORMANCE_HINT"] == "LATENCY"


def test_triton_onnx_basic_level_runs_the_graph_bortconv_runs(artifact, tmp_path):
    """What Triton's `level: -1` means to ONNX Runtime (ORT_ENABLE_BASIC) gives the outputs of bortconv's own
    session (all levels, SkipLayerNormFusion disabled): max diff 0 on a padded batch."""
    import onnxruntime as ort

    art = artifact("bort2_enc_fp16", "onnx")
    package_artifact(art, tmp_path / "repo", fmt="triton", name="m")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.intra_op_num_threads = 2
    triton_like = ort.InferenceSession(str(tmp_path / "repo/m/1/model.onnx"), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 4000, (3, 40)).astype(np.int64)
    mask = (np.arange(40)[None, :] < np.array([[40], [17], [3]])).astype(np.int64)
    ours = BortRuntime(art, threads=2).session.run({"input_ids": ids, "attention_mask": mask})
    theirs = triton_like.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(ours - theirs).max() == 0.0


#: what Triton resolves each config's engine to: `platform: "onnxruntime_onnx"` -> the onnxruntime backend
TRITON_BACKEND = {"onnxruntime_onnx": "onnxruntime", "openvino": "openvino"}


@pytest.fixture(scope="module")
def triton_repo(artifact, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(one repository holding every TRITON_ROWS model, named by row id, model -> the backend Triton must
    resolve), plus "negative-batch": the first row's config with a max_batch_size Triton must refuse."""
    d = tmp_path_factory.mktemp("triton")
    for row, source, target, options, _, _ in TRITON_ROWS:
        package_artifact(_artifact(artifact, source, target, options), d / row, fmt="triton", name=row)
    repo = d / "repo"
    repo.mkdir()
    for row, *_ in TRITON_ROWS:
        (d / row / row).rename(repo / row)
    first = TRITON_ROWS[0][0]
    bad = repo / "negative-batch"
    (bad / "1").mkdir(parents=True)
    (bad / "config.pbtxt").write_text((repo / first / "config.pbtxt").read_text()
                                      .replace(f'name: "{first}"', 'name: "negative-batch"')
                                      .replace("max_batch_size: 16", "max_batch_size: -3"))
    return repo, {r[0]: TRITON_BACKEND[r[4]] for r in TRITON_ROWS}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_triton_discovers_parses_and_resolves_every_config(triton_repo, tmp_path):
    """NVIDIA's own tritonserver 2.51.0 (tests/reference/tritonserver.py) on the packaged repository, on
    127.0.0.1, driven by tritonclient: it lists every model, and loading each fails only where this machine
    ends, at the missing onnxruntime / openvino backend library, after Triton has parsed the config, normalised
    it (max_batch_size, dims) and resolved the platform or backend named in it. A config Triton's checks refuse
    fails earlier, with Triton's own message: the check is live."""
    import time

    from reference import tritonserver
    from tritonclient.grpc import InferenceServerClient, InferenceServerException

    if not tritonserver.ready():
        pytest.fail("the Triton server is missing: run `python tests/reference/refenv.py` (the README's test command "
                    "does)")
    repo, backends = triton_repo
    port = _free_port()
    log = (tmp_path / "triton.log").open("w")
    server = subprocess.Popen([str(tritonserver.binary()), f"--model-repository={repo}",
                               f"--backend-directory={tritonserver.backends()}", "--model-control-mode=explicit",
                               "--allow-http=false", "--allow-metrics=false", "--grpc-address=127.0.0.1",
                               f"--grpc-port={port}"], env=tritonserver.environment(), stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        client = InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:  # bounded: 60 s for the server to come up
            try:
                if client.is_server_live():
                    break
            except InferenceServerException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "triton.log").read_text()
            time.sleep(0.2)
        assert client.get_server_metadata().version == tritonserver.VERSION
        index = {m.name: m for m in client.get_model_repository_index().models}
        assert set(index) == set(backends) | {"negative-batch"}, index
        for name, backend in backends.items():
            with pytest.raises(InferenceServerException) as err:
                client.load_model(name)
            assert f"unable to find backend library for backend '{backend}'" in err.value.message(), err.value
        with pytest.raises(InferenceServerException) as err:
            client.load_model("negative-batch")
        assert "failed to poll from model repository" in err.value.message(), err.value
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "triton.log").read_text()
    assert "'max_batch_size' must be non-negative value for negative-batch" in text, text  # Triton's reason
    polled = [ln for ln in text.splitlines() if "Poll failed" in ln or "text proto" in ln]
    assert len(polled) == 1 and "negative-batch" in polled[0], polled  # ours were all read and accepted


# ---------------------------------------------------------------------------------------------- OVMS


@pytest.fixture(scope="module")
def ovms_cls(artifact, tmp_path_factory) -> tuple[Path, Path]:
    """(artifact with the OpenVINO tokenizer, its OVMS repository): Bort text-classification."""
    d = tmp_path_factory.mktemp("ovms")
    art = with_ov_tokenizer(ov_artifact(artifact, "bort2_cls_fp16"), d / "art")
    package_artifact(art, d / "repo", fmt="ovms", name="bort")
    return art, d / "repo"


def test_ovms_config_matches_ovms_schema(ovms_cls):
    art, repo = ovms_cls
    config = json.loads((repo / "config.json").read_text())
    assert validate(config) == [] and OVMS_SCHEMA["required"] == ["model_config_list"]
    names = [e["config"]["name"] for e in config["model_config_list"]]
    assert names == ["bort", "bort_text", "bort_text_pair"]
    for entry in config["model_config_list"]:
        c = entry["config"]
        version = repo / c["base_path"] / "1"
        assert (version / "model.xml").is_file() and (version / "model.bin").is_file()
        assert c["plugin_config"]["INFERENCE_PRECISION_HINT"] == "f32" and c["target_device"] == "CPU"
    # the schema is OVMS's: it refuses what OVMS refuses
    assert validate({"model_config_list": [{"config": {"base_path": "x"}}]})
    assert validate({"model_config_list": [{"config": {"name": "x", "plugin_config": {"A": [1]}}}]})


def _compiled(path: Path):
    import openvino as ov
    import openvino_tokenizers  # noqa: F401 - registers the string ops, as OVMS has them built in

    return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def test_ovms_text_models_run_on_strings_and_match_the_runtime(ovms_cls):
    """Text in, logits out, as BortRuntime gives them: max diff <= 1e-5 (fp32; the batch is padded to the longest
    text here and by length buckets in the runtime)."""
    art, repo = ovms_cls
    texts = HELDOUT[:7] + long_texts()[:1] + ["", "<s> as text </s>"]
    single = _compiled(repo / "bort_text/1/model.xml")
    assert [(i.get_any_name(), i.get_element_type().get_type_name()) for i in single.inputs] == [("text", "string")]
    got = single([np.array(texts)])[single.outputs[0]]
    rt = BortRuntime(art, threads=2)
    want = np.array([p["logits"] for p in rt.predict(texts)])
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5
    pair = _compiled(repo / "bort_text_pair/1/model.xml")
    got = pair([np.array(texts), np.array(texts[::-1])])[pair.outputs[0]]
    want = np.array([p["logits"] for p in rt.predict(texts, text_pairs=texts[::-1])])
    assert np.abs(got - want).max() <= 1e-5


def test_ovms_minilm_text_model_pools_like_encode(artifact, tmp_path):
    art = with_ov_tokenizer(ov_artifact(artifact, "minilm"), tmp_path / "art")
    res = package_artifact(art, tmp_path / "repo", fmt="ovms", name="minilm")
    assert sorted(res["models"]) == ["minilm", "minilm_text"]  # no pair model for sentence embeddings
    model = _compiled(tmp_path / "repo/minilm_text/1/model.xml")
    texts = HELDOUT[10:18] + long_texts()[1:]
    got = model([np.array(texts)])[model.outputs[0]]
    want = BortRuntime(art, threads=2).encode(texts)
    assert model.outputs[0].get_any_name() == "embedding" and np.abs(got - want).max() <= 1e-5


def test_ovms_without_tokenizer_has_the_token_model_only(artifact, tmp_path):
    res = package_artifact(artifact("bort2_enc_fp16", "openvino"), tmp_path / "repo", fmt="ovms", name="enc")
    config = json.loads((tmp_path / "repo/config.json").read_text())
    assert list(res["models"]) == ["enc"] and validate(config) == []


# ---------------------------------------------------------------------------------------------- bad input


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bortconv.package", *args], capture_output=True, text=True,
                          timeout=300)


def test_bad_input_exits_2_and_leaves_nothing(artifact, tmp_path):
    art = artifact("bort2_enc_fp16", "onnx")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cut = tmp_path / "cut"  # its model file cut short, and so recorded: was an internal error (exit 3), 4 lines
    shutil.copytree(art, cut)
    (cut / "model.onnx").write_bytes((cut / "model.onnx").read_bytes()[:1000])
    manifest = json.loads((cut / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = {"sha256": sha256_file(cut / "model.onnx"), "bytes": 1000}
    (cut / "manifest.json").write_text(json.dumps(manifest))
    rows = [  # (arguments, what stderr must say)
        ([str(tmp_path / "empty"), "--format", "triton", "-o", str(tmp_path / "r1")], "not a bortconv artifact"),
        ([str(art), "--format", "kubeflow", "-o", str(tmp_path / "r2")], "invalid choice"),
        ([str(art), "--format", "triton", "-o", str(tmp_path / "full")], "not empty"),
        ([str(art), "--format", "ovms", "-o", str(tmp_path / "r3")], "needs an OpenVINO artifact"),
        ([str(art), "--format", "triton", "-o", str(tmp_path / "r4"), "--name", "../x"], "model name"),
        ([str(cut), "--format", "triton", "-o", str(tmp_path / "r5")], f"{cut / 'model.onnx'}: cannot be loaded ("),
        ([str(artifact("bort2_enc_fp16", "openvino")), "--format", "ovms", "-o", str(tmp_path / "r6"), "--name",
          "a" * 120], "--name: 120 characters; an OVMS repository also holds the model NAME_text_pair"),
    ]
    for args, says in rows:
        proc = run_cli(*args)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    changed = tmp_path / "changed"  # a file changed after export: not carried into a repository with fresh hashes
    shutil.copytree(art, changed)
    (changed / "config.json").write_text((changed / "config.json").read_text() + " ")
    proc = run_cli(str(changed), "--format", "triton", "-o", str(tmp_path / "r7"))
    assert proc.returncode == 2 and proc.stderr.startswith(f"bortconv: error: {changed / 'config.json'}: sha256 "), \
        proc.stderr
    assert "; the artifact changed after it was written (bortconv validate" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changed", "cut", "empty", "full"]  # no repository
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    proc = run_cli(str(art), "--format", "triton", "-o", str(tmp_path / "full"), "--force", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [art.name]
    with pytest.raises(InputError):
        package_artifact(art, tmp_path / "r5", fmt="ovms")
    with pytest.raises(OutputExistsError):
        package_artifact(art, tmp_path / "full", fmt="triton")
