"""The intervals and three-way answers verify judges rates by (runtime_check.verify.statistics), against scipy
and against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runtime_check.verify import statistics as S
from runtime_check.verify.compare import judge_accuracy_drop, judge_top1


def test_clopper_pearson_zero_disagreements_is_the_closed_form() -> None:
    # 0 failures in n: the lower bound of the agreement rate is (alpha/2)^(1/n)
    low, high = S.clopper_pearson(200, 200)
    assert high == 1.0 and math.isclose(low, 0.025 ** (1 / 200), rel_tol=1e-9)
    assert S.zero_flip_rows(0.999) == 3688  # rows with no flip that show >= 99.9% at 95%
    assert S.clopper_pearson(3688, 3688)[0] >= 0.999 > S.clopper_pearson(3687, 3687)[0]


def test_agreement_three_answers_and_rows_needed() -> None:
    shown = S.judge_agreement(1000, 1000, 0.99)
    assert shown.verdict == S.PASS and shown.rows_needed is None
    broken = S.judge_agreement(900, 1000, 0.99)
    assert broken.verdict == S.FAIL and broken.high < 0.99
    unshown = S.judge_agreement(200, 200, 0.999)  # 200 rows without a flip cannot show 99.9%: a pass, not shown
    assert unshown.verdict == S.PASS and not unshown.shown and unshown.rows_needed == 3688
    assert S.UNSHOWN in unshown.interval_text(str, 0.95)
    assert S.judge_agreement(unshown.rows_needed, unshown.rows_needed, 0.999).shown
    undecided = S.judge_agreement(199, 200, 0.999)  # one flip in 200: neither shown broken nor shown held
    assert undecided.verdict == S.INCONCLUSIVE and undecided.rows_needed > 200 and "INCONCLUSIVE: needs ≥" in \
        undecided.interval_text(str, 0.95)


def test_bound_of_one_is_exact() -> None:
    assert S.judge_agreement(10, 10, 1.0).verdict == S.PASS
    assert S.judge_agreement(9, 10, 1.0).verdict == S.FAIL


def test_paired_drop_interval_and_mcnemar() -> None:
    # identical predictions: the drop is 0 exactly, whatever the row count
    assert S.drop_interval(0, 0, 50) == (0.0, 0.0) and S.judge_drop(0, 0, 50, 0.01).verdict == S.PASS
    # 30 rows only TF gets right, 0 the reverse, of 1000: drop 3 pt, shown above a 1 pt bound
    j = S.judge_drop(30, 0, 1000, 0.01)
    assert j.verdict == S.FAIL and j.low > 0.01 and j.p_value < 1e-8
    # balanced discordance: centred on 0, McNemar p = 1
    k = S.judge_drop(5, 5, 1000, 0.015)
    assert math.isclose(k.low, -k.high) and k.p_value == 1.0 and k.verdict == S.PASS
    # the same split on 200 rows cannot show a 1.5 pt bound: a pass on the estimate (0), not shown
    u = S.judge_drop(5, 5, 200, 0.015)
    assert u.verdict == S.PASS and not u.shown and u.rows_needed > 200
    # 8 against 2 on 200 rows: an estimated 3 pt drop the interval cannot confirm: INCONCLUSIVE
    assert S.judge_drop(8, 2, 200, 0.015).verdict == S.INCONCLUSIVE
    assert S.judge_drop(round(5 / 200 * u.rows_needed), round(5 / 200 * u.rows_needed), u.rows_needed, 0.015).verdict \
        != S.INCONCLUSIVE


def test_decisive_top1_excuses_near_ties_only() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 3, (1000, 10))
    a = r + rng.normal(0, 0.01, r.shape)  # a float16-like noise
    tie = np.argmax(r, axis=1)
    r[0] = 0.0
    r[0, 3], r[0, 4] = 1.0, 0.999  # TF's margin 0.001: far below the noise
    a[0] = r[0]
    a[0, 4] = 1.001  # the variant flips that near-tie
    raw, decisive = judge_top1(a, r, "top1_agreement", 1.0, 0.95)
    assert raw.value < 1.0 and decisive.value == 1.0 and decisive.passed and "near-tie flips excused" in decisive.detail
    # the same flip on a row TF is sure of is decisive, and a bound of 1.0 fails on it
    a[1] = r[1]
    a[1, (tie[1] + 1) % 10] = r[1].max() + 5
    _, decisive = judge_top1(a, r, "top1_agreement", 1.0, 0.95)
    assert not decisive.passed and decisive.value == 0.999
    # a candidate whose errors are out of bounds gets no allowance
    _, strict = judge_top1(a, r, "top1_agreement", 1.0, 0.95, tie=False)
    flips = round((1 - raw.value) * 1000)
    assert strict.value == pytest.approx(1 - (flips + 1) / 1000)  # every raw flip and the new one


def test_accuracy_drop_metric_carries_interval() -> None:
    r = np.eye(3)[np.array([0, 1, 2] * 100)]
    a = r.copy()
    a[:6] = np.eye(3)[np.array([1, 2, 0, 1, 2, 0])]  # six rows TF gets right, the artifact not
    m = judge_accuracy_drop(a, r, np.array([0, 1, 2] * 100), "accuracy_drop", 0.015, 0.95)
    assert m.value == pytest.approx(0.02) and m.inconclusive and m.passed and "6 rows only TF gets right" in m.detail


def test_a_margin_below_the_outputs_step_is_a_tie() -> None:
    # two saturated sigmoid scores: TF's margin 6e-8, the int8 file (step 1/256) cannot keep it
    rng = np.random.default_rng(1)
    r = rng.random((400, 2)).astype(np.float32)
    r[:50] = [1.0, np.float32(1 - 6e-8)]
    a = np.round(r * 256) / 256  # the int8 grid, exact on most rows
    a[:50] = [1.0 - 1 / 256, 1.0]  # flipped within one step
    raw, decisive = judge_top1(a, r, "top1_agreement", 0.97, 0.95)
    assert raw.value <= 0.875 and decisive.value == 1.0 and decisive.passed
