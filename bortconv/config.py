"""Frozen, validated configuration objects shared by the pipeline stages."""

from __future__ import annotations

import argparse
import enum
import math
import numbers
import os
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bortconv.errors import InputError, MappingError, shown

#: Bumped whenever the layout of what bortconv writes changes.
FORMAT_VERSION = 1

#: (layers, ffn, units) -> heads for the published Bort shapes (heads are not visible in tensor shapes).
KNOWN_HEADS: dict[tuple[int, int, int], int] = {(4, 768, 1024): 8, (2, 512, 1024): 16}
VARIANT_RE = re.compile(r"bort_(\d+)_(\d+)_(\d+)_(\d+)")


class Head(str, enum.Enum):
    """What sits on top of the encoder in a checkpoint."""

    ENCODER = "encoder"
    MLM = "mlm"
    CLASSIFIER = "classifier"


class DType(str, enum.Enum):
    FLOAT32 = "fp32"
    FLOAT16 = "fp16"

    @property
    def numpy(self) -> str:
        return "float32" if self is DType.FLOAT32 else "float16"


@dataclass(frozen=True)
class BortVariant:
    """The shape of a Bort model: everything the tensor shapes say, plus the head count."""

    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_size: int
    vocab_size: int
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "intermediate_size", "hidden_size", "vocab_size",
                     "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise MappingError(f"variant: {name} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise MappingError(
                f"variant: {self.num_heads} heads do not divide hidden size {self.hidden_size}")

    @property
    def name(self) -> str:
        """Bort's naming scheme: bort_<layers>_<heads>_<ffn>_<units>."""
        return f"bort_{self.num_layers}_{self.num_heads}_{self.intermediate_size}_{self.hidden_size}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"name": self.name}


def heads_from_name(variant: str) -> tuple[int, int, int, int]:
    """Parse ``bort_<layers>_<heads>_<ffn>_<units>`` into its four numbers."""
    m = VARIANT_RE.fullmatch(variant)
    if not m:
        raise InputError(f"--variant: '{variant}' is not of the form bort_<layers>_<heads>_<ffn>_<units>")
    layers, heads, ffn, units = (int(x) for x in m.groups())
    return layers, heads, ffn, units


#: the scalar annotations check_field_types enforces, and how a refusal says what was expected (numpy's numbers
#: are numbers.Integral / numbers.Real too, and are taken as Python's)
_SCALARS = {"bool": (bool, "True or False"), "int": (numbers.Integral, "an integer"),
            "float": (numbers.Real, "a number"), "str": ((str, os.PathLike), "a string or path")}


def _scalar_base(hint: str) -> tuple[str, bool]:
    """An annotation's scalar kind (a key of _SCALARS, or something else) and whether it also allows None."""
    hint = hint.replace(" ", "").replace("str|os.PathLike[str]", "str").replace("str|Path", "str")
    return hint.removesuffix("|None"), hint.endswith("|None")


def _checked_scalar(hint: str, value: Any, keyword: str, finite: bool = False) -> Any:
    """`value`, annotated `hint`, as stored (a numpy number as Python's), or an InputError naming `keyword`: a
    scalar of another type (``force="no"`` taken as true, ``threads="2"`` reaching a comparison as a bare
    TypeError) or, with `finite`, an infinite or NaN float. Annotations that are not scalars pass unchecked."""
    base, optional = _scalar_base(hint)
    if base not in _SCALARS or (value is None and optional):
        return value
    kinds, words = _SCALARS[base]
    if not isinstance(value, kinds) or (base != "bool" and isinstance(value, bool)):
        raise InputError(f"{keyword}: {shown(repr(value), 60)} is not {words}", option=keyword)
    if base == "float" and finite and not math.isfinite(value):
        raise InputError(f"{keyword}: {value!r} is not a finite number", option=keyword)
    if base in ("int", "float") and type(value) not in (int, float):  # np.int64(2) -> 2
        return int(value) if base == "int" else float(value)
    return value


def checked_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    """An API function whose scalar-annotated parameters (bool, int, float, str or path, optionally None) are
    checked as :func:`check_field_types` checks options, and its floats must be finite (an infinite budget or
    wait never ends, and JSON has no Infinity). InputError names the parameter, or the call for an argument it
    does not take or one it lacks."""
    import functools
    import inspect

    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:  # an unknown or missing argument: Python's words, in one line
            raise InputError(f"{func.__name__}: {exc}") from None
        for name, value in bound.arguments.items():
            param = sig.parameters[name]
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):  # a tuple or dict of values, not one
                continue
            hint = param.annotation
            if isinstance(hint, str):  # `from __future__ import annotations`: every annotation is its text
                bound.arguments[name] = _checked_scalar(hint, value, name, finite=True)
        return func(*bound.args, **bound.kwargs)

    return wrapper


