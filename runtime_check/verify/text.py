"""The verification report for people, as plain text: the table ``edgefm verify`` prints.

A function over the data (``ParityReport``), so a report read back from its JSON
prints the same table as the run that wrote it.
"""

from __future__ import annotations

from typing import Any

from edgefm.core.progress import plural
from edgefm.core.tables import fit_line, fit_table, pack
from runtime_check.verify.report import ParityReport, describe_inputs
from runtime_check.verify.results import ArtifactResult, format_value

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



def _cache_words(reference: dict[str, Any]) -> str:
    """How the reference came about: run now, or reused from the cache beside the manifest."""
    cache = reference.get("cache") or {}
    if cache.get("status") == "reused":
        return f"; reused from {cache.get('path')} (computed {cache.get('computed', '?')}; TensorFlow not run)"
    if cache.get("status") == "computed":
        return "; computed now" + (f" ({cache['note']})" if cache.get("note") else "")
    return ""


def table_rows(report: ParityReport) -> tuple[list[str], list[list[str]]]:
    """Header and one row per artifact: ``ok value`` / ``FAIL value`` per check."""
    present = [(k, h) for k, h in COLUMNS if any(_has(a, k) for a in report.artifacts)]
    header = ["artifact", "runtime", "result", *[h for _, h in present]]
    rows = []
    for a in report.artifacts:
        cells = [a.name, a.runtime, "PASS" if a.passed else "FAIL"]
        for key, _ in present:
            cells.append(_cell(a, key))
        rows.append(cells)
    return header, rows


def render_table(report: ParityReport, width: int | None = None) -> str:
    """A readable table, the bounds under it, then the list of failures; every line at most ``width`` columns.

    ``width`` ``None``: one row per artifact, however wide (for files and grep). When that
    row does not fit (six artifacts with ``--native`` need ~250 columns), each artifact
    becomes a block: its name, runtime and verdict on one line, its checks wrapped under
    it. The JSON report always has everything; this is the view for people.
    """
    header, body = table_rows(report)
    table = fit_table(
        header, body, width, key=3,
        titles=[f"{row[0]}  {row[1]}  {row[2]}  {a.path}" for a, row in zip(report.artifacts, body)],
        trailers=[fit_line(f"   error: {a.error}", width, indent="     ") if a.error else [] for a in report.artifacts],
    )
    lines = [
        *fit_line(f"reference: {report.reference.get('runtime', 'tensorflow')} {report.reference.get('path', '')} "
              f"(accuracy {format_value('accuracy', report.reference.get('accuracy'))}){_cache_words(report.reference)}", width),
        *fit_line(f"inputs: {describe_inputs(report.inputs)}"
                  + (f" from index {report.inputs.get('first_index', 0)}" if "split" in report.inputs else "")
                  + f" (sha256 {str(report.inputs.get('sha256', ''))[:12]}…)", width),
        *(fit_line(host_line(report.host), width) if report.host else []),
        "",
        *table,
        "",
        "bounds:",
    ]
    groups: dict[tuple[str, ...], list[str]] = {}  # artifacts with the same bounds share a line
    for a in report.artifacts:
        bounds = tuple(
            f"{m.name} {m.op} {format_value(m.name, m.bound)}"
            for m in a.metrics
            if not m.informational and m.name not in ("checksum", "nonfinite", "outputs", "output_shapes")
        )
        groups.setdefault(bounds or ("- (did not run)",), []).append(a.name)
    for bounds, names in groups.items():
        lines += pack(f"  {', '.join(names)}:", [f"{b}," for b in bounds[:-1]] + [bounds[-1]], width, "      ")
    for a in report.artifacts:  # a file without the reference's tensor names (runtime_check.runtimes.base.match_tensors)
        lines += [ln for m in a.metrics if m.name == "io_names" for ln in fit_line(f"  {a.name}: {m.detail}", width, indent="      ")]
    for m in report.reference_metrics:
        if not m.passed:
            lines += fit_line(f"reference check failed: {m.describe()}", width, indent="  ")
    failures = report.failures()
    total = report.timings.get("total")
    tail = f" in {total:.1f} s" if total is not None else ""
    if failures:
        lines += ["", f"FAILED{tail}:"]
        for f in failures:
            lines += fit_line(f"  {f}", width, indent="      ")
    else:
        lines += ["", *fit_line(f"PASSED: all {plural(len(report.artifacts), 'artifact')} match TensorFlow{tail}.", width)]
    if report.path:
        lines += fit_line(f"report: {report.path}", width)
    if report.html_path:
        lines += fit_line(f"html: {report.html_path}", width)
    return "\n".join(lines)


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
