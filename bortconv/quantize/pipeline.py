"""Quantize an fp32 artifact directory to int8 under an accuracy gate.

Try the candidate schemes for the target and CPU; keep those whose fidelity on held-out text passes the gate;
if none passes, keep the most sensitive encoder layers in fp32 (mixed precision) until one does; of the passing
ones keep the fastest, measured here against the fp32 artifact. Nothing passes: AccuracyGateError with the
numbers, and the caller leaves nothing behind.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv._util.memory import collect_only_new, memory_budget, release
from bortconv.config import (GATE_METRICS, GateThresholds, Int8Options, as_path, check_options_type, host_arch,
                             max_positions)
from bortconv.errors import AccuracyGateError, InputError
from bortconv.layout import CONFIG_FILE, MANIFEST_FILE, ONNX_FILE, WORK_DIR, model_files
from bortconv.measure import (KEEP_RULE, Latency, Runner, confirmed_choice, interleaved, make_feeds,
                              timing_shape)
from bortconv.quantize import calibration as cal
from bortconv.runtime.cpu import cpu_features
from bortconv.fidelity.gate import DeploymentGate, LoaderVerdict, heldout_text
from bortconv.fidelity.metrics import deployed_fidelity, describe, describe_thresholds, margin

log = logging.getLogger(__name__)

SENSITIVITY_PROBES = 12  # held-out probes used to rank layers for mixed precision (the gate uses all)
#: calibration samples the ranking's one-group-quantized models are calibrated on, evenly spaced over the set
#: (sentences and long passages); the candidates the gate judges use all of them. Ranking only orders the groups,
#: and it was most of a mixed-precision search's time (7 of 9 OpenVINO PTQ runs, each on all 124 samples)
SENSITIVITY_CALIBRATION = 32
GATED = tuple(GATE_METRICS)

__all__ = ["GateThresholds", "Int8Options", "quantize", "quantize_artifact", "quantize_directory"]


class _Candidate:
    def __init__(self, scheme: str, path: Path, kept: list[str]) -> None:
        self.scheme, self.path, self.kept = scheme, path, kept
        self.metrics: dict[str, float] = {}  # bortconv's loader: what mixed precision ranks by
        self.verdicts: list[LoaderVerdict] = []
        self.passed = False
        self.median_ms: float | None = None
        self.rounds_ms: tuple[float, ...] = ()  # per interleaved round: what the choice compares
        self.error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.scheme}|{','.join(self.kept)}|{self.path.name}"

    def record(self) -> dict[str, Any]:
        rec = {"scheme": self.scheme, "kept_fp32": self.kept, "passed": self.passed,
               "gate": {v.loader: v.to_dict() for v in self.verdicts} or self.metrics,
               "median_ms": None if self.median_ms is None else round(self.median_ms, 2),
               "rounds_ms": [round(r, 3) for r in self.rounds_ms]}
        return rec | ({"error": self.error} if self.error else {})


@dataclass
class _Setup:
    """What every candidate is built, gated and timed with: read once from the fp32 artifact."""

    fp32_dir: Path
    target: str
    task: str
    opts: Int8Options
    cpu: dict[str, object]
    config: dict[str, Any]
    reference: Any  # the fp32 artifact's session
    tokenizer: Any
    source: str
    calib_rows: list[list[int]]
    calibration: list[dict[str, np.ndarray]]
    gate: DeploymentGate
    backend: Any  # bortconv.quantize.ort_int8 or ov_int8
    groups: dict[str, list[str]]
    table: np.ndarray | None = None  # the fp32 word table, with --embeddings int8/int4/auto
    embeddings: dict[str, Any] | None = None  # the compressed table's record (the same for every candidate)
    ladder: list[tuple[str, int]] | None = None  # --embeddings auto: (scheme, group) tried on the chosen encoder
    q: Any = None  # the explicit scheme's quantized table (bortconv.quantize.embeddings.Quantized), once made
    static_shape: tuple[int, int] | None = None  # the fp32 artifact's fixed (batch, length): every run uses it

    def quantized(self) -> Any:
        """The table as an explicit --embeddings int8/int4 stores it, quantized once for every candidate (int4's
        clipping search takes seconds per call on a large table)."""
        if self.q is None:
            from bortconv.quantize import embeddings as emb
            assert self.table is not None
            scheme = self.opts.embeddings
            self.q = emb.quantize_table(self.table, scheme,
                                        emb.group_size(scheme, self.table.shape[1], self.opts.embedding_group_size))
        return self.q

    @property
    def in_candidates(self) -> bool:
        """Whether every int8 candidate is built with the compressed table (an explicit --embeddings int8/int4)."""
        return self.table is not None and self.ladder is None

    @property
    def pad_id(self) -> int:
        return int(self.config.get("pad_token_id") or 0)

    @property
    def with_types(self) -> bool:
        return "token_type_ids" in self.reference.input_names

    @property
    def no_saturation(self) -> bool:
        """Whether the deployment family's int8 kernels sum u8 x s8 products without saturating: aarch64's
        (NEON widens to 32 bits), and x86's with VNNI (known only for this machine's own family)."""
        return self.opts.target_arch == "aarch64" or (not self.opts.foreign and bool(self.cpu["vnni"]))


def _prepare(fp32_dir: Path, target: str, task: str, opts: Int8Options,
             static_shape: tuple[int, int] | None = None) -> _Setup:
    """Open the fp32 reference, split the text into calibration and held-out feeds, group the model's nodes.
    A static-shape artifact (`static_shape` = (B, L)) only runs at B x L: calibration rows are cut to L and fed
    B at a time padded to L, and the gate's probes are fitted the same way."""
    from bortconv.runtime.bort import open_session

    split = cal.split_texts(opts.calibration, opts.samples)
    config = json.loads((fp32_dir / CONFIG_FILE).read_text())
    pad_id, vocab = int(config.get("pad_token_id") or 0), int(config["vocab_size"])
    reference = open_session(fp32_dir, opts.threads)
    with_types = "token_type_ids" in reference.input_names
    tok = cal.load_tokenizer(fp32_dir)
    source = split.source
    if tok is None:
        log.warning("%s has no tokenizer: calibrating on random token ids (pass --vocab/--merges to export "
                    "for text calibration)", fp32_dir)
        source = "random token ids (artifact has no tokenizer)"
    max_len = min(max_positions(config), static_shape[1]) if static_shape else max_positions(config)
    calib_rows = cal.rows_for(split.calibration, tok, vocab, cal.CALIBRATION_SEED, max_len)
    calib_rows += cal.long_rows(split.calibration, tok, vocab, max_len, cal.CALIBRATION_SEED)
    gate = DeploymentGate.for_artifact(fp32_dir, reference.run, task, heldout_text(opts.calibration, opts.samples),
                                       config=config, with_types=with_types, tokenizer=tok, static_shape=static_shape)
    if target == "onnx":
        from bortconv.quantize import ort_int8 as backend
        groups = backend.node_groups(fp32_dir / model_files(target)[0])
    else:
        import openvino as ov

        from bortconv.quantize import ov_int8 as backend
        groups = backend.node_groups(ov.Core().read_model(str(fp32_dir / model_files(target)[0])))
    if opts.scheme and opts.scheme not in backend.SCHEMES:
        raise InputError(f"int8_scheme: '{opts.scheme}' is not one of {', '.join(backend.SCHEMES)} for {target}",
                         option="int8_scheme")
    table, ladder = _word_table(fp32_dir, target, task, opts, vocab)
    feeds = (cal.static_feeds(calib_rows, pad_id, with_types, static_shape) if static_shape
             else cal.feeds_for(calib_rows, pad_id, with_types))
    return _Setup(fp32_dir, target, task, opts, cpu_features(), config, reference, tok, source, calib_rows,
                  feeds, gate, backend, groups, table, ladder=ladder, static_shape=static_shape)


