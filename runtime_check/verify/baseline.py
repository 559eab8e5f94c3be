"""A release against the last one: per artifact the change of every metric, of size and of latency, and the gates.

``release_diff(old, new, gates)`` compares two saved verify reports (``ParityReport``,
read back with ``ParityReport.load``: nothing runs again). Per artifact present in
both it lists each numeric metric's old and new value, the file size and the
batch-1 latency (the row's ``batch1`` time over the report's ``invariance_samples``
calls: measured by that row's own runner, call overhead included). ``Gates``
turns ``--max-regression accuracy=0.3pt,size=5%,latency=10%`` and the budgets
``--max-size NAME=256KiB`` / ``--max-latency NAME=2ms`` into ``Metric`` checks, so
the renderers (text, JUnit, Markdown) show them like any other bound.

The parsers here are what the CLI's ParamTypes call: a malformed value is one
``UsageError`` paragraph (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edgefm.core.errors import UsageError
from edgefm.core.fileio import human_bytes
from runtime_check.verify.report import ParityReport
from runtime_check.verify.results import Metric

SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}
TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
#: what --max-regression can bound, and the unit each limit is written in
REGRESSION_UNITS = {"accuracy": "pt", "size": "%", "latency": "%"}


def _number_unit(raw: str) -> tuple[float, str] | None:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*([a-zA-Zµ%]*)\s*", raw)
    return None if m is None else (float(m.group(1)), m.group(2).lower())


def parse_budget(text: str, kind: str) -> tuple[str, float]:
    """``NAME=256KiB`` -> (NAME, bytes) for kind "size"; ``NAME=2ms`` -> (NAME, seconds) for kind "latency"."""
    units = SIZE_UNITS if kind == "size" else TIME_UNITS
    example = "tflite_int8=256KiB" if kind == "size" else "tflite_int8=2ms"
    name, sep, raw = text.partition("=")
    parsed = _number_unit(raw) if sep else None
    if not name.strip() or parsed is None or parsed[1] not in units:
        raise UsageError(
            f"{text!r} is not a {kind} budget. Write NAME=VALUE with a unit, for example --max-{kind} {example} "
            f"(units: {', '.join(u for u in units if u != 'µs')})."
        )
    return name.strip(), parsed[0] * units[parsed[1]]


def parse_regressions(text: str) -> dict[str, float]:
    """``accuracy=0.3pt,size=5%,latency=10%`` -> {"accuracy": 0.3, "size": 5.0, "latency": 10.0}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        parsed = _number_unit(raw) if sep else None
        want = REGRESSION_UNITS.get(key)
        if want is None or parsed is None or parsed[1] != want:
            raise UsageError(
                f"--max-regression {text!r}: {part!r} is not METRIC=LIMIT. Bound accuracy in percentage points, "
                "size and latency in percent, for example --max-regression accuracy=0.3pt,size=5%,latency=10%."
            )
        out[key] = parsed[0]
    if not out:
        raise UsageError("--max-regression is empty; for example --max-regression accuracy=0.3pt,size=5%.")
    return out


@dataclass(frozen=True)
class Gates:
    """What a release must keep: regressions against the baseline, and absolute budgets per artifact."""

    max_regression: dict[str, float] = field(default_factory=dict)  # accuracy (pt), size (%), latency (%)
    max_size: dict[str, float] = field(default_factory=dict)  # artifact -> bytes
    max_latency: dict[str, float] = field(default_factory=dict)  # artifact -> seconds

    def __bool__(self) -> bool:
        return bool(self.max_regression or self.max_size or self.max_latency)


def latency_seconds(report: ParityReport, name: str) -> float | None:
    """Seconds per batch-1 call of row ``name`` (its ``batch1`` time over ``invariance_samples`` calls)."""
    calls = report.inputs.get("invariance_samples")
    try:
        t = report.result(name).timings.get("batch1")
    except KeyError:
        return None
    return t / calls if t and calls else None


def _size(report: ParityReport, name: str) -> int | None:
    base = name.split("@", 1)[0]  # a row in another runtime runs the same file
    return report.sizes.get(name, report.sizes.get(base))


@dataclass
class ArtifactChange:
    name: str
    metrics: dict[str, tuple[float, float]]  # metric -> (old, new)
    size: tuple[int | None, int | None]
    latency: tuple[float | None, float | None]  # seconds per batch-1 call
    passed: tuple[bool, bool]

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": {k: {"old": o, "new": n, "change": n - o} for k, (o, n) in self.metrics.items()},
                "bytes": {"old": self.size[0], "new": self.size[1]},
                "latency_s": {"old": self.latency[0], "new": self.latency[1]},
                "passed": {"old": self.passed[0], "new": self.passed[1]}}


@dataclass
class ReleaseDiff:
    """Two reports side by side, and every gate as a metric of the artifact it bounds."""

    old: str
    new: str
    changes: list[ArtifactChange]
    added: list[str]
    removed: list[str]
    gates: list[tuple[str, Metric]]

    @property
    def passed(self) -> bool:
        return all(m.passed for _, m in self.gates)

    def failures(self) -> list[str]:
        return [f"{name}: {m.describe()}" for name, m in self.gates if not m.passed]

    def summary(self) -> str:
        if self.passed:
            return f"No release gate failed ({len(self.gates)} checked against {self.old})."
        return (f"The release is worse than {self.old}: " + "; ".join(self.failures()) +
                ". Fix the artifact, or loosen --max-regression / --max-size / --max-latency if the change is intended.")

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "passed": self.passed, "added": self.added, "removed": self.removed,
                "artifacts": {c.name: c.to_dict() for c in self.changes},
                "gates": [{"artifact": n, "metric": m.name, **m.to_dict()} for n, m in self.gates]}


