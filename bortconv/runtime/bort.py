"""Torch-free inference on an exported artifact directory: tokenizer + ONNX Runtime or OpenVINO.

Install with ``pip install 'bortconv[runtime]'`` (no torch, no transformers)::

    from bortconv.runtime.bort import BortRuntime
    rt = BortRuntime("out/bort-openvino")
    vectors = rt.encode(["a sentence", "another one"])   # mean-pooled, one row per text
    labels = rt.predict(["great film"])                   # text-classification artifacts
    labels = rt.predict(["a premise"], text_pairs=["its hypothesis"])   # pairs: <s> A </s> B </s>
    top = rt.top_tokens(["a text"], top_k=5)              # fill-mask: the likeliest tokens at each position

Text is tokenized by one of two backends, chosen with ``tokenizer=``:

- ``"tokenizers"``: ``tokenizer.json`` through the Hugging Face ``tokenizers`` package (the reference);
- ``"openvino"``: the tokenizer as OpenVINO string ops (``openvino_tokenizer.xml`` for single texts,
  ``openvino_tokenizer_pair.xml`` for pairs, written and checked id for id against tokenizer.json at export):
  needs ``openvino`` + ``openvino-tokenizers`` only, no ``tokenizers`` import;
- ``"auto"`` (default): ``tokenizers`` when it is installed and the artifact has tokenizer.json, else the
  OpenVINO IR. The reference wins where both are there: it is what the IR was checked against, and it keeps
  ``rt.tokenizer`` a ``tokenizers.Tokenizer`` for code that uses it directly.

``cache_dir=`` turns on OpenVINO's compiled-model cache (``CACHE_DIR``): the first load compiles and writes a
blob there, later processes load the blob instead of compiling (see :func:`measure_cold_start`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortconv.config import TOKENIZER_BACKENDS, as_path, check_threads, max_positions
from bortconv.errors import InputError, MissingDependencyError, shown
from bortconv.measure import pad_batch  # noqa: F401  (public here: bortconv.runtime.bort.pad_batch)
from bortconv.runtime.pair_truncation import BORT_RULE, bort_truncated_lengths, pair_rule
from bortconv.layout import (
    CONFIG_FILE,
    MANIFEST_FILE,
    OV_TOKENIZER_PAIR_XML,
    OV_TOKENIZER_XML,
    TOKENIZER_FILE,
)
from bortconv.layout import ONNX_FILE as _ONNX_FILE
from bortconv.layout import OV_BIN as _OV_BIN
from bortconv.layout import OV_XML as _OV_XML

log = logging.getLogger(__name__)

MANIFEST = MANIFEST_FILE
ONNX_FILE = _ONNX_FILE
OV_XML = _OV_XML
OV_BIN = _OV_BIN
#: ONNX Runtime graph optimizers an artifact's session must not run (see bortconv.converters.onnx_export)
ORT_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
#: the tokenizer backends BortRuntime accepts (module docstring)
#: names of the string inputs of the OpenVINO tokenizer IRs (and of the text-in models built from them)
TEXT_INPUT = "text"
TEXT_PAIR_INPUT = "text_b"


class Session:
    """One compiled model: `run(feeds) -> output array`, feeds keyed by input name (int64 arrays)."""

    input_names: list[str]
    output_name: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class OrtSession(Session):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("ONNX artifacts need: pip install onnxruntime") from None
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's SkipLayerNormFusion would rebuild a fused op that is slower on CPU than the Add + LayerNormalization
        # the artifact holds (bortconv.converters.onnx_export); the list is also in the manifest for other loaders
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], {k: feeds[k] for k in self.input_names})[0]


def openvino_config(threads: int | None = None, cache_dir: str | os.PathLike[str] | None = None,
                    precision: str = "f32") -> dict[str, Any]:
    """The CPU plugin properties bortconv compiles an artifact's IR with (also what packaging writes out)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    # pinned (f32 for fp32/fp16/int8 artifacts, bf16 for bf16 ones: the manifest's loading section): the CPU
    # plugin would otherwise pick what it reports as its default (bf16 on AMX and AVX512_BF16 CPUs, f16 on many
    # ARM ones: loaders.stock_precision), which an fp32 artifact was not checked in
    config["INFERENCE_PRECISION_HINT"] = precision
    if cache_dir is not None:
        config["CACHE_DIR"] = str(Path(cache_dir).expanduser())
    return config


