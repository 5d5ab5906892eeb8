"""Rendering of validate and bench reports for people (text tables, Markdown, a PNG plot) and for CI systems
(JSON, JUnit XML). Pure functions of the report objects; matplotlib is imported only by :func:`bench_plot`."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bortconv.bench.harness import BenchReport
    from bortconv.validate.checks import ValidationReport

VERDICT = {"pass": "ok", "fail": "FAIL", "skip": "skip", "info": "note"}


def number_cell(x: float | None, fmt: str = ".2e") -> str:
    """A table cell for a check's number: `fmt` (a difference: .2e; a tolerance: g), "-" for none, "inf"."""
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return format(x, fmt)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A plain aligned table (two spaces between columns, a rule under the header)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A GitHub Markdown table; columns listed in `right` are right-aligned."""
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in [header, rule, *rows])


#: the columns of the validate table (check_cells makes a row)
CHECK_COLUMNS = ("check", "max diff", "where", "tolerance", "verdict")


def check_cells(c: Mapping[str, Any]) -> list[str]:
    """One row of the validate table from a check as the JSON report holds it (Check.to_dict())."""
    return [f"{c['group']} {c['name']}", number_cell(c["max_diff"]), c["where"] or "-",
            number_cell(c["tolerance"], "g"), VERDICT[c["status"]]]


def validation_table(report: ValidationReport) -> str:
    """The table `bortconv validate` prints: check, max diff, where, tolerance, verdict; then what failed."""
    rows = [check_cells(c.to_dict()) for c in report.checks]
    head = (f"{report.artifact}: {report.target} {report.precision} {report.task}\n"
            f"reference {report.reference} (backends: {', '.join(report.backends)}"
            f"{f', {report.threads} threads' if report.threads else ''})\n")
    out = [head, text_table(CHECK_COLUMNS, rows, right=(1, 3))]
    details = [c for c in report.checks if c.detail and c.status in ("fail", "info", "skip")]
    if details:
        out.append("")
        out += [f"  {VERDICT[c.status]:<4} {c.group} {c.name}: {c.detail}" for c in details]
    n_fail = len(report.failures)
    skipped = sum(c.status == "skip" for c in report.checks)
    verdict = "PASS" if report.passed else f"FAIL: {n_fail} of {len(report.checks)} checks failed"
    out.append(f"\n{verdict} ({len(report.checks)} checks, {skipped} skipped, {report.seconds:.1f} s)")
    return "\n".join(out)


def validation_summary(reports: Sequence[ValidationReport]) -> str:
    """One line over several artifacts (printed after their tables when there is more than one)."""
    bad = [r for r in reports if not r.passed]
    if not bad:
        return f"all {len(reports)} artifacts PASS"
    return f"{len(bad)} of {len(reports)} artifacts FAIL: " + ", ".join(Path(r.artifact).name for r in bad)


def validation_json(reports: Sequence[ValidationReport]) -> dict[str, Any]:
    """The JSON document for CI: overall verdict, then every artifact's report."""
    return {"passed": all(r.passed for r in reports), "artifacts": [r.to_dict() for r in reports]}


def validation_junit(reports: Sequence[ValidationReport]) -> str:
    """JUnit XML: one testsuite per artifact, one testcase per check (failure / skipped elements)."""
    total = sum(len(r.checks) for r in reports)
    suites = ET.Element("testsuites", name="bortconv validate", tests=str(total),
                        failures=str(sum(len(r.failures) for r in reports)), errors="0",
                        time=f"{sum(r.seconds for r in reports):.3f}")
    for report in reports:
        _junit_suite(suites, report)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _junit_suite(suites: ET.Element, report: ValidationReport) -> None:
    name = f"bortconv.validate.{Path(report.artifact).name}"
    suite = ET.SubElement(suites, "testsuite", name=name, tests=str(len(report.checks)),
                          failures=str(len(report.failures)), errors="0",
                          skipped=str(sum(c.status == "skip" for c in report.checks)), time=f"{report.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("artifact", "target", "precision", "task", "reference"):
        ET.SubElement(props, "property", name=key, value=str(getattr(report, key)))
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{c.group.replace('/', '.')}", name=c.name,
                             time=f"{c.seconds:.3f}")
        summary = _check_summary(c)
        if c.status == "fail":
            ET.SubElement(case, "failure", message=summary, type=c.group).text = summary
        elif c.status == "skip":
            ET.SubElement(case, "skipped", message=c.detail or "skipped")
        elif summary:
            ET.SubElement(case, "system-out").text = summary


def _check_summary(c: Any) -> str:
    parts = []
    if c.max_diff is not None:
        parts.append(f"max abs diff {number_cell(c.max_diff)}" + (f" at {c.where}" if c.where else "")
                     + (f" (tolerance {number_cell(c.tolerance, 'g')})" if c.tolerance is not None
                        else ""))
    if c.detail:
        parts.append(c.detail)
    return "; ".join(parts)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write `obj` as indented JSON (``-`` writes to stdout)."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    if str(path) == "-":
        import sys
        sys.stdout.write(text)
    else:
        _write_text(Path(path), text)


