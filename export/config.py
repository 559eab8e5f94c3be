"""What ``edgefm export`` does: formats, quantization modes, opsets and ``ExportConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgefm.core.contract import DEFAULT_ARTIFACTS
from edgefm.core.errors import ConfigError
from edgefm.core.options import Choice, bounded_count, positive_int


class ExportFormat(Choice):
    TFLITE = "tflite"
    ONNX = "onnx"
    ALL = "all"


class Quantization(Choice):
    NONE = "none"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    ALL = "all"



def expand_formats(fmt: ExportFormat) -> tuple[ExportFormat, ...]:
    """``all`` to every format; any other one to itself."""
    return (ExportFormat.TFLITE, ExportFormat.ONNX) if fmt is ExportFormat.ALL else (fmt,)


def expand_quantizations(q: Quantization) -> tuple[Quantization, ...]:
    """``all`` to every quantization mode; any other one to itself."""
    if q is Quantization.ALL:
        return (Quantization.NONE, Quantization.FLOAT16, Quantization.DYNAMIC, Quantization.INT8)
    return (q,)


DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18



# int8 calibration draws, measured (issue 20): on 6 trained CNNs, 500 Fashion-MNIST images left the
# int8 TFLite's logit cosine at 0.99885-0.99948 (two under verify's 0.999), 2,000 at 0.99914-0.99948
# (MinMax ranges from 500 images clip the rarer large activations), for 0.45 s more export time.
# A brought model's calibration runs its full network per sample (a MobileNetV2 at 224x224 takes
# ~20-50 ms per sample on 2 cores), so it keeps the smaller default.
FASHION_CALIBRATION_SAMPLES = 2000
DATA_CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class ExportConfig:
    """What ``edgefm export`` does."""

    artifacts: Path = DEFAULT_ARTIFACTS
    format: ExportFormat = ExportFormat.ALL
    quantize: Quantization = Quantization.ALL
    opset: int = DEFAULT_OPSET
    #: int8 calibration samples; None: ``FASHION_CALIBRATION_SAMPLES`` for edgefm's own model (its train split),
    #: ``DATA_CALIBRATION_SAMPLES`` rows of ``--data`` (or synthetic inputs) for any other
    calibration_samples: int | None = None
    int8_io: bool = False
    seed: int = 0
    data_dir: Path | None = None
    verify_data: bool = True
    #: calibration inputs for a model edgefm did not train: .npz, .npy, a directory of images or "synthetic"
    #: (``edgefm.data.sources``); None: the Fashion-MNIST train split for edgefm's own model, else synthetic
    data: str | None = None
    #: ``--value-range NAME=LO,HI`` for synthetic calibration inputs
    value_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: export the variants that convert and report the others, instead of writing nothing
    keep_going: bool = False
    #: layers (TF op names or Keras scopes, as ``verify --explain`` shows them) that int8 keeps in float: the
    #: ``*_int8_mixed`` variants, beside the plain int8 ones
    keep_float: tuple[str, ...] = ()
    #: ``--min-runtime tflite-runtime==2.14``: the oldest TFLite the .tflite variants must load in (as TF's
    #: release numbers, which tflite-runtime shares); None: the converter's newest op versions
    min_runtime: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "format", ExportFormat.parse(self.format, "--format"))
        set_(self, "quantize", Quantization.parse(self.quantize, "--quantize"))
        set_(self, "artifacts", Path(self.artifacts))
        opset = positive_int(self.opset, "--opset")
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ConfigError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET} (tf2onnx and ONNX Runtime support these), got {opset}.")
        if self.calibration_samples is not None:
            bounded_count(self.calibration_samples, "--calibration-samples")
        if self.data_dir is not None:
            set_(self, "data_dir", Path(self.data_dir))
        set_(self, "keep_float", tuple(dict.fromkeys(n.strip() for n in self.keep_float if n.strip())))
        if self.min_runtime is not None:
            min_runtime_version(self.min_runtime)  # validated here, used by export.to_tflite
        if self.keep_float and self.int8_io:
            raise ConfigError("--keep-float and --int8-io cannot be combined: a model with float layers is not "
                              "integer-only, so its inputs and outputs stay float.")

    @property
    def formats(self) -> tuple[ExportFormat, ...]:
        return expand_formats(self.format)

    @property
    def quantizations(self) -> tuple[Quantization, ...]:
        return expand_quantizations(self.quantize)


def min_runtime_version(text: str) -> tuple[int, ...]:
    """``tflite-runtime==2.14`` -> (2, 14, 0): the TF Lite release numbers a file's ``min_runtime_version`` uses.

    Only tflite-runtime: its versions are TensorFlow's. ai-edge-litert numbers its releases
    on its own (1.x, 2.x), and no table maps them to the converter's runtime versions.
    """
    import re

    m = re.fullmatch(r"\s*tflite[-_]runtime\s*==\s*(\d+)\.(\d+)(?:\.(\d+))?\s*", text)
    if m is None:
        raise ConfigError(
            f"--min-runtime {text!r}: write tflite-runtime==MAJOR.MINOR (e.g. tflite-runtime==2.14). Only "
            "tflite-runtime is understood: its versions are TensorFlow's, which is what a .tflite records as its "
            "min_runtime_version; ai-edge-litert numbers its releases differently."
        )
    return tuple(int(g or 0) for g in m.groups())