def check_field_types(options: Any) -> None:
    """Refuse a field of an options dataclass whose value is not of its annotated scalar type (bool, int, float,
    str (a path too), or one of them or None): ``force="no"`` must not be taken as true, nor ``threads="2"`` reach
    a comparison as a bare TypeError. InputError names the API keyword. Other annotations (enums, paths, unions)
    are checked by the options' own parsing."""
    for f in fields(options):
        value = getattr(options, f.name)
        checked = _checked_scalar(str(f.type), value, option_keyword(f))
        if checked is not value:
            object.__setattr__(options, f.name, checked)


def check_options_type(options: Any, cls: type, command: str) -> None:
    """Refuse an options object of another class (a dict, another command's options): InputError naming it."""
    if options is not None and not isinstance(options, cls):
        raise InputError(f"{command}: options must be {cls.__name__} (or keywords), not {type(options).__name__}")


def as_path(value: Any, name: str) -> Path:
    """`value` as a Path, if it is a str or os.PathLike; InputError naming the parameter otherwise (a bare pathlib
    TypeError named nothing)."""
    if isinstance(value, (str, os.PathLike)) and str(value) != "":
        return Path(value)
    raise InputError(f"{name}: {shown(repr(value), 60)} is not a path", option=name)


@dataclass(frozen=True)
class ConvertOptions:
    """Options of :func:`bortconv.convert`; all keyword-only at the API."""

    dtype: DType = DType.FLOAT32
    variant: str | None = None  # e.g. "bort_4_8_768_1024": fixes the head count and is checked
    heads: int | None = None
    #: MLM decoder LayerNorm epsilon: 1e-12 in gluonnlp <= 0.9.1 (what Bort was trained with).
    decoder_layer_norm_eps: float = 1e-12
    check_finite: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.heads is not None and self.heads <= 0:
            raise InputError(f"--heads must be a positive integer, got {self.heads}")
        if not (0 < self.decoder_layer_norm_eps < 1):
            raise InputError(f"--decoder-ln-eps must be in (0, 1), got {self.decoder_layer_norm_eps}")
        if self.variant is not None:
            heads_from_name(self.variant)


#: how BortRuntime turns text into ids (bortconv.runtime.bort): the tokenizers library, the OpenVINO tokenizer IR, or
#: auto (tokenizers when installed). Here, not in the runtime, so `bortconv serve --help` imports nothing heavy.
TOKENIZER_BACKENDS = ("auto", "tokenizers", "openvino")
#: what `bortconv bench` compares artifacts with (bert-tiny: for tests, seconds instead of minutes)
BENCH_BASELINES = ("bert-large", "bert-base", "bert-tiny", "none")
#: serving engines `bortconv package` writes model repositories for
PACKAGE_FORMATS = ("triton", "ovms")

class Precision(str, enum.Enum):
    """What an artifact computes in: the one field that says it (``--precision``; ``--fp16``/``--int8`` alias it)."""

    FP32 = "fp32"
    FP16 = "fp16"  # fp16 weights, f32 inference
    BF16 = "bf16"  # OpenVINO: fp16-stored weights, inference pinned to bf16, under the bf16 gate
    INT8 = "int8"  # under the int8 gate


PRECISIONS = tuple(p.value for p in Precision)

#: a .params source's model name and head count (export, convert, inspect, finetune): one wording for each flag
VARIANT_HELP = "Bort's model name bort_<layers>_<heads>_<ffn>_<units> for a .params source (fixes the head count)"
HEADS_HELP = "attention heads of a .params source's model (not visible in its tensor shapes)"
#: the one help text and default of every command's --threads
THREADS_HELP = "threads for inference, gates and timing (default: every core this process may use)"


#: the most threads any command or BortRuntime takes (each checks with check_threads): ONNX Runtime and
#: OpenVINO start every thread asked for (a million took gigabytes and never became ready), and no CPU a Bort runs
#: on has more cores than this
MAX_THREADS = 1024


