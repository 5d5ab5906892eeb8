"""A Bort-shaped checkpoint with seeded random weights, for trying the pipeline without the real bort.params.

It has the released file's exact layout: bort_4_8_768_1024, the 74 structural Gluon names, MLM decoder with
the tied embedding written twice, cast to fp16 (about 255 MB). Its weights are random, so its outputs are
meaningless but its size, shapes and speed are Bort's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bortconv.config import BortVariant
from bortconv.converters import gluon_names as gn
from bortconv.converters.mapping import expected_shapes
from bortconv.converters.params_writer import write_params
from bortconv.config import Head
from bortconv.errors import BortconvError, InputError

BORT_4_8 = BortVariant(num_layers=4, num_heads=8, intermediate_size=768, hidden_size=1024, vocab_size=50265)


def _draws(variant: BortVariant, seed: int, dtype: str, head: Head) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) in the order they are drawn, the tied decoder left out."""
    rng = np.random.default_rng(seed)
    for name, shape in expected_shapes(variant, head, 2 if head is Head.CLASSIFIER else None).items():
        if name == gn.TIED_DECODER:
            continue
        if name.endswith("gamma"):
            val = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        elif name.endswith(("beta", "bias")):
            val = 0.1 * rng.standard_normal(shape, dtype=np.float32)
        else:
            val = 0.05 * rng.standard_normal(shape, dtype=np.float32)
        yield name, val.astype(dtype)


def demo_arrays(variant: BortVariant = BORT_4_8, *, seed: int = 0, dtype: str = "float16",
                head: Head = Head.MLM) -> dict[str, np.ndarray]:
    """Seeded random weights for every Gluon name of `variant` (LayerNorm gammas near 1, biases small)."""
    arrays = dict(_draws(variant, seed, dtype, head))
    if head is Head.MLM:
        arrays[gn.TIED_DECODER] = arrays[gn.WORD_EMBED]  # written twice, as Gluon does
    return arrays


def is_demo(path: str | os.PathLike[str], seed: int) -> bool:
    """Whether `path` holds the demo checkpoint of `seed`: its names, and its first array drawn again (each array
    comes from one stream in order, so another seed's file differs there). Unreadable: False. `seed` is one
    :func:`check_seed` passed."""
    from bortconv.converters.params_reader import read_params

    try:
        params = read_params(path)
    except BortconvError:
        return False
    with params:
        if sorted(params.names()) != sorted(expected_shapes(BORT_4_8, Head.MLM, None)):
            return False
        name, first = next(_draws(BORT_4_8, seed, "float16", Head.MLM))
        return np.array_equal(params.array(name), first)


def check_seed(seed: object) -> None:
    """InputError naming --seed for anything but an integer from 0 to 2**32 - 1 (numpy's seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"seed: {seed!r}: the seed is an integer from 0 to 2**32 - 1", option="seed")


def write_demo_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write the demo bort_4_8_768_1024 fp16 MLM checkpoint to `path` (skipped if it is already there)."""
    p = Path(path)
    check_seed(seed)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; make-demo writes a .params file")
    blocking = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
    if blocking is not None:
        raise InputError(f"{p}: {blocking} is not a directory")
    if not p.exists():
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            write_params(p, demo_arrays(seed=seed))
        except OSError as exc:  # no permission; a read-only, special or full file system
            raise InputError(f"{p}: cannot write it ({exc.strerror or exc})") from None
    return p
