"""The rounding audit: TFLite Micro vs LiteRT (XNNPACK) vs LiteRT's reference kernels, in quantization steps.

TFLM's int8 kernels requantize with two roundings (a rounding doubling high
multiply, then a rounding shift: gemmlowp's scheme) where XNNPACK rounds once, so
about 1-2% of int8 values differ by one step (tflite-micro#3252). One step is
that, and expected; more than one step means the kernels compute something else,
and is flagged with the first operator (in execution order) where it appears.

Outputs are compared on all three paths (``ledger.compare_paths``: histograms in
the output's step). Intermediate int8 tensors are compared between TFLM
(``kPreserveAllTensors``: ``GetTensor`` after each invoke) and LiteRT's reference
kernels (``experimental_preserve_all_tensors``), in the integer units of each
tensor (= steps). XNNPACK's intermediates are not compared: inside its fused
partitions LiteRT never writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import UsageError
from runtime_check.device.ledger import FLAG_STEPS, compare_paths
from runtime_check.micro.tflm_runtime import TFLMRuntime, arena_for
from runtime_check.runtimes.litert_runtime import LiteRTRuntime

ONE_STEP = "rounding (expected: TFLM rounds twice)"
OVER_ONE_STEP = "flagged: more than one quantization step"
TFLM, XNNPACK, REFERENCE = "TFLM", "LiteRT XNNPACK", "LiteRT reference kernels"


def _op_outputs(path: Path) -> list[tuple[int, str, int, str, list[int]]]:
    """(op index, op name, tensor index, tensor name, op's input tensors) of every int8 tensor an op writes, in order."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    found = []
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        code = model.OperatorCodes(op.OpcodeIndex())
        op_name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [op.Inputs(k) for k in range(op.InputsLength()) if op.Inputs(k) >= 0]
        for k in range(op.OutputsLength()):
            t = op.Outputs(k)
            if t >= 0 and graph.Tensors(t).Type() == schema.TensorType.INT8:
                found.append((j, op_name, t, (graph.Tensors(t).Name() or b"").decode(), inputs))
    return found


def _activation_bytes(path: Path) -> int:
    """Bytes of every non-constant tensor: what an arena that keeps them all (kPreserveAllTensors) needs on top."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    total = 0
    for t in range(graph.TensorsLength()):
        tensor = graph.Tensors(t)
        buf = model.Buffers(tensor.Buffer())
        if buf is not None and buf.DataLength() > 0:
            continue
        total += int(np.prod([max(int(d), 1) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else [1])) * 8
    return total


def _step_histogram(counts: np.ndarray) -> dict[str, int]:
    return {str(i): int(c) for i, c in enumerate(counts) if c}


def rounding_audit(path: Path, feeds: Mapping[str, np.ndarray], *, steps: Mapping[str, float] | None = None
                   ) -> dict[str, Any]:
    """The audit of the int8 file ``path`` on ``feeds`` (logical float inputs, any number of rows)."""
    from edgefm.core.quiet import quiet_native_output
    from edgefm.formats.tflite_file import tflite_quantization

    path = Path(path)
    if tflite_quantization(path) != "int8":
        raise UsageError(f"{path} is not an int8 .tflite file: the rounding audit compares int8 kernels only.")
    from tflite_micro.python.tflite_micro import runtime as tflm

    with TFLMRuntime(path) as micro, LiteRTRuntime(path) as xnn:
        outs = {TFLM: micro.infer(feeds), XNNPACK: xnn.infer(feeds)}
        raw_in, _ = micro.raw_specs()
    from runtime_check.device.ledger import LiteRTReferenceKernels

    with LiteRTReferenceKernels(path) as ref:
        outs[REFERENCE] = ref.infer(feeds)

    # intermediates: TFLM keeping every tensor vs LiteRT's reference kernels keeping every tensor, row by row
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    written = _op_outputs(path)
    data = path.read_bytes()
    with quiet_native_output():
        keep = tflm.Interpreter.from_bytes(data, arena_size=arena_for(path).bytes + _activation_bytes(path) + 65536,
                                           intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
        lite = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                           experimental_preserve_all_tensors=True)
        lite.allocate_tensors()
    lite_inputs = [d["index"] for d in lite.get_input_details()]
    counts: dict[int, np.ndarray] = {t: np.zeros(0, np.int64) for _, _, t, _, _ in written}
    stored = [spec.quantize(feeds[spec.name]) if spec.quantized else feeds[spec.name] for spec in raw_in]
    rows = next(iter(feeds.values())).shape[0]
    for r in range(rows):
        for i, x in enumerate(stored):
            keep.set_input(x[r : r + 1], i)
            lite.set_tensor(lite_inputs[i], x[r : r + 1])
        keep.invoke()
        lite.invoke()
        for _, _, t, _, _ in written:
            a = np.asarray(keep.GetTensor(t, 0)["tensor_data"], np.int64).ravel()
            b = np.asarray(lite.get_tensor(t), np.int64).ravel()
            if a.shape != b.shape:
                continue
            c = np.bincount(np.abs(a - b))
            if len(c) > len(counts[t]):
                c[: len(counts[t])] += counts[t]
                counts[t] = c
            else:
                counts[t][: len(c)] += c
    total = np.zeros(1, np.int64)
    first = None
    per_tensor = []
    for j, op, t, name, inputs in written:
        c = counts[t]
        if not len(c):
            continue
        total = np.pad(total, (0, max(0, len(c) - len(total))))
        total[: len(c)] += c
        worst = int(len(c) - 1)
        per_tensor.append({"op_index": j, "op": op, "tensor": name, "max_steps": worst,
                           "step_histogram": _step_histogram(c)})
        if worst > FLAG_STEPS and first is None:
            # how far its int8 inputs already were apart: a softmax amplifies a 1-step logit difference
            # into several steps of probability (measured on edgefm's CNN), a new kernel difference starts from 0
            before = [len(counts[i]) - 1 for i in inputs if i in counts and len(counts[i])]
            first = {"op_index": j, "op": op, "tensor": name, "max_steps": worst,
                     "input_max_steps": max(before) if before else None}
    pairs = {
        f"{TFLM} vs {XNNPACK}": compare_paths(outs[TFLM], outs[XNNPACK], steps=steps, int8=True),
        f"{TFLM} vs {REFERENCE}": compare_paths(outs[TFLM], outs[REFERENCE], steps=steps, int8=True),
        f"{XNNPACK} vs {REFERENCE}": compare_paths(outs[XNNPACK], outs[REFERENCE], steps=steps, int8=True),
    }
    return {
        "rows": rows,
        "labels": {"0": "identical", "1": ONE_STEP, ">1": OVER_ONE_STEP},
        "outputs": pairs,
        "intermediates": {
            "compared": f"{TFLM} vs {REFERENCE}",
            "tensors": len(per_tensor),
            "step_histogram": _step_histogram(total),
            "per_tensor": per_tensor,
            "first_over_one_step": first,
        },
        "flagged": first is not None or any(p["flagged"] for p in pairs.values()),
    }


def describe_audit(audit: Mapping[str, Any]) -> list[str]:
    """The audit as lines for a terminal: one per output pair, one for the intermediates."""

    def hist(h: Mapping[str, int]) -> str:
        n = sum(h.values()) or 1
        over = sum(v for k, v in h.items() if int(k) > FLAG_STEPS)
        parts = [f"same {100 * h.get('0', 0) / n:.2f}%", f"1 step {100 * h.get('1', 0) / n:.2f}%"]
        if over:
            parts.append(f">1 step {100 * over / n:.2f}% (max {max(int(k) for k in h)})")
        return ", ".join(parts)

    lines = []
    for pair, entry in audit["outputs"].items():
        for out, e in entry["outputs"].items():
            if "step_histogram" in e:
                lines.append(f"{pair}, {out}: {hist(e['step_histogram'])}")
    inter = audit["intermediates"]
    lines.append(f"{inter['compared']}, {inter['tensors']} int8 tensors: {hist(inter['step_histogram'])}")
    lines.append(f"1 step = {ONE_STEP}")
    first = inter["first_over_one_step"]
    if first:
        came_in = first.get("input_max_steps")
        why = "" if came_in is None else (
            f"; its inputs were already {came_in} step{'s' if came_in != 1 else ''} apart" if came_in else
            "; its inputs were identical: the kernels differ here")
        lines.append(f"FLAGGED: {first['max_steps']} steps first at op {first['op_index']} {first['op']} "
                     f"(tensor {first['tensor']}){why}")
    return lines