def check_threads(threads: int | None, name: str = "threads") -> None:
    """InputError naming `name` for 0 threads or less, or more than :data:`MAX_THREADS` (None: the default)."""
    if threads is not None and threads <= 0:
        raise InputError(f"{name} must be positive, got {threads}", option=name)
    if threads is not None and threads > MAX_THREADS:
        raise InputError(f"{name}: {threads} is more than {MAX_THREADS} threads", option=name)


def available_cores() -> int:
    """The cores this process may use: what --threads means when it is not given."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


MAX_MEMORY_HELP = ("resident-memory budget, e.g. 1.5G: planned to fit, refused up front if it cannot, stopped "
                   "cleanly if passed (exit 2)")


def option(default: Any = MISSING, *, help: str, flag: str | None = None, keyword: str | None = None,
           choices: Sequence[str] | None = None, metavar: str | None = None, negate: str | None = None,
           group: str = "general", cli: bool = True, factory: Callable[[], Any] | None = None,
           aliases: Sequence[tuple[str, str]] = ()) -> Any:
    """A dataclass field that is also a command-line option: defined once, it gives the API keyword (`keyword`,
    default the field name), the flag (`flag`, default ``--keyword-with-dashes``; `negate` for a boolean that
    defaults to True, e.g. ``--no-bench``), its help, choices and argument group (`cli=False`: API only).
    `aliases`: (flag, value) pairs, flags without a value that stand for one choice (``--int8`` for
    ``--precision int8``)."""
    meta = {"help": help, "flag": flag, "keyword": keyword, "choices": None if choices is None else tuple(choices),
            "metavar": metavar, "negate": negate, "group": group, "cli": cli, "aliases": tuple(aliases)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def option_keyword(f: Field[Any]) -> str:
    """The API keyword (and argparse dest) of an options field."""
    return f.metadata.get("keyword") or f.name


def option_flag(f: Field[Any]) -> str:
    """The command-line flag of an options field."""
    return f.metadata.get("negate") or f.metadata.get("flag") or "--" + option_keyword(f).replace("_", "-")


def check_choices(options: Any) -> None:
    """Refuse a value outside its field's `choices` (:func:`option`), for every field of the options dataclass
    `options` that has them: the closed sets the flags offer are the ones the API accepts. InputError names the
    parameter (the CLI shows its flag)."""
    for f in fields(options):
        closed, value = f.metadata.get("choices"), getattr(options, f.name)
        if closed and value is not None and value not in closed:
            raise InputError(f"{option_keyword(f)}: {value!r} is not one of {', '.join(closed)}",
                             option=option_keyword(f))


def cli_fields(cls: type, skip: Sequence[str] = ()) -> list[Field[Any]]:
    """The fields of options class `cls` that are command-line options, in declaration order."""
    return [f for f in fields(cls) if f.metadata.get("cli", False) and f.name not in skip]


class _Choice(argparse.Action):
    """A choice and its value-less aliases (``--precision int8`` / ``--int8``): given twice, they must agree."""

    def __init__(self, option_strings: Sequence[str], dest: str, flag: str = "", **kw: Any) -> None:
        self.flag = flag  # the option's own flag, which the message names
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        value = self.const if self.nargs == 0 else values
        before = getattr(ns, self.dest, None)
        if before is not None and before != value:
            parser.error(f"{option_string}: {self.flag} {value} disagrees with {before}, given earlier")
        setattr(ns, self.dest, value)


def _arg_type(f: Field[Any]) -> Callable[[str], Any]:
    """argparse's type for an options field (annotations are strings: `from __future__ import annotations`)."""
    kind = str(f.type)
    if "str" in kind or "tuple" in kind:
        return str
    return int if kind.startswith("int") else float if kind.startswith("float") else str


def add_option_arguments(parser: argparse.ArgumentParser, fields_: Sequence[Field[Any]]) -> None:
    """The flags of options fields (:func:`option`), in their argument groups. Nothing is defaulted here
    (argparse.SUPPRESS): a flag not given leaves the dataclass default in force, the one default."""
    groups: dict[str, Any] = {"general": parser}
    for f in fields_:
        md = f.metadata
        group = groups.get(md["group"]) or groups.setdefault(md["group"], parser.add_argument_group(md["group"]))
        kw: dict[str, Any] = {"dest": option_keyword(f), "help": md["help"], "default": argparse.SUPPRESS}
        if md["negate"]:
            group.add_argument(md["negate"], action="store_false", **kw)
        elif md["aliases"]:
            flag = option_flag(f)
            group.add_argument(flag, action=_Choice, flag=flag, choices=md["choices"], **kw)
            for alias, value in md["aliases"]:
                group.add_argument(alias, action=_Choice, flag=flag, nargs=0, const=value, dest=kw["dest"],
                                   default=argparse.SUPPRESS, help=f"alias of {flag} {value}")
        elif f.default is False:
            group.add_argument(option_flag(f), action="store_true", **kw)
        else:
            required = f.default is MISSING and f.default_factory is MISSING
            group.add_argument(option_flag(f), type=_arg_type(f), choices=md["choices"], metavar=md["metavar"],
                               required=required, **kw)


