"""The verify report as Markdown, for ``$GITHUB_STEP_SUMMARY`` (``verify --summary FILE``).

A headline verdict, one table row per verify row (runtime, result, size, batch-1
latency, top-1 agreement, accuracy change), the failures as a list, and, with a
baseline, the release gates and the changed sizes and latencies. Rendered from a
``ParityReport`` (as loaded from its JSON) only.
"""

from __future__ import annotations

from runtime_check.verify.baseline import ReleaseDiff, latency_seconds
from runtime_check.verify.report import ParityReport, describe_inputs
from runtime_check.verify.results import format_value


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_summary(report: ParityReport, diff: ReleaseDiff | None = None) -> str:
    ok = report.passed and (diff is None or diff.passed)
    lines = [f"## edgefm verify: {'PASS' if ok else 'FAIL'}", "",
             f"{len(report.artifacts)} rows against TensorFlow on {describe_inputs(report.inputs)}.", "",
             "| row | runtime | result | size | latency (batch 1) | top-1 agreement | accuracy change |",
             "|---|---|---|---:|---:|---:|---:|"]
    for a in report.artifacts:
        metrics = {m.name: m for m in a.metrics}
        size = report.sizes.get(a.name, report.sizes.get(a.name.split("@", 1)[0]))
        lat = latency_seconds(report, a.name)
        top1, drop = metrics.get("top1_agreement"), metrics.get("accuracy_drop")
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{a.name}`", a.runtime, "✅ PASS" if a.passed else ("❌ did not run" if a.error else "❌ FAIL"),
            "" if size is None else f"{size / 1024:.1f} KiB", "" if lat is None else f"{lat * 1e3:.3f} ms",
            "" if top1 is None else format_value(top1.name, top1.value),
            "" if drop is None or not isinstance(drop.value, (int, float)) else f"{-100 * drop.value:+.2f} pt",
        )) + " |")
    failures = report.failures() + (diff.failures() if diff is not None else [])
    if failures:
        lines += ["", "### Failures", ""] + [f"- {_cell(f)}" for f in failures]
    if diff is not None:
        lines += ["", f"### Against the baseline `{_cell(diff.old)}`", ""]
        if diff.gates:
            lines += ["| row | gate | value | bound | result |", "|---|---|---:|---:|---|"]
            lines += ["| " + " | ".join(_cell(x) for x in (f"`{n}`", m.name, format_value(m.name, m.value),
                                                          f"{m.op} {format_value(m.name, m.bound)}",
                                                          "✅" if m.passed else "❌")) + " |" for n, m in diff.gates]
        for what, names in (("New rows", diff.added), ("Gone rows", diff.removed)):
            if names:
                lines += ["", f"{what}: " + ", ".join(f"`{n}`" for n in names)]
    return "\n".join(lines) + "\n"
