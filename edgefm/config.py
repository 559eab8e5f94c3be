"""Shared constants, enums and frozen configs for every stage.

Strings from the CLI become enums here, and each config validates itself with a
message that names the CLI flag, so a Python caller gets the same checks.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from edgefm.errors import ConfigError

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE: tuple[int, int] = (28, 28)
INPUT_NAME = "images"
OUTPUT_NAMES: tuple[str, str] = ("logits", "probabilities")
INPUT_SCALING = "float32 in [0, 1] (uint8 pixel / 255), 28x28 grayscale, light item on dark background"

DEFAULT_ARTIFACTS = Path("artifacts")
SAVEDMODEL_DIRNAME = "saved_model"
MANIFEST_NAME = "manifest.json"
CHECKPOINT_DIRNAME = "checkpoints"


class _Choice(str, enum.Enum):
    """A string enum whose values are the CLI spellings."""

    @classmethod
    def choices(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def parse(cls, value: str | _Choice, flag: str) -> _Choice:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ConfigError(
                f"{flag}: unknown value {value!r}; choose one of {', '.join(cls.choices())}."
            ) from None

    def __str__(self) -> str:  # so f-strings and click print the plain value
        return self.value


class LRSchedule(_Choice):
    CONSTANT = "constant"
    COSINE = "cosine"  # per epoch: lr * (1 + cos(pi * epoch / epochs)) / 2


class ModelKind(_Choice):
    MLP = "mlp"
    CNN = "cnn"


class ExportFormat(_Choice):
    TFLITE = "tflite"
    ONNX = "onnx"
    ALL = "all"


class Quantization(_Choice):
    NONE = "none"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    ALL = "all"


@dataclass(frozen=True)
class ModelDefaults:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: LRSchedule = LRSchedule.CONSTANT
    threads: int | None = None  # TensorFlow intra/inter-op threads; None: TF's own choice
    jit: bool = False  # compile the training loop with XLA


# The MLP defaults are the reference's. The CNN's were measured: constant lr 0.05
# or 0.1 oscillated around 89-90% test accuracy; a cosine decay settles above 90%.
# Threads, measured on 2 idle cores (s/epoch): the MLP's 64x784x20 ops are too small
# to split, so one thread beats TF's pool (0.15 vs 0.20); the CNN's convolutions
# gain from both cores (3.8 vs 4.9). XLA (jit): the MLP's epoch drops from 0.15 to
# 0.11 s with bit-identical weights, for ~0.7 s of compiling; the CNN's rises from
# 4 s to 118 s, so it stays off there.
MODEL_DEFAULTS: dict[ModelKind, ModelDefaults] = {
    ModelKind.MLP: ModelDefaults(epochs=5, batch_size=64, learning_rate=0.1, threads=1, jit=True),
    ModelKind.CNN: ModelDefaults(epochs=10, batch_size=64, learning_rate=0.1, lr_schedule=LRSchedule.COSINE),
}
DEFAULT_HIDDEN_UNITS = {ModelKind.MLP: 20, ModelKind.CNN: 32}


def _positive_int(value: object, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{flag} must be a positive integer, got {value!r}.")
    return value


def _positive_float(value: object, flag: str) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a positive number, got {value!r}.") from None
    if not math.isfinite(f) or f <= 0:
        raise ConfigError(f"{flag} must be a positive finite number, got {value!r}.")
    return f


@dataclass(frozen=True)
class TrainConfig:
    """What ``edgefm train`` does. ``None`` means: the model's own default."""

    model: ModelKind = ModelKind.MLP
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    lr_schedule: LRSchedule | None = None
    hidden_units: int | None = None
    threads: int | None = None
    seed: int = 0
    data_dir: Path | None = None
    artifacts: Path = DEFAULT_ARTIFACTS
    eager: bool = False
    jit: bool | None = None
    resume: bool = False
    quiet: bool = False
    verify_data: bool = True
    # Batches per graph call; the epoch is split into chunks of this many steps so
    # the progress line can update without a host sync per batch.
    steps_per_call: int = 100

    def __post_init__(self) -> None:
        model = ModelKind.parse(self.model, "--model")
        d = MODEL_DEFAULTS[model]
        set_ = object.__setattr__
        set_(self, "model", model)
        set_(self, "epochs", _positive_int(d.epochs if self.epochs is None else self.epochs, "--epochs"))
        set_(self, "batch_size", _positive_int(d.batch_size if self.batch_size is None else self.batch_size, "--batch-size"))
        lr = d.learning_rate if self.learning_rate is None else self.learning_rate
        set_(self, "learning_rate", _positive_float(lr, "--learning-rate"))
        sched = d.lr_schedule if self.lr_schedule is None else LRSchedule.parse(self.lr_schedule, "--lr-schedule")
        set_(self, "lr_schedule", sched)
        hu = DEFAULT_HIDDEN_UNITS[model] if self.hidden_units is None else self.hidden_units
        set_(self, "hidden_units", _positive_int(hu, "--hidden-units"))
        if self.jit and self.eager:
            raise ConfigError("--jit compiles the graph with XLA; it cannot be combined with --eager.")
        set_(self, "jit", bool(d.jit and not self.eager) if self.jit is None else bool(self.jit))
        if self.threads is None:
            set_(self, "threads", d.threads)
        else:
            _positive_int(self.threads, "--threads")
        set_(self, "steps_per_call", _positive_int(self.steps_per_call, "steps_per_call"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}.")
        set_(self, "artifacts", Path(self.artifacts))
        if self.data_dir is not None:
            set_(self, "data_dir", Path(self.data_dir))


def expand_formats(fmt: ExportFormat | str) -> tuple[ExportFormat, ...]:
    f = ExportFormat.parse(fmt, "--format")
    return (ExportFormat.TFLITE, ExportFormat.ONNX) if f is ExportFormat.ALL else (f,)


def expand_quantizations(q: Quantization | str) -> tuple[Quantization, ...]:
    qq = Quantization.parse(q, "--quantize")
    if qq is Quantization.ALL:
        return (Quantization.NONE, Quantization.FLOAT16, Quantization.DYNAMIC, Quantization.INT8)
    return (qq,)


DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18


@dataclass(frozen=True)
class ExportConfig:
    """What ``edgefm export`` does."""

    artifacts: Path = DEFAULT_ARTIFACTS
    format: ExportFormat = ExportFormat.ALL
    quantize: Quantization = Quantization.ALL
    opset: int = DEFAULT_OPSET
    calibration_samples: int = 500
    int8_io: bool = False
    seed: int = 0
    data_dir: Path | None = None
    verify_data: bool = True
    quiet: bool = False
    bundle: Path | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "format", ExportFormat.parse(self.format, "--format"))
        set_(self, "quantize", Quantization.parse(self.quantize, "--quantize"))
        set_(self, "artifacts", Path(self.artifacts))
        opset = _positive_int(self.opset, "--opset")
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ConfigError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET} (tf2onnx and ONNX Runtime support these), got {opset}.")
        _positive_int(self.calibration_samples, "--calibration-samples")
        if self.data_dir is not None:
            set_(self, "data_dir", Path(self.data_dir))
        if self.bundle is not None:
            set_(self, "bundle", Path(self.bundle))

    @property
    def formats(self) -> tuple[ExportFormat, ...]:
        return expand_formats(self.format)

    @property
    def quantizations(self) -> tuple[Quantization, ...]:
        return expand_quantizations(self.quantize)