def option_values(args: argparse.Namespace, fields_: Sequence[Field[Any]]) -> dict[str, Any]:
    """The keywords the API takes, from the flags given (the same names: one definition)."""
    return {option_keyword(f): getattr(args, option_keyword(f)) for f in fields_ if hasattr(args, option_keyword(f))}


class Target(str, enum.Enum):
    ONNX = "onnx"
    OPENVINO = "openvino"


class OpenVinoRoute(str, enum.Enum):
    """Where an OpenVINO IR is converted from. AUTO: both ways, timed; the ONNX route is kept unless the PyTorch
    one is clearly faster (so near-ties give the same IR every run); ONNX/PYTORCH: one way, untimed; FASTEST:
    whichever timed faster, which can differ from run to run."""

    AUTO = "auto"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    FASTEST = "fastest"


class Task(str, enum.Enum):
    FEATURE_EXTRACTION = "feature-extraction"
    FILL_MASK = "fill-mask"
    TEXT_CLASSIFICATION = "text-classification"

    @property
    def output_name(self) -> str:
        return "last_hidden_state" if self is Task.FEATURE_EXTRACTION else "logits"


def parse_enum(enum_cls: type[enum.Enum], value: object, option: str) -> enum.Enum:
    """`value` as a member of `enum_cls`, or an InputError naming the option and the choices."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise InputError(f"{option}: '{value}' is not one of {choices}",
                         option=None if option.startswith("-") else option) from None


def comma_items(text: str, option: str) -> list[str]:
    """'16, 64,128' -> ['16', '64', '128']. InputError naming the option for an empty item ('16,,32', '16,': a shell
    variable that expanded to nothing, most likely), which would otherwise be dropped without a word."""
    items = [x.strip() for x in str(text).split(",")]
    if not all(items):
        raise InputError(f"{option} {str(text)!r}: item {items.index('') + 1} is empty; give comma-separated values "
                         f"such as 16,64,128", option=option.lstrip("-").replace("-", "_"))
    return items


def parse_static_shape(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'B,L' (or a pair of integers) -> (B, L) for --static-shape."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            b, length = (int(x) for x in value.split(","))
        elif isinstance(value, (tuple, list)) and all(isinstance(x, numbers.Integral) and not isinstance(x, bool)
                                                      for x in value):
            b, length = (int(x) for x in value)
        else:
            raise ValueError
    except ValueError:
        raise InputError(f"static_shape: '{value}' is not BATCH,LENGTH (e.g. 1,128)", option="static_shape") from None
    if b <= 0 or length <= 0:
        raise InputError(f"static_shape: '{value}': batch and length must be positive", option="static_shape")
    return b, length


@dataclass(frozen=True)
class GateThresholds:
    """The accuracy gate an int8 artifact must pass against its fp32 model on held-out text."""

    token_cosine: float = 0.99  # mean over tokens
    sentence_cosine: float = 0.995  # mean over sentences
    sentence_cosine_p5: float = 0.99  # 5th percentile: no sizeable minority of texts may fall apart
    sentence_cosine_worst: float = 0.98  # every held-out text and every length: no single input falls apart
    top1_agreement: float = 0.95  # fill-mask
    label_agreement: float = 0.98  # text-classification

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: Any, option: str = "int8_gate") -> GateThresholds:
        """`value` (GateThresholds, or a dict of some of its fields) as thresholds, or an InputError naming
        `option` and the field: an unknown name, a value that is not a real number, or one outside what a cosine
        (-1 to 1) or an agreement (0 to 1) can be. A gate above 1 can never pass: refused before any work."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{option}: {shown(repr(value))} is not a dict of thresholds", option=option)
        names = [f.name for f in fields(cls)]
        out = {}
        for key, v in value.items():
            if key not in names:
                raise InputError(f"{option}: {shown(repr(key))} is not a gate threshold; one of "
                                 f"{', '.join(names)}", option=option)
            low = -1.0 if "cosine" in key else 0.0  # the others are agreements (shares of texts or tokens)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not low <= float(v) <= 1.0:
                raise InputError(f"{option}: {key} {shown(repr(v))} is not a number from {low:g} to 1",
                                 option=option)
            out[key] = float(v)
        return cls(**out)


