"""The kernel-path ledger: how far two kernel paths of one artifact are apart, value by value.

A ledger entry compares the outputs of the same file on two paths (x86 vs a
device; LiteRT's default XNNPACK delegate vs its reference kernels; ONNX Runtime
with graph optimisation off vs all): the share of output values that are
identical, the largest difference, and for int8 artifacts a histogram of the
differences in quantization steps. More than one step is *flagged* (not failed:
the verdict is against TensorFlow with the variant's bounds): two int8 kernels
may round one step apart, more means they compute something else.

The step of an int8 output: its scale where the file stores it (int8 output
tensors); for float outputs dequantized inside the model, the spacing of the
grid the values lie on, found from the outputs themselves (the smallest gap
between distinct values of one output, kept only when every value sits on that
grid to 1% of a step).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.manifest import Artifact
from runtime_check.runtimes.base import Runtime
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.onnx_runtime import OnnxRuntime

#: more than this many steps apart is flagged
FLAG_STEPS = 1
#: values within this fraction of a step of the grid are on it
GRID_TOLERANCE = 0.01


def grid_step(values: np.ndarray) -> float | None:
    """The spacing of the quantization grid the float values lie on, or None if they are not on one."""
    v = np.unique(np.asarray(values, np.float64).ravel())
    if len(v) < 3:
        return None
    gaps = np.diff(v)
    gaps = gaps[gaps > 1e-9 * max(1.0, float(np.abs(v).max()))]
    smallest = float(gaps.min(initial=np.inf))
    if not np.isfinite(smallest):
        return None
    # float32 rounding of scale * (q - zero_point) moves each gap by ~1e-6 of a step: take the median one-step gap
    step = float(np.median(gaps[gaps < 1.5 * smallest]))
    q = (v - v[0]) / step
    return step if float(np.abs(q - np.round(q)).max()) < GRID_TOLERANCE else None


def compare_paths(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], *, steps: Mapping[str, float] | None = None,
                  int8: bool = False) -> dict[str, Any]:
    """One ledger entry over the shared outputs of ``a`` (the first path) and ``b``."""
    shared = sorted(k for k in set(a) & set(b) if np.shape(a[k]) == np.shape(b[k]))
    total = same = 0
    worst = 0.0
    per_output: dict[str, Any] = {}
    for k in shared:
        x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
        d = np.abs(x - y)
        total += d.size
        same += int((x == y).sum())
        worst = max(worst, float(d.max()) if d.size else 0.0)
        entry: dict[str, Any] = {"max_abs_diff": float(d.max()) if d.size else 0.0,
                                 "exact_match_rate": float((x == y).mean()) if d.size else 1.0}
        step = (steps or {}).get(k) or (grid_step(x) if int8 else None)
        if step:
            n = np.round(d / step).astype(np.int64)
            counts = np.bincount(n.ravel())
            entry["step"] = step
            entry["step_histogram"] = {str(i): int(c) for i, c in enumerate(counts) if c}
            entry["over_one_step"] = int((n > FLAG_STEPS).sum())
        per_output[k] = entry
    over = sum(e.get("over_one_step", 0) for e in per_output.values())
    return {
        "exact_match_rate": same / total if total else 1.0,
        "max_abs_diff": worst,
        "outputs": per_output,
        "over_one_step": over,
        "flagged": over > 0,
    }


def int8_steps(art: Artifact) -> dict[str, float]:
    """The scale of every int8/uint8 output tensor the manifest records."""
    return {s.name: float(s.scale) for s in art.outputs if s.scale is not None and s.dtype in ("int8", "uint8")}


def path_ledger(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray], art: Artifact) -> dict[str, Any]:
    """``compare_paths`` with the artifact's steps (int8 artifacts only)."""
    return compare_paths(first, second, steps=int8_steps(art), int8=art.quantization == "int8")


# -- the host's other kernel paths (Python bindings, same inputs as verify) -----------------------

class LiteRTReferenceKernels(LiteRTRuntime):
    """LiteRT with its reference kernels (``OpResolverType.BUILTIN_REF``): no XNNPACK, no optimised kernels."""

    name = "litert-reference-kernels"

    def _interpreter_options(self, litert: Any) -> dict[str, Any]:
        return {"experimental_op_resolver_type": litert.OpResolverType.BUILTIN_REF}


class OnnxOptimisationOff(OnnxRuntime):
    """ONNX Runtime with graph optimisation off (``ORT_DISABLE_ALL``; the default is ``ORT_ENABLE_ALL``)."""

    name = "onnxruntime-optimisation-off"

    def _session_options(self, opts: Any, ort: Any) -> None:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL


#: file suffix -> (ledger entry name: the default path first, the alternative's runtime)
HOST_PATHS: dict[str, tuple[str, type[Runtime]]] = {
    ".tflite": ("LiteRT XNNPACK vs reference kernels", LiteRTReferenceKernels),
    ".onnx": ("ONNX Runtime graph optimisation all vs off", OnnxOptimisationOff),
}


def host_path_runtime(path: Path) -> tuple[str, Runtime] | None:
    """The alternative kernel path of ``path`` on this machine, and its ledger entry name."""
    found = HOST_PATHS.get(Path(path).suffix.lower())
    return None if found is None else (found[0], found[1](path))