def _numeric(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def release_diff(old: ParityReport | None, new: ParityReport, gates: Gates = Gates()) -> ReleaseDiff:
    """Compare ``new`` with ``old`` (None: budgets only) and check ``gates``; raises UsageError for unknown names."""
    new_names = [a.name for a in new.artifacts]
    for flag, names in (("--max-size", gates.max_size), ("--max-latency", gates.max_latency)):
        unknown = sorted(set(names) - set(new_names))
        if unknown:
            raise UsageError(f"{flag} names {', '.join(unknown)}, which the report does not have; it has "
                             f"{', '.join(new_names)}.")
    if gates.max_regression and old is None:
        raise UsageError("--max-regression needs a baseline: pass --baseline OLD/verify-report.json.")
    changes: list[ArtifactChange] = []
    checks: list[tuple[str, Metric]] = []
    old_names = [a.name for a in old.artifacts] if old is not None else []
    for a in new.artifacts:
        size_new, lat_new = _size(new, a.name), latency_seconds(new, a.name)
        if old is not None and a.name in old_names:
            b = old.result(a.name)
            before = {m.name: m.value for m in b.metrics if _numeric(m.value)}
            metrics = {m.name: (float(before[m.name]), float(m.value)) for m in a.metrics
                       if _numeric(m.value) and m.name in before}
            size_old, lat_old = _size(old, a.name), latency_seconds(old, a.name)
            changes.append(ArtifactChange(a.name, metrics, (size_old, size_new), (lat_old, lat_new), (b.passed, a.passed)))
            checks.extend((a.name, m) for m in _regressions(gates.max_regression, metrics, (size_old, size_new),
                                                              (lat_old, lat_new)))
        if a.name in gates.max_size:
            limit = gates.max_size[a.name]
            checks.append((a.name, Metric.check("size", size_new, limit, "<=",
                                                detail=f"{human_bytes(size_new)}, budget {human_bytes(int(limit))}")
                           if size_new is not None else Metric("size", "not measured", limit, "<=", False)))
        if a.name in gates.max_latency:
            limit = gates.max_latency[a.name]
            checks.append((a.name, Metric.check("latency_ms", lat_new * 1e3, limit * 1e3, "<=",
                                                detail="batch 1, measured by the row's runner")
                           if lat_new is not None else Metric("latency_ms", "not measured", limit * 1e3, "<=", False)))
    return ReleaseDiff(
        old=str(old.path) if old is not None and old.path else "(no baseline)", new=str(new.path or ""),
        changes=changes, added=[n for n in new_names if n not in old_names] if old is not None else [],
        removed=[n for n in old_names if n not in new_names], gates=checks,
    )


def _regressions(limits: dict[str, float], metrics: dict[str, tuple[float, float]], size: tuple[Any, Any],
                 latency: tuple[Any, Any]) -> list[Metric]:
    out = []
    if "accuracy" in limits and "accuracy" in metrics:
        o, n = metrics["accuracy"]
        out.append(Metric.check("accuracy_regression_pt", round(100 * (o - n), 6), limits["accuracy"], "<=",
                                detail=f"accuracy {100 * o:.2f}% -> {100 * n:.2f}%"))
    for key, (o, n), unit in (("size", size, "bytes"), ("latency", latency, "s")):
        if key in limits and o and n is not None:
            out.append(Metric.check(f"{key}_regression_pct", round(100 * (n - o) / o, 4), limits[key], "<=",
                                    detail=f"{key} {o:g} -> {n:g} {unit}"))
    return out


def format_diff(diff: ReleaseDiff) -> str:
    """The diff as plain text: one block per artifact, then the gates."""
    lines = [f"baseline: {diff.old}", f"release:  {diff.new}"]
    for c in diff.changes:
        lines.append(f"\n{c.name}: {'PASS' if c.passed[0] else 'FAIL'} -> {'PASS' if c.passed[1] else 'FAIL'}")
        if c.size[0] is not None and c.size[1] is not None:
            lines.append(f"  size        {c.size[0]:>12} -> {c.size[1]:>12} bytes ({c.size[1] - c.size[0]:+d})")
        if c.latency[0] is not None and c.latency[1] is not None:
            lines.append(f"  latency     {1e3 * c.latency[0]:>12.4f} -> {1e3 * c.latency[1]:>12.4f} ms")
        for k, (o, n) in c.metrics.items():
            if o != n:
                lines.append(f"  {k:<11} {o:>12.6g} -> {n:>12.6g} ({n - o:+.3g})")
    for what, names in (("new in this release", diff.added), ("gone since the baseline", diff.removed)):
        if names:
            lines.append(f"\n{what}: {', '.join(names)}")
    if diff.gates:
        lines.append("\ngates:")
        lines += [f"  {'ok  ' if m.passed else 'FAIL'} {n}: {m.describe()}" for n, m in diff.gates]
    return "\n".join(lines)
