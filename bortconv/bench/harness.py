"""`bortconv bench`: latency, throughput, load time, memory and size of artifact directories, against BERT.

Every candidate runs in the same process and harness, interleaved (round after round, each candidate in
turn), so drift on a shared machine hits them alike and the ratios are measured within one run:

    artifacts       each ARTIFACT_DIR through bortconv.runtime.bort's session (ONNX Runtime / OpenVINO)
    baselines       BERT-large (or BERT-base) of the real configuration with seeded random weights:
                      - PyTorch eager fp32 (transformers BertModel, its default attention): the paper's
                        comparison, and what a user without bortconv runs;
                      - the same model through bortconv's own optimized fp32 pipeline (fused ONNX), so the
                        architecture's share of the speedup is separated from the runtime's;
                      - and, when int8 artifacts are benchmarked, through its int8 pipeline (dynamic s8).

Latency: warm-up calls, thread counts pinned in every runtime, `rounds` interleaved rounds in which fast
candidates run several times and slow ones (BERT-large eager) once, then the median (p50), p90 and p99.

Peak memory is measured per candidate in a child process (see :mod:`bortconv.bench.peak_memory`): a child
starts clean, so its high-water mark (Linux ``VmHWM``) is that candidate's alone. In-process psutil deltas
would not be: the runtimes' libraries are loaded once for all candidates, freed memory stays in the
allocator's pools and is reused by the next candidate, and a transient peak during compilation is missed by
sampling the current RSS.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import as_path, check_threads, checked_arguments, comma_items, max_positions
from bortconv.errors import InputError
from bortconv.layout import CONFIG_FILE, OV_XML, WEIGHT_FILES, model_files
from bortconv.measure import Runner, interleave, make_feeds

log = logging.getLogger(__name__)

#: BertConfig of each baseline: the published shapes (BERT-large: 24 x 1024, 16 heads, FFN 4096).
BASELINES: dict[str, dict[str, int]] = {
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096,
                       vocab_size=30522),
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                      vocab_size=30522),
    # google's BERT-tiny shape: the harness end to end in seconds (tests), not a comparison anyone should quote
    "bert-tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512,
                      vocab_size=30522),
}
BASELINE_CHOICES = ("bert-large", "bert-base", "none")  # advertised; bert-tiny is accepted for tests
EAGER, PIPELINE, PIPELINE_INT8 = "eager", "fused-onnx", "fused-onnx-int8"
DEFAULT_SEQ_LENS = (16, 64, 128, 256, 512)
DEFAULT_BATCHES = (1, 8)
#: (p90 - min) / median above this: the machine was noisy during the measurement; said in the report
WIDE_SPREAD = 0.3
#: a fast candidate's turn in a round lasts about this long (slow ones run once): see measure.interleave
TURN_S = 0.5
SEED = 0

#: builds a baseline once: (name, cache root, threads) -> (HF directory, fused-ONNX artifact directory)
BaselineBuilder = Callable[[str, Path, int], tuple[Path, Path]]
#: the baseline's fused ONNX through the int8 pipeline: (fused-ONNX directory, threads) -> int8 directory
Int8BaselineBuilder = Callable[[Path, int], Path]


@dataclass(frozen=True)
class Candidate:
    """Something benchmarked: an artifact directory, or a baseline (eager or through the pipeline)."""

    name: str
    kind: str  # "artifact" | "baseline"
    runtime: str  # "onnxruntime" | "openvino" | "pytorch"
    precision: str
    path: str
    size_bytes: int
    load_s: float
    baseline: str | None = None  # the baseline model name, e.g. "bert-large"
    pipeline: str | None = None  # baselines: EAGER or PIPELINE
    peak_rss_mb: float | None = None  # the child process's high-water mark (after its first inference)
    model_rss_mb: float | None = None  # peak minus the child after its imports: the model's own share
    load_peak_rss_mb: float | None = None  # the child's high-water mark once loaded, before any inference
    first_inference_ms: float | None = None  # the child's first inference (the memory probe's shape)
    max_length: int = 512
    static_shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class Measurement:
    """One candidate at one (batch, sequence length)."""

    candidate: str
    batch: int
    seq_len: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs: int
    spread: float

    @property
    def throughput(self) -> float:
        """Sequences per second at the median latency."""
        return self.batch * 1e3 / self.p50_ms if self.p50_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"throughput_seq_s": round(self.throughput, 3)}


@dataclass(frozen=True)
class Ratio:
    """speedup = baseline p50 / artifact p50, both from the same interleaved measurement."""

    artifact: str
    baseline: str
    batch: int
    seq_len: int
    speedup: float


@dataclass(frozen=True)
class BenchReport:
    """What `bortconv bench` measured, with the machine and settings it was measured on."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    candidates: tuple[Candidate, ...]
    results: tuple[Measurement, ...]
    ratios: tuple[Ratio, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    cold_start: tuple[dict[str, Any], ...] = ()  # per OpenVINO artifact: without and with CACHE_DIR

    def result(self, candidate: str, batch: int, seq_len: int) -> Measurement | None:
        return next((m for m in self.results if (m.candidate, m.batch, m.seq_len) == (candidate, batch, seq_len)),
                    None)

    def artifacts(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == "artifact"]

    def baselines(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == "baseline"]

    def best_artifact(self, batch: int, seq_len: int) -> Measurement | None:
        """The fastest artifact at this shape."""
        names = {c.name for c in self.artifacts()}
        rows = [m for m in self.results if m.candidate in names and (m.batch, m.seq_len) == (batch, seq_len)]
        return min(rows, key=lambda m: m.p50_ms, default=None)

    def speedup(self, artifact: str, baseline: str, batch: int, seq_len: int) -> float | None:
        return next((r.speedup for r in self.ratios
                     if (r.artifact, r.baseline, r.batch, r.seq_len) == (artifact, baseline, batch, seq_len)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "settings": self.settings,
                "candidates": [asdict(c) for c in self.candidates],
                "results": [m.to_dict() for m in self.results],
                "ratios": [asdict(r) for r in self.ratios], "notes": list(self.notes),
                "cold_start": list(self.cold_start),
                "fastest": [{"batch": b, "seq_len": n, "artifact": best.candidate, "p50_ms": round(best.p50_ms, 3)}
                            for b, n in sorted({(m.batch, m.seq_len) for m in self.results})
                            if (best := self.best_artifact(b, n)) is not None]}


#: the largest batch bench times: its inputs and outputs are made whole (a billion was a MemoryError, exit 3);
#: 1,024 x 512 tokens of full Bort's 1,024-wide output is 2 GB already
MAX_BATCH = 1024


def parse_int_list(value: str | Sequence[int], option: str, most: int | None = None) -> tuple[int, ...]:
    """'16,64,128' (or a list of ints) -> (16, 64, 128) for `option` (seq_lens, batches): positive integers, at most
    `most`, order kept, duplicates dropped. InputError names the parameter (the CLI shows it as its flag)."""
    if isinstance(value, str):
        try:
            items = [int(x) for x in comma_items(value, option)]
        except ValueError:
            raise InputError(f"{option}: '{value}' is not a comma-separated list of integers",
                             option=option) from None
    else:  # a list, a tuple, a numpy array of integers; not 16 for [16], nor [16.7] taken as 16, [True] as 1
        given = list(value) if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)) else None
        if given is None or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in given):
            raise InputError(f"{option}: {value!r} is not a list of integers", option=option)
        items = [int(x) for x in given]
    if not items or any(x <= 0 for x in items):
        raise InputError(f"{option}: '{value}' must list positive integers", option=option)
    if most is not None and max(items) > most:
        raise InputError(f"{option}: {max(items)} is more than {most}", option=option)
    return tuple(dict.fromkeys(items))


