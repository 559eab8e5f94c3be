"""The verify report as JUnit XML, for CI systems that show test results (``verify --junit FILE``).

One ``<testsuite>`` per row (artifact x runtime), one ``<testcase>`` per bounded
metric of it (informational metrics are not tests); a row that did not run is one
test case with an ``<error>``. A failure's message is the metric, its value and
its bound; when the report holds ``--explain`` data for the artifact, the text
names the first divergent layer. Release gates (``--baseline``, budgets) are one
more suite. Rendered from a ``ParityReport`` (as loaded from its JSON) only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from runtime_check.verify.baseline import ReleaseDiff
from runtime_check.verify.report import ParityReport
from runtime_check.verify.results import Metric

SUITE_PREFIX = "edgefm.verify"


def render_junit(report: ParityReport, diff: ReleaseDiff | None = None) -> str:
    root = ET.Element("testsuites", name="edgefm verify")
    seconds = lambda t: f"{float(t or 0.0):.3f}"  # noqa: E731
    for a in report.artifacts:
        suite = _suite(root, f"{SUITE_PREFIX}.{a.name}", seconds(a.timings.get("total")))
        ET.SubElement(suite, "properties")
        props = suite.find("properties")
        for key, value in (("runtime", a.runtime), ("path", a.path), ("quantization", a.quantization)):
            ET.SubElement(props, "property", name=key, value=str(value))
        if a.error:
            case = ET.SubElement(suite, "testcase", classname=suite.get("name"), name="runs", time="0")
            ET.SubElement(case, "error", message=a.error[:1000], type="did-not-run").text = a.error
        for m in a.metrics:
            if not m.informational:
                _case(suite, m, _explain_text(report.explanations.get(a.name.split("@", 1)[0])))
        _counts(suite)
    if diff is not None and diff.gates:
        suite = _suite(root, f"{SUITE_PREFIX}.release", "0")
        for name, m in diff.gates:
            _case(suite, m, f"against {diff.old}", prefix=f"{name}.")
        _counts(suite)
    _counts(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(root: ET.Element, name: str, time: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=name, time=time)


def _case(suite: ET.Element, m: Metric, extra: str, prefix: str = "") -> None:
    case = ET.SubElement(suite, "testcase", classname=suite.get("name", ""), name=prefix + m.name, time="0")
    if not m.passed:
        text = m.describe() + (f"\n{extra}" if extra else "")
        ET.SubElement(case, "failure", message=m.describe()[:1000], type="bound").text = text


def _explain_text(ex: dict[str, Any] | None) -> str:
    first = (ex or {}).get("first_divergent")
    if not first:
        return ""
    return (f"first divergent layer: {first.get('candidate')} (TensorFlow {first.get('tf')}), "
            f"SNR {first.get('snr_db')} dB, cosine {first.get('cosine')}")


def _counts(el: ET.Element) -> None:
    cases = el.iter("testcase")
    tests = failures = errors = 0
    for c in cases:
        tests += 1
        failures += c.find("failure") is not None
        errors += c.find("error") is not None
    el.set("tests", str(tests))
    el.set("failures", str(failures))
    el.set("errors", str(errors))
    el.set("skipped", "0")
