"""SavedModel -> .tflite bytes (float32, float16, dynamic-range int8, full-integer int8).

``TFLiteConverter.from_saved_model(..., signature_keys=["serving_default"])``
keeps the serving signature in the file, so the input is still called ``images``,
the outputs ``logits`` and ``probabilities``, and the batch stays dynamic
(``shape_signature`` [-1, 28, 28]).

Call these inside ``edgefm.core.quiet.quiet_native_output()``: the converter prints
from C++.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import OUTPUT_NAMES, SERVING_SIGNATURE
from edgefm.core.errors import ExportError
from edgefm.core.manifest import TensorSpec
from edgefm.core.quiet import import_tensorflow, quiet_native_output
from edgefm.data.sources import InputSource
from edgefm.formats.layers import layer_label, select_layers
from edgefm.formats.metadata import embed_tflite_metadata
from export.calibration import as_source, tflite_representative_dataset
from export.config import ExportConfig, Quantization
from export.variants import ConvertedModel, Variant

# Inputs for the "same outputs after embedding metadata" check.
PROBE_BATCH, PROBE_SEED = 8, 1234


@dataclass(frozen=True)
class TFLiteRecipe:
    """Converter settings for one quantization mode."""

    optimize: bool  # converter.optimizations = [Optimize.DEFAULT]
    supported_types: tuple[str, ...] = ()  # e.g. ("float16",): weights stored in that type
    integer_only: bool = False  # full-integer: int8 kernels only, calibrated activations


TFLITE_RECIPES: dict[Quantization, TFLiteRecipe] = {
    Quantization.NONE: TFLiteRecipe(optimize=False),
    Quantization.FLOAT16: TFLiteRecipe(optimize=True, supported_types=("float16",)),
    Quantization.DYNAMIC: TFLiteRecipe(optimize=True),
    Quantization.INT8: TFLiteRecipe(optimize=True, integer_only=True),
}


def _converter(saved_model: Path, recipe: TFLiteRecipe, calibration: InputSource | np.ndarray | None) -> Any:
    """The converter of the serving signature set up for ``recipe`` (not yet for integer-only kernels)."""
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SERVING_SIGNATURE])
    if recipe.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe.supported_types:
        converter.target_spec.supported_types = [tf.as_dtype(t) for t in recipe.supported_types]
    if recipe.integer_only:
        if calibration is None or as_source(calibration).count == 0:
            raise ExportError("Full-integer TFLite quantization needs calibration samples; none were given.")
        converter.representative_dataset = lambda: tflite_representative_dataset(calibration)
    return converter


def convert_tflite(
    saved_model: Path,
    quantization: Quantization,
    *,
    calibration: InputSource | np.ndarray | None = None,
    int8_io: bool = False,
    per_tensor_dense: bool = False,
) -> bytes:
    """Convert the SavedModel's serving signature; converter exceptions propagate unwrapped.

    ``per_tensor_dense``: dynamic-range FULLY_CONNECTED weights per tensor, not per channel. TF >= 2.17
    writes per-channel hybrid FULLY_CONNECTED as op version 12 (``min_runtime_version`` 2.17.0), which
    tflite-runtime 2.14 cannot load; with the converter's
    ``_experimental_disable_per_channel_quantization_for_dense_layers`` it writes version 9 (2.3.0).
    Measured on edgefm's MLP (TF 2.21): the per-tensor file loads in tflite-runtime 2.14.0.
    """
    tf = import_tensorflow()
    recipe = TFLITE_RECIPES[quantization]
    converter = _converter(saved_model, recipe, calibration)
    if per_tensor_dense:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if recipe.integer_only:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return bytes(converter.convert())


#: TFLite ops that only move or reshape data: never offered as a layer to keep in float
LAYOUT_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "UNPACK", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE",
                        "QUANTIZE", "DEQUANTIZE", "GATHER", "SLICE", "CONCATENATION", "SPLIT", "CAST"})


class TFLiteKeepFloat:
    """Full-integer int8 with the named layers kept in float: calibrated once, quantized per set of names.

    TFLite's own selective quantization, through its public QuantizationDebugger
    (``tf.lite.experimental``): the converter calibrates the float model once
    (``calibrated_model``), then the MLIR quantizer quantizes it with
    ``QuantizationDebugOptions(denylisted_nodes=...)`` -- nodes named by their output
    tensor -- left in float, with QUANTIZE/DEQUANTIZE around them. Inputs and outputs
    stay float32 (``fully_quantize=False``), as in the plain int8 variant. Measured on a
    3-layer Keras MLP: 0.4 s to calibrate, 0.01-0.03 s per quantization.
    """

    def __init__(self, saved_model: Path, calibration: InputSource | np.ndarray | None) -> None:
        tf = import_tensorflow()
        self._tf = tf
        converter = _converter(saved_model, TFLITE_RECIPES[Quantization.INT8], calibration)
        self._debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset)
        interp = _interpreter(self._debugger.calibrated_model)
        names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
        outputs = {d["index"]: key for key, d in interp.get_signature_runner(SERVING_SIGNATURE).get_output_details().items()}
        #: (label, output tensor name) of every op that computes, in graph order; a signature output is labelled by its key
        self.layers: list[tuple[str, str]] = []
        for op in interp._get_ops_details():  # private, but the one way LiteRT's Python API lists the graph
            if op["op_name"] in LAYOUT_OPS or op["op_name"] == "DELEGATE" or not op["outputs"]:
                continue
            out = int(op["outputs"][0])
            self.layers.append((outputs.get(out) or layer_label(names[out]), names[out]))

    def nodes(self, keep_float: Sequence[str]) -> list[str]:
        """The output tensor names of the layers ``keep_float`` names (a label, an op, or a scope)."""
        return select_layers(self.layers, keep_float, "TFLite")

    def quantize(self, keep_float: Sequence[str]) -> bytes:
        """The int8 model with ``keep_float``'s layers in float (no metadata embedded)."""
        tf = self._tf
        nodes = self.nodes(keep_float)
        with quiet_native_output():  # the MLIR quantizer prints its settings from C++
            self._debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
            return bytes(self._debugger.get_nondebug_quantized_model())