def _finite(obj: Any) -> Any:
    """Strict JSON has no Infinity/NaN (a shape mismatch is an infinite diff): write them as strings."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_text(path: Path, text: str) -> None:
    """Temp file + rename, so a CI system never reads half a report."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_junit(reports: Sequence[ValidationReport], path: str | os.PathLike[str]) -> None:
    """Write :func:`validation_junit` of `reports` to `path` (atomically)."""
    _write_text(Path(path), validation_junit(reports))


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _cold_start_table(rows: Sequence[dict[str, Any]]) -> str:
    """Cold start per OpenVINO artifact: fresh processes, without the compiled-model cache and with it."""
    out = []
    for r in rows:
        for key, label in (("no_cache", "no cache"), ("cache_fill", "cache fill"), ("cache_hit", "cache hit")):
            row = r[key]
            size = f"{r['cache_bytes'] / 1e6:.0f}" if key != "no_cache" else ""
            out.append([Path(r["artifact"]).name, label, f"{row['load_s']:.2f}", f"{row['session_s']:.2f}",
                        f"{row['first_inference_ms']:.0f}", size])
    return ("Cold start (fresh process each, medians of 3; OpenVINO CACHE_DIR):\n\n"
            + markdown_table(["artifact", "cache", "load s", "session s", "first inference ms", "cache MB"], out,
                             right=(2, 3, 4, 5)))


def bench_markdown(report: BenchReport) -> str:
    """Markdown: the machine, the candidates (size, load, memory), latency per shape with speedups, notes."""
    m = report.machine
    feats = ", ".join(k for k, v in m["features"].items() if v) or "none of avx2/avx512/vnni/amx"
    s = report.settings
    lines = [(f"**Machine**: {m['cpu']} ({m['cpus']} CPUs; {feats}). **Settings**: {s['threads']} threads, "
              f"{s['statistic']} ({s['rounds']} rounds, warm-up {s['warmup']})."), ""]
    rows = []
    for c in report.candidates:
        rows.append([c.name, c.runtime, c.precision, f"{c.size_bytes / 1e6:.1f}", f"{c.load_s:.2f}",
                     *("-" if v is None else f"{v:.0f}" for v in (c.load_peak_rss_mb, c.first_inference_ms,
                                                                 c.peak_rss_mb, c.model_rss_mb))])
    lines.append(markdown_table(["candidate", "runtime", "precision", "size MB", "load s", "RSS at load MB",
                                 "first inference ms", "peak RSS MB", "model RSS MB"], rows,
                                right=(3, 4, 5, 6, 7, 8)))
    lines.append("")
    baselines = report.baselines()
    header = ["candidate", "batch", "seq", "p50 ms", "p90 ms", "p99 ms", "runs", "seq/s"]
    header += [f"vs {b.name}" for b in baselines]
    rows = []
    for r in report.results:
        row = [r.candidate, str(r.batch), str(r.seq_len), _ms(r.p50_ms), _ms(r.p90_ms), _ms(r.p99_ms), str(r.runs),
               f"{r.throughput:.1f}"]
        for b in baselines:
            sp = report.speedup(r.candidate, b.name, r.batch, r.seq_len)
            row.append("" if sp is None else f"**{sp:.1f}x**" if sp >= 1 else f"{sp:.2f}x")
        rows.append(row)
    lines.append(markdown_table(header, rows, right=tuple(range(1, len(header)))))
    if report.cold_start:
        lines += ["", _cold_start_table(report.cold_start)]
    fastest = _fastest_lines(report)
    if fastest:
        lines += ["", *fastest]
    if report.notes:
        lines.append("")
        lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _fastest_lines(report: BenchReport) -> list[str]:
    """"Fastest here" per measured shape, over the artifacts (not the baselines)."""
    shapes = sorted({(r.batch, r.seq_len) for r in report.results})
    out = []
    for batch, seq in shapes:
        best = report.best_artifact(batch, seq)
        if best is not None:
            out.append(f"Fastest artifact on this machine at batch {batch}, length {seq}: **{best.candidate}** "
                       f"({_ms(best.p50_ms)} ms)")
    return out


def bench_plot(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """PNG: median latency vs sequence length, one line per candidate, one panel per batch size, log scales."""
    try:
        import matplotlib
    except ImportError:
        from bortconv.errors import MissingDependencyError
        raise MissingDependencyError("--plot needs matplotlib: pip install 'bortconv[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r.batch for r in report.results})
    fig, axes = plt.subplots(1, max(len(batches), 1), figsize=(6.5 * max(len(batches), 1), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for c in report.candidates:
            pts = sorted((r.seq_len, r.p50_ms) for r in report.results if r.candidate == c.name and r.batch == batch)
            if not pts:
                continue
            style = "--" if c.kind == "baseline" else "-"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=c.name)
        ax.set_xscale("log", base=2)
        lens = sorted({r.seq_len for r in report.results if r.batch == batch})
        ax.set_xticks(lens, [str(x) for x in lens])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel("median latency (ms, log)")
        ax.set_title(f"batch {batch}, {report.settings['threads']} threads")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"bortconv bench on {report.machine['cpu']}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix or '.png'}")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