#: the gate of each precision that is not atol-exact. bf16 and fp16 inference keep ~3 significant digits, so
#: their outputs must stay much closer to fp32 than int8's.
GATE_DEFAULTS: dict[str, GateThresholds] = {
    "int8": GateThresholds(),
    "bf16": GateThresholds(token_cosine=0.999, sentence_cosine=0.999, sentence_cosine_p5=0.998,
                           sentence_cosine_worst=0.995, top1_agreement=0.98, label_agreement=0.99),
}
GATE_DEFAULTS["fp16"] = GATE_DEFAULTS["bf16"]

#: the deployment gate's length sweep (bortconv.fidelity.heldout.sweep_lengths): "full", 8 and every multiple
#: of 16 with its neighbours (96 lengths at 512), or "quick", the same probes at 8, at the power-of-two multiples of
#: 16 with their neighbours and at the two longest (18 lengths at 512; about a quarter of the gate's work). Both
#: span 8..max through 31/32/33 and keep the text, short and padded probes.
GATE_SWEEPS = ("full", "quick")
#: environment variable choosing the sweep, for pipelines that re-gate often (a test suite, a CI smoke job);
#: unset means "full". The manifest and the export summary say which sweep an artifact passed.
GATE_SWEEP_ENV = "BORTCONV_GATE_SWEEP"


def gate_sweep() -> str:
    """The length sweep the deployment gate runs here (:data:`GATE_SWEEP_ENV`, default "full")."""
    value = os.environ.get(GATE_SWEEP_ENV, "full").strip().lower() or "full"
    if value not in GATE_SWEEPS:
        raise InputError(f"{GATE_SWEEP_ENV}={value!r}: not a gate sweep; use {' or '.join(GATE_SWEEPS)}")
    return value


#: metric the gate measures -> (the GateThresholds field it must reach, its name in reports). The one table
#: behind the gate's verdict, its error message and validate's fidelity rows.
GATE_METRICS: dict[str, tuple[str, str]] = {
    "token_cosine_mean": ("token_cosine", "mean token cosine"),
    "sentence_cosine_mean": ("sentence_cosine", "mean sentence cosine"),
    "sentence_cosine_p5": ("sentence_cosine_p5", "5th pct sentence cosine"),
    "sentence_cosine_worst": ("sentence_cosine_worst", "worst sentence cosine"),
    "top1_agreement": ("top1_agreement", "top-1 agreement"),
    "label_agreement": ("label_agreement", "label agreement"),
}


#: int8 schemes per target, preferred order decided per CPU by each backend (bortconv.quantize.ort_int8 / ov_int8)
INT8_SCHEMES: dict[str, tuple[str, ...]] = {
    "onnx": ("dynamic-s8", "dynamic-s8-reduced", "dynamic-u8", "static-qdq-s8", "matmulnbits-s8"),
    "openvino": ("nncf-ptq-fp-attention", "nncf-ptq", "nncf-ptq-smoothquant-off", "nncf-weights-only"),
}

#: --arch: the CPU family an artifact is deployed on. "native" is the machine running bortconv.
ARCHES = ("native", "x86_64", "aarch64")
_MACHINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_arch() -> str:
    """This machine's CPU family as --arch names it (platform.machine() as is when it is neither)."""
    machine = platform.machine().lower()
    return _MACHINE_ARCH.get(machine, machine)


#: --embeddings: how the word-embedding table is stored (bortconv.quantize.embeddings)
EMBEDDING_SCHEMES = ("fp32", "int8", "int4")
#: --embeddings auto (the default): with int8, the smallest table the gate passes on the chosen int8 encoder
#: (bortconv.quantize.embeddings.auto_ladder); with fp32, fp16 and bf16, the fp32 table
EMBEDDING_AUTO = "auto"


def is_embedding_group(size: int) -> bool:
    """Whether `size` values per scale is a group ONNX Runtime's GatherBlockQuantized kernel takes: a power of two
    >= 16 (that it also divides the hidden size is checked once the model is read)."""
    return size >= 16 and not size & (size - 1)