class OpenVinoSession(Session):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 model: Any = None, *, cache_dir: str | os.PathLike[str] | None = None,
                 precision: str = "f32") -> None:
        try:
            import openvino as ov
        except ImportError:
            raise MissingDependencyError("OpenVINO artifacts need: pip install openvino") from None
        core = ov.Core()
        # compiled from the path, not a read model: with CACHE_DIR a cache hit then skips reading the IR too
        self.compiled = core.compile_model(model if model is not None else str(path), "CPU",
                                           openvino_config(threads, cache_dir, precision))
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_name = self.compiled.outputs[0].get_any_name()

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        res = self.request.infer({k: feeds[k] for k in self.input_names})
        return np.array(res[self.compiled.outputs[0]])


def model_file(artifact_dir: Path) -> Path:
    """The model file :func:`open_session` loads from `artifact_dir` (the IR's .xml if there is one)."""
    return artifact_dir / (OV_XML if (artifact_dir / OV_XML).is_file() else ONNX_FILE)


@contextlib.contextmanager
def loading(path: Path) -> Iterator[None]:
    """InputError naming `path` when ONNX Runtime or OpenVINO cannot load it (a file cut short, an IR's weights
    missing): their own errors span several lines and name neither the file nor the artifact. Only around a
    user's artifact: a file bortconv itself just wrote that does not load is bortconv's failure, not bad input."""
    try:
        yield
    except Exception as exc:  # ORT's own classes; OpenVINO raises RuntimeError
        if not (isinstance(exc, RuntimeError) or type(exc).__module__.startswith("onnxruntime")):
            raise
        raise InputError(f"{path}: cannot be loaded ({shown(' '.join(str(exc).split()), 240)})") from None


def checked_cache_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """OpenVINO's CACHE_DIR, made if need be; InputError naming cache_dir where it cannot be (OpenVINO raised a
    RuntimeError for a directory it could not make, and quietly cached nothing in a path that is a file)."""
    p = as_path(cache_dir, "cache_dir").expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(f"cache_dir: {p} is a file, not a directory", option="cache_dir")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cache_dir: cannot make {p} ({exc.strerror or exc})", option="cache_dir") from None
    return p


def open_session(artifact_dir: str | os.PathLike[str], threads: int | None = None, *,
                 cache_dir: str | os.PathLike[str] | None = None, precision: str | None = None) -> Session:
    """The session for whichever model file the directory holds (`cache_dir`: OpenVINO's CACHE_DIR)."""
    d = Path(artifact_dir)
    if (d / OV_XML).is_file():
        cache = checked_cache_dir(cache_dir) if cache_dir is not None else None
        return OpenVinoSession(d / OV_XML, threads, cache_dir=cache, precision=precision or pinned_precision(d))
    if (d / ONNX_FILE).is_file():
        if cache_dir is not None:
            raise InputError(f"{d}: a compiled-model cache (cache_dir) applies to OpenVINO artifacts; this one "
                             f"holds {ONNX_FILE}")
        return OrtSession(d / ONNX_FILE, threads)
    raise InputError(f"{d}: holds neither {ONNX_FILE} nor {OV_XML}")


def pinned_precision(artifact_dir: str | os.PathLike[str]) -> str:
    """The OpenVINO inference precision an artifact is pinned to: its manifest's ``loading.inference_precision``
    (bf16 for bf16 artifacts), f32 for everything else and for directories without a manifest."""
    from bortconv.manifest import read_manifest

    d = Path(artifact_dir)
    if not (d / MANIFEST_FILE).is_file():
        return "f32"
    precision = read_manifest(d).loading.get("inference_precision")
    return precision if precision in ("f32", "bf16") else "f32"


# ---------------------------------------------------------------------------------------------- tokenizer IR


@dataclass(frozen=True)
class Encoded:
    """One tokenized text or pair, as the OpenVINO tokenizer gives it (the fields of a `tokenizers` Encoding
    that bortconv reads)."""

    ids: list[int]
    type_ids: list[int]

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.ids)


