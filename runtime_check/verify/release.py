"""After a verify: the CI views and the release gates, all from the saved report (the one place both are made).

``release_gate`` reads the report back from its JSON (so JUnit and Markdown show
exactly what the file holds), compares it with a baseline report if given, checks
the budgets, and writes the requested views. The caller decides what a failed
diff means (the CLI exits 1).
"""

from __future__ import annotations

from pathlib import Path

from edgefm.core.errors import UsageError
from runtime_check.verify.baseline import Gates, ReleaseDiff, release_diff
from runtime_check.verify.report import ParityReport
from runtime_check.verify.views import write_views


def release_gate(report: ParityReport, *, baseline: Path | None = None, max_regression: dict[str, float] | None = None,
                 max_size: dict[str, float] | None = None, max_latency: dict[str, float] | None = None,
                 junit: Path | None = None, summary: Path | None = None) -> ReleaseDiff | None:
    gates = Gates(dict(max_regression or {}), dict(max_size or {}), dict(max_latency or {}))
    if not (baseline or gates or junit or summary):
        return None
    check_view_paths(report=report.path, html=report.html_path, baseline=baseline, junit=junit, summary=summary)
    saved = ParityReport.load(report.path, images=False) if report.path is not None else report
    old = ParityReport.load(baseline, images=False) if baseline is not None else None
    diff = release_diff(old, saved, gates) if (old is not None or gates) else None
    write_views(saved, junit=junit, summary=summary, diff=diff)
    return diff


def check_view_paths(*, report: Path | None, html: Path | None, baseline: Path | None, junit: Path | None,
                     summary: Path | None) -> None:
    """A view written over the JSON report, the page or the baseline would destroy it: a UsageError, before any run."""
    taken: dict[Path, str] = {}
    for p, what in ((report, "the JSON report"), (baseline, "--baseline"), (html, "the HTML page"),
                    (junit, "--junit"), (summary, "--summary")):
        if p is None:
            continue
        if Path(p).resolve() in taken:
            raise UsageError(f"{what} {p} is also {taken[Path(p).resolve()]}; writing one would replace the other. "
                             "Give each output its own path.")
        taken[Path(p).resolve()] = what
