"""The artifact directory layout: every file name bortconv reads or writes, in one place.

A leaf: imports nothing from bortconv. Stages, the runtime, serving and packaging name files only through it.
"""

from __future__ import annotations

#: what an exported artifact directory holds besides its model files
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.json"
#: how a .params checkpoint was converted (variant, decoder epsilon, source): carried into every artifact
CONVERSION_RECORD = "bortconv_conversion.json"

#: model files, by target
ONNX_FILE = "model.onnx"
OV_XML = "openvino_model.xml"
OV_BIN = "openvino_model.bin"

#: the tokenizer as OpenVINO string ops (Optimum-Intel's file name), and its two-text variant for pairs
OV_TOKENIZER_XML = "openvino_tokenizer.xml"
OV_TOKENIZER_BIN = "openvino_tokenizer.bin"
OV_TOKENIZER_PAIR_XML = "openvino_tokenizer_pair.xml"
OV_TOKENIZER_PAIR_BIN = "openvino_tokenizer_pair.bin"

#: the deployment gate's probes and the fp32 reference's outputs on them (bortconv.fidelity.proof): what
#: `validate` re-runs the gate from on a device without torch or the source
PROOF_FILE = "proof.npz"

#: Hugging Face weight files, in the order a loader prefers them
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt")
#: files an artifact carries from its source (and `validate` compares with the reference's own copies)
CARRIED_FILES = (CONFIG_FILE, CONVERSION_RECORD) + TOKENIZER_FILES

#: scratch space inside an artifact's temporary directory, removed before the manifest is written
WORK_DIR = ".work"

TARGETS = ("onnx", "openvino")


def model_files(target: str) -> tuple[str, ...]:
    """The model files of an artifact of `target` ("onnx" or "openvino")."""
    return (ONNX_FILE,) if target == "onnx" else (OV_XML, OV_BIN)