def import_openvino_tokenizers() -> Any:
    """`openvino_tokenizers`, which registers the string ops an OpenVINO tokenizer IR needs to compile."""
    try:
        import openvino_tokenizers
    except ImportError:
        raise MissingDependencyError("the OpenVINO tokenizer needs: pip install openvino-tokenizers (the version "
                                     "of the installed openvino, e.g. 2026.4.1.x with openvino 2026.4.1)") from None
    return openvino_tokenizers


_CORE: list[Any] = []


def tokenizer_core() -> Any:
    """One process-wide ov.Core with the tokenizer ops registered.

    Kept alive on purpose: a model holding openvino_tokenizers' ops must not outlive the Core that loaded the
    extension (a read model used after its Core was freed crashed with SIGSEGV)."""
    if not _CORE:
        import_openvino_tokenizers()
        import openvino as ov
        _CORE.append(ov.Core())
    return _CORE[0]


#: a text appended to every batch the tokenizer IRs run, its row dropped: openvino_tokenizers 2026.4 gives one row for
#: a batch whose texts all tokenize to nothing ("", "\0"; three texts, one row), and fails on such a batch of pairs
#: (a Broadcast node's shape check). One text with a token keeps the batch whole; rows are cut by their own masks.
SENTINEL = "a"


def first_trailing_nul(texts: Sequence[str | None]) -> int | None:
    """The index of the first text that ends in NUL, which the OpenVINO tokenizer cannot take (OpenVinoTokenizer)."""
    return next((i for i, t in enumerate(texts) if t is not None and t.endswith("\0")), None)


