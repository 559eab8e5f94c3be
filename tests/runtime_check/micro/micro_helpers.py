"""Planting a fault in an int8 .tflite (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def flip_one_channel(path: Path) -> None:
    """Negate output channel 0 of the first int8 FULLY_CONNECTED/CONV_2D weights, in the file's bytes."""
    from ai_edge_litert import schema_py_generated as schema

    blob = bytearray(path.read_bytes())
    model = schema.Model.GetRootAs(bytes(blob), 0)
    graph = model.Subgraphs(0)
    wanted = {schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.CONV_2D}
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) not in wanted:
            continue
        weights = graph.Tensors(op.Inputs(1))
        buf = model.Buffers(weights.Buffer())
        if weights.Type() != schema.TensorType.INT8 or buf.DataLength() == 0:
            continue
        start = buf._tab.Vector(buf._tab.Offset(4))  # where Buffer.data's bytes start (as DataAsNumpy reads them)
        per_channel = buf.DataLength() // int(weights.ShapeAsNumpy()[0])
        if start < 0 or start + per_channel > len(blob):  # stored out of line (offset buffers): not by this helper
            continue
        channel = np.frombuffer(bytes(blob[start : start + per_channel]), np.int8)
        blob[start : start + per_channel] = np.clip(-channel.astype(np.int16), -127, 127).astype(np.int8).tobytes()
        path.write_bytes(bytes(blob))
        return
    raise AssertionError(f"no int8 weights found in {path}")
