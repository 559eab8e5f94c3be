"""Describe an artifact: format, size, hash, I/O specs, operators, embedded metadata.

Loads the model through the one runtime interface (``runtime_for``), so a corrupt
or foreign file is validated and probed in a child process before a native
runtime sees it. The extra read-only details (ONNX opset and producer, TFLite
schema version and metadata names) are read here from the files themselves.
(Not named ``inspect.py``: that would shadow the standard library module.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgefm.core.fileio import human_bytes, sha256_tree, tree_bytes
from edgefm.core.manifest import TensorSpec
from edgefm.formats.onnx_file import QUANTIZED_OPS, onnx_operators
from edgefm.formats.tflite_file import tflite_details, tflite_op_counts, tflite_quantization


@dataclass
class ModelReport:
    """What ``edgefm inspect`` shows. Shapes use ``None`` for the dynamic batch."""

    path: Path
    format: str  # savedmodel | tflite | onnx
    runtime: str
    bytes: int
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    operators: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_error: str | None = None  # embedded metadata present but unreadable
    signatures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    #: int8 | float16 | dynamic | none, read from the file's operators and tensors (not its metadata)
    quantization: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def embedded_metadata(path: Path) -> tuple[dict[str, Any], str | None]:
    """``edgefm.formats.metadata.read_metadata`` for a model file, and its error message if the table is unreadable."""
    from edgefm.core.errors import ModelFileError

    if Path(path).is_dir():  # a SavedModel carries its labels in the `labels` signature instead
        return {}, None
    try:
        from edgefm.formats.metadata import read_metadata
    except ImportError:  # pragma: no cover - the metadata module ships with edgefm
        return {}, None
    try:
        return read_metadata(Path(path)), None
    except ModelFileError as e:
        return {}, str(e)


def inspect_model(path: Path) -> ModelReport:
    """Load ``path`` in its runtime and describe it; raises ``ModelFileError``/``UsageError`` for bad files."""
    from runtime_check.runtimes.litert_runtime import LiteRTRuntime
    from runtime_check.runtimes.registry import runtime_for
    from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

    path = Path(path)
    if path.is_dir():
        return _savedmodel_report(path)
    runtime = runtime_for(path)
    operators: dict[str, int] = {}
    signatures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    quantization = ""
    with runtime:
        inputs, outputs = runtime.input_specs, runtime.output_specs
        if isinstance(runtime, LiteRTRuntime):
            inputs, outputs = runtime.raw_specs()  # int8 I/O with its scale and zero-point
            operators = tflite_op_counts(path)
            details = tflite_details(path)
            quantization = tflite_quantization(path)
        elif isinstance(runtime, TensorFlowRuntime):
            signatures = runtime.signatures()
        else:
            operators, details = onnx_operators(path)
            quantization = "int8" if QUANTIZED_OPS & set(operators) else "none"
        details = {**details, **runtime.versions()}
    metadata, metadata_error = embedded_metadata(path)
    return ModelReport(
        path=path,
        format=runtime.format,
        runtime=runtime.name,
        bytes=tree_bytes(path),
        sha256=sha256_tree(path),
        inputs=list(inputs),
        outputs=list(outputs),
        operators=operators,
        metadata=metadata,
        metadata_error=metadata_error,
        signatures=signatures,
        details=details,
        quantization=quantization,
    )


def _savedmodel_report(path: Path) -> ModelReport:
    """A SavedModel described from its ``saved_model.pb`` alone: inspecting never runs the model's code.

    (Loading a SavedModel runs its resource initializers: one that writes a file
    wrote it when inspected.) The runtime named is the one that would run it.
    """
    from edgefm.core.contract import SAVEDMODEL_FORMAT, SERVING_SIGNATURE
    from edgefm.core.errors import ModelFileError
    from edgefm.formats.savedmodel import read_signatures, require_savedmodel_dir
    from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

    require_savedmodel_dir(path)
    signatures = read_signatures(path)
    if not signatures:
        raise ModelFileError(f"SavedModel {path} has no signatures: nothing in it can be served or converted. Save it "
                             "with `tf.saved_model.save(module, DIR, signatures={...})` or Keras's `model.export(DIR)`.")
    # Without serving_default every signature is listed (format_report) and the I/O shown is none: edgefm
    # converts the one `export --saved-model DIR --signature NAME` names.
    serving = signatures.get(SERVING_SIGNATURE, {"inputs": {}, "outputs": {}})
    note = {} if SERVING_SIGNATURE in signatures else {
        "serving": f"no {SERVING_SIGNATURE!r} signature; export one of the signatures below with "
                   f"`edgefm export --saved-model {path} --signature NAME`"}

    def specs(side: str) -> list[TensorSpec]:
        return [TensorSpec(n, str(t["dtype"]), list(t["shape"] or [])) for n, t in serving[side].items()]

    from importlib import metadata

    versions = {}
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            versions["tensorflow"] = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return ModelReport(
        path=path,
        format=SAVEDMODEL_FORMAT,
        runtime=TensorFlowRuntime.name,
        bytes=tree_bytes(path),
        sha256=sha256_tree(path),
        inputs=specs("inputs"),
        outputs=specs("outputs"),
        signatures=signatures,
        details={**note, **versions, "read_from": "saved_model.pb (the model was not loaded or run)"},
    )


def shape_text(shape: list[int | None]) -> str:
    """``[N, 28, 28]``: a dynamic dimension shows as N."""
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def spec_text(spec: TensorSpec) -> str:
    quant = f"  scale={spec.scale:.6g} zero_point={spec.zero_point}" if spec.scale is not None else ""
    return f"{spec.name:16s} {spec.dtype:8s} {shape_text(spec.shape)}{quant}"


def format_report(report: ModelReport) -> str:
    """The human-readable text ``edgefm inspect`` prints."""
    lines = [
        f"path:     {report.path}",
        f"format:   {report.format} (runtime: {report.runtime})",
        f"size:     {human_bytes(report.bytes)} ({report.bytes:,} bytes)",
        f"sha256:   {report.sha256}",
        *([f"quantization: {report.quantization} (read from its operators and tensors)"] if report.quantization else []),
        "inputs:" + ("" if report.inputs else " - (see signatures)"),
        *(f"  {spec_text(s)}" for s in report.inputs),
        "outputs:" + ("" if report.outputs else " - (see signatures)"),
        *(f"  {spec_text(s)}" for s in report.outputs),
    ]
    if report.operators:
        total = sum(report.operators.values())
        lines.append(f"operators ({len(report.operators)} kinds, {total} nodes):")
        lines += [f"  {op:24s} {n}" for op, n in report.operators.items()]
    if report.signatures:
        lines.append("signatures:")
        for key, sig in report.signatures.items():
            ins = ", ".join(f"{k} {v['dtype']} {shape_text(v['shape'])}" for k, v in sig["inputs"].items())
            outs = ", ".join(f"{k} {v['dtype']} {shape_text(v['shape'])}" for k, v in sig["outputs"].items())
            lines.append(f"  {key}: ({ins}) -> {outs}")
    if report.metadata_error:
        lines.append(f"metadata: unreadable ({report.metadata_error})")
    else:
        lines.append("metadata:" if report.metadata else "metadata: none embedded")
    for key, value in report.metadata.items():
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"  {key}: {text}")
    if report.details:
        lines.append("details:")
        for key, value in report.details.items():
            text = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else (
                ", ".join(map(str, value)) if isinstance(value, list) else str(value))
            lines.append(f"  {key}: {text}")
    return "\n".join(lines)
