"""`bortconv bench` through the real CLI on real artifacts, against a real (tiny) BERT baseline built and exported
by the same harness as BERT-large: the numbers must be real measurements and the ratios computed from them.
The headline ratio against BERT-large is benchmarks/bench_headline.py's job, never a unit test's."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from bortconv.measure import interleave

CASE = "bort2_enc_fp16"


def run(*args: str) -> subprocess.CompletedProcess:
    from conftest import run_bortconv
    return run_bortconv("bench", *args)


def test_bench_artifacts_vs_baseline(artifact, tmp_path):
    onnx, ov = artifact(CASE, "onnx"), artifact(CASE, "openvino")
    proc = run(str(onnx), str(ov), "--baseline", "bert-tiny", "--seq-lens", "8,32", "--batch-size", "1",
               "--threads", "2", "--rounds", "3", "--runs", "2", "--warmup", "1",
               "--baseline-cache", str(tmp_path / "c"), "--report", str(tmp_path / "b.json"),
               "--plot", str(tmp_path / "b.png"))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "b.json").read_text())

    cands = {c["name"]: c for c in rep["candidates"]}
    assert [c["kind"] for c in rep["candidates"]] == ["artifact", "artifact", "baseline", "baseline"]
    assert {c["pipeline"] for c in rep["candidates"] if c["kind"] == "baseline"} == {"eager", "fused-onnx"}
    for name, path, files in ((onnx.name, onnx, ["model.onnx"]),
                              (ov.name, ov, ["openvino_model.xml", "openvino_model.bin"])):
        c = cands[name]
        assert c["size_bytes"] == sum((path / f).stat().st_size for f in files)
        assert c["runtime"] == ("onnxruntime" if "model.onnx" in files else "openvino")
    for c in cands.values():  # memory from a child per candidate: the process's peak, and the model's own share
        assert c["load_s"] > 0 and c["peak_rss_mb"] > c["model_rss_mb"] > 0, c
        # issue 19: what an edge user chooses by: RSS once loaded (before any inference) and the first inference
        assert 0 < c["load_peak_rss_mb"] <= c["peak_rss_mb"] and c["first_inference_ms"] > 0, c

    results = rep["results"]
    assert {(r["candidate"], r["seq_len"]) for r in results} == {(n, s) for n in cands for s in (8, 32)}
    for r in results:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["runs"] >= 3 and r["batch"] == 1
        assert r["throughput_seq_s"] == pytest.approx(1e3 / r["p50_ms"], rel=1e-3)
    p50 = {(r["candidate"], r["seq_len"]): r["p50_ms"] for r in results}
    ratios = rep["ratios"]
    assert len(ratios) == 2 * 2 * 2  # artifacts x baselines x lengths
    # every ratio is of an artifact to a baseline at one length (which way round is the report's to show)
    assert {(q["artifact"], q["baseline"]) for q in ratios} <= {(a, b) for a in cands for b in cands if a != b}
    assert all(q["speedup"] > 0 for q in ratios) and p50
    assert rep["settings"]["threads"] == 2 and rep["machine"]["cpu"]
    assert set(rep["machine"]["features"]) == {"avx2", "avx512", "vnni", "amx"}

    # the Markdown: both tables, a speedup column per baseline, every measured row
    out = proc.stdout
    assert "| candidate | runtime | precision | size MB | load s | RSS at load MB | first inference ms |" in out
    assert "vs bert-tiny (PyTorch eager) | vs bert-tiny (fused ONNX) |" in out
    assert sum(line.startswith(f"| {onnx.name} | 1 |") for line in out.splitlines()) == 2
    png = (tmp_path / "b.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # the baseline is cached: a second run does not rebuild it
    cache = list((tmp_path / "c").iterdir())
    assert len(cache) == 1 and (cache[0] / "hf" / "model.safetensors").is_file()
    assert json.loads((cache[0] / "onnx" / "manifest.json").read_text())["graph"] == "fused"


def test_bench_int8_artifact_gets_the_int8_baseline(int8, tmp_path):
    """An int8 artifact is also compared with the baseline through the same int8 pipeline (dynamic s8 on the
    fused graph), built once into the cache beside the fp32 one."""
    q = int8(CASE, "onnx")
    proc = run(str(q), "--baseline", "bert-tiny", "--seq-lens", "16", "--batch-size", "1", "--threads", "2", "--rounds",
               "3", "--runs", "2", "--warmup", "1", "--baseline-cache", str(tmp_path / "c"),
               "--report", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "b.json").read_text())
    base = {c["pipeline"]: c for c in rep["candidates"] if c["kind"] == "baseline"}
    assert set(base) == {"eager", "fused-onnx", "fused-onnx-int8"}
    assert base["fused-onnx-int8"]["precision"] == "int8"
    assert base["fused-onnx-int8"]["size_bytes"] < 0.5 * base["fused-onnx"]["size_bytes"]
    assert {q["baseline"] for q in rep["ratios"]} == {c["name"] for c in base.values()}
    assert "vs bert-tiny (fused ONNX int8)" in proc.stdout
    assert [f["artifact"] for f in rep["fastest"]] == [q.name] and "Fastest artifact on this machine" in proc.stdout


def test_bench_no_baseline_static_artifact(artifact, tmp_path):
    """--baseline none: artifacts only, no ratios; a static-shape artifact is measured at its shape only."""
    static = artifact("bort2_cls_fp16", "onnx", static_shape="2,16")  # test_export's static artifact
    proc = run(str(static), "--baseline", "none", "--seq-lens", "16,32", "--batch-size", "2", "--threads", "2",
               "--rounds", "3", "--runs", "2", "--no-memory", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)  # --json: JSON alone on stdout
    assert [(r["batch"], r["seq_len"]) for r in rep["results"]] == [(2, 16)]
    assert rep["ratios"] == [] and rep["candidates"][0]["peak_rss_mb"] is None
    assert any("static shape 2x16" in n for n in rep["notes"])


# (id, args after the artifact, words the one-line error must contain)
BAD = [
    ("unknown-baseline", ["--baseline", "gpt2"], "argument --baseline: invalid choice: 'gpt2'"),
    ("seq-lens-not-ints", ["--seq-lens", "16,long"], "--seq-lens: '16,long' is not a comma-separated list"),
    ("seq-lens-empty-item", ["--seq-lens", "16,,32"], "--seq-lens '16,,32': item 2 is empty"),  # was dropped
    ("batch-zero", ["--batch-size", "0"], "--batch-size: '0' must list positive integers"),
    ("threads-zero", ["--threads", "0"], "--threads must be positive"),
    ("longer-than-positions", ["--seq-lens", "600,700"], "every asked length (600,700) exceeds its 512 positions"),
    # a static artifact asked for no shape it runs: an empty report would be a silent nothing
    ("static-shape-not-asked", ["@static", "--batch-size", "1", "--seq-lens", "16"],
     "static shape 2x16, and no asked (batch, length) is 2x16"),
    ("not-an-artifact", ["@tmp"], "no manifest.json"),
    ("missing-dir", ["@missing"], "no such directory"),
    ("budget-negative", ["--budget-minutes", "-1"], "--budget-minutes -1.0: must be a finite number > 0"),
    ("budget-infinite", ["--budget-minutes", "inf"], "--budget-minutes inf: must be a finite number > 0"),  # was
    # accepted, and the JSON report said "budget_s": Infinity, which strict parsers refuse
    ("batch-past-the-bound", ["--batch-size", "1,1000000000"], "--batch-size: 1000000000 is more than 1024"),
    ("cache-under-a-file", ["--baseline", "bert-tiny", "--baseline-cache", "{target}/manifest.json/bench"],
     "--baseline-cache {target}/manifest.json/bench: {target}/manifest.json is not a directory"),
]


@pytest.mark.parametrize("row", BAD, ids=[r[0] for r in BAD])
def test_bench_bad_input(artifact, tmp_path, row):
    _, extra, words = row
    target = str(artifact(CASE, "onnx"))
    if extra[0] == "@static":
        target, extra = str(artifact("bort2_cls_fp16", "onnx", static_shape="2,16")), extra[1:]
    elif extra[0].startswith("@"):
        target, extra = (str(tmp_path) if extra[0] == "@tmp" else str(tmp_path / "nope")), []
    proc = run(target, *[a.format(target=target) for a in extra], "--no-memory")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("bortconv: error:")]
    assert len(lines) == 1 and words.format(target=target) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_interleave_gives_slow_candidates_fewer_runs():
    """Fast candidates run several times a turn, slow ones once; medians keep their order."""
    lat = interleave({"fast": lambda: time.sleep(0.002), "slow": lambda: time.sleep(0.25)}, rounds=4,
                     runs_per_round=3, warmup=1, budget_s=60, turn_s=0.1, gap_s=0.0)
    assert lat["fast"].runs == 12 and lat["slow"].runs == 4
    assert 2 <= lat["fast"].median_ms < lat["slow"].median_ms and lat["slow"].median_ms >= 250
    budget = interleave({"x": lambda: time.sleep(0.01)}, rounds=100, runs_per_round=1, warmup=0, budget_s=0.05,
                        gap_s=0.0)
    assert 3 <= budget["x"].runs < 100


def test_cold_start_of_a_model_with_64_positions(reference, artifact, tmp_path):
    """--cold-start on a shape with fewer positions than its 128-token probe (tests/cases.py's custom row): measured
    at a length the model has (the probe once ran 128 tokens and the whole bench exited 2)."""
    import bortconv

    hf = bortconv.convert(reference["custom_enc_fp32"].params, tmp_path / "hf", heads=4).output_dir
    ov = artifact(str(hf), "openvino")
    proc = run(str(ov), "--baseline", "none", "--seq-lens", "32", "--batch-size", "1", "--cold-start",
               "--no-memory", "--rounds", "2", "--runs", "1", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    [cold] = json.loads(proc.stdout)["cold_start"]
    assert all(cold[k]["first_inference_ms"] > 0 for k in ("no_cache", "cache_fill", "cache_hit")), cold
