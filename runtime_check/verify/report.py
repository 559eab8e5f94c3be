"""The verification report: one record of every artifact's checks, as JSON, a table and a page.

``ParityReport`` holds the per-artifact results plus what is needed to reproduce
the run (the reference, the exact input set, the versions of every runtime, the
timings). It serialises itself to ``verify-report.json`` atomically and renders a
plain-text table for people; the summary is the one paragraph a failure raises.

For the HTML page (``runtime_check.html_report``) it also keeps, per artifact, an
``ArtifactDetail``: the few small arrays the metrics summarise (a histogram of
the logit errors, the confusion matrix, the disagreements with TensorFlow),
never the logits themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.fileio import atomic_write_json
from edgefm.core.metrics import confusion_matrix
from runtime_check.verify.compare import ArtifactResult, Metric, format_value
from runtime_check.verify.tolerances import loosen_hint

REPORT_NAME = "verify-report.json"
REPORT_SCHEMA_VERSION = 1
#: disagreeing test images kept per artifact (for the HTML page and the JSON)
SHOWN_DISAGREEMENTS = 24
#: bins of the logit-error histogram, linear from 0 to the largest error
ERROR_BINS = 40


def default_html_path(report_path: Path) -> Path:
    """Where ``edgefm verify`` writes its HTML page unless told: the JSON report's path with ``.html``."""
    return Path(report_path).with_suffix(".html")


@dataclass
class ArtifactDetail:
    """What one artifact's metrics summarise, small enough to keep for the page and the JSON.

    ``error_counts``/``error_edges``: histogram of ``|candidate - reference|`` over
    every finite logit (linear bins from 0 to the largest error; one bin
    ``[0, 0]`` when every logit is identical). ``confusion``: true label x this
    artifact's top-1. ``disagreements``: how many samples' top-1 differs from
    TF's; ``shown`` holds up to ``SHOWN_DISAGREEMENTS`` of them (test-set
    indices), those where TF was most sure first (largest gap between TF's
    logits of the two classes), with both predictions and the true label.
    """

    error_edges: np.ndarray
    error_counts: np.ndarray
    confusion: np.ndarray
    disagreements: int
    shown: np.ndarray
    shown_reference: np.ndarray
    shown_candidate: np.ndarray
    shown_label: np.ndarray

    @classmethod
    def from_logits(
        cls,
        candidate: np.ndarray,
        reference: np.ndarray,
        labels: np.ndarray,
        *,
        keep: int = SHOWN_DISAGREEMENTS,
    ) -> ArtifactDetail:
        """Summarise ``[N, C]`` candidate logits against the reference's (same inputs, same order)."""
        a = np.asarray(candidate, np.float64)
        r = np.asarray(reference, np.float64)
        labels = np.asarray(labels, np.int64)
        num_classes = r.shape[1]
        err = np.abs(a - r).ravel()
        err = err[np.isfinite(err)]
        hi = float(err.max()) if err.size else 0.0
        if hi > 0:
            counts, edges = np.histogram(err, bins=ERROR_BINS, range=(0.0, hi))
        else:
            counts, edges = np.array([err.size]), np.array([0.0, 0.0])
        cand_top, ref_top = a.argmax(axis=1), r.argmax(axis=1)
        idx = np.flatnonzero(cand_top != ref_top)
        rows = np.arange(len(r))[idx]
        gap = r[rows, ref_top[idx]] - r[rows, cand_top[idx]]
        shown = idx[np.argsort(-gap, kind="stable")[:keep]]
        return cls(
            error_edges=edges.astype(np.float64),
            error_counts=counts.astype(np.int64),
            confusion=confusion_matrix(labels, cand_top, num_classes),
            disagreements=int(idx.size),
            shown=shown,
            shown_reference=ref_top[shown],
            shown_candidate=cand_top[shown],
            shown_label=labels[shown],
        )

    @property
    def max_error(self) -> float:
        return float(self.error_edges[-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_histogram": {"edges": self.error_edges.tolist(), "counts": self.error_counts.tolist()},
            "confusion_matrix": self.confusion.tolist(),
            "disagreements": {
                "count": self.disagreements,
                "shown": [
                    {"index": int(i), "label": int(y), "reference": int(r), "candidate": int(c)}
                    for i, y, r, c in zip(self.shown, self.shown_label, self.shown_reference, self.shown_candidate)
                ],
            },
        }

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
    #: the CPU the runtimes ran on (edgefm.hostinfo.host_cpu): model, features, int8 kernel path
    host: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was written, if it was
    # -- for the HTML page (not needed for the verdict) --
    details: dict[str, ArtifactDetail] = field(default_factory=dict)  # by result name
    sizes: dict[str, int] = field(default_factory=dict)  # bytes on disk, by result name
    reference_confusion: np.ndarray | None = None
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    images: dict[int, np.ndarray] = field(default_factory=dict)  # uint8 test images of the shown disagreements
    training: dict[str, Any] = field(default_factory=dict)  # the manifest's training record (curves)
    artifacts_dir: Path | None = None
    html_path: Path | None = None  # where the page was written, if it was

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
        hints = list(dict.fromkeys(h for a in failed for m in a.failures if (h := loosen_hint(a.name, m.name))))
        loosen = (
            ", if the difference is expected for that variant, loosen the bounds that failed: " + " ".join(hints)
            if hints else ""
        )
        return (
            f"{len(failed)} of {len(self.artifacts)} artifacts do not match TensorFlow on "
            f"{self.inputs.get('count')} {self.inputs.get('split', '')} inputs: " + " | ".join(parts) + "."
            f"{where} Re-export the failing artifacts (`edgefm export`){' or' if hints else ''}{loosen}."
        )

    # -- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "passed": self.passed,
            "reference": {
                **self.reference,
                "metrics": {m.name: m.to_dict() for m in self.reference_metrics},
                **({"confusion_matrix": self.reference_confusion.tolist()} if self.reference_confusion is not None else {}),
            },
            "inputs": self.inputs,
            "artifacts": {
                a.name: {
                    **a.to_dict(),
                    **({"bytes": self.sizes[a.name]} if a.name in self.sizes else {}),
                    **({"details": self.details[a.name].to_dict()} if a.name in self.details else {}),
                }
                for a in self.artifacts
            },
            "failures": self.failures(),
            "host": self.host,
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
            *([host_line(self.host)] if self.host else []),
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
        if self.html_path:
            lines.append(f"html: {self.html_path}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The self-contained HTML page (``runtime_check.html_report.render_html``)."""
        from runtime_check.verify.html_page import render_html

        return render_html(self)

    def write_html(self, path: Path) -> Path:
        """Write the HTML page atomically; remember where."""
        from runtime_check.verify.html_page import write_html

        return write_html(self, path)


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


def host_line(host: dict[str, Any]) -> str:
    """``host: AMD EPYC (x86_64: avx2 avx512vnni …); int8 kernels: …`` for the table and the page."""
    features = " ".join(host.get("features", [])) or "no known features"
    return (f"host: {host.get('model', 'unknown')} ({host.get('machine', '?')}: {features}); "
            f"int8 kernels: {host.get('int8_kernels', 'unknown')}")