@dataclass(frozen=True)
class Int8Options:
    """Options of int8 quantization (``--precision int8`` on export, and ``bortconv quantize``)."""

    calibration: str | None = option(None, group="int8", metavar="FILE",
                                     help="calibration text file, one sentence per line (default: the shipped "
                                          "English set); the lines after --samples are the gate's held-out text")
    samples: int | None = option(None, group="int8", help="calibration sentences (the rest of the file is held out)")
    scheme: str | None = option(None, group="int8", keyword="int8_scheme",
                                choices=sorted({s for v in INT8_SCHEMES.values() for s in v}),
                                help="force one scheme instead of the preferred one that passes the gate")
    thresholds: GateThresholds = option(help="the int8 gate", keyword="int8_gate", cli=False,
                                        factory=GateThresholds)
    threads: int | None = option(None, help=THREADS_HELP)
    mixed_precision: bool = option(True, cli=False, help="keep sensitive layers in fp32 when no scheme passes alone")
    #: the CPU family the artifact is deployed on: its int8 schemes are that family's; a family other than
    #: this machine's cannot be timed here, and its gate on the device's own kernels is left to `validate` there
    arch: str = option("native", choices=ARCHES, group="int8",
                       help="the CPU family the artifact is deployed on (default native: this machine's); for "
                            "another family its schemes are chosen, speed is not measured and the gate on the "
                            "device's kernels is left to `bortconv validate` there")
    embeddings: str = option(EMBEDDING_AUTO, group="compression", choices=(EMBEDDING_AUTO, *EMBEDDING_SCHEMES),
                             help="word-embedding table stored and gathered as fp32, int8 or int4 (weight-only, "
                                  "group-wise, under the deployment gate; any --precision). Default auto: with "
                                  "int8, the smallest table the gate passes on the chosen int8 encoder; else fp32")
    embedding_group_size: int | None = option(None, group="compression", metavar="N",
                                              help="values per scale for --embeddings (power of two >= 16 "
                                                   "dividing the hidden size; default: 64 for int4, for int8 the "
                                                   "largest power of two dividing a row; "
                                                   "auto tries 128 and 32 for int4 unless N pins it)")

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "thresholds", GateThresholds.from_value(self.thresholds))
        check_threads(self.threads)
        if self.samples is not None and self.samples <= 0:
            raise InputError(f"samples must be positive, got {self.samples}", option="samples")
        if self.arch not in ARCHES:
            raise InputError(f"arch: '{self.arch}' is not one of {', '.join(ARCHES)}", option="arch")

        if self.embeddings not in (EMBEDDING_AUTO, *EMBEDDING_SCHEMES):
            raise InputError(f"embeddings: '{self.embeddings}' is not one of "
                             f"{', '.join((EMBEDDING_AUTO, *EMBEDDING_SCHEMES))}", option="embeddings")
        if self.embedding_group_size is not None and self.embeddings == "fp32":
            raise InputError("embedding_group_size needs embeddings int8, int4 or auto", option="embedding_group_size")
        g = self.embedding_group_size
        if g is not None and not is_embedding_group(g):  # whether it divides the hidden size waits for the model
            raise InputError(f"embedding_group_size: {g} must be a power of two >= 16 (ONNX Runtime's "
                             f"GatherBlockQuantized kernel needs it)", option="embedding_group_size")

    @property
    def target_arch(self) -> str:
        """The family `arch` names: this machine's for "native"."""
        return host_arch() if self.arch == "native" else self.arch

    @property
    def foreign(self) -> bool:
        """Whether the artifact is built for another CPU family than this machine's (no timing, gate pending)."""
        return self.target_arch != host_arch()


