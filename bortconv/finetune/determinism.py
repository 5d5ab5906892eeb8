"""Run torch deterministically for the length of a block: fixed threads, deterministic kernels, seeded RNGs.

What is fixed: the intra-op thread count (float sums depend on how work is split), deterministic algorithms
(``torch.use_deterministic_algorithms``, warn-only where an op has no deterministic kernel), and every candidate's
seed (head initialisation, dropout, data order). What is not: a different CPU, thread count or torch build may
round differently, so results are reproducible per machine and settings, not across machines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def deterministic_torch(threads: int) -> Iterator[None]:
    """Fix torch's thread count and turn on deterministic algorithms; restore both afterwards."""
    import torch

    threads_before = torch.get_num_threads()
    det_before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det_before, warn_only=warn_before)
        torch.set_num_threads(threads_before)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed from several integers (run seed, candidate seed, round...), stable across platforms."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (dropout and initialisation draw from it)."""
    import torch

    torch.manual_seed(seed)
