"""Fine-tuning Bort (or any BERT-family encoder) for text classification, with Agora or a plain search.

    finetune(source, train, dev, out_dir, FinetuneOptions(...)) -> FinetuneResult

Modules: :mod:`.data` (reading TSV/CSV/JSONL), :mod:`.source` (what training starts from), :mod:`.recipe` (Bort's
head, optimizer, schedule and train loop), :mod:`.search` (the space, its sample to fit the budget, pruning),
:mod:`.agora` (the round loop), :mod:`.generate` (data-generating functions), :mod:`.teacher`, :mod:`.record`
(the training record), :mod:`.executor` (where a round's trainings run: this process, or Ray tasks via
:mod:`.ray_executor` and :mod:`.worker`), :mod:`.checkpoint` (the work directory that ``--resume`` continues from),
:mod:`.api` and :mod:`.cli`. torch and transformers are imported only when a run starts, Ray only by ``--executor
ray``.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"finetune": "api", "FinetuneResult": "api", "FinetuneOptions": "options", "Method": "options",
         "SearchSpace": "search", "BORT_SPACE": "search", "Example": "data", "Generator": "generate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"bortconv.finetune.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bortconv.finetune' has no attribute {name!r}")


__all__ = sorted(_LAZY)

from bortconv._util.facade import make_callable  # noqa: E402

make_callable(__name__, "bortconv.finetune.api:finetune")  # bortconv.finetune(...): the facade's function
