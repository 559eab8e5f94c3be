"""Weak evidence and the two questions of an int8 file, in the data and in both views (table and page)."""

from __future__ import annotations

import numpy as np

from runtime_check.verify.evidence import one_class, synthetic, weak_evidence
from runtime_check.verify.html_page import render_html
from runtime_check.verify.report import ParityReport
from runtime_check.verify.results import ArtifactResult, Metric
from runtime_check.verify.statistics import UNSHOWN
from runtime_check.verify.text import render_table


def _int8_row() -> ArtifactResult:
    return ArtifactResult("tflite_int8", "litert", "model_int8.tflite", "tflite", "int8", metrics=[
        Metric.check("snr_db", 24.9, 10.0, ">="),
        Metric.check("top1_agreement", 0.987, 0.97, ">=", detail="raw 95.20%, 35 near-tie flips excused"),
        Metric.check("accuracy_drop", 0.006, 0.015, "<=", detail=f"18 vs 12; {UNSHOWN}: needs ≥ 1,246 rows"),
        Metric.check("oracle_steps", 8, 16, "<=", detail="LiteRT XNNPACK vs reference kernels on 256 rows"),
    ])


def test_one_class_and_synthetic_notes() -> None:
    r = np.zeros((100, 3))
    r[:96, 1] = 1.0  # class 1 on 96% of rows
    r[96:, 2] = 1.0
    (note,) = one_class({"logits": r}, ["logits"])
    assert note["kind"] == "one_class" and note["class"] == 1 and note["share"] == 0.96
    r[:2, 1], r[:2, 0] = 0.0, 1.0  # 94%: not weak
    assert one_class({"logits": r}, ["logits"]) == []
    assert synthetic({"source": "npz"}) == [] and "smoke test" in synthetic({"source": "synthetic"})[0]["text"]


def test_both_views_show_the_two_questions_and_the_weak_evidence() -> None:
    row = _int8_row()
    notes = weak_evidence({}, [], {"source": "synthetic", "count": 1000}, [row])
    assert [n["kind"] for n in notes] == ["synthetic", "rows"]
    report = ParityReport(artifacts=[row], reference={"path": "saved_model", "accuracy": 0.675},
                          inputs={"source": "synthetic", "count": 1000, "sha256": "0" * 64}, versions={},
                          weak_evidence=notes)
    assert report.verdict == "PASS" and report.to_dict()["weak_evidence"] == notes
    assert ParityReport.from_dict(report.to_dict()).weak_evidence == notes  # reloaded, it says the same
    text = render_table(report)
    assert "(a) does the runtime execute this file correctly? yes: oracle_steps = 8 (bound <= 16)" in text
    assert "(b) is the quantized model good enough (against TensorFlow)? yes." in text
    assert "a smoke test, not proof of parity" in text and "needs ≥ 1,246 rows" in text
    assert "PASSED: all 1 artifact match TensorFlow (weak evidence: see above)." in text
    page = render_html(report)
    assert 'id="verdict-notes"' in page and "does the runtime execute this file correctly? yes" in page
    assert "weak evidence: the inputs are synthetic" in page


def test_an_inconclusive_rate_makes_the_report_inconclusive() -> None:
    row = _int8_row()
    row.metrics.append(Metric.judged("probabilities/top1_agreement", 0.96, 0.97, ">=", "INCONCLUSIVE",
                                     "95% interval [94.7%, 97.2%]; INCONCLUSIVE: needs ≥ 1,629 rows"))
    report = ParityReport(artifacts=[row], reference={}, inputs={"count": 1000}, versions={})
    assert row.verdict == "INCONCLUSIVE" and report.passed and report.inconclusive and report.verdict == "INCONCLUSIVE"
    assert "needs ≥ 1,629 rows" in report.inconclusive_summary()
    assert ArtifactResult.from_dict(row.name, row.to_dict()).verdict == "INCONCLUSIVE"  # survives the JSON
