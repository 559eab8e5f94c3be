"""The comparison functions and result objects on hand-made arrays, with exact expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgefm.core.errors import UsageError
from runtime_check.verify import compare as C
from runtime_check.verify import results as R
from runtime_check.verify.report import ParityReport
from runtime_check.verify.text import render_table
from runtime_check.verify.tolerances import FLOAT16, FLOAT32, INT8, Tolerance, default_tolerance, tolerance_for

REF = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], np.float32)


def test_abs_errors_exact() -> None:
    cand = REF + np.array([[0.5, 0.0, 0.0], [0.0, -0.25, 0.0]], np.float32)
    assert C.max_abs_error(cand, REF) == 0.5
    assert C.mean_abs_error(cand, REF) == pytest.approx(0.75 / 6, abs=0)
    assert C.max_abs_error(REF, REF) == 0.0


def test_abs_error_with_nan_is_nan() -> None:
    cand = REF.copy()
    cand[0, 0] = np.nan
    assert math.isnan(C.max_abs_error(cand, REF))


def test_cosine_is_the_mean_of_per_sample_cosines() -> None:
    r = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    a = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)  # cosines 1 and 0
    assert C.cosine_similarity(a, r) == 0.5
    assert C.cosine_similarity(-r, r) == -1.0
    # A global cosine over the flattened arrays would give 2/sqrt(5*2) here instead.
    assert C.cosine_similarity(np.zeros((1, 3)), np.zeros((1, 3))) == 1.0
    assert C.cosine_similarity(np.zeros((1, 3)), np.ones((1, 3))) == 0.0


def test_top1_agreement_and_accuracy() -> None:
    r = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    a = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    assert C.top1_agreement(a, r) == 0.75
    assert C.accuracy(a, np.array([1, 0, 2, 2])) == 0.5
    assert C.accuracy(r, np.array([1, 0, 2, 2])) == 0.75


def test_nonfinite_counts_every_output() -> None:
    outs = {"logits": np.array([[np.nan, 1.0], [np.inf, -np.inf]]), "probabilities": np.array([[0.5, np.nan]])}
    assert C.nonfinite_count(outs) == 4
    assert C.nonfinite_count({"logits": REF}) == 0


def test_probability_sum_error() -> None:
    p = np.array([[0.5, 0.5], [0.25, 0.5]], np.float32)
    assert C.probability_sum_error(p) == 0.25


def test_metric_check_ops_and_nan() -> None:
    assert R.Metric.check("m", 1e-5, 1e-4, "<=").passed
    assert not R.Metric.check("m", 2e-4, 1e-4, "<=").passed
    assert R.Metric.check("t", 0.99, 0.97, ">=").passed
    assert not R.Metric.check("t", 0.96, 0.97, ">=").passed
    assert not R.Metric.check("m", math.nan, 1.0, "<=").passed
    assert not R.Metric.check("m", math.nan, 0.0, ">=").passed
    info = R.Metric.check("m", 99.0, None, "<=")
    assert info.passed and info.informational and info.op == "info"
    with pytest.raises(ValueError, match="unknown comparison"):
        R.Metric.check("m", 1, 1, "<")


def test_metric_describe_and_json() -> None:
    m = R.Metric.check("top1_agreement", 0.9, 0.97, ">=")
    assert m.describe() == "top1_agreement = 90.00% (bound >= 97.00%)"
    assert R.Metric.check("max_abs_error", 0.0123, 1e-4, "<=").describe() == "max_abs_error = 0.0123 (bound <= 0.0001)"
    assert R.Metric.check("accuracy_drop", 0.02, 0.015, "<=").describe() == "accuracy_drop = 2.00 pt (bound <= 1.50 pt)"
    changed = R.Metric.check("checksum", "sha256 aa / 3 bytes", "sha256 bb / 3 bytes", "==", detail="m.onnx changed")
    assert not changed.passed and changed.describe() == "checksum: m.onnx changed"
    assert R.Metric.check("max_abs_error", math.nan, 1e-4, "<=").to_dict() == {
        "value": "nan", "bound": 1e-4, "op": "<=", "passed": False,
    }


TOL = Tolerance(max_abs=0.1, mean_abs=0.05, min_cosine=0.99, min_top1=1.0, max_accuracy_drop=0.0,
                batch_invariance=0.0, probability_sum=1e-6)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_compare_outputs_identical_passes_everything() -> None:
    ref = {"logits": REF, "probabilities": _softmax(REF)}
    metrics = C.compare_outputs(ref, ref, np.array([2, 0]), TOL, batch1={"logits": REF[:1]})
    by = {m.name: m for m in metrics}
    assert all(m.passed for m in metrics), [m.describe() for m in metrics if not m.passed]
    per_output = {"max_abs_error", "mean_abs_error", "max_rel_error", "cosine", "snr_db"}
    assert set(by) == {"outputs", "output_shapes", "nonfinite", *per_output, "top1_agreement", "top1_raw", "accuracy",
                       "accuracy_drop", "probability_sum", "batch_invariance",
                       *(f"probabilities/{m}" for m in per_output)}  # top-1 once: on the logits
    assert by["snr_db"].value == float("inf") and by["max_rel_error"].value == 0.0
    assert by["max_abs_error"].value == 0.0 and by["top1_agreement"].value == 1.0 and by["accuracy"].value == 1.0
    assert by["accuracy"].informational


def test_compare_outputs_collects_every_failure() -> None:
    ref = {"logits": REF, "probabilities": _softmax(REF)}
    bad_logits = np.array([[1.0, 3.5, 3.0], [4.0, 0.0, 0.0]], np.float32)  # sample 0 flips to class 1
    cand = {"logits": bad_logits, "probabilities": _softmax(bad_logits) * 1.01}
    metrics = C.compare_outputs(cand, ref, np.array([2, 0]), TOL, batch1={"logits": REF[:1]})
    failed = {m.name for m in metrics if not m.passed}
    assert failed == {"max_abs_error", "mean_abs_error", "cosine", "top1_agreement", "probability_sum",
                      "batch_invariance", "probabilities/max_abs_error", "probabilities/mean_abs_error",
                      "probabilities/cosine"}
    by = {m.name: m for m in metrics}
    # one row of two that only TF gets right cannot show a drop > 0: undecided, never a silent pass
    assert by["accuracy_drop"].inconclusive and "needs ≥" in by["accuracy_drop"].detail
    assert by["max_abs_error"].value == 1.5
    assert by["top1_agreement"].value == 0.5
    assert by["accuracy_drop"].value == 0.5
    assert by["batch_invariance"].value == 1.5  # batch-1 run gave REF, large batch gave bad_logits


def test_compare_outputs_missing_and_misshapen_outputs_fail_without_raising() -> None:
    ref = {"logits": REF, "probabilities": _softmax(REF)}
    metrics = C.compare_outputs({"logits": REF}, ref, np.array([2, 0]), TOL)
    assert [m.name for m in metrics if not m.passed] == ["outputs"]
    assert "probabilities" in metrics[0].value
    metrics = C.compare_outputs({"logits": REF[:1], "probabilities": _softmax(REF)}, ref, np.array([2, 0]), TOL)
    shapes = {m.name: m for m in metrics}["output_shapes"]
    assert not shapes.passed and "logits [1, 3] vs [2, 3]" in shapes.value


def test_compare_outputs_nan_fails_nonfinite_and_errors() -> None:
    ref = {"logits": REF}
    cand = {"logits": np.where(np.eye(2, 3, dtype=bool), np.nan, REF).astype(np.float32)}
    by = {m.name: m for m in C.compare_outputs(cand, ref, np.array([2, 0]), TOL)}
    assert by["nonfinite"].value == 2 and not by["nonfinite"].passed
    assert not by["max_abs_error"].passed


def test_compare_exact() -> None:
    a = {"logits": REF, "probabilities": _softmax(REF)}
    assert C.compare_exact(a, dict(a)).value == 0.0 and C.compare_exact(a, dict(a)).passed
    b = {"logits": REF + np.float32(2**-10), "probabilities": a["probabilities"]}
    m = C.compare_exact(b, a)
    assert not m.passed and m.value == 2**-10
    assert not C.compare_exact({"x": REF}, a).passed


def test_artifact_result_and_report() -> None:
    ok = R.ArtifactResult("tflite_float32", "litert", metrics=[R.Metric.check("max_abs_error", 1e-6, 1e-4, "<=")])
    bad = R.ArtifactResult("onnx", "onnxruntime", metrics=[R.Metric.check("top1_agreement", 0.5, 1.0, ">=")])
    broken = R.ArtifactResult("tflite_int8", "litert", error="LiteRT could not load x.tflite")
    report = ParityReport([ok, bad, broken], {"path": "saved_model", "accuracy": 0.5}, {"count": 2, "split": "test"}, {})
    assert ok.passed and not bad.passed and not broken.passed and not report.passed
    assert report.failures() == [
        "onnx: top1_agreement = 50.00% (bound >= 100.00%)",
        "tflite_int8: could not run in litert: LiteRT could not load x.tflite",
    ]
    assert "onnx [onnxruntime]: top1_agreement = 50.00%" in report.summary()
    assert "tflite_float32" not in report.summary()
    table = render_table(report)
    row = next(line for line in table.splitlines() if line.startswith("onnx"))
    assert "FAIL" in row and "FAIL 50.00%" in row
    assert "ok 1e-06" in next(line for line in table.splitlines() if line.startswith("tflite_float32"))
    d = report.to_dict()
    assert d["passed"] is False and d["artifacts"]["onnx"]["metrics"]["top1_agreement"]["bound"] == 1.0
    assert ParityReport([ok], {}, {"count": 1}, {}).passed
    assert not ParityReport([], {}, {}, {}).passed  # nothing checked is not a pass


def test_tolerances_are_data_with_overrides() -> None:
    assert default_tolerance("tflite", "none") is FLOAT32
    assert default_tolerance("onnx", "none") is FLOAT32
    assert default_tolerance("tflite", "float16") is FLOAT16
    assert default_tolerance("tflite", "int8").max_abs is None  # int8 logit error is informational
    assert INT8.min_top1 == 0.97 and INT8.max_accuracy_drop == 0.015
    t = tolerance_for("tflite_float16", "tflite", "float16", atol={"tflite_float16": 0.05}, min_top1={"other": 0.5})
    assert t.max_abs == 0.05 and t.min_top1 == FLOAT16.min_top1
    assert tolerance_for("x", "tflite", "int8", min_top1={"x": 0.95}).min_top1 == 0.95
    with pytest.raises(UsageError, match="No parity tolerance for tflite artifacts quantized as 'int4'"):
        default_tolerance("tflite", "int4")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

_finite = st.floats(-100, 100, allow_nan=False, allow_subnormal=False, width=32)  # a subnormal row * 0.1 is 0


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (5, 4), elements=_finite), arrays(np.float32, (5, 4), elements=_finite),
       st.floats(0.1, 10))
def test_metric_properties(a: np.ndarray, r: np.ndarray, k: float) -> None:
    assert C.max_abs_error(a, r) == C.max_abs_error(r, a) >= C.mean_abs_error(a, r) >= 0
    assert -1.0 <= C.cosine_similarity(a, r) <= 1.0
    assert C.cosine_similarity(a * np.float32(k), a) == pytest.approx(1.0, abs=1e-6)
    assert C.top1_agreement(a, a) == 1.0 and 0.0 <= C.top1_agreement(a, r) <= 1.0


def test_cosine_of_tiny_rows_is_still_exact() -> None:
    tiny = np.array([[1e-38, 0.0, 2e-38]], np.float32)
    assert C.cosine_similarity(tiny * np.float32(10), tiny) == pytest.approx(1.0)
    assert math.isnan(C.cosine_similarity(np.array([[np.nan, 1.0]]), np.array([[1.0, 1.0]])))


def test_compare_outputs_any_model_integer_outputs_exact_and_per_output_bounds() -> None:
    """A model without logits: the first float output leads, an int64 output is compared exactly,
    and a bound set for one output (``--atol NAME.OUTPUT``) moves only that output's metric."""
    ref = {"value": np.array([[10.0], [20.0]], np.float32), "ids": np.array([1, 2], np.int64),
           "aux": np.array([[1.0, 2.0]] * 2, np.float32)}
    cand = {"value": ref["value"] + 0.5, "ids": np.array([1, 3], np.int64), "aux": ref["aux"] + 0.05}
    tol = TOL.with_bounds({"aux/max_abs_error": 1e-2})  # tighter than TOL's 0.1: aux fails, by its own bound
    by = {m.name: m for m in C.compare_outputs(cand, ref, None, tol)}
    assert "top1_agreement" not in by and "accuracy" not in by  # a regression output: no classes
    assert not by["max_abs_error"].passed and by["max_abs_error"].bound == TOL.max_abs  # "value" leads
    assert not by["aux/max_abs_error"].passed and by["aux/max_abs_error"].bound == 1e-2
    assert by["ids/exact_match"].value == 0.5 and not by["ids/exact_match"].passed
    assert by["max_rel_error"].value == pytest.approx(0.5 / 20, rel=1e-5)
    assert by["snr_db"].value == pytest.approx(10 * np.log10((100 + 400) / 0.5), rel=1e-5)
