"""OpenVINO Model Server's schema for its ``config.json`` (the one the server validates its config with), kept as
data in ``bortconv/data/ovms_config.schema.json``: copied from openvinotoolkit/model_server ``src/schema.cpp`` at
commit 7e4df0c7ae340972bad15020ad777bbba3ee321d (2026-08-21), ``MODELS_CONFIG_SCHEMA`` with its
``MODEL_CONFIG_DEFINITION`` and ``DAG_DEFINITIONS`` pieces joined as the C++ joins them, mediapipe enabled (the
default build). :func:`validate` checks a config with it when ``jsonschema`` is installed.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

OVMS_SCHEMA_SOURCE = "openvinotoolkit/model_server@7e4df0c7ae340972bad15020ad777bbba3ee321d:src/schema.cpp"
SCHEMA_FILE = "ovms_config.schema.json"

OVMS_SCHEMA: dict[str, Any] = json.loads(resources.files("bortconv").joinpath("data", SCHEMA_FILE)
                                         .read_text(encoding="utf-8"))


def validate(config: dict[str, Any]) -> list[str]:
    """The schema's complaints about `config` (empty: valid); needs ``jsonschema`` (the [test] extra)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(OVMS_SCHEMA)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                  for e in validator.iter_errors(config))
