"""The microcontroller checks of one .tflite artifact, as a Python user (or verify) calls them.

- ``micro_row``: the ``NAME@tflm`` row: the file in TFLite Micro on the verify
  inputs, judged by the caller's ``judge`` (verify passes TensorFlow's outputs held
  to the variant's bounds: ``compare_outputs``; this room sits below verify and
  imports nothing of it), with the exact arena, the host latency per row (labelled
  host: this is x86-64, not the MCU) and, for int8 files, the rounding audit. A
  file TFLM cannot run (missing ops, float16, dynamic range) is a row error that
  names why; it never raises, so the other rows still run.
- ``micro_summary``: whether a file runs in TFLM and its arena (``inspect --micro``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import EdgefmError, UsageError
from runtime_check.micro.arena import Arena, TflmUnsupported

#: the row suffix: artifact NAME runs as NAME@tflm
ROW_SUFFIX = "@tflm"
HOST_NOTE = "host x86-64, not the microcontroller"
#: rows of the verify inputs the rounding audit runs on (it keeps every tensor of every row: slower than the row)
AUDIT_ROWS = 200


@dataclass
class MicroRow:
    """One artifact in TFLite Micro: the verdict against TensorFlow, the arena, the audit; or why it cannot run."""

    name: str
    path: Path
    metrics: Sequence[Any] = field(default_factory=list)  # what ``judge`` returned: objects with ``passed``, ``name``
    arena: Arena | None = None
    host_seconds_per_row: float | None = None
    audit: dict[str, Any] | None = None
    error: str | None = None
    missing_ops: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.error is None and all(m.passed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "runtime": "tflm", "passed": self.passed, "error": self.error,
            "missing_ops": self.missing_ops, "metrics": {m.name: m.to_dict() for m in self.metrics},
            "arena": self.arena.to_dict() if self.arena else None,
            "host_latency": None if self.host_seconds_per_row is None else
            {"seconds_per_row": self.host_seconds_per_row, "note": HOST_NOTE},
            "rounding_audit": self.audit, "versions": self.versions,
        }

    def describe(self) -> list[str]:
        from runtime_check.micro.rounding import describe_audit

        if self.error:
            return [f"{self.name}: ERROR {self.error}"]
        failed = [m.describe() for m in self.metrics if not m.passed]
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'}" + (f" ({'; '.join(failed)})" if failed else "")]
        if self.arena:
            lines.append(f"  {self.arena.describe()}; found in {self.arena.seconds:.2f} s ({self.arena.attempts} tries)")
        if self.host_seconds_per_row is not None:
            lines.append(f"  latency {self.host_seconds_per_row * 1e6:,.0f} us per row ({HOST_NOTE})")
        if self.audit:
            lines += [f"  {line}" for line in describe_audit(self.audit)]
        return lines


def tflm_row_name(artifact: str) -> str:
    return artifact + ROW_SUFFIX


def micro_row(name: str, path: Path, feeds: Mapping[str, np.ndarray],
              judge: Callable[[dict[str, np.ndarray]], Sequence[Any]], *, audit: bool = True) -> MicroRow:
    """Run ``path`` in TFLM on ``feeds``; ``judge(outputs)`` gives the metrics (e.g. ``compare_outputs`` vs TF)."""
    from edgefm.formats.tflite_file import tflite_quantization
    from runtime_check.micro.rounding import rounding_audit
    from runtime_check.micro.tflm_runtime import TFLMRuntime

    row = MicroRow(tflm_row_name(name), Path(path))
    try:
        with TFLMRuntime(path) as micro:
            row.arena, row.versions = micro.arena, micro.versions()
            rows = next(iter(feeds.values())).shape[0]
            t0 = time.perf_counter()
            got = micro.infer(feeds)
            row.host_seconds_per_row = (time.perf_counter() - t0) / max(rows, 1)
        row.metrics = list(judge(got))
        if audit and tflite_quantization(Path(path)) == "int8":
            few = {k: v[:AUDIT_ROWS] for k, v in feeds.items()}
            row.audit = rounding_audit(Path(path), few)
    except TflmUnsupported as e:
        row.error, row.missing_ops = str(e), e.missing_ops
    except EdgefmError as e:
        row.error = str(e)
    return row


def check_micro_request(path: Path) -> None:
    """UsageError (exit 2) unless ``path`` is a .tflite file: TFLM runs nothing else."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".tflite":
        raise UsageError(f"--micro runs .tflite files in TensorFlow Lite Micro; {path} is not one. Export a TFLite "
                         "variant with `edgefm export --format tflite --quantize int8` (TFLM runs int8 and float32).")


