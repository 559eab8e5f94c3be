"""Question (a) for a quantized file: does this runtime execute THIS file correctly?

Against TensorFlow an int8 file differs by its quantization error, which grows with
depth, so a TF bound loose enough for a good int8 file can hide a runtime or kernel
fault. The same file run by an exact oracle has no such excuse: LiteRT with its
reference kernels (``OpResolverType.BUILTIN_REF``) and ONNX Runtime with graph
optimisation off (``runtime_check.device.ledger``'s host paths) compute the same
integer arithmetic, so the runtime and the oracle may differ only by requantization
rounding, a few steps of the output's quantization grid, whatever the depth.

``oracle_steps`` is the largest difference, in steps, over every int8 output on the
first ``ORACLE_ROWS`` rows (reference kernels are slow: a MobileNetV2 runs ~10x slower
in them). Question (b), is the quantized model good enough, stays the comparison with
TensorFlow by the task's metrics.

Measured (benchmarks.zoo, 1,000 rows, LiteRT XNNPACK vs reference kernels; ONNX Runtime
all vs no graph optimisation), the largest difference in output steps of a good file:
resnet int8 1 (ONNX 1), conv1d 7 on the regression head (ONNX 2), detect 7 on the boxes
(ONNX 7), text 3 (ONNX 1), MobileNetV2 8 (ONNX 2), EfficientNetB0 31 (ONNX 3). A kernel
that drops a channel or misreads a zero point moves outputs by tens of steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.manifest import Artifact
from runtime_check.verify.results import Metric

#: rows the oracle runs on (the start of the verify inputs)
ORACLE_ROWS = 256
#: the metric's name in reports
ORACLE_METRIC = "oracle_steps"


def two_questions(a: Any) -> str | None:
    """``NAME: (a) runtime vs oracle ...; (b) vs TensorFlow ...`` for an ArtifactResult with an oracle metric."""
    oracle = next((m for m in a.metrics if m.name == ORACLE_METRIC), None)
    if oracle is None:
        return None
    task = [m.describe() for m in a.failures if m.name != ORACLE_METRIC]
    undecided = [m.name for m in a.inconclusive]
    b = "NO: " + "; ".join(task) if task else "undecided: " + ", ".join(undecided) if undecided else "yes"
    return (f"{a.name}: (a) does the runtime execute this file correctly? {'yes' if oracle.passed else 'NO'}: "
            f"{oracle.describe()}. (b) is the quantized model good enough (against TensorFlow)? {b}.")


def run_oracle(path: Path, batches: Any, rows: int = ORACLE_ROWS) -> tuple[str, dict[str, np.ndarray]] | None:
    """The exact oracle's outputs on the first ``rows`` rows of ``batches``, and its name; None: no oracle."""
    from runtime_check.device.ledger import host_path_runtime

    found = host_path_runtime(path)
    if found is None:
        return None
    label, runtime = found
    parts: dict[str, list[np.ndarray]] = {}
    seen = 0
    runtime.activate()
    try:
        for batch in batches:
            take = min(rows - seen, len(next(iter(batch.values()))))
            out = runtime.infer({k: v[:take] for k, v in batch.items()})
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
            seen += take
            if seen >= rows:
                break
    finally:
        runtime.deactivate()
    return label, {k: np.concatenate(v) for k, v in parts.items()}


def oracle_metric(runtime_out: Mapping[str, np.ndarray], oracle_out: Mapping[str, np.ndarray], art: Artifact,
                  bound: float | None, label: str) -> Metric:
    """The runtime's outputs against the oracle's (same file, same first rows), in quantization steps."""
    from runtime_check.device.ledger import path_ledger

    n = len(next(iter(oracle_out.values()))) if oracle_out else 0
    ledger = path_ledger({k: np.asarray(v)[:n] for k, v in runtime_out.items()}, oracle_out, art)
    stepped = {k: e for k, e in ledger["outputs"].items() if "step" in e}
    if not stepped:  # float outputs not on a grid: the largest difference relative to the output's peak
        worst = max((e["max_abs_diff"] / max(float(np.abs(oracle_out[k]).max()), 1e-30)
                     for k, e in ledger["outputs"].items()), default=0.0)
        return Metric.check(ORACLE_METRIC, worst, None, "info",
                            detail=f"{label} on {n} rows: outputs on no quantization grid; relative difference")
    steps = {k: max((int(s) for s in e["step_histogram"]), default=0) for k, e in stepped.items()}
    worst_out = max(steps, key=lambda k: steps[k])
    over = sum(e["over_one_step"] for e in stepped.values())
    total = sum(sum(e["step_histogram"].values()) for e in stepped.values())
    detail = (f"{label} on {n} rows: worst {steps[worst_out]} step(s) on {worst_out}; "
              f"{over} of {total} values > 1 step apart; exact {100 * ledger['exact_match_rate']:.1f}%")
    return Metric.check(ORACLE_METRIC, steps[worst_out], bound, "<=", detail=detail)
