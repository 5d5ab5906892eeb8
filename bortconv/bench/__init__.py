"""The `bench` stage: the harness (interleaved timing against BERT baselines), the baselines built through the
export pipeline, memory probes and cold starts. ``bortconv.bench([artifact_dir, ...])`` calls
:func:`bortconv.bench.baselines.bench`."""

from __future__ import annotations

from bortconv._util.facade import make_callable

make_callable(__name__, "bortconv.bench.baselines:bench")  # bortconv.bench(...): the facade's function
