"""Planting a fault in a real model file (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: a 2% error in one layer's parameters: ~34 dB SNR where it enters, far below float32's bound
FACTOR = 1.02


def scale_tflite_tensor(path: Path, tensor_name: str, factor: float = FACTOR) -> None:
    """Scale the constant tensor ``tensor_name`` of a .tflite by ``factor``, in the file's bytes (its buffer, found by value)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    detail = next(d for d in interp.get_tensor_details() if d["name"] == tensor_name)
    old = np.array(interp.get_tensor(detail["index"]))
    blob = path.read_bytes()
    assert blob.count(old.tobytes()) == 1, "the tensor's bytes must be unique in the file"
    path.write_bytes(blob.replace(old.tobytes(), (old * np.float32(factor)).astype(old.dtype).tobytes()))


def scale_onnx_weight_of(path: Path, node_ends_with: str) -> str:
    """Scale the initializer the first node whose name ends with ``node_ends_with`` reads; return its name."""
    import onnx

    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    node = next(n for n in model.graph.node if n.name.endswith(node_ends_with))
    return scale_onnx_initializer(path, next(i for i in node.input if i in inits))


def scale_onnx_initializer(path: Path, ends_with: str) -> str:
    """Scale the first initializer whose name ends with ``ends_with`` by FACTOR; return its name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.name.endswith(ends_with))
    arr = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((arr * np.float32(FACTOR)).astype(arr.dtype), init.name))
    onnx.save(model, str(path))
    return init.name
