"""Runs in the mxnet environment: the product's MXNet reference backend vs the outputs build_bort.py saved.

Usage: python mxnet_backend.py SPEC.json, SPEC a list of {params, npz, task, key, record}. Prints a JSON list of
max abs differences at valid positions, one per row. bortconv is imported from this checkout (numpy, mxnet and
gluonnlp are all bortconv.validate.mxnet_reference needs).
"""

import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from bortconv.validate.mxnet_reference import mxnet_import_error, mxnet_runner  # noqa: E402


def main():
    assert mxnet_import_error() is None, mxnet_import_error()
    diffs = []
    with open(sys.argv[1]) as fh:
        rows = json.load(fh)
    for row in rows:
        z = np.load(row["npz"])
        ids, valid = z["input_ids"].astype(np.int64), z["valid_length"]
        mask = (np.arange(ids.shape[1])[None, :] < valid[:, None]).astype(np.int64)
        got = mxnet_runner(row["params"], row["record"], row["task"])({"input_ids": ids, "attention_mask": mask})
        want = z[row["key"]]
        if got.ndim == 3:
            diffs.append(max(float(np.abs(got[r, :n] - want[r, :n]).max()) for r, n in enumerate(valid)))
        else:
            diffs.append(float(np.abs(got - want).max()))
    print(json.dumps(diffs))


if __name__ == "__main__":
    main()
