"""How sure a verdict on n rows is: exact binomial intervals, and the three answers a bound can get.

A bound on a rate measured over n rows (top-1 agreement, accuracy change) is held
against a confidence interval of that rate, never against the point estimate alone:

- ``PASS``: the whole interval is on the good side of the bound (the rows *show* it);
- ``FAIL``: the whole interval is on the bad side (the rows show the bound is broken);
- ``INCONCLUSIVE``: the interval straddles the bound and the estimate itself is on the bad
  side: these rows cannot blame the export, nor clear it; ``rows_needed`` says how many rows
  at the same observed rate would decide.
- an estimate on the good side whose interval still straddles the bound (0 flips in 50
  rows against a 97% bound) is a PASS that is *not shown*: the metric's detail says
  ``UNSHOWN`` with the rows needed, and the report lists it as weak evidence, so it is
  never a silent PASS (``runtime_check.verify.evidence``).

Intervals (two-sided, ``confidence`` default 95%), all from ``scipy.stats`` (a maintained
library gets k = 0 and k = n right; hand-rolled normal approximations do not):

- an agreement rate k/n: Clopper-Pearson, ``binomtest(k, n).proportion_ci(method="exact")``.
  With 0 disagreements in n rows the lower bound is (alpha/2)^(1/n): 200 rows show at most
  98.2% agreement, 3,688 rows are needed to show 99.9%.
- a paired accuracy change (TensorFlow and the artifact on the same rows): only the
  discordant rows carry information, ``b`` (TF right, artifact wrong) and ``c`` (the
  reverse). Conditional on m = b + c, b ~ Binomial(m, pi) and the drop is m (2 pi - 1) / n;
  its interval is the Clopper-Pearson interval of pi mapped through that line. McNemar's
  exact test is ``binomtest(b, m, 0.5)`` (its p-value is reported). With m = 0 the drop is
  exactly 0 whatever n is: identical predictions need no statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
#: in a metric's detail: passed on its estimate, but the interval cannot show the bound (weak evidence)
UNSHOWN = "not shown on these rows"
#: the default confidence of every interval (``verify --confidence``)
DEFAULT_CONFIDENCE = 0.95
#: rows_needed searches up to this many rows (beyond it: "more than")
MAX_ROWS = 10_000_000


def clopper_pearson(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided interval of a binomial proportion k/n; (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def mcnemar_p(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value: the discordant rows split b/c against a fair coin (1.0 when none)."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(b), int(b + c), 0.5).pvalue)


@dataclass(frozen=True)
class Judged:
    """A rate against its bound: the estimate, its interval, the answer, and the rows that would settle it."""

    value: float
    low: float
    high: float
    verdict: str
    rows: int
    rows_needed: int | None = None  # INCONCLUSIVE or unshown: rows at the same rate that would decide
    p_value: float | None = None
    shown: bool = True  # False: the estimate meets the bound but the interval does not

    def interval_text(self, fmt: Callable[[float], str], confidence: float) -> str:
        text = f"{round(100 * confidence)}% interval [{fmt(self.low)}, {fmt(self.high)}] on {self.rows} rows"
        if self.p_value is not None:
            text += f", McNemar p = {self.p_value:.2g}"
        if self.verdict == INCONCLUSIVE:
            text += f"; INCONCLUSIVE: needs {needed_text(self.rows_needed)} rows"
        elif not self.shown:
            text += f"; {UNSHOWN}: needs {needed_text(self.rows_needed)} rows"
        return text


def needed_text(rows: int | None) -> str:
    return f"more than {MAX_ROWS:,}" if rows is None else f"≥ {rows:,}"


def _three_way(low: float, high: float, bound: float, higher_is_better: bool) -> str:
    if higher_is_better:
        return PASS if low >= bound else FAIL if high < bound else INCONCLUSIVE
    return PASS if high <= bound else FAIL if low > bound else INCONCLUSIVE


def judge_agreement(agree: int, n: int, bound: float, confidence: float = DEFAULT_CONFIDENCE) -> Judged:
    """``agree`` of ``n`` rows agree; the bound is a minimum rate.

    A bound of 1.0 asks for no disagreement at all, which no finite sample can show
    by an interval: it is held exactly (PASS when every row agrees, FAIL otherwise),
    as a float32 file's decisive top-1 is (a decisive flip is never rounding).
    """
    low, high = clopper_pearson(agree, n, confidence)
    value = agree / n if n else 1.0
    if bound >= 1.0:
        return Judged(value, low, high, PASS if agree == n else FAIL, n)
    verdict = _three_way(low, high, bound, True) if n else INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        rate = value if n else 1.0
        needed = rows_needed(lambda m: _three_way(*clopper_pearson(round(rate * m), m, confidence), bound, True)
                             != INCONCLUSIVE, n)
        if n and value >= bound:
            return Judged(value, low, high, PASS, n, needed, shown=False)
    return Judged(value, low, high, verdict, n, needed)


def drop_interval(b: int, c: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """The interval of the accuracy drop (b - c) / n given the discordant rows (see the module docstring)."""
    m = b + c
    if n <= 0:
        return -1.0, 1.0
    if m == 0:
        return 0.0, 0.0
    lo, hi = clopper_pearson(b, m, confidence)
    return m * (2 * lo - 1) / n, m * (2 * hi - 1) / n


def judge_drop(b: int, c: int, n: int, bound: float, confidence: float = DEFAULT_CONFIDENCE) -> Judged:
    """The paired accuracy drop (TF right/artifact wrong ``b``, the reverse ``c``, of ``n`` rows) against a maximum."""
    low, high = drop_interval(b, c, n, confidence)
    verdict = _three_way(low, high, bound, False) if n else INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        fb, fc = b / max(n, 1), c / max(n, 1)
        needed = rows_needed(lambda m: _three_way(*drop_interval(round(fb * m), round(fc * m), m, confidence), bound,
                                                  False) != INCONCLUSIVE, n)
        if n and (b - c) / n <= bound:
            return Judged((b - c) / n, low, high, PASS, n, needed, mcnemar_p(b, c), shown=False)
    return Judged((b - c) / n if n else 0.0, low, high, verdict, n, needed, mcnemar_p(b, c))


def rows_needed(decides: Callable[[int], bool], n: int) -> int | None:
    """The fewest rows (more than ``n``) at which ``decides(rows)`` holds, by doubling then bisection.

    ``decides`` is monotone in practice (intervals narrow as rows grow at a fixed rate);
    rounding the counts makes it only nearly so, which bisection tolerates.
    """
    lo, hi = max(n, 1), max(2 * n, 16)
    while not decides(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_ROWS:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return hi


def zero_flip_rows(bound: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Rows with no disagreement needed to show agreement ≥ ``bound``: (alpha/2)^(1/n) ≥ bound."""
    if bound <= 0:
        return 1
    if bound >= 1:
        return MAX_ROWS
    return math.ceil(math.log((1 - confidence) / 2) / math.log(bound))