def micro_summary(path: Path) -> dict[str, Any]:
    """Whether TFLM runs ``path`` and the smallest arena it needs: for ``inspect --micro``."""
    from runtime_check.micro.arena import require_tflm
    from runtime_check.micro.tflm_runtime import arena_for

    path = Path(path)
    check_micro_request(path)
    version = require_tflm()
    try:
        arena = arena_for(path)
    except TflmUnsupported as e:
        return {"runs": False, "reason": str(e), "missing_ops": e.missing_ops, "tflite_micro": version}
    return {"runs": True, "arena": arena.to_dict(), "arena_text": arena.describe(), "tflite_micro": version}


def micro_extras(runtime: Any, path: Path, head: Mapping[str, np.ndarray], rows: int, infer_seconds: float | None,
                 *, audit: bool = True) -> dict[str, Any]:
    """What a verify row of TFLM adds to its verdict: the arena it ran at, host latency, the rounding audit.

    ``runtime``: the row's ``TFLMRuntime`` after the run; ``head``: the first inputs (the audit's rows).
    """
    from edgefm.formats.tflite_file import tflite_quantization
    from runtime_check.micro.rounding import rounding_audit

    out: dict[str, Any] = {}
    arena = getattr(runtime, "arena", None)
    if arena is not None:
        out["arena"] = arena.to_dict()
        out["arena_text"] = arena.describe()
    if infer_seconds and rows:
        out["host_latency"] = {"seconds_per_row": infer_seconds / rows, "note": HOST_NOTE}
    if audit and tflite_quantization(Path(path)) == "int8":
        try:
            out["rounding_audit"] = rounding_audit(Path(path), {k: v[:AUDIT_ROWS] for k, v in head.items()})
        except EdgefmError as e:
            out["rounding_audit"] = {"error": str(e)}
    return out


def micro_lines(name: str, extras: Mapping[str, Any]) -> list[str]:
    """A verify row's microcontroller facts as text lines (under the table)."""
    from runtime_check.micro.rounding import describe_audit

    lines = []
    if "arena_text" in extras:
        lines.append(f"{name}: {extras['arena_text']}")
    if "host_latency" in extras:
        lines.append(f"{name}: {extras['host_latency']['seconds_per_row'] * 1e6:,.0f} us per row ({HOST_NOTE})")
    audit = extras.get("rounding_audit")
    if audit and "error" not in audit:
        lines += [f"{name}: {line}" for line in describe_audit(audit)]
    return lines


def check_micro_artifacts(artifacts: Mapping[str, Any], runnable: Sequence[str]) -> None:
    """UsageError unless one of ``artifacts`` (name -> Artifact) is a .tflite variant TFLM runs (``runnable``)."""
    if any(a.format == "tflite" and a.quantization in runnable for a in artifacts.values()):
        return
    found = ", ".join(f"{n} ({a.format} {a.quantization})" for n, a in artifacts.items()) or "none"
    raise UsageError(f"--micro runs .tflite files in TensorFlow Lite Micro (int8 or float32), and none of the "
                     f"artifacts is one (found: {found}). Export one with `edgefm export --format tflite --quantize "
                     "int8` (TFLM has no kernels for float16 weights or dynamic-range layers).")
