"""Which files ``edgefm export`` can produce: one registry, as data.

Each variant has a stable manifest name (``tflite_int8``), a file name, a
format and a quantization mode. The CLI's choices, the plan for one run and the
summary all read this table. Distinct files have distinct names: the int8 TFLite
model with int8 inputs and outputs (``--int8-io``) is ``tflite_int8_io`` in
``model_int8io.tflite``, so it never replaces the float-I/O ``tflite_int8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgefm.core.errors import ConfigError
from edgefm.core.manifest import TensorSpec
from edgefm.data.sources import InputSource
from export.config import ExportConfig, ExportFormat, Quantization


@dataclass(frozen=True)
class Variant:
    name: str  # manifest key
    format: ExportFormat
    quantization: Quantization
    filename: str
    integer_io: bool = False  # int8 input and output tensors (full-integer TFLite, ``--int8-io``)
    keep_float: bool = False  # int8 with the layers ``--keep-float`` names left in float

    @property
    def needs_calibration(self) -> bool:
        return self.quantization is Quantization.INT8

    def int8_io(self, cfg: ExportConfig) -> bool:
        """Whether this variant's file takes and returns int8 tensors: the variant says (``plan`` chose it by ``cfg``)."""
        return self.integer_io


@dataclass
class ConvertedModel:
    """What an exporter returns: the finished file's bytes (metadata embedded), its I/O specs, format facts."""

    data: bytes
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    extra: dict[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    """The one signature of ``export_tflite`` and ``export_onnx``: converter exceptions propagate unwrapped."""

    def __call__(
        self, variant: Variant, saved_model: Path, calibration: InputSource | None, cfg: ExportConfig,
        metadata: Mapping[str, bytes],
    ) -> ConvertedModel: ...


VARIANTS: tuple[Variant, ...] = (
    Variant("tflite_float32", ExportFormat.TFLITE, Quantization.NONE, "model_float32.tflite"),
    Variant("tflite_float16", ExportFormat.TFLITE, Quantization.FLOAT16, "model_float16.tflite"),
    Variant("tflite_dynamic", ExportFormat.TFLITE, Quantization.DYNAMIC, "model_dynamic.tflite"),
    Variant("tflite_int8", ExportFormat.TFLITE, Quantization.INT8, "model_int8.tflite"),
    Variant("tflite_int8_io", ExportFormat.TFLITE, Quantization.INT8, "model_int8io.tflite", integer_io=True),
    Variant("onnx_float32", ExportFormat.ONNX, Quantization.NONE, "model.onnx"),
    Variant("onnx_int8", ExportFormat.ONNX, Quantization.INT8, "model_int8.onnx"),
    # --keep-float: selectively quantized beside the plain int8 files, so both can be verified side by side
    Variant("tflite_int8_mixed", ExportFormat.TFLITE, Quantization.INT8, "model_int8_mixed.tflite", keep_float=True),
    Variant("onnx_int8_mixed", ExportFormat.ONNX, Quantization.INT8, "model_int8_mixed.onnx", keep_float=True),
)
BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}
# Sizes in the summary are relative to this variant (the first one present).
SIZE_REFERENCES: tuple[str, ...] = ("tflite_float32", "onnx_float32")


def supported_quantizations(fmt: ExportFormat) -> list[Quantization]:
    return list(dict.fromkeys(v.quantization for v in VARIANTS if v.format is fmt))


def plan(cfg: ExportConfig) -> list[Variant]:
    """The variants one run produces, in registry order.

    ``--format all`` with a quantization one format lacks (ONNX has no float16 or
    dynamic variant) simply skips it there; a request that yields nothing at all,
    or ``--int8-io`` without an int8 TFLite variant, is a ConfigError.
    """
    formats, quants = set(cfg.formats), set(cfg.quantizations)
    # --int8-io picks the int8-I/O full-integer TFLite variant instead of the float-I/O one (never both in one run);
    # --keep-float picks the selectively quantized int8 variants instead of the plain ones
    chosen = [v for v in VARIANTS if v.format in formats and v.quantization in quants
              and v.integer_io == (cfg.int8_io and v.format is ExportFormat.TFLITE and v.needs_calibration)
              and v.keep_float == (bool(cfg.keep_float) and v.needs_calibration)]
    if not chosen:
        fmt = cfg.formats[0]
        ok = ", ".join(q.value for q in supported_quantizations(fmt))
        raise ConfigError(
            f"--format {cfg.format} --quantize {cfg.quantize}: there is no such variant. "
            f"{fmt.value} export supports --quantize {ok} (or all); use --format tflite for float16 "
            "and dynamic-range models."
        )
    if cfg.int8_io and not any(v.format is ExportFormat.TFLITE and v.needs_calibration for v in chosen):
        raise ConfigError(
            "--int8-io applies to the full-integer TFLite model: combine it with --format tflite|all "
            "and --quantize int8|all."
        )
    if cfg.keep_float and not any(v.keep_float for v in chosen):
        raise ConfigError("--keep-float leaves layers of an int8 model in float: combine it with --quantize int8|all.")
    return chosen


def skipped(cfg: ExportConfig) -> list[tuple[ExportFormat, Quantization]]:
    """Requested (format, quantization) pairs that have no variant (e.g. onnx + float16)."""
    have = {(v.format, v.quantization) for v in VARIANTS}
    return [(f, q) for f in cfg.formats for q in cfg.quantizations if (f, q) not in have]
