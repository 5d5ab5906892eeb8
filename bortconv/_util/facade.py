"""Stage packages that are also functions of the flat facade: ``bortconv.quantize(...)``, ``bortconv.validate(...)``.

Python sets ``bortconv.quantize`` to the subpackage as soon as anything imports ``bortconv.quantize.*``, so the
facade cannot be a plain function of that name (it would be replaced, depending on import order). The subpackage
is made callable instead: calling it calls the stage's entry point, imported on the first call.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(module_name: str, target: str) -> None:
    """Make the module `module_name` callable; a call runs `target` ("package.module:function")."""
    where, name = target.split(":")

    class CallableStage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(where), name)(*args, **kwargs)

    CallableStage.__call__.__doc__ = f"Calls :func:`{where}.{name}`."
    sys.modules[module_name].__class__ = CallableStage