@dataclass(frozen=True)
class CheckConfig:
    """What ``edgefm verify`` does."""

    artifacts: Path = DEFAULT_ARTIFACTS
    samples: int | None = None  # None: the whole test split
    batch_size: int = 1000
    invariance_samples: int = 64
    only: tuple[str, ...] = ()
    atol: dict[str, float] = field(default_factory=dict)
    min_top1: dict[str, float] = field(default_factory=dict)
    #: artifact name -> metric -> bound (``--bound NAME.METRIC=VALUE``); None makes the metric informational
    bounds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    report: Path | None = None
    html: Path | None = None
    native: bool = False
    data_dir: Path | None = None
    verify_data: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "artifacts", Path(self.artifacts))
        if self.samples is not None:
            _positive_int(self.samples, "--samples")
        _positive_int(self.batch_size, "--batch-size")
        _positive_int(self.invariance_samples, "invariance_samples")
        for name, v in self.atol.items():
            _positive_float(v, f"--atol {name}")
        for name, v in self.min_top1.items():
            f = _positive_float(v, f"--min-top1 {name}")
            if f > 1:
                raise ConfigError(f"--min-top1 {name}={v}: a fraction between 0 and 1 is expected (e.g. 0.99).")
        from runtime_check.tolerances import check_bound

        for name, per_metric in self.bounds.items():
            for metric, v in per_metric.items():
                check_bound(name, metric, v)
        set_(self, "only", tuple(self.only))
        for attr in ("report", "html", "data_dir"):
            v = getattr(self, attr)
            if v is not None:
                set_(self, attr, Path(v))


def parse_name_values(pairs: tuple[str, ...] | list[str], flag: str) -> dict[str, float]:
    """Parse ``NAME=VALUE`` options (e.g. ``--atol tflite_float16=0.05``)."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag}: expected NAME=VALUE (e.g. {flag} tflite_float32=1e-4), got {pair!r}.")
        out[name] = _positive_float(value, f"{flag} {name}")
    return out