class OpenVinoTokenizer:
    """The tokenizer IRs of an artifact: single texts through ``openvino_tokenizer.xml``, pairs through
    ``openvino_tokenizer_pair.xml``. No `tokenizers` or `transformers` import."""

    def __init__(self, artifact_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(artifact_dir)
        if not (self.dir / OV_TOKENIZER_XML).is_file():
            raise InputError(f"{self.dir}: no {OV_TOKENIZER_XML}; export the artifact with a tokenizer to "
                             f"--target openvino")
        self._core = tokenizer_core()
        with loading(self.dir / OV_TOKENIZER_XML):
            self._single = self._core.compile_model(str(self.dir / OV_TOKENIZER_XML), "CPU")
        self._pair: Any = None

    @property
    def gives_token_types(self) -> bool:
        """True if the IR outputs token_type_ids (BERT's WordPiece does; Bort's template makes none)."""
        return any(o.get_any_name() == "token_type_ids" for o in self._single.outputs)

    def _pair_model(self) -> Any:
        if self._pair is None:
            path = self.dir / OV_TOKENIZER_PAIR_XML
            if not path.is_file():
                raise InputError(f"{self.dir}: no {OV_TOKENIZER_PAIR_XML}; this artifact cannot tokenize pairs")
            with loading(path):
                self._pair = self._core.compile_model(str(path), "CPU")
        return self._pair

    @staticmethod
    def _rows(result: Any, compiled: Any) -> list[Encoded]:
        names = {o.get_any_name(): o for o in compiled.outputs}
        ids, mask = result[names["input_ids"]], result[names["attention_mask"]].astype(bool)
        types = result[names["token_type_ids"]] if "token_type_ids" in names else np.zeros_like(ids)
        return [Encoded(ids[i][mask[i]].tolist(), types[i][mask[i]].tolist()) for i in range(len(ids))]

    @staticmethod
    def _check_nul(texts: Sequence[str], name: str) -> None:
        """A text ending in NUL would lose it on the way in (numpy's and OpenVINO's string arrays strip trailing NUL
        characters), and byte-level BPE gives NUL a token of its own: refused, not tokenized as another text."""
        bad = first_trailing_nul(texts)
        if bad is not None:
            raise InputError(f"{name}[{bad}]: ends with a NUL character, which OpenVINO's string tensors drop; "
                             f"remove it, or use the tokenizers backend")

    def encode_texts(self, texts: Sequence[str]) -> list[Encoded]:
        """Token ids of single texts (``<s> A </s>``), truncated as tokenizer.json truncates."""
        if not texts:
            return []
        self._check_nul(texts, "texts")
        rows = self._rows(self._single([np.array([*texts, SENTINEL], dtype=str)]), self._single)
        return rows[:len(texts)]

    def encode_pairs(self, texts: Sequence[str], texts_b: Sequence[str]) -> list[Encoded]:
        """Token ids of pairs (``<s> A </s> B </s>`` for Bort), truncated as tokenizer.json truncates."""
        if len(texts) != len(texts_b):
            raise InputError(f"{len(texts)} first texts but {len(texts_b)} second texts")
        if not texts:
            return []
        self._check_nul(texts, "texts")
        self._check_nul(texts_b, "text_pairs")
        pair = self._pair_model()
        rows = self._rows(pair([np.array([*texts, SENTINEL], dtype=str), np.array([*texts_b, SENTINEL], dtype=str)]),
                          pair)
        return rows[:len(texts)]

    def encode_batch(self, items: Sequence[str | tuple[str, str]]) -> list[Encoded]:
        """Like `tokenizers.Tokenizer.encode_batch`: each item a text or a (first, second) pair."""
        singles = [i for i, it in enumerate(items) if isinstance(it, str)]
        pairs = [i for i, it in enumerate(items) if not isinstance(it, str)]
        out: list[Any] = [None] * len(items)
        for i, enc in zip(singles, self.encode_texts([str(items[i]) for i in singles])):
            out[i] = enc
        for i, enc in zip(pairs, self.encode_pairs([items[i][0] for i in pairs], [items[i][1] for i in pairs])):
            out[i] = enc
        return out


def bort_cut_pairs(whole: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> list[Any]:
    """`tokenizers` Encodings of `pairs`, cut to `max_length` by Bort's rule (:mod:`bortconv.runtime.pair_truncation`).

    `whole` is a `tokenizers.Tokenizer` that truncates and pads nothing: each text is encoded whole, cut to
    :func:`bort_truncated_lengths`, then given the tokenizer's pair template."""
    flat = whole.encode_batch([t for pair in pairs for t in pair], add_special_tokens=False)
    budget = max_length - whole.num_special_tokens_to_add(True)
    out = []
    for a, b in zip(flat[0::2], flat[1::2]):
        keep_a, keep_b = bort_truncated_lengths([len(a.ids), len(b.ids)], budget)
        if (keep_a, keep_b) != (len(a.ids), len(b.ids)):
            a.truncate(keep_a)
            b.truncate(keep_b)
        out.append(whole.post_process(a, b))
    return out


def cutting_nothing(tokenizer: Any) -> Any:
    """A copy of a `tokenizers.Tokenizer` that neither truncates nor pads."""
    whole = type(tokenizer).from_str(tokenizer.to_str())
    whole.no_truncation()
    whole.no_padding()
    return whole


class TokenizersBackend:
    """tokenizer.json through the `tokenizers` package, unpadded (padding is the runtime's business).

    Pairs are cut by the rule the tokenizer files declare (:func:`bortconv.runtime.pair_truncation.pair_rule`)."""

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingDependencyError("text input needs: pip install tokenizers (or tokenizer='openvino' with "
                                         "an OpenVINO artifact)") from None
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.rule = pair_rule(path.parent)
        truncation = self.tokenizer.truncation
        self.max_length = int(truncation["max_length"]) if truncation else None
        #: a copy that cuts nothing, where pairs need Bort's rule (no maximum length: nothing is ever cut)
        self._whole = cutting_nothing(self.tokenizer) if self.rule == BORT_RULE and self.max_length else None

    def encode_batch(self, items: Sequence[str | tuple[str, str]]) -> list[Any]:
        items = list(items)
        out = self.tokenizer.encode_batch(items)
        if self._whole is None or self.max_length is None:
            return out
        # the rules agree on every pair that was not cut; only pairs at the maximum length are done again
        cut = [i for i, it in enumerate(items) if not isinstance(it, str) and len(out[i].ids) >= self.max_length]
        for i, enc in zip(cut, bort_cut_pairs(self._whole, [tuple(items[i]) for i in cut], self.max_length)):
            out[i] = enc
        return out


def tokenizers_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("tokenizers") is not None


def resolve_tokenizer_backend(artifact_dir: Path, choice: str) -> str:
    """"tokenizers" or "openvino": what `choice` ("auto", "tokenizers", "openvino") means for this artifact."""
    if choice not in TOKENIZER_BACKENDS:
        raise InputError(f"tokenizer={choice!r}: choose one of {', '.join(TOKENIZER_BACKENDS)}")
    if choice != "auto":
        return choice
    has_json, has_ir = (artifact_dir / TOKENIZER_FILE).is_file(), (artifact_dir / OV_TOKENIZER_XML).is_file()
    if has_json and tokenizers_installed():
        return "tokenizers"
    if has_ir:
        return "openvino"
    return "tokenizers"  # and its loader names what is missing


# ---------------------------------------------------------------------------------------------- runtime


def artifact_name(artifact_dir: str | os.PathLike[str]) -> str:
    """A model name for the artifact (serving, packaging): its directory's name in letters, digits, _ . -"""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(artifact_dir).resolve().name).lstrip("._-")
    return name[:MAX_NAME] or "bort"


def _checked_texts(texts: Any, name: str) -> list[str]:
    """`texts` as a list of strings (one string would be read as its characters, each a text; a dict as its keys),
    each one Unicode text a tokenizer takes (not a lone surrogate, which JSON and Python strings allow)."""
    if isinstance(texts, (str, bytes)):
        raise InputError(f"{name}: a list of strings, not one string (pass [{shown(repr(texts), 30)}])", option=name)
    if isinstance(texts, Mapping) or not isinstance(texts, Iterable):
        raise InputError(f"{name}: a list of strings, not {type(texts).__name__}", option=name)
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"{name}[{bad}]: {type(texts[bad]).__name__} is not a string", option=name)
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"{name}[{i}]: not valid Unicode text ({exc.reason} at character {exc.start})",
                             option=name) from None
    return texts