def machine_info() -> dict[str, Any]:
    """CPU model, the SIMD/matrix features int8 and fp32 speed depend on, cores, library versions."""
    from bortconv.manifest import versions
    from bortconv.runtime.cpu import cpu_features, cpu_flags

    _, flags = cpu_flags()
    feats = cpu_features()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return {"cpu": feats["model"] or "unknown", "features": {k: feats[k] for k in ("avx2", "avx512", "vnni", "amx")},
            "feature_flags": sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "avx_vnni")),
            "cpus": cpus, "platform": platform.platform(), "python": platform.python_version(),
            "versions": {k: v for k, v in versions().items() if v}}


def cache_dir() -> Path:
    """Where baselines are kept between runs: $BORTCONV_CACHE/bench (default ~/.cache/bortconv/bench)."""
    return Path(os.environ.get("BORTCONV_CACHE", Path.home() / ".cache" / "bortconv")) / "bench"


def _eager_runner(hf_dir: Path, threads: int) -> Runner:
    """transformers' BertModel as a user runs it: eager mode, default (SDPA) attention, fp32, no autograd."""
    from bortconv.converters.hf_model import pytorch_runner
    return pytorch_runner(hf_dir, "feature-extraction", threads=threads, attn_implementation="sdpa")


def _dir_size(path: Path, names: Sequence[str] | None = None) -> int:
    files = [path / n for n in names] if names else [p for p in path.iterdir() if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


def _model_files(d: Path) -> list[str]:
    return [n for t in ("onnx", "openvino") for n in model_files(t) if (d / n).is_file()]


def _read_config(d: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((d / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{d}: no readable config.json; not a bortconv artifact directory") from None
    return cfg if isinstance(cfg, dict) else {}


def _check_artifact(d: Path) -> dict[str, Any]:
    from bortconv.manifest import read_manifest
    manifest = read_manifest(d)
    if not _model_files(d):
        raise InputError(f"{d}: holds neither model.onnx nor openvino_model.xml")
    return manifest


def probe_memory(kind: str, path: Path, threads: int, batch: int, seq_len: int) -> dict[str, float] | None:
    """Peak RSS of loading `path` and running it once at (batch, seq_len), in a fresh child process."""
    cmd = [sys.executable, "-m", "bortconv.bench.peak_memory", kind, str(path), str(threads), str(batch),
           str(seq_len)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        log.warning("memory probe of %s failed: %s", path, proc.stderr.strip().splitlines()[-1:] or proc.returncode)
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (json.JSONDecodeError, IndexError):
        return None


@dataclass
class _Live:
    """A candidate while it is being measured: its runner and what its inputs look like."""

    candidate: Candidate
    run: Runner
    vocab_size: int
    pad_id: int
    with_types: bool


def _feeds(live: _Live, batch: int, seq_len: int) -> dict[str, np.ndarray]:
    return make_feeds([seq_len] * batch, seq_len, live.vocab_size, live.pad_id, SEED, live.with_types)


def _checked_settings(dirs: list[Path], baseline: str, seq_lens: Sequence[int] | str, batches: Sequence[int] | str,
                      threads: int | None, rounds: int, runs_per_round: int, warmup: int) -> tuple[list[int], list[int]]:
    """bench's arguments checked (InputError naming the parameter); the lengths and batch sizes as lists."""
    if not dirs:
        raise InputError("bench: name at least one ARTIFACT_DIR")
    if baseline != "none" and baseline not in BASELINES:
        raise InputError(f"baseline: '{baseline}' is not one of {', '.join(BASELINE_CHOICES)}", option="baseline")
    lens, bs = parse_int_list(seq_lens, "seq_lens"), parse_int_list(batches, "batches", most=MAX_BATCH)
    check_threads(threads)
    if rounds <= 0 or runs_per_round <= 0 or warmup < 0:
        raise InputError("--rounds and --runs must be positive, --warmup not negative")
    return list(lens), list(bs)


def _checked_cache(baseline: str, budget_s: float, baseline_cache: str | os.PathLike[str] | None) -> Path:
    """The baseline cache directory (refused if a file stands in its way), after the time budget's check."""
    if not budget_s > 0:
        raise InputError(f"budget: {budget_s / 60:g} minutes per shape; it must be positive (--budget-minutes)")
    cache = Path(baseline_cache) if baseline_cache else cache_dir()
    blocking = next((p for p in (cache, *cache.parents) if p.exists() and not p.is_dir()), None)
    if baseline != "none" and blocking is not None:
        where = ("--baseline-cache" if baseline_cache else
                 "$BORTCONV_CACHE" if os.environ.get("BORTCONV_CACHE") else "the baseline cache")
        raise InputError(f"{where} {cache}: {blocking} is not a directory")
    return cache


def _check_some_shape_fits(c: Candidate, d: Path, bs: Sequence[int], lens: Sequence[int]) -> None:
    """InputError when no asked (batch, length) can run on the artifact: a report without its rows is not a result."""
    if any(_fits(c, b, n, []) for b in bs for n in lens):
        return
    if c.static_shape:
        b, n = c.static_shape
        raise InputError(f"{d}: static shape {b}x{n}, and no asked (batch, length) is {b}x{n} (batch sizes "
                         f"{','.join(map(str, bs))}; lengths {','.join(map(str, lens))}): ask for batch size {b} "
                         f"and length {n}")
    raise InputError(f"{d}: every asked length ({','.join(map(str, lens))}) exceeds its {c.max_length} positions")


def _measure_shapes(live: list[_Live], bs: Sequence[int], lens: Sequence[int], notes: list[str],
                    timing: dict[str, Any]) -> tuple[list[Measurement], list[str]]:
    """Every candidate that fits each (batch, length), interleaved; the measurements and the wide-spread ones."""
    results: list[Measurement] = []
    wide: list[str] = []
    for batch in bs:
        for seq_len in lens:
            active = [lv for lv in live if _fits(lv.candidate, batch, seq_len, notes)]
            if not active:
                continue
            feeds = {lv.candidate.name: _feeds(lv, batch, seq_len) for lv in active}
            fns = {lv.candidate.name: (lambda run=lv.run, f=feeds[lv.candidate.name]: run(f)) for lv in active}
            log.info("measuring batch %d, length %d: %s", batch, seq_len, ", ".join(fns))
            for name, la in interleave(fns, **timing).items():
                results.append(Measurement(name, batch, seq_len, la.median_ms, la.p90_ms, la.p99_ms, la.runs,
                                           la.spread))
                if la.spread > WIDE_SPREAD:
                    wide.append(f"{name} b{batch}/l{seq_len} {la.spread:.2f}")
    return results, wide


@checked_arguments
def bench(artifacts: Sequence[str | os.PathLike[str]], *, baseline: str = "bert-large",
          seq_lens: Sequence[int] | str = DEFAULT_SEQ_LENS, batches: Sequence[int] | str = DEFAULT_BATCHES,
          threads: int | None = None, rounds: int = 5, runs_per_round: int = 4, warmup: int = 2,
          budget_s: float = 60.0, memory: bool = True, baseline_cache: str | os.PathLike[str] | None = None,
          baseline_int8: bool | None = None, build_baseline: BaselineBuilder | None = None,
          build_int8_baseline: Int8BaselineBuilder | None = None, cold_start: bool = False) -> BenchReport:
    """Benchmark artifact directories (and a BERT baseline) at every (batch, sequence length).

    `baseline` is ``bert-large``, ``bert-base`` or ``none``. Baselines are built with random weights once and
    cached under `baseline_cache` by `build_baseline` and `build_int8_baseline`, which the export pipeline
    provides (:func:`bortconv.bench.baselines.bench` passes them). `baseline_int8` adds the baseline through the
    int8 pipeline too (default: when any artifact is int8). `cold_start` adds, per OpenVINO artifact, load time
    and first-inference latency in fresh processes without and with the compiled-model cache. Raises InputError
    for bad input.
    """
    dirs = [as_path(a, "artifacts") for a in ([artifacts] if isinstance(artifacts, (str, os.PathLike)) else artifacts)]
    lens, bs = _checked_settings(dirs, baseline, seq_lens, batches, threads, rounds, runs_per_round, warmup)
    cache = _checked_cache(baseline, budget_s, baseline_cache)
    manifests = [_check_artifact(d) for d in dirs]
    names = _unique_names(dirs)
    machine = machine_info()
    threads = threads or int(machine["cpus"])
    notes: list[str] = []

    live: list[_Live] = []
    for d, name, manifest in zip(dirs, names, manifests):
        live.append(_open_artifact(d, name, manifest, threads))
        _check_some_shape_fits(live[-1].candidate, d, bs, lens)
    if baseline != "none":
        if build_baseline is None or build_int8_baseline is None:
            raise InputError("bench: a baseline needs its builders (use bortconv.bench.baselines.bench)")
        hf_dir, onnx_dir = build_baseline(baseline, cache, threads)
        live += _open_baselines(baseline, hf_dir, onnx_dir, threads)
        if baseline_int8 is None:
            baseline_int8 = any(m.get("precision") == "int8" for m in manifests)
        if baseline_int8:
            q = _open_artifact(build_int8_baseline(onnx_dir, threads), f"{baseline} (fused ONNX int8)",
                               {"precision": "int8"}, threads)
            q.candidate = replace(q.candidate, kind="baseline", baseline=baseline, pipeline=PIPELINE_INT8)
            live.append(q)

    results, wide = _measure_shapes(live, bs, lens, notes, dict(rounds=rounds, runs_per_round=runs_per_round,
                                                                warmup=warmup, budget_s=budget_s, turn_s=TURN_S))
    if wide:
        notes.append(f"wide spread ((p90 - fastest) / median above {WIDE_SPREAD}): {', '.join(wide)}; the machine "
                     f"was busy: compare ratios (measured interleaved) rather than absolute times, or re-run")
    candidates = [lv.candidate for lv in live]
    if memory:  # after all timing: the children would otherwise compete with it for the cores
        candidates = _memory_of(candidates, threads, (max(bs), max(lens)))
    cold = _cold_starts([c for c in candidates if c.kind == "artifact"], threads, notes) if cold_start else ()
    ratios = _ratios(candidates, results)
    del live
    settings = {"threads": threads, "batches": list(bs), "seq_lens": list(lens), "rounds": rounds,
                "runs_per_round": runs_per_round, "warmup": warmup, "budget_s": budget_s, "baseline": baseline,
                "statistic": "median of interleaved runs", "eager_attention": "sdpa"}
    return BenchReport(machine=machine, settings=settings, candidates=tuple(candidates),
                       results=tuple(results), ratios=tuple(ratios), notes=tuple(dict.fromkeys(notes)),
                       cold_start=cold)


def _memory_of(candidates: Sequence[Candidate], threads: int, shape: tuple[int, int]) -> list[Candidate]:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda c: _with_memory(c, threads, shape), candidates))


def _cold_starts(artifacts: Sequence[Candidate], threads: int, notes: list[str]) -> tuple[dict[str, Any], ...]:
    """:func:`bortconv.bench.cold_start.measure_cold_start` of each OpenVINO artifact, with a fresh cache directory,
    on one text within the model's positions (a static-shape artifact is left out, with a note: the probe runs
    batch 1)."""
    import tempfile

    from bortconv.bench.cold_start import measure_cold_start
    out = []
    for c in artifacts:
        d = Path(c.path)
        if not (d / OV_XML).is_file():
            continue
        if c.static_shape:
            notes.append(f"{c.name}: static shape; no cold start measured (the probe runs one text at batch 1)")
            continue
        with tempfile.TemporaryDirectory(prefix="bortconv-cache-") as cache:
            out.append(measure_cold_start(d, cache_dir=Path(cache) / "blobs", threads=threads,
                                          length=min(126, c.max_length - 2)))
    return tuple(out)


def _unique_names(dirs: Sequence[Path]) -> list[str]:
    names = [d.resolve().name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{n} ({d})" if names.count(n) > 1 else n for n, d in zip(names, dirs)]


def _fits(c: Candidate, batch: int, seq_len: int, notes: list[str]) -> bool:
    if c.static_shape and tuple(c.static_shape) != (batch, seq_len):
        notes.append(f"{c.name}: static shape {c.static_shape[0]}x{c.static_shape[1]}; measured at that shape only")
        return False
    if seq_len > c.max_length:
        notes.append(f"{c.name}: length {seq_len} exceeds its {c.max_length} positions; skipped")
        return False
    return True


def _open_artifact(d: Path, name: str, manifest: Mapping[str, Any], threads: int) -> _Live:
    from bortconv.manifest import static_shape
    from bortconv.runtime.bort import open_session

    cfg = _read_config(d)
    _import_runtime(d)
    t0 = time.perf_counter()
    session = open_session(d, threads)
    load_s = time.perf_counter() - t0
    cand = Candidate(name=name, kind="artifact", runtime=_runtime_of(d), precision=str(manifest.get("precision", "?")),
                     path=str(d), size_bytes=_dir_size(d, _model_files(d)), load_s=load_s,
                     max_length=max_positions(cfg),
                     static_shape=static_shape(manifest))
    return _Live(cand, session.run, int(cfg.get("vocab_size") or 2), int(cfg.get("pad_token_id") or 0),
                 "token_type_ids" in session.input_names)


def _runtime_of(d: Path) -> str:
    return "openvino" if (d / OV_XML).is_file() else "onnxruntime"


def _import_runtime(d: Path) -> None:
    """Import the runtime's library before the load is timed: load time is the model's, not the import's."""
    try:
        __import__("openvino" if _runtime_of(d) == "openvino" else "onnxruntime")
    except ImportError:
        pass  # open_session raises the MissingDependencyError that says what to install


def _open_baselines(name: str, hf_dir: Path, onnx_dir: Path, threads: int) -> list[_Live]:
    cfg = _read_config(hf_dir)
    vocab, pad = int(cfg["vocab_size"]), int(cfg.get("pad_token_id") or 0)
    import torch  # noqa: F401  (imported before the load is timed)
    t0 = time.perf_counter()
    eager = _eager_runner(hf_dir, threads)
    eager_load = time.perf_counter() - t0
    live = [_Live(Candidate(name=f"{name} (PyTorch eager)", kind="baseline", runtime="pytorch", precision="fp32",
                            path=str(hf_dir), size_bytes=_dir_size(hf_dir, [WEIGHT_FILES[0]]), load_s=eager_load,
                            baseline=name, pipeline=EAGER, max_length=int(cfg["max_position_embeddings"])),
                  eager, vocab, pad, int(cfg.get("type_vocab_size", 1)) > 1)]
    from bortconv.manifest import read_manifest
    art = _open_artifact(onnx_dir, f"{name} (fused ONNX)", read_manifest(onnx_dir), threads)
    art.candidate = replace(art.candidate, kind="baseline", baseline=name, pipeline=PIPELINE)
    return live + [art]


def _with_memory(c: Candidate, threads: int, shape: tuple[int, int]) -> Candidate:
    batch, seq_len = c.static_shape or (shape[0], min(shape[1], c.max_length))
    kind = "pytorch" if c.runtime == "pytorch" else "artifact"
    mem = probe_memory(kind, Path(c.path), threads, batch, seq_len)
    if not mem:
        return c
    return replace(c, peak_rss_mb=round(mem["peak_rss_mb"], 1),
                   model_rss_mb=round(mem["peak_rss_mb"] - mem["rss_after_imports_mb"], 1),
                   load_peak_rss_mb=round(mem["load_peak_rss_mb"], 1),
                   first_inference_ms=round(mem["first_inference_ms"], 2))


def _ratios(candidates: Sequence[Candidate], results: Sequence[Measurement]) -> list[Ratio]:
    by_key = {(m.candidate, m.batch, m.seq_len): m for m in results}
    out = []
    for a in (c for c in candidates if c.kind == "artifact"):
        for b in (c for c in candidates if c.kind == "baseline"):
            for (name, batch, seq_len), m in by_key.items():
                if name != a.name:
                    continue
                base = by_key.get((b.name, batch, seq_len))
                if base and m.p50_ms > 0:
                    out.append(Ratio(a.name, b.name, batch, seq_len, base.p50_ms / m.p50_ms))
    return out
