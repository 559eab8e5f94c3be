"""Every file view of a saved verify report, written from one place: JUnit XML and the Markdown summary.

``write_views`` reads nothing but the report (and the baseline diff, itself made of
two saved reports) and writes each requested file atomically. The HTML page has
its own writer (``html_page.write_html``), called by ``check`` as before.
"""

from __future__ import annotations

from pathlib import Path

from edgefm.core.fileio import atomic_write_text
from runtime_check.verify.baseline import ReleaseDiff
from runtime_check.verify.report import ParityReport


def write_views(report: ParityReport, *, junit: Path | None = None, summary: Path | None = None,
                diff: ReleaseDiff | None = None) -> list[Path]:
    written = []
    if junit is not None:
        from runtime_check.verify.junit import render_junit

        atomic_write_text(Path(junit), render_junit(report, diff))
        written.append(Path(junit))
    if summary is not None:
        from runtime_check.verify.summary import render_summary

        atomic_write_text(Path(summary), render_summary(report, diff))
        written.append(Path(summary))
    return written