def _checked_rows(rows: Any, name: str) -> list[Any]:
    """Token-id rows as a list (a generator is read once); InputError naming `name` for anything else."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise InputError(f"{name}: a list of token-id lists (one per text), not {type(rows).__name__}", option=name)
    rows = list(rows)
    if not all(isinstance(r, (list, tuple, np.ndarray)) for r in rows):
        raise InputError(f"{name}: a list of token-id lists (one per text)", option=name)
    return rows


#: a model name the servers take as a directory name and in URLs (Triton, OVMS, bortconv serve), and its length
MAX_NAME = 128
_MODEL_NAME = rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}"


def check_name(name: str) -> str:
    """`name` if a model repository and a URL can both hold it; InputError naming --name otherwise."""
    import re

    if not re.fullmatch(_MODEL_NAME, name):
        raise InputError(f"--name {name!r}: a model name is 1-128 letters, digits, '_', '.' or '-', starting "
                         f"with a letter or digit")
    return name


#: the tokens top_tokens() gives at a position unless asked (transformers' fill-mask pipeline's default), and the most
DEFAULT_TOP_K = 5
MAX_TOP_K = 100


def top_k_problem(top_k: Any, vocab: int = 0) -> str | None:
    """Why `top_k` cannot be taken ("must be an integer from 1 to 100, got 0"), or None: it is an integer from 1
    to MAX_TOP_K, and at most the vocabulary's size."""
    most = min(MAX_TOP_K, vocab) if vocab else MAX_TOP_K
    if not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or not 1 <= top_k <= most:
        return f"must be an integer from 1 to {most}, got {shown(repr(top_k), 40)}"
    return None


def check_top_k(top_k: Any, vocab: int = 0) -> None:
    """InputError naming top_k where :func:`top_k_problem` finds one."""
    why = top_k_problem(top_k, vocab)
    if why:
        raise InputError(f"top_k {why}", option="top_k")


@dataclass(frozen=True)
class TopTokens:
    """One text's fill-mask answer: at each of its L positions, the k most likely tokens, best first."""

    input_ids: np.ndarray  # int64 [L]: the ids the text became (special tokens included)
    ids: np.ndarray  # int64 [L, k]
    scores: np.ndarray  # float32 [L, k]: softmax probabilities over the vocabulary


