"""The verification report: one record of every artifact's checks, as JSON and as a table.

``ParityReport`` holds the per-artifact results plus what is needed to reproduce
the run (the reference, the exact input set, the versions of every runtime, the
timings). It serialises itself to ``verify-report.json`` atomically and renders a
plain-text table for people; the summary is the one paragraph a failure raises.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefm.fileio import atomic_write_json, atomic_write_text
from runtime_check.compare import ArtifactResult, Metric, format_value

REPORT_NAME = "verify-report.json"
REPORT_SCHEMA_VERSION = 1

#: table columns: (metric name, column header)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("checksum", "checksum"),
    ("nonfinite", "NaN/Inf"),
    ("max_abs_error", "max|d|"),
    ("mean_abs_error", "mean|d|"),
    ("cosine", "cosine"),
    ("top1_agreement", "top-1"),
    ("accuracy", "accuracy"),
    ("accuracy_drop", "acc drop"),
    ("batch_invariance", "batch 1=N"),
    ("probability_sum", "sum p=1"),
    ("binding_max_abs_diff", "=binding"),
)


@dataclass
class ParityReport:
    """Every artifact's checks against the TensorFlow reference on one input set."""

    artifacts: list[ArtifactResult]
    reference: dict[str, Any]
    inputs: dict[str, Any]
    versions: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    reference_metrics: list[Metric] = field(default_factory=list)
    path: Path | None = None  # where it was written, if it was

    @property
    def passed(self) -> bool:
        return bool(self.artifacts) and all(m.passed for m in self.reference_metrics) and all(
            a.passed for a in self.artifacts
        )

    def result(self, name: str) -> ArtifactResult:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(f"no result for {name!r} (have: {', '.join(a.name for a in self.artifacts)})")

    # -- failures ---------------------------------------------------------------
    def failures(self) -> list[str]:
        """One line per failed check: ``artifact: metric = value (bound op x)``."""
        lines = [f"reference ({self.reference.get('name', 'savedmodel')}): {m.describe()}" for m in self.reference_metrics if not m.passed]
        for a in self.artifacts:
            if a.error:
                lines.append(f"{a.name}: could not run in {a.runtime}: {a.error}")
            lines.extend(f"{a.name}: {m.describe()}" for m in a.failures)
        return lines

    def summary(self) -> str:
        """One paragraph naming the failing artifacts and metrics (the ParityError message)."""
        failed = [a for a in self.artifacts if not a.passed]
        if self.passed:
            return f"All {len(self.artifacts)} artifacts match TensorFlow on {self.inputs.get('count')} inputs."
        parts = []
        for a in failed:
            what = ([f"did not run ({a.error})"] if a.error else []) + [m.describe() for m in a.failures]
            parts.append(f"{a.name} [{a.runtime}]: " + "; ".join(what))
        ref_bad = [m.describe() for m in self.reference_metrics if not m.passed]
        if ref_bad:
            parts.insert(0, "the reference SavedModel: " + "; ".join(ref_bad))
        where = f" Full report: {self.path}." if self.path else ""
        return (
            f"{len(failed)} of {len(self.artifacts)} artifacts do not match TensorFlow on "
            f"{self.inputs.get('count')} {self.inputs.get('split', '')} inputs: " + " | ".join(parts) + "."
            f"{where} Re-export the failing artifacts (`edgefm export`), or, if the difference is "
            "expected for that variant, loosen its bound with --atol NAME=VALUE or --min-top1 NAME=VALUE."
        )

    # -- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "passed": self.passed,
            "reference": {
                **self.reference,
                "metrics": {m.name: m.to_dict() for m in self.reference_metrics},
            },
            "inputs": self.inputs,
            "artifacts": {a.name: a.to_dict() for a in self.artifacts},
            "failures": self.failures(),
            "versions": self.versions,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def write(self, path: Path) -> Path:
        """Write the JSON report atomically; remember where."""
        self.path = Path(path)
        atomic_write_json(self.path, self.to_dict())
        return self.path

    # -- people ------------------------------------------------------------------
    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and one row per artifact: ``ok value`` / ``FAIL value`` per check."""
        present = [(k, h) for k, h in COLUMNS if any(_has(a, k) for a in self.artifacts)]
        header = ["artifact", "runtime", "result", *[h for _, h in present]]
        rows = []
        for a in self.artifacts:
            cells = [a.name, a.runtime, "PASS" if a.passed else "FAIL"]
            for key, _ in present:
                cells.append(_cell(a, key))
            rows.append(cells)
        return header, rows

    def table(self) -> str:
        """A readable table, the bounds under it, then the list of failures."""
        header, rows = self.rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        lines = [
            f"reference: {self.reference.get('runtime', 'tensorflow')} {self.reference.get('path', '')} "
            f"(accuracy {format_value('accuracy', self.reference.get('accuracy'))})",
            f"inputs: {self.inputs.get('count')} images of the {self.inputs.get('split')} split "
            f"from index {self.inputs.get('first_index', 0)} (sha256 {str(self.inputs.get('sha256', ''))[:12]}…)",
            "",
            fmt(header),
            fmt(["-" * w for w in widths]),
            *[fmt(r) for r in rows],
            "",
            "bounds:",
        ]
        groups: dict[str, list[str]] = {}  # artifacts with the same bounds share a line
        for a in self.artifacts:
            bounds = ", ".join(
                f"{m.name} {m.op} {format_value(m.name, m.bound)}"
                for m in a.metrics
                if not m.informational and m.name in dict(COLUMNS) and m.name not in ("checksum", "nonfinite")
            )
            groups.setdefault(bounds or "- (did not run)", []).append(a.name)
        lines += [f"  {', '.join(names)}: {bounds}" for bounds, names in groups.items()]
        for m in self.reference_metrics:
            if not m.passed:
                lines.append(f"reference check failed: {m.describe()}")
        failures = self.failures()
        total = self.timings.get("total")
        tail = f" in {total:.1f} s" if total is not None else ""
        if failures:
            lines += ["", f"FAILED{tail}:", *[f"  {f}" for f in failures]]
        else:
            lines += ["", f"PASSED: all {len(self.artifacts)} artifacts match TensorFlow{tail}."]
        if self.path:
            lines.append(f"report: {self.path}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The same table as a standalone HTML page (failed cells marked)."""
        header, rows = self.rows()
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f'<td class="fail">{esc(c)}</td>' if c.startswith("FAIL") else f"<td>{esc(c)}</td>" for c in r)
            + "</tr>"
            for r in rows
        )
        fails = "".join(f"<li>{esc(f)}</li>" for f in self.failures())
        status = "PASSED" if self.passed else "FAILED"
        return (
            "<!doctype html><meta charset=utf-8><title>edgefm verify</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
            ".fail{color:#b00;font-weight:bold}</style>"
            f"<h1>edgefm verify: {status}</h1>"
            f"<p>{esc(str(self.inputs.get('count')))} inputs of the {esc(str(self.inputs.get('split')))} split; "
            f"reference {esc(str(self.reference.get('path', '')))}</p>"
            f"<table><tr>{head}</tr>{body}</table>"
            + (f"<h2>Failures</h2><ul>{fails}</ul>" if fails else "")
        )

    def write_html(self, path: Path) -> Path:
        atomic_write_text(Path(path), self.to_html())
        return Path(path)


def _has(a: ArtifactResult, key: str) -> bool:
    return any(m.name == key for m in a.metrics)


def _cell(a: ArtifactResult, key: str) -> str:
    """``ok 1.2e-05`` / ``FAIL 0.93`` for a bounded check, the bare value for an informational one."""
    for m in a.metrics:
        if m.name == key:
            if key == "checksum":
                return "ok" if m.passed else "FAIL"
            value = format_value(key, m.value)
            if m.informational:
                return value
            return ("ok " if m.passed else "FAIL ") + value
    return "error" if a.error else "-"
