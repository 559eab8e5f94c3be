"""The .onnx format: a protobuf ``ModelProto``.

Everything edgefm reads from an .onnx file without running it lives here: the
element-type names, the I/O specs of a graph, the structure check made before
ONNX Runtime sees the file, the operator histogram and the header facts
``edgefm inspect`` shows. Embedded metadata is ``edgefm.formats.metadata``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefm.core.contract import OUTPUT_NAMES
from edgefm.core.errors import ModelFileError
from edgefm.core.fileio import sha256_file
from edgefm.core.manifest import TensorSpec

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from edgefm.core.verdicts import PassedChecks

SUFFIX = ".onnx"
#: ``TensorProto.DataType`` values -> NumPy dtype names (the ones edgefm's models use)
ELEMENT_TYPES: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                                 10: "float16"}
#: ONNX Runtime's type strings (``NodeArg.type``) -> NumPy dtype names
ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(float16)": "float16",
}


def _spec(value: Any) -> TensorSpec:
    t = value.type.tensor_type
    return TensorSpec(
        name=value.name,
        dtype=ELEMENT_TYPES.get(t.elem_type, str(t.elem_type)),
        shape=[int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim],
    )


def onnx_io_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph inputs and outputs (outputs in the contract's order: logits, probabilities, then by name)."""
    ins = [_spec(v) for v in model.graph.input]
    outs = sorted((_spec(v) for v in model.graph.output),
                  key=lambda s: (OUTPUT_NAMES.index(s.name) if s.name in OUTPUT_NAMES else len(OUTPUT_NAMES), s.name))
    return ins, outs


#: What ``check_onnx_structure`` checks, as a number in the key of its remembered passes
#: (``structure_check_key``): bump it when the check changes, so a pass of the older check is not reused.
STRUCTURE_CHECK_VERSION = 1
#: the distributions whose code gives the verdict: onnx (loader and C++ checker) and protobuf (the parser)
STRUCTURE_CHECKERS = ("onnx", "protobuf")


def structure_check_key(file_sha256: str) -> str | None:
    """The key of ``check_onnx_structure``'s verdict on a file with this sha256 (``None``: onnx is not installed).

    The versions come from package metadata, so the key costs no ``import onnx``.
    """
    from importlib import metadata

    try:
        versions = [f"{dist}={metadata.version(dist)}" for dist in STRUCTURE_CHECKERS]
    except metadata.PackageNotFoundError:
        return None
    made_of = "\n".join([f"check_onnx_structure {STRUCTURE_CHECK_VERSION}", *versions, f"sha256 {file_sha256}"])
    return hashlib.sha256(made_of.encode("utf-8")).hexdigest()


def check_onnx_structure(path: Path, what_to_do: str, passed: PassedChecks | None = None) -> None:
    """The protobuf parses, holds a graph, and passes the ONNX checker; else a ModelFileError.

    The ONNX checker is C++ run in this process; it is built to reject malformed
    graphs and ~27,000 fuzzed mutants never crashed it. Runtimes load only in the probe.

    ``passed``: where passes are remembered (``edgefm.core.verdicts``). A file whose
    bytes passed this check before, under the same onnx and protobuf versions, is
    not checked again: the verdict is the same, and ``import onnx`` is most of what
    the check costs (0.5 s). Only a model without external data is remembered: the
    verdict on one with external data also depends on the files beside it.
    """
    sha = key = None
    if passed is not None:
        with contextlib.suppress(OSError):  # unreadable: onnx.load below says so in the check's own words
            sha = sha256_file(path)
        key = None if sha is None else structure_check_key(sha)
        if key is not None and key in passed:
            return
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelFileError(f"{path} is not a valid ONNX protobuf ({e}). {what_to_do}") from e
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(f"{path} parses but holds no ONNX graph (no nodes or opset). {what_to_do}")
    check_external_data(model, Path(path), what_to_do)
    try:
        # Given the path, not the proto: the checker then finds external data beside the model,
        # not relative to the current directory (with the proto it refused a valid model run
        # from elsewhere).
        onnx.checker.check_model(str(path))
    except Exception as e:  # ValidationError, or e.g. UnicodeDecodeError for a name that is not UTF-8
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path} fails the ONNX checker: {first}. {what_to_do}") from e
    # Remembered only for the bytes that were checked: the file unchanged since it was hashed.
    if passed is not None and key is not None and not _uses_external_data(model) and sha256_file(path) == sha:
        passed.add(key)


def _uses_external_data(model: onnx.ModelProto) -> bool:
    """Whether any initializer of the main graph keeps its values in a file beside the model."""
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in model.graph.initializer)


def check_external_data(model: onnx.ModelProto, path: Path, what_to_do: str) -> None:
    """Every external-data file of ``model`` lies in the model's own directory (symlinks resolved).

    ONNX Runtime reads an initializer's ``location`` relative to the model file; an
    absolute path, ``..`` or a symlink out of the directory would make it read
    another file (a secret, a device) into the weights.
    """
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    base = Path(path).resolve().parent
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        target = (base / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base) or target == base:
            raise ModelFileError(
                f"{path}: the weights of {tensor.name!r} are in external data at {location!r}, outside the model's "
                f"directory {base} (resolved: {target}). Keep external data files beside the model. {what_to_do}"
            )
        if not target.is_file():
            raise ModelFileError(
                f"{path}: the weights of {tensor.name!r} are in {location!r}, which is missing beside the model "
                f"({target}). Copy the external data file with the model. {what_to_do}"
            )


def onnx_operators(path: Path) -> tuple[dict[str, int], dict[str, Any]]:
    """Op-type histogram of the main graph (most frequent first) and the model's header facts."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = Counter(node.op_type for node in model.graph.node)
    details = {
        "ir_version": int(model.ir_version),
        "opset": {(imp.domain or "ai.onnx"): int(imp.version) for imp in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "graph": model.graph.name,
    }
    return dict(counts.most_common()), details


#: ONNX operators that only a quantized graph holds
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                           "ConvInteger", "DynamicQuantizeLinear"})


def onnx_quantization(path: Path) -> str:
    """``int8`` when the graph holds quantization operators, else ``none`` (for files edgefm did not write)."""
    ops, _ = onnx_operators(path)
    return "int8" if QUANTIZED_OPS & set(ops) else "none"
