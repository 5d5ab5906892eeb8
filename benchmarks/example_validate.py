"""docs/validate.md's example: what `bortconv validate` reports for an artifact whose weight was changed by hand.

    python benchmarks/example_validate.py

all-MiniLM-L6-v2 (real weights) exported to ONNX fp32; one weight tensor (the first layer's attention output
projection) scaled by 1.5 inside model.onnx, and the manifest re-hashed so that the file hashes match and only the
parity checks can notice. (A shift would not do: a constant added to every weight adds the same amount to every
output feature, which the next LayerNorm removes.) `bortconv validate --report` runs on it (its exit code must be
1); the excerpt of its rows is written to benchmarks/results/example_validate.json for render_docs.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _models import minilm  # noqa: E402
from _result import add_result_option, table, write_result  # noqa: E402

#: the rows the excerpt shows: the changed file's hash, a carried copy, and two parity shapes
EXCERPT = ("integrity sha256 model.onnx", "reference copy of config.json", "parity/pytorch b1-l128",
           "parity/pytorch b4-l512-padded")
#: the first 384 x 384 weight of the fused graph: layer 0's attention output projection (its name is the exporter's)
CHANGED_SHAPE = [384, 384]


def change_one_weight(artifact: Path) -> str:
    """Scale one initializer by 1.5 inside model.onnx and re-hash the manifest to match; returns its name."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from bortconv.manifest import file_hashes

    path = artifact / "model.onnx"
    model = onnx.load(str(path))
    index = next(i for i, t in enumerate(model.graph.initializer) if list(t.dims) == CHANGED_SHAPE)
    tensor = model.graph.initializer[index]
    scaled = numpy_helper.to_array(tensor).astype(np.float32) * np.float32(1.5)
    model.graph.initializer[index].CopyFrom(numpy_helper.from_array(scaled, tensor.name))
    onnx.save(model, str(path))
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"] = file_hashes(artifact)
    (artifact / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return tensor.name


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_result_option(ap, "example_validate")
    args = ap.parse_args()

    import bortconv
    from bortconv.validate.report import CHECK_COLUMNS, check_cells

    with tempfile.TemporaryDirectory(prefix="example-validate-") as tmp:
        art = Path(tmp) / "minilm-onnx"
        bortconv.export(minilm(), art, target="onnx", threads=2, bench=False, progress=False)
        changed = change_one_weight(art)
        report = Path(tmp) / "report.json"
        proc = subprocess.run([sys.executable, "-m", "bortconv", "validate", str(art), "--threads", "2", "--report",
                               str(report)], capture_output=True, text=True)
        if proc.returncode != 1:
            raise SystemExit(f"validate exited {proc.returncode}, not 1:\n{proc.stderr[-2000:]}")
        checks = json.loads(report.read_text())["artifacts"][0]["checks"]
    by_name = {f"{c['group']} {c['name']}": c for c in checks}
    missing = [n for n in EXCERPT if n not in by_name]
    if missing:
        raise SystemExit(f"the report has no row {missing}: update EXCERPT")
    rows = [check_cells(by_name[n]) for n in EXCERPT]
    failed = sum(c["status"] == "fail" for c in checks)
    caption = (f"an excerpt of the {len(checks)} rows; {failed} failed, `bortconv validate` exited 1. "
               f"all-MiniLM-L6-v2 exported to ONNX fp32, layer 0's attention output weight ({changed}) scaled by "
               f"1.5, manifest re-hashed")
    write_result("example_validate", {"example_validate": table(
        list(CHECK_COLUMNS), rows, right=(1, 3), caption=caption)},
        {"checks": checks}, path=args.result)
    for r in rows:
        print(" | ".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