def export_tflite(
    variant: Variant, saved_model: Path, calibration: InputSource | None, cfg: ExportConfig, metadata: Mapping[str, bytes]
) -> ConvertedModel:
    """One TFLite variant of the SavedModel, with ``metadata`` embedded and its I/O specs read back."""
    int8_io = variant.int8_io(cfg)
    extra: dict[str, Any] = {"signature": SERVING_SIGNATURE, "int8_io": int8_io}
    if variant.keep_float:
        raw = TFLiteKeepFloat(saved_model, calibration).quantize(cfg.keep_float)
        extra["keep_float"] = list(cfg.keep_float)
    else:
        raw = convert_tflite(saved_model, variant.quantization, calibration=calibration, int8_io=int8_io,
                             per_tensor_dense=cfg.min_runtime is not None)
    data = with_metadata(raw, metadata)
    if cfg.min_runtime is not None:
        extra["min_runtime"] = _check_min_runtime(data, cfg.min_runtime, variant)
    inputs, outputs = tflite_io_specs(data)
    return ConvertedModel(data, inputs, outputs, extra)


def _check_min_runtime(data: bytes, wanted: str, variant: Variant) -> str:
    """The file's ``min_runtime_version`` if ``wanted`` can load it, else an ExportError naming what it needs."""
    import tempfile

    from edgefm.formats.tflite_file import tflite_min_runtime_version, tflite_op_versions
    from export.config import min_runtime_version

    with tempfile.TemporaryDirectory(prefix="edgefm-minrt-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        needs, ops = tflite_min_runtime_version(path), tflite_op_versions(path)
    have = min_runtime_version(wanted)
    need = tuple(int(p) for p in (needs or "0").split(".")[:3])
    if need > have:
        raise ExportError(
            f"{variant.name} cannot be made for {wanted}: the converter's options (per-tensor dense weights) "
            f"do not take it below TFLite {needs} (operators: {', '.join(f'{o} v{v}' for o, v in ops.items())}). "
            "Drop this variant (--quantize) or run a newer runtime on the device."
        )
    return needs or "not recorded"


def _interpreter(model: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model)


def _output_order(name: str) -> tuple[int, str]:
    return (OUTPUT_NAMES.index(name) if name in OUTPUT_NAMES else len(OUTPUT_NAMES), name)


def tflite_io_specs(model: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of the serving signature as stored (raw int8 dtype and scale for int8 I/O)."""
    runner = _interpreter(model).get_signature_runner(SERVING_SIGNATURE)
    ins = [TensorSpec.from_litert(k, d) for k, d in sorted(runner.get_input_details().items())]
    outs = [TensorSpec.from_litert(k, d) for k, d in sorted(runner.get_output_details().items(), key=lambda kv: _output_order(kv[0]))]
    return ins, outs


def run_tflite_raw(model: bytes, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the serving signature on raw (already quantized, if int8) inputs."""
    runner = _interpreter(model).get_signature_runner(SERVING_SIGNATURE)
    return {k: np.array(v) for k, v in runner(**feeds).items()}


def probe_feeds(model: bytes) -> dict[str, np.ndarray]:
    """A fixed batch in each input's stored dtype (quantized for int8 inputs)."""
    runner = _interpreter(model).get_signature_runner(SERVING_SIGNATURE)
    rng = np.random.default_rng(PROBE_SEED)
    feeds = {}
    for name, d in runner.get_input_details().items():
        shape = [PROBE_BATCH if int(s) < 0 else int(s) for s in d["shape_signature"]]
        x = rng.random(shape, dtype=np.float32)
        spec = TensorSpec.from_litert(name, d)
        feeds[name] = spec.quantize(x) if spec.quantized else (x * 4).astype(spec.dtype)  # integers 0..3
    return feeds


def with_metadata(model: bytes, entries: Mapping[str, bytes]) -> bytes:
    """Embed metadata and prove LiteRT still loads the file and computes bit-identical outputs."""
    out = embed_tflite_metadata(model, entries)
    feeds = probe_feeds(model)
    before, after = run_tflite_raw(model, feeds), run_tflite_raw(out, feeds)
    if before.keys() != after.keys() or not all(np.array_equal(before[k], after[k]) for k in before):
        raise ExportError(
            "Embedding metadata changed the TFLite model's outputs; the file was not written. "
            "This is a bug in edgefm.formats.metadata: please report it."
        )
    return out
