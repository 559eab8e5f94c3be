"""The .tflite format: a FlatBuffer with the identifier ``TFL3``.

Everything edgefm reads from a .tflite file without running it lives here: the
cheap structure check made before a runtime sees the file, the operator
histogram and the header facts ``edgefm inspect`` shows. Embedded metadata is
``edgefm.formats.metadata``. The FlatBuffer schema is the one ``ai_edge_litert``
ships (``schema_py_generated``).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefm.core.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    from edgefm.core.verdicts import PassedChecks

TFLITE_IDENTIFIER = b"TFL3"
SUFFIX = ".tflite"


def check_tflite_structure(path: Path, what_to_do: str, passed: PassedChecks | None = None) -> None:
    """The FlatBuffer identifier and a root table offset inside the file, else a ModelFileError.

    ``passed`` is taken for the same signature as ``check_onnx_structure`` and not used: this
    check reads 8 bytes, which costs less than hashing the file to look its verdict up.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(
            f"{path} is not a TFLite model: its flatbuffer identifier is {head[4:8]!r}, expected "
            f"{TFLITE_IDENTIFIER!r}. {what_to_do}"
        )
    root = int.from_bytes(head[:4], "little")
    if root < 8 or root >= size:
        raise ModelFileError(
            f"{path} is truncated or corrupt: its root table offset {root} lies outside the "
            f"file's {size} bytes. {what_to_do}"
        )


def tflite_op_counts(path: Path) -> dict[str, int]:
    """Operator histogram of the main subgraph (most frequent first), read from the FlatBuffer.

    Read from the file, not from an interpreter: after ``allocate_tensors`` LiteRT
    reports XNNPACK's DELEGATE nodes instead of the model's operators.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        codes.append(custom.decode() if custom else names.get(code, f"OP_{code}"))
    graph = model.Subgraphs(0)
    counts = collections.Counter(codes[graph.Operators(j).OpcodeIndex()] for j in range(graph.OperatorsLength()))
    return dict(counts.most_common())


def tflite_details(path: Path) -> dict[str, Any]:
    """Schema version, description, subgraph and signature counts, metadata entry names."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    description = model.Description()
    return {
        "schema_version": int(model.Version()),
        "description": description.decode("utf-8", "replace") if description else "",
        "subgraphs": int(model.SubgraphsLength()),
        "signature_defs": int(model.SignatureDefsLength()),
        "metadata_entries": [
            (model.Metadata(i).Name() or b"").decode("utf-8", "replace") for i in range(model.MetadataLength())
        ],
        "min_runtime_version": tflite_min_runtime_version(path) or "not recorded",
        "operator_versions": tflite_op_versions(path),
    }


def tflite_output_steps(path: Path) -> dict[str, float]:
    """One quantization step of each signature output: its own scale, or that of the tensor a DEQUANTIZE made it from.

    An int8 model with float I/O ends in DEQUANTIZE: its float outputs move in steps of the
    int8 tensor's scale. Outputs computed in float are left out.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    if not model.SignatureDefsLength():
        return {}
    graph, sig = model.Subgraphs(0), model.SignatureDefs(0)
    names = _op_names(schema)
    producer = {}
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        for k in range(op.OutputsLength()):
            producer[op.Outputs(k)] = op

    def scale(index: int) -> float | None:
        q = graph.Tensors(index).Quantization()
        values = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        return float(values[0]) if values is not None and len(values) == 1 else None

    out = {}
    for i in range(sig.OutputsLength()):
        entry = sig.Outputs(i)
        index = entry.TensorIndex()
        step = scale(index)
        op = producer.get(index)
        if step is None and op is not None:
            code = model.OperatorCodes(op.OpcodeIndex())
            if names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) == "DEQUANTIZE":
                step = scale(op.Inputs(0))
        if step is not None:
            out[entry.Name().decode()] = step
    return out


def tflite_requirements(path: Path) -> str:
    """What a runtime must have to load the file, in one line: ``TFLite >= 2.14.0; FULLY_CONNECTED v12, ...``."""
    ops = ", ".join(f"{op} v{v}" for op, v in tflite_op_versions(path).items())
    return f"TFLite >= {tflite_min_runtime_version(path) or '?'}; {ops}"


def _op_names(schema: Any) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def tflite_op_versions(path: Path) -> dict[str, int]:
    """Each operator code's version as the file records it (``{"FULLY_CONNECTED": 12, ...}``; highest per name).

    A runtime loads a file only if it registers every operator at that version:
    TFLite then fails with "Didn't find op for builtin opcode 'X' version 'N'".
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    names = _op_names(schema)
    out: dict[str, int] = {}
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        custom = oc.CustomCode()
        name = custom.decode() if custom else names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        out[name] = max(out.get(name, 0), int(oc.Version()))
    return dict(sorted(out.items()))