@dataclass(frozen=True)
class ExportOptions:
    """Options of :func:`bortconv.export` and ``bortconv export``: each field is defined once here, with the help,
    choices and group the CLI shows (see :func:`option`). Strings are accepted for the enum fields."""

    target: Target = option(choices=[t.value for t in Target], group="target", help="onnx or openvino")
    precision: Precision = option(Precision.FP32, choices=PRECISIONS, group="precision",
                                  aliases=(("--fp16", "fp16"), ("--int8", "int8")),
                                  help="fp32 (default); fp16 weights; bf16 inference (OpenVINO, CPUs with native "
                                       "bf16, under the bf16 gate); int8 (under the int8 gate). Recorded in the "
                                       "manifest with how to load it")
    task: Task | None = option(None, choices=[t.value for t in Task], group="target",
                               help="default: text-classification if the source has a classifier, else "
                                    "feature-extraction")
    int8: Int8Options = option(cli=False, factory=Int8Options,
                               help="int8 options (used only with precision int8)")
    ungated: bool = option(False, group="precision",
                           help="bf16 on a CPU without native bf16: build it untested (the manifest says no gate ran)")
    opset: int = option(17, group="onnx", help="ONNX opset (default 17)")
    portable: bool = option(False, group="onnx", help="ONNX with standard ops only (no ONNX Runtime fusions)")
    static_shape: tuple[int, int] | None = option(None, metavar="B,L", group="target",
                                                  help="fixed batch and length for edge targets")
    openvino_from: OpenVinoRoute = option(OpenVinoRoute.AUTO, choices=[r.value for r in OpenVinoRoute],
                                          group="openvino",
                                          help="auto (default) converts from ONNX and from PyTorch and keeps "
                                               "PyTorch's IR only if clearly faster here (near-ties go to ONNX: "
                                               "reproducible); onnx/pytorch convert one way; fastest keeps whichever "
                                               "timed faster (not reproducible)")
    variant: str | None = option(None, group="source", metavar="NAME", help=VARIANT_HELP)
    heads: int | None = option(None, group="source", metavar="N", help=HEADS_HELP)
    vocab: str | None = option(None, group="tokenizer", metavar="FILE",
                               help="gluonnlp vocabulary JSON (with --merges: the artifact gets Bort's tokenizer)")
    merges: str | None = option(None, group="tokenizer", metavar="FILE", help="GPT-2 BPE merges file (vocab.bpe)")
    threads: int | None = option(None, help=THREADS_HELP)
    bench: bool = option(True, negate="--no-bench", help="skip the speed comparison with PyTorch")
    progress: bool = option(True, negate="--quiet", help="no progress lines")
    force: bool = option(False, help="replace a non-empty output directory")
    max_memory: int | str | None = option(None, metavar="SIZE", help=MAX_MEMORY_HELP)

    def __post_init__(self) -> None:
        check_field_types(self)
        set_ = object.__setattr__
        set_(self, "target", parse_enum(Target, self.target, "target"))
        set_(self, "precision", parse_enum(Precision, self.precision, "precision"))
        set_(self, "openvino_from", parse_enum(OpenVinoRoute, self.openvino_from, "openvino_from"))
        if self.task is not None:
            set_(self, "task", parse_enum(Task, self.task, "task"))
        set_(self, "static_shape", parse_static_shape(self.static_shape))
        if not 14 <= self.opset <= 21:
            raise InputError(f"opset: {self.opset} is outside the supported range 14..21", option="opset")
        check_threads(self.threads)
        if self.heads is not None and self.heads <= 0:
            raise InputError(f"heads must be positive, got {self.heads}", option="heads")
        if self.portable and self.target is not Target.ONNX:
            raise InputError("portable applies to target onnx only", option="portable")
        if self.openvino_from is not OpenVinoRoute.AUTO and self.target is not Target.OPENVINO:
            raise InputError(f"openvino_from {self.openvino_from.value} applies to target openvino only",
                             option="openvino_from")
        if self.precision is Precision.BF16 and self.target is not Target.OPENVINO:
            raise InputError("precision bf16: ONNX Runtime's x86 CPU kernels have no bf16 GEMM, so a bf16 ONNX "
                             "model would be cast back to fp32 or refused; use target openvino for bf16, or fp32 / "
                             "int8 for ONNX Runtime", option="precision")
        if self.portable and self.int8.embeddings not in ("fp32", EMBEDDING_AUTO):
            raise InputError(f"embeddings {self.int8.embeddings}: the portable graph has standard ops only, and "
                             f"ONNX Runtime has no standard-op kernel that gathers from a compressed table (it "
                             f"would fold it back to fp32); drop --portable", option="embeddings")
        if self.int8.embedding_group_size is not None and self.embeddings == "fp32":  # auto, not int8: fp32
            raise InputError("embedding_group_size needs embeddings int8 or int4 (or auto with precision int8)",
                             option="embedding_group_size")
        if self.ungated and self.precision is not Precision.BF16:
            raise InputError("ungated applies to precision bf16 only (int8 and fp32 are always checked)",
                             option="ungated")

    @property
    def quantized(self) -> Int8Options | None:
        """The int8 options where they apply (precision int8), else None; --embeddings auto of a portable graph
        is fp32 (no standard op gathers from a compressed table)."""
        if self.precision is not Precision.INT8:
            return None
        if self.portable and self.int8.embeddings == EMBEDDING_AUTO:
            return replace(self.int8, embeddings="fp32", embedding_group_size=None)
        return self.int8

    @property
    def embeddings(self) -> str:
        """How the word-embedding table is stored (``--embeddings``; Int8Options' field, for every precision):
        "auto" stays "auto" for int8 (decided by the gate in quantization); elsewhere it is "fp32", as it is
        for the portable graph (no standard op gathers from a compressed table)."""
        if self.int8.embeddings == EMBEDDING_AUTO and (self.precision is not Precision.INT8 or self.portable):
            return "fp32"
        return self.int8.embeddings

    @property
    def weights_fp16(self) -> bool:
        """Whether model files store fp16 weights (fp16 artifacts, and bf16 ones: half the size)."""
        return self.precision in (Precision.FP16, Precision.BF16)


