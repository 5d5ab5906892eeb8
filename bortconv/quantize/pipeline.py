"""Quantize an fp32 artifact directory to int8 under an accuracy gate.

Try the candidate schemes for the target and CPU; keep those whose fidelity on held-out text passes the gate;
if none passes, keep the most sensitive encoder layers in fp32 (mixed precision) until one does; of the passing
ones keep the fastest, measured here against the fp32 artifact. Nothing passes: AccuracyGateError with the
numbers, and the caller leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bortconv._memory import memory_budget, release
from bortconv.errors import AccuracyGateError, InputError
from bortconv.quantize import calibration as cal
from bortconv.quantize.cpu import cpu_features
from bortconv.quantize.gate import GateThresholds, describe, fidelity, passes

log = logging.getLogger(__name__)

SENSITIVITY_TEXTS = 32  # held-out texts used to rank layers for mixed precision (the gate uses all)


@dataclass(frozen=True)
class Int8Options:
    """Options of int8 quantization (``--int8`` on export, and ``bortconv quantize``)."""

    calibration: str | None = None  # text file, one sentence per line; None: the shipped WordNet set
    samples: int | None = None  # calibration sentences; the rest of the file (up to 200) is held out
    scheme: str | None = None  # force one scheme instead of choosing by measurement
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    threads: int | None = None
    mixed_precision: bool = True


def _model_files(target: str) -> tuple[str, ...]:
    return ("model.onnx",) if target == "onnx" else ("openvino_model.xml", "openvino_model.bin")


class _Candidate:
    def __init__(self, scheme: str, path: Path, kept: list[str]) -> None:
        self.scheme, self.path, self.kept = scheme, path, kept
        self.metrics: dict[str, float] = {}
        self.passed = False
        self.median_ms: float | None = None
        self.error: str | None = None

    def record(self) -> dict[str, Any]:
        rec = {"scheme": self.scheme, "kept_fp32": self.kept, "gate": self.metrics, "passed": self.passed,
               "median_ms": None if self.median_ms is None else round(self.median_ms, 2)}
        return rec | ({"error": self.error} if self.error else {})


def quantize_artifact(fp32_dir: Path, out_dir: Path, *, target: str, task: str, opts: Int8Options,
                      work: Path) -> dict[str, Any]:
    """Write the int8 model files of the fp32 artifact in `fp32_dir` into `out_dir`; returns manifest fields."""
    from bortconv.runtime import open_session
    from bortconv.validate.parity import make_feeds
    from bortconv.validate.speed import KEEP_RULE, interleaved, keep_preferred

    cpu = cpu_features()
    split = cal.split_texts(opts.calibration, opts.samples)
    cfg = json.loads((fp32_dir / "config.json").read_text())
    pad_id = int(cfg.get("pad_token_id") or 0)
    ref_session = open_session(fp32_dir, opts.threads)
    names = ref_session.input_names
    with_types = "token_type_ids" in names
    tok = cal.load_tokenizer(fp32_dir)
    source = split.source
    if tok is None:
        log.warning("%s has no tokenizer: calibrating on random token ids (pass --vocab/--merges to export "
                    "for text calibration)", fp32_dir)
        source = "random token ids (artifact has no tokenizer)"
    calib_rows = cal.rows_for(split.calibration, tok, int(cfg["vocab_size"]), cal.CALIBRATION_SEED)
    calib = cal.feeds_for(calib_rows, pad_id, with_types)
    n_held, held = cal.heldout_feeds(split, tok, int(cfg["vocab_size"]), pad_id, with_types)

    def gate(c: _Candidate, feeds: list | None = None) -> dict[str, float]:
        sess = open_session(c.path, opts.threads)
        return fidelity(ref_session.run, sess.run, feeds or held, task)

    if target == "onnx":
        from bortconv.quantize import ort_int8 as backend
        groups = backend.node_groups(fp32_dir / "model.onnx")
    else:
        import openvino as ov

        from bortconv.quantize import ov_int8 as backend
        groups = backend.node_groups(ov.Core().read_model(str(fp32_dir / "openvino_model.xml")))
    schemes = (opts.scheme,) if opts.scheme else backend.default_candidates(bool(cpu["vnni"]))
    if opts.scheme and opts.scheme not in backend.SCHEMES:
        raise InputError(f"--int8-scheme: '{opts.scheme}' is not one of {', '.join(backend.SCHEMES)} for {target}")

    counter = iter(range(10_000))

    def build(scheme: str, kept: list[str], feeds: list | None = None) -> _Candidate:
        d = work / f"cand{next(counter)}"
        d.mkdir()
        for name in ("config.json",):
            shutil.copy(fp32_dir / name, d / name)
        exclude = [n for g in kept for n in groups[g]]
        c = _Candidate(scheme, d, kept)
        try:
            if target == "onnx":
                backend.quantize(fp32_dir / "model.onnx", d / "model.onnx", scheme, calibration=calib,
                                 input_names=names, exclude=exclude)
            else:
                from bortconv.converters.openvino_export import save_ir
                model = backend.quantize(fp32_dir / "openvino_model.xml", scheme, calibration=calib,
                                         vnni=bool(cpu["vnni"]), exclude=exclude)
                save_ir(model, d / "openvino_model.xml", fp16=False)  # stable node names: reproducible bytes
        except Exception as exc:  # the quantizer refused this scheme: a failed candidate, recorded, not fatal
            c.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" if str(exc) else type(exc).__name__
            log.warning("int8 %s could not be built: %s", scheme, c.error)
            release()
            return c
        release()  # the quantizer's graphs and calibration tensors: give them back before the next stage
        c.metrics = gate(c, feeds)
        release()
        c.passed = passes(c.metrics, opts.thresholds)
        log.info("int8 %s (fp32: %s): %s -> %s", scheme, kept or "none", describe(c.metrics),
                 "pass" if c.passed else "fail")
        return c

    tried = [build(s, []) for s in schemes]
    # The first scheme is the one expected to be fastest on this CPU: if it fails with every layer in int8,
    # find out whether keeping a few sensitive layers in fp32 saves it before settling for a slower scheme.
    if not tried[0].passed and not tried[0].error and opts.mixed_precision:
        tried += _mixed_precision(tried[0].scheme, groups, build, held[:max(1, SENSITIVITY_TEXTS // 8)])
    passing = [c for c in tried if c.passed]
    if not passing:
        best = max(tried, key=lambda c: min((v for k, v in c.metrics.items() if k != "texts"), default=-1.0))
        raise AccuracyGateError(
            f"int8 {target}: no scheme passes the accuracy gate ({_thresholds(opts.thresholds, task)}); "
            f"best was {best.scheme} with fp32 layers {best.kept or 'none'}: {describe(best.metrics)}")

    shape = (1, 128)
    feeds = make_feeds([shape[1]], shape[1], int(cfg["vocab_size"]), pad_id, 0, with_types)
    runners = {"fp32": ref_session.run} | {f"{c.scheme}|{','.join(c.kept)}|{i}": open_session(c.path, opts.threads).run
                                            for i, c in enumerate(passing)}
    lat = interleaved(runners, feeds, rounds=4, runs_per_round=3)
    for i, c in enumerate(passing):
        c.median_ms = lat[f"{c.scheme}|{','.join(c.kept)}|{i}"].median_ms
    # passing candidates are in this CPU's preference order: a later one is kept only if clearly faster
    chosen = passing[int(keep_preferred({str(i): c.median_ms or 0.0 for i, c in enumerate(passing)}))]
    for name in _model_files(target):
        shutil.copy(chosen.path / name, out_dir / name)
    fp32_ms = lat["fp32"].median_ms
    slower = (chosen.median_ms or 0.0) > fp32_ms
    if slower:  # said, not hidden: on CPUs without int8 dot-product instructions this can happen
        log.warning("int8 %s runs slower than fp32 on this CPU (%.1f vs %.1f ms at 1x128, VNNI: %s); it is "
                    "smaller, but deploy fp32 where latency matters", chosen.scheme, chosen.median_ms, fp32_ms,
                    cpu.get("vnni"))
    return {
        "scheme": chosen.scheme,
        "kept_fp32": {"groups": chosen.kept, "nodes": [n for g in chosen.kept for n in groups[g]]},
        "gate": {"thresholds": opts.thresholds.to_dict(), "results": chosen.metrics, "passed": True,
                 "heldout_texts": n_held},
        "calibration": {"source": source, "samples": len(calib_rows), "order": "file order, batch 1",
                        "file": None if opts.calibration is None else str(Path(opts.calibration).resolve()),
                        "split_samples": opts.samples, "token_ids": "tokenizer" if tok is not None else "random"},
        "cpu": cpu,
        "candidates": [c.record() for c in tried],
        "speed_vs_fp32": {"shape": list(shape), "fp32_ms": round(fp32_ms, 2),
                          "int8_ms": round(chosen.median_ms or 0.0, 2),
                          "speedup": round(fp32_ms / (chosen.median_ms or fp32_ms), 3),
                          "slower_than_fp32": slower},
        "chosen_because": f"of the schemes that passed, in this CPU's preference order: {KEEP_RULE}"
        if len(passing) > 1 else "the only scheme that passed the gate",
    }


def _thresholds(t: GateThresholds, task: str) -> str:
    if task == "feature-extraction":
        return f"token cosine >= {t.token_cosine}, sentence cosine >= {t.sentence_cosine}"
    return f"top-1 agreement >= {t.top1_agreement}" if task == "fill-mask" else \
        f"label agreement >= {t.label_agreement}"


def _mixed_precision(scheme: str, groups: dict[str, list[str]], build: Any, probe: list) -> list[_Candidate]:
    """Rank layer groups by how much quantizing each alone hurts (on a few held-out batches), then keep them
    in fp32 one by one, most sensitive first, until the gate passes."""
    names = sorted(groups)
    scores = {}
    for g in names:  # only g quantized: its own damage
        c = build(scheme, [h for h in names if h != g], probe)
        scores[g] = min(v for k, v in c.metrics.items() if k != "texts")
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
    with memory_budget(max_memory, "quantize"):
        from bortconv._atomic import atomic_directory, check_output_dir
        from bortconv.manifest import MANIFEST_FILE, carried_fields, read_manifest, write_manifest

        src, out = Path(artifact_dir), Path(output_dir)
        manifest = read_manifest(src)
        if manifest.get("precision") != "fp32":
            raise InputError(f"{src}: precision is {manifest.get('precision')}; quantize takes an fp32 artifact")
        target, task = str(manifest["target"]), str(manifest["task"])
        check_output_dir(out, force)
        with atomic_directory(out, force=force) as tmp:
            for p in src.iterdir():
                if p.is_file() and p.name != MANIFEST_FILE and p.name not in _model_files(target):
                    shutil.copy(p, tmp / p.name)
            work = tmp / ".work"
            work.mkdir()
            info = quantize_artifact(src, tmp, target=target, task=task, opts=opts, work=work)
            shutil.rmtree(work)
            fields = carried_fields(manifest) | {
                "precision": "int8", "int8": info, "quantized_from": str(src.resolve()),
                "parity_checked": "fp32 artifact vs PyTorch fp32 (before int8 quantization; int8 is judged by "
                                  "the gate)"}
            return write_manifest(tmp, fields)