def largest(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, values) [rows, k] of the k largest values of each row of `z`, largest first, a tie going to the lower id.

    A row of a vocabulary (50,265 wide for Bort) is neither sorted nor partitioned whole: the k-th largest of its
    block maxima bounds its k largest from below (those maxima are k of its values), so only the few values at or
    above that bound are sorted. On [128, 50265] that is several times faster than np.argpartition."""
    n, width = z.shape
    blocks = min(width, max(4 * k, 64))
    size = width // blocks
    maxima = z[:, :blocks * size].reshape(n, blocks, size).max(axis=2)
    if blocks * size < width:
        maxima = np.concatenate([maxima, z[:, blocks * size:].max(axis=1, keepdims=True)], axis=1)
    bound = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    rows, cols = np.nonzero(z >= bound[:, None])
    if np.bincount(rows, minlength=n).min(initial=k) < k:  # NaN logits compare false: sort those rows whole
        cols = np.argsort(-z, axis=1, kind="stable")[:, :k]
        return cols, np.take_along_axis(z, cols, axis=1)
    vals = z[rows, cols]
    order = np.lexsort((cols, -vals, rows))  # by row, then value descending, then id
    rows, cols, vals = rows[order], cols[order], vals[order]
    take = np.searchsorted(rows, np.arange(n))[:, None] + np.arange(k)
    return cols[take], vals[take]


def most_likely(input_ids: Sequence[int], logits: np.ndarray, k: int) -> TopTokens:
    """The k most likely tokens at each position of `logits` [L, vocab]: highest probability first, a tie going to
    the lower id."""
    z = logits.astype(np.float32, copy=False)
    if k > z.shape[1]:
        raise InputError(f"top_k {k} is more than the model's {z.shape[1]} tokens", option="top_k")
    top, picked = largest(z, k)
    peak = z.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(z - peak).sum(axis=1, keepdims=True, dtype=np.float64)) + peak
    return TopTokens(np.asarray(input_ids, np.int64), top.astype(np.int64),
                     np.exp(picked - log_total).astype(np.float32))


class BortRuntime:
    """An exported artifact directory ready to run: tokenizer + session, batching by length.

    `tokenizer`: "auto", "tokenizers" or "openvino" (module docstring); `cache_dir`: OpenVINO's compiled-model
    cache for OpenVINO artifacts.
    """

    def __init__(self, artifact_dir: str | os.PathLike[str], *, threads: int | None = None,
                 batch_size: int = 16, tokenizer: str = "auto",
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = as_path(artifact_dir, "artifact_dir")
        for name, value in (("threads", threads), ("batch_size", batch_size)):
            if (value is not None or name == "batch_size") and (not isinstance(value, numbers.Integral)
                                                                 or isinstance(value, bool) or value <= 0):
                raise InputError(f"{name} must be a positive integer, got {shown(repr(value), 40)}", option=name)
        threads, batch_size = (int(threads) if threads is not None else None), int(batch_size)
        check_threads(threads)
        from bortconv.manifest import read_manifest, static_shape
        self.manifest = read_manifest(self.dir)
        self.task = self.manifest.task
        self.tokenizer_choice = tokenizer
        self.tokenizer_backend = resolve_tokenizer_backend(self.dir, tokenizer)
        t0 = time.perf_counter()
        with loading(model_file(self.dir)):
            self.session = open_session(self.dir, threads, cache_dir=cache_dir)
        #: seconds open_session took (read + compile, or a cache load)
        self.load_seconds = time.perf_counter() - t0
        self.batch_size = batch_size
        self.static_shape = static_shape(self.manifest)
        cfg = json.loads((self.dir / CONFIG_FILE).read_text())
        #: the artifact's config.json
        self.config: dict[str, Any] = cfg
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        self.id2label = cfg.get("id2label") or {}
        self._tokenizer: Any = None
        self._backend: Any = None

    @property
    def tokenizer(self) -> Any:
        """The tokenizer: a `tokenizers.Tokenizer` (backend "tokenizers") or an :class:`OpenVinoTokenizer`.

        Both have ``encode_batch(items)`` giving objects with ``.ids`` and ``.type_ids``."""
        if self._tokenizer is None:
            if self.tokenizer_backend == "openvino":
                self._backend = self._tokenizer = OpenVinoTokenizer(self.dir)
            else:
                path = self.dir / TOKENIZER_FILE
                if not path.is_file() and (self.dir / OV_TOKENIZER_XML).is_file():
                    raise InputError(f"{self.dir}: no {TOKENIZER_FILE} for tokenizer='tokenizers'; it has the "
                                     f"OpenVINO tokenizer {OV_TOKENIZER_XML}: use tokenizer='openvino' "
                                     f"(--tokenizer openvino)")
                if not path.is_file():
                    raise InputError(f"{self.dir}: no {TOKENIZER_FILE}, so it cannot read text (export a Bort "
                                     f".params with --vocab and --merges, or a Hugging Face directory that has "
                                     f"one; run_ids() takes token ids)")
                self._backend = TokenizersBackend(path)
                self._tokenizer = self._backend.tokenizer
        return self._tokenizer

    def _encode(self, texts: Sequence[str], text_pairs: Sequence[str] | None) -> list[Any]:
        texts = _checked_texts(texts, "texts")  # a list first: a generator is read once
        if text_pairs is not None:
            text_pairs = _checked_texts(text_pairs, "text_pairs")
        self.tokenizer  # noqa: B018 - loads the backend
        if text_pairs is None:
            return self._backend.encode_batch(list(texts))
        if len(text_pairs) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(text_pairs)} text_pairs")
        return self._backend.encode_batch(list(zip(texts, text_pairs)))

    def run_ids(self, rows: Sequence[Sequence[int]], type_rows: Sequence[Sequence[int]] | None = None, *,
                reduce: Callable[[int, np.ndarray], Any] | None = None) -> list[Any]:
        """Run token-id rows; returns one output per row (sequence outputs cut to the row's length).

        Rows are sorted by length and batched so short texts are not padded to the longest one. `type_rows`
        (token type ids, for models that take them) default to zeros. `reduce(i, output)`, when given, replaces
        row i's output as soon as its batch has run, so that a batch's whole output (a fill-mask model's is
        [batch, length, vocab]) is let go before the next one runs.
        """
        if reduce is not None and not callable(reduce):  # before the model runs, not after its first batch
            raise InputError(f"reduce: {type(reduce).__name__} is not callable (i, output) -> value", option="reduce")
        rows = _checked_rows(rows, "rows")
        type_rows = _checked_rows(type_rows, "type_rows") if type_rows is not None else None
        self._check_ids(rows, type_rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: list[Any] = [None] * len(rows)
        bs, length = (self.static_shape if self.static_shape else (self.batch_size, None))
        with_types = "token_type_ids" in self.session.input_names
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            batch = [rows[i] for i in idx]
            types = [type_rows[i] for i in idx] if type_rows is not None else None
            if self.static_shape:  # rows past its length were refused by _check_ids
                batch = batch + [[self.pad_id]] * (bs - len(batch))
            result = self.session.run(pad_batch(batch, self.pad_id, length, with_types, types))
            for j, i in enumerate(idx):
                row = result[j, :len(rows[i])] if result.ndim == 3 else result[j]
                out[i] = reduce(i, row) if reduce is not None else row
            del result, row  # `row` is a view of the batch: both, or the output outlives the next run
        return out

    @property
    def vocab_size(self) -> int:
        """The rows of the model's word table (config.json's vocab_size; 0 where it says none)."""
        return int(self.config.get("vocab_size") or 0)

    @property
    def max_tokens(self) -> int:
        """The most tokens a row may have: the model's positions, or a static shape's shorter length."""
        positions = max_positions(self.config)
        return min(positions, self.static_shape[1]) if self.static_shape else positions

    def _check_ids(self, rows: Sequence[Sequence[int]], type_rows: Sequence[Sequence[int]] | None) -> None:
        """InputError naming the row for ids the model has no row for, or more tokens than its positions (ONNX
        Runtime and OpenVINO answer those with an index error naming neither)."""
        limits = {"ids": self.vocab_size,
                  "type ids": int(self.config.get("type_vocab_size") or 2)}
        if type_rows is not None and (len(type_rows) != len(rows)
                                      or any(len(t) != len(r) for t, r in zip(type_rows, rows))):
            raise InputError("type_rows: one type id per token of each row", option="type_rows")
        positions = self.max_tokens
        takes = (f"this artifact's static shape allows {positions}" if positions < max_positions(self.config)
                 else f"the model takes 1 to {positions}")
        with_types = "token_type_ids" in self.session.input_names  # else the type ids are not used
        for name, table in (("ids", rows), ("type ids", (type_rows or []) if with_types else [])):
            for i, row in enumerate(table):
                a = np.asarray(row)
                if a.size == 0 or a.size > positions:
                    raise InputError(f"row {i}: {a.size} tokens; {takes}")
                if a.ndim != 1 or a.dtype.kind not in "iu":
                    raise InputError(f"row {i}: {name} must be integers")
                if limits[name] and (a.min() < 0 or a.max() >= limits[name]):
                    raise InputError(f"row {i}: {name} must be in 0..{limits[name] - 1}, got {int(a.min())}.."
                                     f"{int(a.max())}")

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, as the model sees them (special tokens included, unpadded)."""
        return [list(e.ids) for e in self._encode(texts, None)]

    def tokenize_pairs(self, texts: Sequence[str], text_pairs: Sequence[str]) -> list[list[int]]:
        """Token ids of each (text, text_pair): ``<s> A </s> B </s>`` for Bort, ``[CLS] A [SEP] B [SEP]`` for BERT."""
        return [list(e.ids) for e in self._encode(texts, text_pairs)]

    def run_texts(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Tokenize and run: the model's output per text (or pair), sequence outputs cut to the text's tokens."""
        encs = self._encode(texts, text_pairs)
        return self.run_ids([e.ids for e in encs], [e.type_ids for e in encs])

    def top_tokens(self, texts: Sequence[str], *, top_k: int = DEFAULT_TOP_K,
                   text_pairs: Sequence[str] | None = None) -> list[TopTokens]:
        """A fill-mask artifact's `top_k` most likely tokens at every position of each text (or pair), with their
        probabilities (a softmax over the vocabulary, as transformers' fill-mask pipeline scores them), and the
        ids the text became: the mask's position is where ``input_ids`` holds the mask token's id. The
        [length, vocab] logits of each text are reduced as its batch finishes, never all held at once."""
        if self.task != "fill-mask":
            raise InputError(f"{self.dir}: top_tokens() needs a fill-mask artifact, this one is {self.task}")
        check_top_k(top_k, self.vocab_size)
        encs = self._encode(texts, text_pairs)
        ids = [list(e.ids) for e in encs]
        return self.run_ids(ids, [e.type_ids for e in encs],
                            reduce=lambda i, logits: most_likely(ids[i], logits, int(top_k)))

    def encode(self, texts: Sequence[str], *, pooling: str = "mean",
               text_pairs: Sequence[str] | None = None) -> np.ndarray:
        """Sentence vectors: mean over tokens (or the first token with pooling="first") of the encoder output."""
        if self.task != "feature-extraction":
            raise InputError(f"{self.dir}: encode() needs a feature-extraction artifact, this one is {self.task}")
        if pooling not in ("mean", "first"):
            raise InputError(f"pooling={pooling!r}: choose mean or first")
        outs = self.run_texts(texts, text_pairs)
        if not outs:  # no texts: no vectors, as sentence-transformers answers
            return np.zeros((0, int(self.config["hidden_size"])), np.float32)
        return np.stack([o.mean(axis=0) if pooling == "mean" else o[0] for o in outs])

    def predict(self, texts: Sequence[str], *, text_pairs: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Labels and probabilities for a text-classification artifact."""
        if self.task != "text-classification":
            raise InputError(f"{self.dir}: predict() needs a text-classification artifact, this one is {self.task}")
        rows = self.run_texts(texts, text_pairs)
        if not rows:
            return []
        logits = np.stack(rows)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return [{"label": self.label_of(int(p.argmax())), "score": float(p.max()), "logits": lg.tolist()}
                for p, lg in zip(probs, logits)]

    def label_of(self, index: int) -> str:
        """The configured label name of class `index` (config.json id2label), or the index as text."""
        return self.id2label.get(str(index), str(index))
