"""OpenVINO Model Server's schema for its ``config.json`` (the one the server validates its config with).

Copied from openvinotoolkit/model_server ``src/schema.cpp`` at commit 7e4df0c7ae340972bad15020ad777bbba3ee321d
(2026-08-21): ``MODELS_CONFIG_SCHEMA`` with its ``MODEL_CONFIG_DEFINITION`` and ``DAG_DEFINITIONS`` pieces joined
as the C++ joins them, mediapipe enabled (the default build). Data only; :func:`validate` checks a config with
it when ``jsonschema`` is installed.
"""

from __future__ import annotations

import json
from typing import Any

OVMS_SCHEMA_SOURCE = "openvinotoolkit/model_server@7e4df0c7ae340972bad15020ad777bbba3ee321d:src/schema.cpp"

OVMS_SCHEMA: dict[str, Any] = json.loads(r"""
{
 "definitions": {
  "model_config": {
   "type": "object",
   "required": [
    "config"
   ],
   "maxProperties": 1,
   "properties": {
    "config": {
     "type": "object",
     "required": [
      "name"
     ],
     "properties": {
      "name": {
       "type": "string"
      },
      "base_path": {
       "type": "string"
      },
      "batch_size": {
       "type": [
        "integer",
        "string"
       ],
       "minimum": 0
      },
      "graph_path": {
       "type": "string"
      },
      "subconfig": {
       "type": "string"
      },
      "model_version_policy": {
       "$ref": "#/definitions/model_version_policy"
      },
      "shape": {
       "$ref": "#/definitions/layout_shape_def"
      },
      "layout": {
       "$ref": "#/definitions/layout_shape_def"
      },
      "nireq": {
       "type": "integer",
       "minimum": 0
      },
      "target_device": {
       "type": "string"
      },
      "allow_cache": {
       "type": "boolean"
      },
      "plugin_config": {
       "type": "object",
       "additionalProperties": {
        "anyOf": [
         {
          "type": "string"
         },
         {
          "type": "boolean"
         },
         {
          "type": "number"
         }
        ]
       }
      },
      "custom_loader_options": {
       "type": "object",
       "required": [
        "loader_name"
       ],
       "properties": {
        "loader_name": {
         "type": "string"
        }
       },
       "minProperties": 1
      }
     },
     "additionalProperties": false
    },
    "additionalProperties": false
   }
  },
  "source_node_names": {
   "type": "object",
   "required": [
    "node_name",
    "data_item"
   ],
   "properties": {
    "node_name": {
     "type": "string"
    },
    "data_item": {
     "type": "string"
    }
   },
   "additionalProperties": false
  },
  "source_node": {
   "type": "object",
   "additionalProperties": {
    "$ref": "#/definitions/source_node_names"
   },
   "minProperties": 1,
   "maxProperties": 1
  },
  "output_alias": {
   "type": "object",
   "required": [
    "data_item",
    "alias"
   ],
   "properties": {
    "data_item": {
     "type": "string"
    },
    "alias": {
     "type": "string"
    }
   },
   "additionalProperties": false
  },
  "node_config": {
   "type": "object",
   "required": [
    "name",
    "type",
    "inputs",
    "outputs"
   ],
   "oneOf": [
    {
     "properties": {
      "type": {
       "enum": [
        "custom"
       ]
      }
     },
     "required": [
      "library_name"
     ],
     "not": {
      "required": [
       "model_name"
      ]
     }
    },
    {
     "properties": {
      "type": {
       "enum": [
        "DL model"
       ]
      }
     },
     "not": {
      "required": [
       "library_name"
      ]
     },
     "required": [
      "model_name"
     ]
    }
   ],
   "properties": {
    "name": {
     "type": "string"
    },
    "model_name": {
     "type": "string"
    },
    "library_name": {
     "type": "string"
    },
    "type": {
     "type": "string",
     "enum": [
      "DL model",
      "custom"
     ]
    },
    "version": {
     "type": "integer",
     "minimum": 1
    },
    "inputs": {
     "type": "array",
     "items": {
      "$ref": "#/definitions/source_node"
     }
    },
    "outputs": {
     "type": "array",
     "items": {
      "$ref": "#/definitions/output_alias"
     }
    },
    "params": {
     "type": "object",
     "additionalProperties": {
      "type": "string"
     }
    },
    "demultiply_count": {
     "type": "integer",
     "minimum": -1,
     "maximum": 10000
    },
    "gather_from_node": {
     "type": "string"
    }
   },
   "additionalProperties": false
  },
  "pipeline_config": {
   "type": "object",
   "required": [
    "name",
    "nodes",
    "inputs",
    "outputs"
   ],
   "properties": {
    "name": {
     "type": "string"
    },
    "nodes": {
     "type": "array",
     "items": {
      "$ref": "#/definitions/node_config"
     }
    },
    "inputs": {
     "type": "array",
     "items": {
      "type": "string"
     }
    },
    "outputs": {
     "type": "array",
     "items": {
      "$ref": "#/definitions/source_node"
     }
    },
    "demultiply_count": {
     "type": "integer",
     "minimum": -1,
     "maximum": 10000
    }
   },
   "additionalProperties": false
  },
  "custom_node_library_config": {
   "type": "object",
   "required": [
    "name",
    "base_path"
   ],
   "properties": {
    "name": {
     "type": "string"
    },
    "base_path": {
     "type": "string"
    }
   },
   "additionalProperties": false
  },
  "custom_loader_config": {
   "type": "object",
   "required": [
    "config"
   ],
   "maxProperties": 1,
   "properties": {
    "config": {
     "type": "object",
     "required": [
      "loader_name",
      "library_path"
     ],
     "properties": {
      "loader_name": {
       "type": "string"
      },
      "library_path": {
       "type": "string"
      },
      "loader_config_file": {
       "type": "string"
      }
     },
     "additionalProperties": false
    },
    "additionalProperties": false
   }
  },
  "layout_shape_def": {
   "oneOf": [
    {
     "type": "object",
     "additionalProperties": {
      "type": "string"
     }
    },
    {
     "type": "string"
    }
   ]
  },
  "all_version_policy": {
   "type": "object",
   "additionalProperties": false,
   "properties": {},
   "minProperties": 0,
   "maxProperties": 0
  },
  "specific_version_policy": {
   "type": "object",
   "additionalProperties": false,
   "maxProperties": 1,
   "properties": {
    "versions": {
     "type": "array",
     "items": {
      "type": "integer",
      "minimum": 1
     }
    }
   },
   "required": [
    "versions"
   ]
  },
  "latest_version_policy": {
   "type": "object",
   "additionalProperties": false,
   "maxProperties": 1,
   "properties": {
    "num_versions": {
     "type": "integer",
     "minimum": 1
    }
   },
   "required": [
    "num_versions"
   ]
  },
  "model_version_policy": {
   "oneOf": [
    {
     "maxProperties": 1,
     "properties": {
      "all": {
       "$ref": "#/definitions/all_version_policy"
      }
     },
     "required": [
      "all"
     ],
     "additionalProperties": false
    },
    {
     "maxProperties": 1,
     "properties": {
      "specific": {
       "$ref": "#/definitions/specific_version_policy"
      }
     },
     "required": [
      "specific"
     ],
     "additionalProperties": false
    },
    {
     "maxProperties": 1,
     "properties": {
      "latest": {
       "$ref": "#/definitions/latest_version_policy"
      }
     },
     "required": [
      "latest"
     ],
     "additionalProperties": false
    }
   ]
  },
  "mediapipe_config": {
   "type": "object",
   "required": [
    "name"
   ],
   "properties": {
    "name": {
     "type": "string"
    },
    "base_path": {
     "type": "string"
    },
    "graph_path": {
     "type": "string"
    },
    "subconfig": {
     "type": "string"
    }
   },
   "additionalProperties": false
  }
 },
 "type": "object",
 "required": [
  "model_config_list"
 ],
 "properties": {
  "custom_loader_config_list": {
   "type": "array",
   "items": {
    "$ref": "#/definitions/custom_loader_config"
   }
  },
  "model_config_list": {
   "type": "array",
   "items": {
    "$ref": "#/definitions/model_config"
   }
  },
  "pipeline_config_list": {
   "type": "array",
   "items": {
    "$ref": "#/definitions/pipeline_config"
   }
  },
  "mediapipe_config_list": {
   "type": "array",
   "items": {
    "$ref": "#/definitions/mediapipe_config"
   }
  },
  "custom_node_library_config_list": {
   "type": "array",
   "items": {
    "$ref": "#/definitions/custom_node_library_config"
   }
  },
  "monitoring": {
   "maxProperties": 1,
   "type": "object",
   "required": [
    "metrics"
   ],
   "properties": {
    "metrics": {
     "type": "object",
     "required": [
      "enable"
     ],
     "properties": {
      "enable": {
       "type": "boolean"
      },
      "metrics_list": {
       "type": "array",
       "items": {
        "type": "string"
       }
      }
     },
     "additionalProperties": false
    },
    "additionalProperties": false
   },
   "additionalProperties": false
  }
 },
 "additionalProperties": false
}
""")


def validate(config: dict[str, Any]) -> list[str]:
    """The schema's complaints about `config` (empty: valid); needs ``jsonschema`` (the [test] extra)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(OVMS_SCHEMA)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                  for e in validator.iter_errors(config))