def tflite_min_runtime_version(path: Path) -> str | None:
    """The ``min_runtime_version`` metadata the converter writes (the oldest TF Lite release it expects), or None.

    The converter computes it from the op versions it emitted (TF's
    ``lite/tools/versioning/runtime_version.cc``) and pads the string with NULs.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"min_runtime_version":
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            raw = bytes(data) if not isinstance(data, int) else b""
            return raw.split(b"\0", 1)[0].decode("ascii", "replace") or None
    return None


def with_op_version(path: Path, op: str, version: int, out: Path) -> Path | None:
    """A copy of ``path`` at ``out`` whose operator ``op`` records ``version``; None if the file stores no version.

    The version is an int32 field of the ``OperatorCode`` table (field 2, vtable slot 8),
    overwritten in place: no other byte moves. Used only to ask a runtime which version it
    has (``runtime_check.versions.runtime.newest_op_version``), never to make a file to ship.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(Path(path).read_bytes())
    model = schema.Model.GetRootAs(bytes(data), 0)
    names = _op_names(schema)
    found = False
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        if names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())) != op or oc.CustomCode():
            continue
        slot = oc._tab.Offset(8)
        if not slot:
            return None
        pos = oc._tab.Pos + slot
        data[pos:pos + 4] = int(version).to_bytes(4, "little", signed=True)
        found = True
    if not found:
        return None
    Path(out).write_bytes(bytes(data))
    return Path(out)


def tflite_quantization(path: Path) -> str:
    """What a .tflite file was quantized as, read from its FlatBuffer: int8, float16, dynamic or none.

    For files edgefm did not write (which carry no ``quantization`` metadata): a
    QUANTIZE op means full-integer (int8); DEQUANTIZE alone means float16 weights
    dequantized at load; int8 tensors without either mean dynamic range when float
    activations remain, else full-integer with int8 inputs and outputs (``--int8-io``:
    no QUANTIZE op, no float tensor at all; it was taken for dynamic range before).
    """
    from ai_edge_litert import schema_py_generated as schema

    ops = tflite_op_counts(path)
    if "QUANTIZE" in ops:
        return "int8"
    if "DEQUANTIZE" in ops:
        return "float16"
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    if not any(t.Type() == schema.TensorType.INT8 for t in tensors):
        return "none"

    def constant(t: Any) -> bool:
        buf = model.Buffers(t.Buffer())
        return buf is not None and (buf.DataLength() > 0 or buf.Offset() > 0)

    floats = any(t.Type() == schema.TensorType.FLOAT32 and not constant(t) for t in tensors)
    return "dynamic" if floats else "int8"


def tflite_io_names(path: Path, signature_key: str) -> tuple[list[str], list[str]]:
    """The name of each main-subgraph input and output, in the subgraph's order.

    Names come from the signature ``signature_key`` (what LiteRT's signature runner
    calls them), else the first signature, else the tensor names. Runtimes that
    address I/O by position (TFLite Micro) name their tensors with these.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    by_index: dict[int, str] = {}
    sigs = [model.SignatureDefs(i) for i in range(model.SignatureDefsLength())]
    picked = next((s for s in sigs if (s.SignatureKey() or b"").decode() == signature_key), sigs[0] if sigs else None)
    if picked is not None:
        for maps, count in ((picked.Inputs, picked.InputsLength()), (picked.Outputs, picked.OutputsLength())):
            for i in range(count):
                by_index[maps(i).TensorIndex()] = (maps(i).Name() or b"").decode()

    def name(t: int) -> str:
        return by_index.get(t) or (graph.Tensors(t).Name() or b"").decode() or f"tensor_{t}"

    return ([name(graph.Inputs(i)) for i in range(graph.InputsLength())],
            [name(graph.Outputs(i)) for i in range(graph.OutputsLength())])