#: --rule of `bortconv trim`: which text chooses the tokens a trimmed vocabulary keeps (bortconv.converters.trim)
TRIM_RULES = ("domain", "corpus")


#: --keep auto: search the budget (bortconv.converters.trim.AUTO_FRACTIONS) for the smallest that passes the gate
KEEP_AUTO = "auto"


@dataclass(frozen=True)
class TrimOptions:
    """Options of :func:`bortconv.trim` and ``bortconv trim``: a vocabulary cut to what a domain's text needs,
    gated against the untrimmed model on held-out text of that domain."""

    corpus: str = option(metavar="FILE", group="corpus",
                         help="the domain's text, UTF-8, one text per line: most lines choose the tokens, a "
                              "seeded split (--heldout) is kept apart for the gate")
    heldout: int | None = option(None, metavar="N", group="corpus",
                                 help="corpus lines held out for the gate, never used to choose tokens (default: "
                                      "a fifth of the lines, at most 300)")
    rule: str = option("domain", choices=TRIM_RULES, group="vocabulary",
                       help="domain (default): the corpus's tokens, short word pieces and words, the tokens of "
                            "bortconv's English calibration text and of the 2,000 most frequent English words, then "
                            "the rest ranked by closeness to the corpus's words in the embedding table and by "
                            "English frequency, up to the budget; "
                            "corpus: the corpus's tokens alone (the naive baseline). Both keep the special tokens "
                            "and every single-character piece, so no word becomes unknown")
    keep: int | str | None = option(None, metavar="N|auto", group="vocabulary",
                                    help="token budget: the rule's tokens in its order, up to N (default: half "
                                         "the vocabulary for rule domain, or more if the steps before its ranked "
                                         "fill need it; none for rule corpus). auto: the "
                                         "smallest budget that passes the gate, of 0.2, 0.3 ... 0.9 of the "
                                         "vocabulary")
    domain_min: float = option(0.99, metavar="X", group="gate",
                               help="held-out domain text: mean sentence cosine to the untrimmed model (default "
                                    "0.99)")
    domain_worst_min: float = option(0.95, metavar="X", group="gate",
                                     help="held-out domain text: worst sentence cosine (default 0.95)")
    general_min: float | None = option(None, metavar="X", group="gate",
                                       help="shipped general-English held-out text: mean sentence cosine (default: "
                                            "reported, not gated)")
    threads: int | None = option(None, help=THREADS_HELP)
    progress: bool = option(True, negate="--quiet", help="no progress lines")
    force: bool = option(False, help="replace a non-empty output directory")

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choices(self)
        if isinstance(self.keep, str) and self.keep != KEEP_AUTO:
            if not re.fullmatch(r"[0-9]+", self.keep.strip()):  # isdigit() also takes "²" and "٣"
                raise InputError(f"keep: must be a positive integer or '{KEEP_AUTO}', got {self.keep!r}",
                                 option="keep")
            object.__setattr__(self, "keep", int(self.keep))  # the CLI's text; the API may pass either
        for name in ("heldout",) + (("keep",) if self.keep != KEEP_AUTO else ()):
            value = getattr(self, name)
            if name == "keep" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, value := int(value))  # np.int64(5000), as heldout takes it
            if value is not None and (type(value) is not int or value <= 0):
                raise InputError(f"{name}: must be a positive integer, got {value!r}", option=name)
        check_threads(self.threads)
        for name in ("domain_min", "domain_worst_min", "general_min"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and -1.0 <= value <= 1.0):
                raise InputError(f"{name}: a cosine threshold must be in [-1, 1], got {value!r}", option=name)


def max_positions(config: dict[str, Any]) -> int:
    """A model config's `max_position_embeddings` (512, BERT's, when it does not say): the longest input it runs."""
    return int(config.get("max_position_embeddings") or 512)