def _word_table(fp32_dir: Path, target: str, task: str, opts: Int8Options,
                vocab: int) -> tuple[np.ndarray | None, list[tuple[str, int]] | None]:
    """The fp32 word table to compress (None: --embeddings fp32, or auto where nothing can be compressed: a
    fill-mask model, a portable ONNX graph) and, for auto, the (scheme, group) ladder to try."""
    from bortconv.quantize import embeddings as emb

    src = fp32_dir / model_files(target)[0]
    if opts.embeddings == "fp32":
        return None, None
    if opts.embeddings == "auto":
        if task == "fill-mask" or (target == "onnx" and not emb.onnx_embed_node(src)):
            return None, None
        table = emb.onnx_word_table(src) if target == "onnx" else emb.ov_word_table(src, vocab)
        return table, emb.auto_ladder(table.shape[1], opts.embedding_group_size)
    emb.check_task(task, opts.embeddings)
    table = emb.onnx_word_table(src) if target == "onnx" else emb.ov_word_table(src, vocab)
    emb.group_size(opts.embeddings, table.shape[1], opts.embedding_group_size)  # bad input: exit 2 now
    return table, None


class _Builder:
    """Builds one candidate per call in its own directory under `work`, gates it, and says how it did."""

    def __init__(self, setup: _Setup, work: Path) -> None:
        self.s, self.work, self.made = setup, work, itertools.count()
        self.float_base: _Candidate | None = None  # ONNX, --embeddings auto: the chosen encoder, float table

    def __call__(self, scheme: str, kept: list[str], probe: bool = False) -> _Candidate:
        s = self.s
        d = self.work / f"cand{next(self.made)}"
        d.mkdir()
        shutil.copy(s.fp32_dir / CONFIG_FILE, d / CONFIG_FILE)
        c = _Candidate(scheme, d, kept)
        try:
            self._quantize(c, [n for g in kept for n in s.groups[g]],
                           calibration=_spaced(s.calibration, SENSITIVITY_CALIBRATION) if probe else None)
        except Exception as exc:  # the quantizer refused this scheme: a failed candidate, recorded, not fatal
            c.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" if str(exc) else type(exc).__name__
            log.warning("int8 %s could not be built: %s", scheme, c.error)
            release()
            return c
        release()  # the quantizer's graphs and calibration tensors: give them back before the next stage
        self.gate(c, probe)
        release()
        log.info("int8 %s (fp32: %s): %s -> %s", scheme, kept or "none", describe(c.metrics),
                 "pass" if c.passed else "fail")
        return c

    def _quantize(self, c: _Candidate, exclude: list[str], float_table: bool = False,
                  calibration: list[dict[str, np.ndarray]] | None = None) -> None:
        """`c`'s model files, `exclude`d nodes kept in fp32 (`float_table`: ONNX's embedding node too, for
        --embeddings auto to compress afterwards), calibrated on `calibration` (default: the whole set)."""
        s = self.s
        calibration = s.calibration if calibration is None else calibration
        src = s.fp32_dir / model_files(s.target)[0]
        dst = c.path / model_files(s.target)[0]
        if s.target == "onnx":
            from bortconv.quantize import embeddings as emb
            # a compressed table replaces the fused embedding node: it stays float for the quantizer
            skip = emb.onnx_embed_node(src) if s.in_candidates or float_table else []
            s.backend.quantize(src, dst, c.scheme, calibration=calibration,
                               input_names=s.reference.input_names, exclude=[*exclude, *skip])
            if s.in_candidates:
                s.embeddings = emb.compress_onnx(dst, dst, s.opts.embeddings, s.opts.embedding_group_size, s.table,
                                                 s.quantized())
        else:
            from bortconv.converters.openvino_export import save_ir
            model = s.backend.quantize(src, c.scheme, calibration=calibration, vnni=s.no_saturation,
                                       exclude=exclude)
            if s.in_candidates:  # the int8 Gather's input is replaced: the int8 table is dropped on save
                from bortconv.quantize import embeddings as emb
                s.embeddings = emb.compress_openvino(model, s.opts.embeddings, s.opts.embedding_group_size,
                                                     s.table, s.quantized())
            save_ir(model, dst, fp16=False)  # stable node names: reproducible bytes

    def gate(self, c: _Candidate, probe: bool) -> None:
        """The deployment gate under every loader (`probe`: bortconv's loader on a few probes, for ranking)."""
        s = self.s
        if probe:
            from bortconv.runtime.bort import open_session
            pick = range(0, len(s.gate.probes), max(1, len(s.gate.probes) // SENSITIVITY_PROBES))
            c.metrics = deployed_fidelity([s.gate.outputs[i] for i in pick], open_session(c.path, s.opts.threads).run,
                                          [s.gate.probes[i] for i in pick], s.task)
            return
        # ONNX Runtime computes the same under both loaders on every CPU: the stock load is judged only for a
        # candidate bortconv's own load passes. OpenVINO's stock load may infer in bf16: always judged.
        c.verdicts = s.gate.judge_loaders(c.path, s.opts.thresholds, s.opts.threads, loaders=("bortconv",),
                                          pinned="f32")
        if c.verdicts[0].passed or s.target == "openvino":
            c.verdicts += s.gate.judge_loaders(c.path, s.opts.thresholds, s.opts.threads, loaders=("stock",))
        c.metrics = c.verdicts[0].metrics
        c.passed = all(v.passed for v in c.verdicts)

    def with_table(self, chosen: _Candidate, scheme: str, group: int) -> tuple[_Candidate, dict[str, Any]]:
        """--embeddings auto: the chosen int8 encoder (same scheme, same fp32 layers) with its word table stored
        as `scheme` at `group`, gated; returns it and the table's record. ONNX re-quantizes the encoder once with
        the float embedding node left for the table (dynamic schemes: seconds); OpenVINO edits the chosen IR."""
        from bortconv.quantize import embeddings as emb

        s, name = self.s, model_files(self.s.target)[0]
        c = _Candidate(chosen.scheme, self.work / f"emb{next(self.made)}", chosen.kept)
        c.path.mkdir()
        shutil.copy(s.fp32_dir / CONFIG_FILE, c.path / CONFIG_FILE)
        c.median_ms, c.rounds_ms = chosen.median_ms, chosen.rounds_ms  # timed before the table was chosen
        assert s.table is not None
        if s.target == "onnx":
            if self.float_base is None:
                self.float_base = _Candidate(chosen.scheme, self.work / "emb-base", chosen.kept)
                self.float_base.path.mkdir()
                self._quantize(self.float_base, [n for g in chosen.kept for n in s.groups[g]], float_table=True)
            rec = emb.compress_onnx(self.float_base.path / name, c.path / name, scheme, group, s.table)
        else:
            import openvino as ov

            from bortconv.converters.openvino_export import save_ir
            model = ov.Core().read_model(str(chosen.path / name))
            rec = emb.compress_openvino(model, scheme, group, s.table)
            save_ir(model, c.path / name, fp16=False)
            del model
        release()
        self.gate(c, False)
        release()
        log.info("int8 %s + embeddings %s (group %d): %s -> %s", chosen.scheme, scheme, group, describe(c.metrics),
                 "pass" if c.passed else "fail")
        return c, rec


def _search(s: _Setup, build: _Builder) -> list[_Candidate]:
    """Every candidate scheme, preferred first; mixed precision for the preferred one if it fails alone."""
    schemes = (s.opts.scheme,) if s.opts.scheme else s.backend.default_candidates(s.no_saturation,
                                                                                    s.opts.target_arch)
    tried = [build(scheme, []) for scheme in schemes]
    # The first scheme is the one expected to be fastest on this CPU: if it fails with every layer in int8,
    # find out whether keeping a few sensitive layers in fp32 saves it before settling for a slower scheme.
    if not tried[0].passed and not tried[0].error and s.opts.mixed_precision:
        tried += _mixed_precision(tried[0].scheme, s.groups, build)
    if not any(c.passed for c in tried):
        best = closest_to_passing(tried)
        failed = "; ".join(f"{v.loader} loader: {', '.join(v.failed)} (worst at {v.metrics.get('worst_at')})"
                           for v in best.verdicts if v.failed)
        raise AccuracyGateError(
            f"int8 {s.target}: no scheme passes the accuracy gate ({describe_thresholds(s.opts.thresholds, s.task)}) "
            f"on {len(s.gate.probes)} held-out probes of 1 to {(s.gate.record()['lengths'] or ['?'])[-1]} tokens; "
            f"best was {best.scheme} with fp32 layers {best.kept or 'none'}: "
            f"{failed or best.error or describe(best.metrics)}")
    return tried


def _choose_table(s: _Setup, build: _Builder, chosen: _Candidate) -> _Candidate:
    """--embeddings auto: the first table of the ladder (smallest file first) the gate passes on the chosen
    encoder, else the encoder as chosen; records every try under `s.embeddings`."""
    from bortconv.quantize import embeddings as emb

    tried: list[dict[str, Any]] = []
    keep, kept_rec = chosen, None
    for scheme, group in s.ladder or []:
        try:
            c, rec = build.with_table(chosen, scheme, group)
        except Exception as exc:  # a runtime refusing this table: a failed try, recorded
            tried.append({"scheme": scheme, "group_size": group, "passed": False,
                          "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"})
            continue
        tried.append({k: rec[k] for k in ("scheme", "group_size", "table_bytes", "bytes_saved")}
                     | {"passed": c.passed, "gate": {v.loader: v.to_dict() for v in c.verdicts}})
        if c.passed:
            keep, kept_rec = c, rec
            break
    choice = {"rule": emb.AUTO_RULE, "order": [f"{sc} group {g}" for sc, g in s.ladder or []] + ["int8 scheme's own"],
              "tried": tried, "speed": "speed_vs_fp32 was timed on the encoder candidates before the table was chosen"}
    if s.table is not None and s.ladder == []:
        choice["note"] = f"no group size fits rows of {s.table.shape[1]} (a power of two >= 16 dividing it)"
    s.embeddings = (kept_rec or {"scheme": "fp32", "note": "--embeddings auto: no compressed table passed the gate; "
                                 "the int8 scheme quantizes the word table its own way, if at all"}) | {"choice": choice}
    return keep


@dataclass
class _Timing:
    """Median latencies at `shape` (:func:`bortconv.measure.timing_shape`) of the fp32 artifact, as bortconv pins it and, where a
    stock load infers in another precision (OpenVINO where the plugin's default here is not f32), as a stock load
    runs it."""

    shape: tuple[int, int]
    fp32_ms: float
    stock_ms: float | None = None
    stock_precision: str | None = None
    decision: dict[str, Any] | None = None  # how the scheme was chosen among those that passed (measure)


def _time_and_choose(s: _Setup, passing: list[_Candidate]) -> tuple[_Candidate, _Timing | None]:
    """Time the passing candidates against fp32 in one interleaved run; keep the first in this CPU's
    preference order unless a later one is clearly faster."""
    if s.opts.foreign:  # another CPU family: nothing timed here is its speed; its own preference order decides
        return passing[0], None
    from bortconv.runtime.loaders import stock_precision
    from bortconv.runtime.bort import open_session

    shape = s.static_shape or timing_shape(max_positions(s.config))
    feeds = make_feeds([shape[1]] * shape[0], shape[1], int(s.config["vocab_size"]), s.pad_id, 0, s.with_types)
    runners: dict[str, Runner] = {"fp32": s.reference.run}
    # What a deployment compares int8 against is the fp32 artifact as it loads it. Where the stock load of
    # fp32 is not f32 (what loaders.stock_precision reports: bf16 on native-bf16 x86), pinned f32 alone would
    # flatter int8. It is compiled at the stock precision with the candidates' threads, so only the precision
    # differs between the two.
    stock = stock_precision() if s.target == "openvino" else "f32"
    if stock != "f32":
        runners["fp32-stock"] = open_session(s.fp32_dir, s.opts.threads, precision=stock).run
    runners |= {c.key: open_session(c.path, s.opts.threads).run for c in passing}
    lat = interleaved(runners, feeds, rounds=4, runs_per_round=3)
    for c in passing:
        c.median_ms, c.rounds_ms = lat[c.key].median_ms, lat[c.key].rounds_ms
    by_key = {c.key: c for c in passing}

    def retime(keys: list[str]) -> dict[str, Latency]:
        return interleaved({k: runners[k] for k in keys}, feeds, rounds=4, runs_per_round=3)

    key, decision = confirmed_choice({c.key: lat[c.key] for c in passing}, retime)
    timing = _Timing(shape, lat["fp32"].median_ms, decision=decision)
    if stock != "f32":
        timing = _Timing(shape, lat["fp32"].median_ms, lat["fp32-stock"].median_ms, stock, decision)
    return by_key[key], timing


def _speed_fields(chosen: _Candidate, t: _Timing) -> dict[str, Any]:
    int8_ms = chosen.median_ms or t.fp32_ms
    fields: dict[str, Any] = {"shape": list(t.shape), "fp32_ms": round(t.fp32_ms, 2),
                              "int8_ms": round(int8_ms, 2), "speedup": round(t.fp32_ms / int8_ms, 3),
                              "slower_than_fp32": int8_ms > t.fp32_ms}
    if t.stock_ms is not None:
        fields["fp32_stock"] = {"inference_precision": t.stock_precision, "median_ms": round(t.stock_ms, 2),
                                "speedup": round(t.stock_ms / int8_ms, 3), "int8_slower": int8_ms > t.stock_ms,
                                "note": "the fp32 artifact at the precision compile_model picks with no hints "
                                        "here, same threads, same interleaved run"}
    return fields


def _foreign_fields(s: _Setup) -> dict[str, Any]:
    """What an artifact for another CPU family records instead of a speed and a gate on its own kernels."""
    here, there = s.opts.target_arch, host_arch()
    return {"speed_vs_fp32": {"measured": False,
                              "why": f"built for {here} on {there}: no speed of {here} can be measured here"},
            "device_gate": {"status": "pending", "arch": here,
                            "how": "run `bortconv validate DIR` on the device (pip install 'bortconv[runtime]')",
                            "note": f"the gate above ran {there}'s kernels; {here}'s compute int8 differently"}}


def _warn_if_slower(s: _Setup, chosen: _Candidate, timing: _Timing) -> None:
    fp32_ms = timing.fp32_ms
    # said, not hidden: on CPUs without int8 dot-product instructions this can happen
    if (chosen.median_ms or 0.0) > fp32_ms:
        log.warning("int8 %s runs slower than fp32 on this CPU (%.1f vs %.1f ms at %dx%d, VNNI: %s); it is "
                    "smaller, but deploy fp32 where latency matters", chosen.scheme, chosen.median_ms, fp32_ms,
                    *timing.shape, s.cpu.get("vnni"))
    elif timing.stock_ms is not None and (chosen.median_ms or 0.0) > timing.stock_ms:
        log.warning("int8 %s runs slower than the fp32 artifact under stock loading here (%.1f vs %.1f ms at "
                    "%dx%d, %s): it is smaller, but on this CPU fp32 as compile_model loads it is faster",
                    chosen.scheme, chosen.median_ms, timing.stock_ms, *timing.shape, timing.stock_precision)


def _manifest_fields(s: _Setup, tried: list[_Candidate], chosen: _Candidate, timing: _Timing | None,
                     n_passing: int) -> dict[str, Any]:
    if timing is not None:
        _warn_if_slower(s, chosen, timing)
    opts = s.opts
    fields = {
        "scheme": chosen.scheme,
        "arch": s.opts.target_arch,
        "kept_fp32": {"groups": chosen.kept, "nodes": [n for g in chosen.kept for n in s.groups[g]]},
        "gate": {"thresholds": opts.thresholds.to_dict(), "passed": True,
                 "results": {v.loader: v.to_dict() for v in chosen.verdicts},
                 "heldout": s.gate.record(), "heldout_texts": len(s.gate.probes)},
        "calibration": {"source": s.source, "samples": len(s.calib_rows), "order": "file order, batch 1",
                        "file": None if opts.calibration is None else str(Path(opts.calibration).resolve()),
                        "split_samples": opts.samples,
                        "token_ids": "tokenizer" if s.tokenizer is not None else "random"},
        "cpu": s.cpu,
        "candidates": [c.record() for c in tried],
        "chosen_because": f"of the schemes that passed, in this CPU's preference order: {KEEP_RULE}"
        if n_passing > 1 else "the only scheme that passed the gate",
        **({"choice": timing.decision} if n_passing > 1 and timing.decision else {}),
        "embeddings": s.embeddings or {"scheme": "fp32", "note": "--embeddings fp32 (or auto where no table can "
                                                                 "be compressed): the int8 scheme quantizes the word "
                                                                 "table its own way, if at all"},
    }
    if timing is None:
        return fields | _foreign_fields(s) | {"chosen_because": f"the first scheme in {s.opts.target_arch}'s "
                                              f"preference order that passed the gate (not timed)"}
    return fields | {"speed_vs_fp32": _speed_fields(chosen, timing)}


def quantize_artifact(fp32_dir: Path, out_dir: Path, *, target: str, task: str, opts: Int8Options,
                      work: Path, static_shape: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write the int8 model files of the fp32 artifact in `fp32_dir` into `out_dir`; returns manifest fields.
    `static_shape`: the fp32 artifact's fixed (batch, length), if it was exported with one."""
    setup = _prepare(fp32_dir, target, task, opts, static_shape)
    build = _Builder(setup, work)
    tried = _search(setup, build)
    passing = [c for c in tried if c.passed]
    chosen, timing = _time_and_choose(setup, passing)
    if setup.ladder is not None:
        chosen = _choose_table(setup, build, chosen)
    for name in model_files(target):
        shutil.copy(chosen.path / name, out_dir / name)
    from bortconv.fidelity.proof import write_gate_proof
    proof = write_gate_proof(out_dir, setup.gate, opts.thresholds, "the fp32 artifact (atol parity vs PyTorch fp32)")
    return _manifest_fields(setup, tried, chosen, timing, len(passing)) | {"proof": proof}  # the caller lifts it


def _spaced(items: list[Any], n: int) -> list[Any]:
    """At most `n` of `items`, evenly spaced from the first (all of them if there are at most `n`)."""
    return items if len(items) <= n else [items[i * len(items) // n] for i in range(n)]


def closest_to_passing(tried: Sequence[_Candidate]) -> _Candidate:
    """Of candidates that all failed, the one nearest the gate: the highest margin (fidelity.metrics.margin) of
    its most-failing metric under every loader it was judged by (a candidate bortconv's loader passes may still
    fail the stock load). One the quantizer refused was judged by none and comes last."""
    return max(tried, key=lambda c: min((margin(v.metrics, v.thresholds) for v in c.verdicts),
                                        default=float("-inf")))


def _score(metrics: dict[str, Any]) -> float:
    """The lowest gated metric: what ranks layer groups by their damage (higher is closer to fp32)."""
    return min((float(v) for k, v in metrics.items() if k in GATED), default=-1.0)


def _mixed_precision(scheme: str, groups: dict[str, list[str]], build: _Builder) -> list[_Candidate]:
    """Rank layer groups by how much quantizing each alone hurts (on a few held-out batches), then keep them
    in fp32 one by one, most sensitive first, until the gate passes."""
    names = sorted(groups)
    scores = {}
    for g in names:  # only g quantized: its own damage
        c = build(scheme, [h for h in names if h != g], probe=True)
        scores[g] = _score(c.metrics)
        shutil.rmtree(c.path)
    order = sorted(names, key=lambda g: scores[g])
    log.info("int8 sensitivity (lower is more sensitive): %s", {g: round(scores[g], 5) for g in order})
    tried, kept = [], []
    for g in order[:-1]:  # keeping every group in fp32 is not int8
        kept.append(g)
        c = build(scheme, list(kept))
        tried.append(c)
        if c.passed:
            break
        shutil.rmtree(c.path)
    return tried


def quantize_directory(artifact_dir: str | Path, output_dir: str | Path, *, opts: Int8Options,
                       force: bool = False, max_memory: int | str | None = None) -> dict[str, Any]:
    """`bortconv quantize`: an existing fp32 artifact directory -> a new int8 one (atomically), stopped
    cleanly if its resident memory passes `max_memory` (bytes or "2G")."""
    with collect_only_new(), memory_budget(max_memory, "quantize"):
        from bortconv._util.atomic import atomic_directory, check_output_dir
        from bortconv.manifest import (carried_fields, check_unchanged, compressed_table, read_manifest, static_shape,
                                       write_manifest)

        src, out = as_path(artifact_dir, "artifact_dir"), as_path(output_dir, "output_dir")
        manifest = read_manifest(src)
        if manifest.get("precision") != "fp32":
            raise InputError(f"{src}: precision is {manifest.get('precision')}; quantize takes an fp32 artifact")
        table = compressed_table(manifest)
        if table is not None:  # quantize builds on the float table; one stored int4 was kept and recorded as fp32
            raise InputError(f"{src}: its word table is stored {table['scheme']}; quantize takes an artifact with the "
                             f"fp32 table (export --embeddings fp32), or export --precision int8 --embeddings "
                             f"{table['scheme']} from the source")
        target, task = str(manifest["target"]), str(manifest["task"])
        check_output_dir(out, force, reads=[src, opts.calibration])
        check_unchanged(src, manifest)
        with atomic_directory(out, force=force) as tmp:
            for p in src.iterdir():
                if p.is_file() and p.name != MANIFEST_FILE and p.name not in model_files(target):
                    shutil.copy(p, tmp / p.name)
            work = tmp / WORK_DIR
            work.mkdir()
            info = quantize_artifact(src, tmp, target=target, task=task, opts=opts, work=work,
                                     static_shape=static_shape(manifest))
            shutil.rmtree(work)
            from bortconv.converters.onnx_export import op_counts
            from bortconv.runtime.loaders import loading_contract
            fields = carried_fields(manifest) | {
                "precision": "int8", "proof": info.pop("proof"), "int8": info,
                "quantized_from": str(src.resolve()),
                **({"fused_ops": op_counts(tmp / ONNX_FILE)} if target == "onnx" else {}),  # the int8 graph's
                "loading": loading_contract(target, "int8"),
                "parity_checked": "fp32 artifact vs PyTorch fp32 (before int8 quantization; int8 is judged by "
                                  "the gate)"}
            return write_manifest(tmp, fields)


def quantize(artifact_dir: str | Path, output_dir: str | Path, options: Int8Options | None = None, *,
             force: bool = False, max_memory: int | str | None = None, **keywords: Any) -> dict[str, Any]:
    """``bortconv.quantize``: an fp32 artifact directory -> an int8 one under the gate; returns its manifest.

    Options are an :class:`Int8Options`, or its keywords as ``bortconv quantize`` names them (``calibration``,
    ``samples``, ``int8_scheme``, ``int8_gate``, ``threads``); not both."""
    from dataclasses import fields

    from bortconv.config import option_keyword
    if options is not None and keywords:
        raise InputError(f"quantize: pass an Int8Options or keywords, not both (got {', '.join(sorted(keywords))})")
    if options is None:
        names = {option_keyword(f): f.name for f in fields(Int8Options)}
        unknown = sorted(set(keywords) - set(names))
        if unknown:
            raise InputError(f"quantize: unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
        options = Int8Options(**{names[k]: v for k, v in keywords.items()})
    check_options_type(options, Int8Options, "quantize")
    return quantize_directory(artifact_dir, output_dir, opts=options, force=force, max_memory=max_memory)
