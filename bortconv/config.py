"""Frozen, validated configuration objects shared by the pipeline stages."""

from __future__ import annotations

import enum
import os
import platform
import re
from dataclasses import asdict, dataclass, field

from bortconv.errors import InputError, MappingError

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
        if self.heads is not None and self.heads <= 0:
            raise InputError(f"--heads must be a positive integer, got {self.heads}")
        if not (0 < self.decoder_layer_norm_eps < 1):
            raise InputError(f"--decoder-ln-eps must be in (0, 1), got {self.decoder_layer_norm_eps}")
        if self.variant is not None:
            heads_from_name(self.variant)


#: how BortRuntime turns text into ids (bortconv.runtime): the tokenizers library, the OpenVINO tokenizer IR, or
#: auto (tokenizers when installed). Here, not in the runtime, so `bortconv serve --help` imports nothing heavy.
TOKENIZER_BACKENDS = ("auto", "tokenizers", "openvino")
#: serving engines `bortconv package` writes model repositories for
PACKAGE_FORMATS = ("triton", "ovms")

#: --precision choices; --fp16 and --int8 stay as aliases
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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
        raise InputError(f"{option}: '{value}' is not one of {choices}") from None


def parse_static_shape(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'B,L' -> (B, L) for --static-shape."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        b, length = (int(x) for x in value.split(","))
    except ValueError:
        raise InputError(f"--static-shape: '{value}' is not BATCH,LENGTH (e.g. 1,128)") from None
    if b <= 0 or length <= 0:
        raise InputError(f"--static-shape: '{value}': batch and length must be positive")
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


#: the gate of each precision that is not atol-exact. bf16 and fp16 inference keep ~3 significant digits, so
#: their outputs must stay much closer to fp32 than int8's.
GATE_DEFAULTS: dict[str, GateThresholds] = {
    "int8": GateThresholds(),
    "bf16": GateThresholds(token_cosine=0.999, sentence_cosine=0.999, sentence_cosine_p5=0.998,
                           sentence_cosine_worst=0.995, top1_agreement=0.98, label_agreement=0.99),
}
GATE_DEFAULTS["fp16"] = GATE_DEFAULTS["bf16"]

#: the deployment gate's length sweep (bortconv.quantize.heldout.sweep_lengths): "full", 8 and every multiple
#: of 16 with its neighbours (96 lengths at 512), or "quick", the same probes up to half the maximum and the two
#: longest (51 lengths at 512; about 40% of the gate's work). Both span 8..max and keep the padded batches.
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


#: --arch: the CPU family an artifact is deployed on. "native" is the machine running bortconv.
ARCHES = ("native", "x86_64", "aarch64")
_MACHINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_arch() -> str:
    """This machine's CPU family as --arch names it (platform.machine() as is when it is neither)."""
    machine = platform.machine().lower()
    return _MACHINE_ARCH.get(machine, machine)


@dataclass(frozen=True)
class Int8Options:
    """Options of int8 quantization (``--int8`` on export, and ``bortconv quantize``)."""

    calibration: str | None = None  # text file, one sentence per line; None: the shipped WordNet set
    samples: int | None = None  # calibration sentences; the rest of the file (up to 200) is held out
    scheme: str | None = None  # force one scheme instead of choosing by measurement
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    threads: int | None = None
    mixed_precision: bool = True
    precision: str = "int8"  # what `bortconv quantize --precision` asked for (only int8 quantizes)
    #: the CPU family the artifact is deployed on: its int8 schemes are that family's; a family other than
    #: this machine's cannot be timed here, and its gate on the device's own kernels is left to `validate` there
    arch: str = "native"

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise InputError(f"--arch: '{self.arch}' is not one of {', '.join(ARCHES)}")

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
    """Options of :func:`bortconv.export` (the keyword facade builds one; pass one to skip it)."""

    target: Target
    task: Task | None = None  # None: text-classification if the source has a classifier, else features
    opset: int = 17
    fp16: bool = False
    static_shape: tuple[int, int] | None = None
    threads: int | None = None
    portable: bool = False  # ONNX: standard ops only, no ORT contrib fusions
    force: bool = False
    openvino_from: OpenVinoRoute = OpenVinoRoute.AUTO
    vocab: str | None = None  # gluonnlp vocabulary JSON: with merges, the artifact gets Bort's tokenizer
    merges: str | None = None
    int8: Int8Options | None = None  # quantize under the accuracy gate after the fp32 artifact passed parity
    bf16: bool = False  # OpenVINO: fp16-stored weights, inference pinned to bf16, under the bf16 gate
    ungated: bool = False  # bf16 on a CPU without native bf16: build it anyway, untested (the manifest says so)
    bench: bool = True  # time the artifact against PyTorch eager
    progress: bool = True
    max_memory: int | str | None = None  # bytes, or a size such as "1.5G"

    def __post_init__(self) -> None:
        if not 14 <= self.opset <= 21:
            raise InputError(f"--opset: {self.opset} is outside the supported range 14..21")
        if self.threads is not None and self.threads <= 0:
            raise InputError(f"--threads must be positive, got {self.threads}")
        if self.portable and self.target is not Target.ONNX:
            raise InputError("--portable applies to --target onnx only")
        if self.int8 is not None and self.fp16:
            raise InputError("--int8 and --fp16 exclude each other")
        if self.bf16 and (self.fp16 or self.int8 is not None):
            raise InputError("--precision takes one of fp32, fp16, bf16, int8")
        if self.bf16 and self.target is not Target.OPENVINO:
            raise InputError("--precision bf16: ONNX Runtime's x86 CPU kernels have no bf16 GEMM, so a bf16 ONNX "
                             "model would be cast back to fp32 or refused; use --target openvino for bf16, or fp32 / "
                             "int8 for ONNX Runtime")
        if self.ungated and not self.bf16:
            raise InputError("--ungated applies to --precision bf16 only (int8 and fp32 are always checked)")

    @property
    def precision(self) -> str:
        """The artifact's precision: what its manifest records."""
        return "int8" if self.int8 is not None else "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    @property
    def weights_fp16(self) -> bool:
        """Whether model files store fp16 weights (fp16 artifacts, and bf16 ones: half the size)."""
        return self.fp16 or self.bf16
