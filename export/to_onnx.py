"""SavedModel -> ONNX (tf2onnx), and ONNX float32 -> static int8 (ONNX Runtime's quantizer).

tf2onnx's Python API converts the SavedModel's ``serving_default`` signature
(wrapped in a ``tf.function`` with the same input signature); the structured
input/output names become the graph's names: ``images`` -> ``logits``,
``probabilities``. The dynamic batch dimension is named ``batch``.

Call these inside ``edgefm.core.quiet.quiet_native_output()``.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefm.core.contract import SERVING_SIGNATURE
from edgefm.core.errors import ExportError
from edgefm.core.quiet import import_tensorflow, quiet_native_output
from edgefm.data.sources import InputSource
from edgefm.formats.layers import op_key, select_layers
from edgefm.formats.metadata import embed_onnx_metadata
from edgefm.formats.onnx_file import onnx_io_specs
from export.calibration import as_source, onnx_calibration_batches
from export.config import ExportConfig
from export.variants import ConvertedModel, Variant

if TYPE_CHECKING:  # pragma: no cover
    import onnx

BATCH_DIM_PARAM = "batch"
PROBE_BATCH, PROBE_SEED = 8, 1234


@dataclass(frozen=True)
class OnnxInt8Recipe:
    """ONNX Runtime static quantization settings (names of onnxruntime.quantization enums).

    uint8 weights and activations (U8U8) make the file give the same numbers on every x86
    CPU at full 8-bit precision. ONNX Runtime runs an int8 x int8 QDQ MatMul/Conv on x86 as
    uint8 x int8 (its QDQS8ToU8Transformer shifts int8 activations by +128), and MLAS's AVX2
    and AVX-512 kernels without VNNI multiply those with VPMADDUBSW, which saturates each pair
    sum at int16 (2 x 255 x 127 = 64770 > 32767); VNNI CPUs (VPDPBUSD) sum in 32 bits. U8U8
    takes MLAS's uint8 x uint8 kernels, which widen to 16 bits and sum pairs in 32 (VPMADDWD):
    nothing saturates, so both paths are bit-identical (tests/runtime_check/native/test_cpu_paths.py).
    Release 2 used int8 with 7-bit weights (``reduce_range``, the other documented remedy): as
    portable, but it gives up a bit of every weight. Measured (issue 20, 10,000 test images, logit
    cosine against TensorFlow): the default CNN, seeds 0 / 1, 0.99875 / 0.99865 with it (verify's
    bound: 0.999; with 500 calibration images), 0.99958 / 0.99913 with U8U8 and ``fuse`` (2,000); the
    MLP 0.99982 -> 0.99993. The cost, on a VNNI CPU with one thread: the CNN's file takes 1.17x
    (batch 1) and 1.40x (batch 256) the time of the int8 one; the MLP's 0.79x and 1.35x.
    Sources: onnxruntime.ai docs, "Quantize ONNX models" (U8U8 and reduce-range FAQ);
    MLAS x86_64/QgemmU8X8KernelAvx2.S; microsoft/onnxruntime#6004.

    ``fuse`` runs ONNX Runtime's pre-processing first (``fused_for_quantization``).
    """

    quant_format: str = "QDQ"  # QuantizeLinear/DequantizeLinear pairs: portable, fast on x64
    per_channel: bool = True  # measured: 99.0% top-1 agreement vs 98.9% per-tensor on the MLP
    activation_type: str = "QUInt8"
    weight_type: str = "QUInt8"  # full 8 bits without saturation on any x86 path (see above)
    calibrate_method: str = "MinMax"
    reduce_range: bool = False
    fuse: bool = True


ONNX_INT8_RECIPE = OnnxInt8Recipe()


def convert_onnx(saved_model: Path, opset: int) -> onnx.ModelProto:
    """The serving signature as an ONNX model of the given opset; converter exceptions propagate."""
    tf = import_tensorflow()
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model))
    signature = loaded.signatures[SERVING_SIGNATURE]
    _, kwargs = signature.structured_input_signature
    input_signature = [tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in sorted(kwargs.items())]
    names = [s.name for s in input_signature]

    @tf.function(input_signature=input_signature)
    def serve(*args: Any) -> dict[str, Any]:
        return signature(**dict(zip(names, args)))

    model, _ = tf2onnx.convert.from_function(serve, input_signature=input_signature, opset=opset)
    _drop_stray_inputs(model, set(names))
    _name_batch_dim(model)
    return model


def _drop_stray_inputs(model: onnx.ModelProto, names: set[str]) -> None:
    """Graph inputs that are not the signature's and that no node reads, or that are initializers, go.

    A SavedModel function that captured a tensor (a ``tf.constant`` from the
    enclosing scope) converts to a graph with an extra input such as ``137:0``
    that nothing reads (tf2onnx folds the value into an initializer). ONNX Runtime
    runs without feeding it, but its quantizer feeds the augmented calibration
    model only the real inputs and fails with "Required inputs (['5626:0']) are
    missing" (measured), and every runner would list it as an input. An input
    that is also an initializer is a constant with a default: since IR version 4
    an initializer need not be an input.
    """
    constants = {init.name for init in model.graph.initializer}
    read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.input if i.name in names or (i.name in read and i.name not in constants)]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)


def export_onnx(
    variant: Variant, saved_model: Path, calibration: InputSource | None, cfg: ExportConfig, metadata: Mapping[str, bytes]
) -> ConvertedModel:
    """One ONNX variant of the SavedModel, with ``metadata`` embedded, checked by ONNX and ONNX Runtime.

    The float32 graph is converted once per SavedModel state and opset (``_float_graph``),
    so the int8 variant of the same run quantizes it instead of converting again.
    """

    model = float_onnx(saved_model, cfg.opset)
    extra: dict[str, Any] = {"opset": cfg.opset}
    if variant.needs_calibration:
        keep = OnnxKeepFloat(model, calibration) if variant.keep_float else None
        model = quantize_onnx_int8(model, calibration) if keep is None else keep.quantize_model(cfg.keep_float)
        recipe = ONNX_INT8_RECIPE
        extra.update(quant_format=recipe.quant_format, per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                     activation_type=recipe.activation_type, weight_type=recipe.weight_type)
        if keep is not None:
            extra["keep_float"] = list(cfg.keep_float)
    embed_onnx_metadata(model, metadata)
    data = model.SerializeToString()
    check_onnx(data)
    inputs, outputs = onnx_io_specs(model)
    return ConvertedModel(data, inputs, outputs, extra)


def _fingerprint(saved_model: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the SavedModel's files: a new SavedModel is a new cache key."""
    files = sorted(p for p in Path(saved_model).rglob("*") if p.is_file())
    return tuple((str(p.relative_to(saved_model)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@functools.lru_cache(maxsize=2)
def _float_graph(saved_model: str, opset: int, fingerprint: tuple[tuple[str, int, int], ...]) -> bytes:
    """``convert_onnx`` serialised (bytes: immutable, so each variant gets its own copy)."""
    return convert_onnx(Path(saved_model), opset).SerializeToString()


def _name_batch_dim(model: onnx.ModelProto) -> None:
    """tf2onnx calls the dynamic batch ``unk__N``; give inputs and outputs one shared name."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM_PARAM


def quantize_onnx_int8(
    model: onnx.ModelProto, calibration: InputSource | np.ndarray | None, recipe: OnnxInt8Recipe = ONNX_INT8_RECIPE,
    nodes_to_exclude: Sequence[str] = (),
) -> onnx.ModelProto:
    """Static int8 quantization calibrated on ``calibration``; float32 inputs and outputs stay.

    ``nodes_to_exclude`` (node names) stay float: ONNX Runtime's own selective quantization.
    """
    import onnx
    from onnxruntime import quantization as q

    if calibration is None or as_source(calibration).count == 0:
        raise ExportError("Static int8 ONNX quantization needs calibration samples; none were given.")
    if recipe.fuse:
        model = fused_for_quantization(model)
    fixed_batch = any(i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].HasField("dim_value")
                      for i in model.graph.input)
    source = as_source(calibration)

    class Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = onnx_calibration_batches(source, 1 if fixed_batch else 50)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="edgefm-onnx-int8-") as tmp:
        src, dst = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        q.quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=getattr(q.QuantFormat, recipe.quant_format),
            per_channel=recipe.per_channel,
            activation_type=getattr(q.QuantType, recipe.activation_type),
            weight_type=getattr(q.QuantType, recipe.weight_type),
            calibrate_method=getattr(q.CalibrationMethod, recipe.calibrate_method),
            reduce_range=recipe.reduce_range,
            nodes_to_exclude=list(nodes_to_exclude),
        )
        out = onnx.load(str(dst))
    _name_batch_dim(out)
    return out


def fused_for_quantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph as ONNX Runtime's quantizer wants it: its pre-processing (``quant_pre_process``, the
    step its quantizer's warning asks for) runs ONNX shape inference and ONNX Runtime's basic fusions.

    The one that matters here: MatMul + Add -> Gemm, whose bias is added inside the int8 product in
    int32, instead of after one more requantization of the product. tf2onnx leaves them apart when
    the batch is dynamic (its GemmRewriter skips shapes with -1; tf2onnx 1.17). Measured on the MLP
    (2,000 test images): mean |logit error| 0.060 -> 0.044. Symbolic shape inference (it needs sympy)
    is skipped; opset imports the optimizer adds for domains that no node uses are dropped again.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgefm-onnx-fuse-") as tmp:
        src, dst = Path(tmp) / "float32.onnx", Path(tmp) / "fused.onnx"
        onnx.save(model, str(src))  # a path: given a ModelProto, 1.32 looks for its tensors in external files
        quant_pre_process(src, dst, skip_symbolic_shape=True)
        out = onnx.load(str(dst))
    used = {n.domain for n in out.graph.node} | {"", "ai.onnx"}
    kept = [o for o in out.opset_import if o.domain in used]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    return out


#: ONNX ops that only move or reshape data: never offered as a layer to keep in float
LAYOUT_OPS = frozenset({"Shape", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Cast", "Concat",
                        "Slice", "Split", "Identity", "Constant", "QuantizeLinear", "DequantizeLinear"})


class OnnxKeepFloat:
    """Static int8 with the named layers' nodes left in float (ONNX Runtime's ``nodes_to_exclude``).

    A layer is named as ``--explain`` shows it: a TF op (tf2onnx keeps TF's op names in
    its node outputs), a Keras scope, or a signature output. ONNX Runtime calibrates on
    every call (its ``quantize_static`` has no way to reuse ranges).
    """

    def __init__(self, model: onnx.ModelProto, calibration: InputSource | np.ndarray | None) -> None:
        # The layers are the fused graph's (a Gemm is its MatMul and Add): node names to exclude must exist there.
        self._model = fused_for_quantization(model) if ONNX_INT8_RECIPE.fuse else model
        self._recipe = dataclasses.replace(ONNX_INT8_RECIPE, fuse=False)
        self._calibration = calibration
        #: (label, node name) of every node that computes, in graph order
        self.layers: list[tuple[str, str]] = [(op_key(n.output[0]), n.name) for n in self._model.graph.node
                                              if n.op_type not in LAYOUT_OPS and n.output and n.output[0]]

    def nodes(self, keep_float: Sequence[str]) -> list[str]:
        """The node names of the layers ``keep_float`` names (a label, an op, or a scope)."""
        return select_layers(self.layers, keep_float, "ONNX")

    def quantize_model(self, keep_float: Sequence[str]) -> onnx.ModelProto:
        return quantize_onnx_int8(self._model, self._calibration, self._recipe, self.nodes(keep_float))

    def quantize(self, keep_float: Sequence[str]) -> bytes:
        """The int8 model with ``keep_float``'s layers in float (no metadata embedded)."""
        nodes = self.nodes(keep_float)
        with quiet_native_output():
            return quantize_onnx_int8(self._model, self._calibration, self._recipe, nodes).SerializeToString()


def float_onnx(saved_model: Path, opset: int) -> onnx.ModelProto:
    """The float32 ONNX graph of the SavedModel (converted once per SavedModel state and opset)."""
    import onnx

    return onnx.load_from_string(_float_graph(str(saved_model), opset, _fingerprint(saved_model)))


def check_onnx(model: bytes) -> None:
    """The ONNX checker passes and ONNX Runtime loads and runs the model (else the exception propagates)."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load_from_string(model))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    from edgefm.formats.onnx_file import ORT_TYPES

    rng = np.random.default_rng(PROBE_SEED)
    feeds = {}
    for i in session.get_inputs():
        x = rng.random([PROBE_BATCH if not isinstance(d, int) else d for d in i.shape], dtype=np.float32)
        dtype = np.dtype(ORT_TYPES.get(i.type, "float32"))
        feeds[i.name] = x.astype(dtype) if dtype.kind == "f" else (x * 4).astype(dtype)  # integers 0..3
    outputs = session.run(None, feeds)
    if not all(np.all(np.isfinite(o)) for o in outputs if np.asarray(o).dtype.kind == "f"):
        raise ExportError("The exported ONNX model produces NaN or Inf on a probe batch.")
