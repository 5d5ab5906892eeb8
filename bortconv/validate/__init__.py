"""The ``validate`` command; ``bortconv.validate(artifact_dir, ...)``."""

from __future__ import annotations

from bortconv._util.facade import make_callable  # noqa: E402

make_callable(__name__, "bortconv.validate.command:validate")  # bortconv.validate(...): the facade's function
