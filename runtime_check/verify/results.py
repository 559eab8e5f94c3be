"""The results vocabulary of verify: ``Metric`` (one value against one bound) and ``ArtifactResult``
(every metric of one row), with their JSON form and formatting.

Data only, no comparison: ``runtime_check.verify.compare`` computes the metrics,
``report``/``text``/``html_page`` render them, and ``explain`` reads them; all import
this module, it imports nothing of verify.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime_check.runtimes.registry import NATIVE_LABEL

#: a multi-output model's metrics are named ``OUTPUT/metric`` (the primary output's keep the plain name)
OUTPUT_SEP = "/"
#: SNR taken for an exact tensor when measuring drops and drawing the page's bars (about float32's round-off
#: level, 2**-23 ~ 138 dB)
EXACT_DB = 140.0

#: how a measured value is held against its bound; "info" is reported, never fails
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
}
INFO = "info"


@dataclass(frozen=True)
class Metric:
    """One measured value held against one bound."""

    name: str
    value: float | int | str | None
    bound: float | int | str | None = None
    op: str = INFO
    passed: bool = True
    detail: str = ""
    #: the rows cannot tell whether the bound holds (``statistics.INCONCLUSIVE``): not a failure, not a pass
    inconclusive: bool = False

    @classmethod
    def judged(cls, name: str, value: float, bound: float, op: str, verdict: str, detail: str) -> Metric:
        """A rate judged by its confidence interval (``runtime_check.verify.statistics``): PASS, FAIL or INCONCLUSIVE."""
        return cls(name, value, bound, op, verdict != "FAIL", detail, verdict == "INCONCLUSIVE")

    @classmethod
    def check(cls, name: str, value: float | int | str, bound: float | int | str | None, op: str, detail: str = "") -> Metric:
        """Evaluate ``value op bound``; a NaN value fails, a ``None`` bound is informational."""
        if bound is None or op == INFO:
            return cls(name, value, None, INFO, True, detail)
        if op not in OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {', '.join(OPS)}")
        if isinstance(value, float) and math.isnan(value):
            passed = False
        else:
            passed = bool(OPS[op](value, bound))
        return cls(name, value, bound, op, passed, detail)

    @property
    def informational(self) -> bool:
        return self.op == INFO

    def describe(self) -> str:
        """``name = value (bound op x)`` for failure lists and error messages."""
        if isinstance(self.value, str) and self.detail:  # e.g. checksum: the detail says it all
            return f"{self.name}: {self.detail}"
        text = f"{self.name} = {format_value(self.name, self.value)}"
        if not self.informational:
            text += f" (bound {self.op} {format_value(self.name, self.bound)})"
        if self.detail:
            text += f"; {self.detail}"
        return text

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Metric:
        """The metric ``to_dict`` wrote (NaN/Inf come back from their strings)."""
        return cls(name, _from_json_number(d.get("value")), _from_json_number(d.get("bound")), str(d.get("op", INFO)),
                   bool(d.get("passed", True)), str(d.get("detail", "")), bool(d.get("inconclusive", False)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": json_number(self.value),
            "bound": json_number(self.bound),
            "op": self.op,
            "passed": self.passed,
            **({"detail": self.detail} if self.detail else {}),
            **({"inconclusive": True} if self.inconclusive else {}),
        }


@dataclass
class ArtifactResult:
    """Every check of one artifact in one runtime; ``error`` if it could not run at all."""

    name: str
    runtime: str
    path: str = ""
    format: str = ""
    quantization: str = ""
    metrics: list[Metric] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.error is None and all(m.passed for m in self.metrics)

    @property
    def failures(self) -> list[Metric]:
        return [m for m in self.metrics if not m.passed]

    @property
    def inconclusive(self) -> list[Metric]:
        """Bounds these rows cannot settle either way (the verdict is INCONCLUSIVE unless something failed)."""
        return [m for m in self.metrics if m.inconclusive]

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``INCONCLUSIVE`` (passed, but some bound needs more rows to be shown)."""
        return "FAIL" if not self.passed else "INCONCLUSIVE" if self.inconclusive else "PASS"

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} has no metric {name!r} (has: {', '.join(m.name for m in self.metrics)})")

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> ArtifactResult:
        return cls(
            name=name,
            runtime=str(d["runtime"]),
            path=str(d.get("path", "")),
            format=str(d.get("format", "")),
            quantization=str(d.get("quantization", "")),
            metrics=[Metric.from_dict(k, m) for k, m in d.get("metrics", {}).items()],
            error=d.get("error"),
            timings={k: float(v) for k, v in d.get("timings", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "path": self.path,
            "format": self.format,
            "quantization": self.quantization,
            "passed": self.passed,
            "verdict": self.verdict,
            "error": self.error,
            "metrics": {m.name: m.to_dict() for m in self.metrics},
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


# -- formatting -----------------------------------------------------------------------------

#: metrics shown as percentages in tables and messages
PERCENT_METRICS = frozenset({"top1_agreement", "top1_raw", "accuracy", "exact_match"})
#: metrics that are differences of percentages, shown in percentage points
POINT_METRICS = frozenset({"accuracy_drop"})


def format_value(name: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        name = name.rsplit(OUTPUT_SEP, 1)[-1]  # "probabilities/cosine" is formatted as "cosine"
        if not math.isfinite(v):
            return str(v)
        if name == "snr_db":
            return f"{v:.1f} dB"
        if name in PERCENT_METRICS:
            return f"{100 * v:.2f}%"
        if name in POINT_METRICS:
            return f"{100 * v:.2f} pt"
        if name == "cosine":
            return f"{v:.6f}"
        return f"{v:.3g}"
    text = str(value)
    return text if len(text) <= 16 else text[:12] + "…"


def _from_json_number(value: object) -> object:
    """``json_number``'s inverse: "nan", "inf" and "-inf" strings back to floats."""
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def json_number(value: object) -> object:
    """JSON has no NaN/Inf: write them as strings, keep everything else."""
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, np.integer):
        return int(value)
    return value


# -- row names: built from a row's parts (runtime_check.verify.rows.Row), read back only from reports --------

#: between an artifact's name and its row's label (a board's, ``native``)
ROW_MARK = "@"


def row_name(artifact: str, label: str = "") -> str:
    """A row's name in the report: the artifact's manifest name, ``@label`` for any row but its binding."""
    return f"{artifact}{ROW_MARK}{label}" if label else artifact


def artifact_of(row: str) -> str:
    """The artifact a row of a report (a reloaded one included) ran: its name up to the label."""
    return row.partition(ROW_MARK)[0]


def is_native_row(row: str) -> bool:
    """A row a native runner ran on this machine (``NAME@native``)."""
    return row.endswith(ROW_MARK + NATIVE_LABEL)
