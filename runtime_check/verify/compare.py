"""Pure-NumPy comparison of a candidate's named outputs with the reference's.

Every check returns a small ``Metric`` that knows its value, its bound and whether
it passed (the shape of Polygraphy's ``OutputCompareResult``); an artifact's
checks are gathered in an ``ArtifactResult``. Nothing here raises on a failed
check: all metrics are computed first, the caller decides afterwards.

Definitions (``a`` candidate, ``r`` reference, both ``[N, C]``):

- ``max_abs_error`` / ``mean_abs_error``: over every element of the logits.
- ``cosine``: the *mean over samples* of the per-sample cosine similarity of
  the logit vectors (a global cosine over the flattened arrays would hide a few
  bad samples among many good ones).
- ``top1_agreement``: fraction of samples whose argmax equals the reference's.
- ``accuracy_drop``: reference accuracy minus candidate accuracy (a fraction; a
  candidate that is more accurate has a negative drop).
- ``nonfinite``: count of NaN or Inf values over all outputs.
- ``batch_invariance``: max abs difference of the outputs of a batch-1 run and
  of the large-batch run on the same samples.
- ``max_rel_error``: max abs error divided by the reference output's peak |value|.
- ``snr_db``: 10 log10(sum r^2 / sum (a - r)^2).
- ``exact_match``: fraction of equal elements (integer outputs: class ids, indices).

Models with several outputs: the primary output (``logits``, else the first
classification output, else the first float one) keeps these plain names; the
metrics of every other output are named ``OUTPUT/metric``.
- ``probability_sum``: max over samples of ``|sum(probabilities) - 1|``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np

from runtime_check.verify.results import INFO, OUTPUT_SEP, Metric, format_value
from runtime_check.verify.tolerances import Tolerance

LOGITS = "logits"
PROBABILITIES = "probabilities"

# -- the measurements (pure functions over arrays) ------------------------------------------


def max_abs_error(a: np.ndarray, r: np.ndarray) -> float:
    """Largest absolute element-wise difference (NaN if either side holds NaN)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(r, np.float64))
    return float(d.max()) if d.size else 0.0


def mean_abs_error(a: np.ndarray, r: np.ndarray) -> float:
    """Mean absolute element-wise difference; never above the max (summing n equal values and dividing by n can
    land an ulp above them: Hypothesis found it in ``test_metric_properties``)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(r, np.float64))
    return float(min(d.mean(), d.max())) if d.size else 0.0


def cosine_similarity(a: np.ndarray, r: np.ndarray) -> float:
    """Mean over samples of the per-sample cosine similarity of rows of ``[N, C]`` arrays.

    Two all-zero rows count as identical (1.0); a zero row against a non-zero row as 0.
    Computed in float64, where the product of two float32 norms cannot underflow.
    """
    a64 = np.asarray(a, np.float64).reshape(len(a), -1)
    r64 = np.asarray(r, np.float64).reshape(len(r), -1)
    if not len(a64):
        return 1.0
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(r64, axis=1)
    both_zero = ~a64.any(axis=1) & ~r64.any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms == 0, 0.0, (a64 * r64).sum(axis=1) / norms)  # NaN stays NaN
    cos = np.where(both_zero, 1.0, cos)
    return float(np.clip(cos, -1.0, 1.0).mean())


def top1_agreement(a: np.ndarray, r: np.ndarray) -> float:
    """Fraction of samples whose argmax class matches the reference's."""
    if not len(a):
        return 1.0
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(r, axis=1)))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if not len(logits):
        return 0.0
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def nonfinite_count(outputs: Mapping[str, np.ndarray]) -> int:
    """Number of NaN or Inf values over every named output."""
    return int(sum(np.size(v) - np.count_nonzero(np.isfinite(v)) for v in outputs.values()))


def probability_sum_error(probabilities: np.ndarray) -> float:
    """Largest ``|sum over classes - 1|`` over samples."""
    p = np.asarray(probabilities, np.float64)
    if not len(p):
        return 0.0
    return float(np.abs(p.sum(axis=1) - 1.0).max())


# -- one artifact against the reference -------------------------------------------------------

#: output names that mark a classification output when the manifest declares none
CLASSIFICATION_NAMES = frozenset({LOGITS, PROBABILITIES, "scores", "predictions", "probs", "output_0"})
#: separates an output's name from a metric's in the metrics of every output but the primary one


def metric_name(metric: str, output: str, primary: str | None) -> str:
    """``metric`` for the primary output (as in every report so far), ``OUTPUT/metric`` for the others."""
    return metric if output == primary else f"{output}{OUTPUT_SEP}{metric}"


def is_integer(a: np.ndarray) -> bool:
    """Class ids, indices, masks: compared exactly, never by a float tolerance."""
    return np.asarray(a).dtype.kind in "iub"


def primary_output(reference: Mapping[str, np.ndarray], classification: Collection[str] = ()) -> str | None:
    """The output a report leads with: ``logits``, else the first classification output, else the first float one."""
    if LOGITS in reference:
        return LOGITS
    for k in reference:
        if k in classification:
            return k
    return next((k for k, v in reference.items() if not is_integer(v)), next(iter(reference), None))


def classification_outputs(reference: Mapping[str, np.ndarray]) -> set[str]:
    """Outputs judged by top-1 when the manifest declares none: ``[N, C]`` float outputs named like classes.

    Probabilities beside logits are the same classes again: top-1 once, on the logits. An ``[N, 1]`` output is
    a score or a regression head, never classes (its argmax is always 0: any labels of 0 would read as 100%).
    """
    return {k for k, v in reference.items() if k in CLASSIFICATION_NAMES and np.ndim(v) == 2 and np.shape(v)[1] >= 2
            and not is_integer(v) and not (k == PROBABILITIES and LOGITS in reference)}


def max_rel_error(a: np.ndarray, r: np.ndarray) -> float:
    """Largest |a - r| relative to the reference output's own range (max |r|); 0 for an all-zero reference.

    Element-wise relative errors explode where the reference is near zero, so the
    error is divided by the output's peak magnitude instead (scale-free, stable).
    """
    peak = float(np.max(np.abs(np.asarray(r, np.float64)))) if np.size(r) else 0.0
    err = max_abs_error(a, r)
    return err / peak if peak > 0 else (0.0 if err == 0 else math.inf)


def snr_db(a: np.ndarray, r: np.ndarray) -> float:
    """Signal-to-noise ratio of the candidate against the reference, in dB (inf when they are equal)."""
    r64 = np.asarray(r, np.float64)
    noise = float(np.sum((np.asarray(a, np.float64) - r64) ** 2))
    signal = float(np.sum(r64**2))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def exact_match(a: np.ndarray, r: np.ndarray) -> float:
    """Fraction of elements that are equal (integer outputs: class ids, indices, masks)."""
    if not np.size(r):
        return 1.0
    return float(np.mean(np.asarray(a) == np.asarray(r)))


#: a top-1 flip is a near-tie, not a decisive disagreement, when TF's top-1/top-2 margin on that row is at most
#: TIE_FACTOR x the variant's noise: the NOISE_QUANTILE of the per-row max |error| of that output. Only an output
#: whose error metrics are all within bounds gets this allowance (a wrong file's large noise excuses nothing).
#: Not the row's own error: a flip needs margin <= 2 x that row's max |error|, so that would excuse every flip.
#: Measured (benchmarks.zoo, 1,000 rows; decisive flips left of all flips), median x 1 against 90th pct x 2:
#:   MobileNetV2 int8 good 13 of 48 (x2 p90: 0), float16 0 of 1, dynamic 0 of 14; resnet int8 good 0 of 7;
#:   text int8 good 5 of 11; MobileNetV2 int8 with a zeroed channel 44 of 270 (p90 x 2: 0 -- it excused the
#:   fault), resnet int8 zeroed 32 of 139 (p90 x 2: 0). The median x 1 keeps every good file at 0 decisive
#:   flips (float) or >= 98.7% (int8) and leaves a fault's flips counted.
TIE_FACTOR = 1.0
NOISE_QUANTILE = 0.5
#: ...and never below the output's resolution: a margin smaller than one step of a quantized output's grid, or
#: than RESOLUTION x the output's peak |value| (float32 rounding through a network), cannot be kept by any file.
#: Measured: a detection head's two sigmoid scores saturate at 1.0 in TF (margins 1e-8..1e-7); ONNX float32 flipped
#: 9 of those rows and an int8 file (step 1/256) 156, while the median error of those saturated rows is ~0.
RESOLUTION = 1e-5
#: outputs with at most this many values per row (a score, a regression head, a pair): cosine is informational, the
#: output is judged by SNR and relative error (bounded for every output in every variant)
FEW_VALUES = 2


def values_per_row(r: np.ndarray) -> int:
    return int(np.prod(np.shape(r)[1:], dtype=np.int64)) if np.ndim(r) > 1 else 1


def top1_margin(r: np.ndarray) -> np.ndarray:
    """Per row, the reference's top-1 minus its top-2 score (inf for a single class)."""
    r64 = np.asarray(r, np.float64)
    if r64.shape[1] < 2:
        return np.full(len(r64), np.inf)
    top2 = np.partition(r64, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def resolution(a: np.ndarray, r: np.ndarray) -> float:
    """The smallest margin an output can keep: its quantization step if it lies on a grid, else RESOLUTION x peak."""
    from runtime_check.device.ledger import grid_step

    peak = float(np.max(np.abs(np.asarray(r, np.float64)))) if np.size(r) else 0.0
    step = grid_step(a) if np.size(a) else None
    return max(RESOLUTION * peak, step or 0.0)


def noise_level(a: np.ndarray, r: np.ndarray, quantile: float = NOISE_QUANTILE) -> float:
    """The variant's noise on this output: a high quantile of the per-row max |error| (0 for no rows)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(r, np.float64)).reshape(len(r), -1)
    return float(np.quantile(d.max(axis=1), quantile)) if len(d) else 0.0


def judge_top1(a: np.ndarray, r: np.ndarray, name: str, bound: float | None, confidence: float, *,
               tie: bool = True) -> list[Metric]:
    """The raw top-1 agreement (``top1_raw``, reported) and the decisive one, judged against ``bound``.

    A flip is decisive unless TF's margin on that row is within ``TIE_FACTOR`` x the
    variant's noise (``tie`` False: no allowance, every flip counts). Decisive
    agreement counts near-tie flips as agreements, over all rows, and is judged by its
    Clopper-Pearson interval (``statistics.judge_agreement``).
    """
    from runtime_check.verify.statistics import judge_agreement

    n = len(r)
    flips = np.argmax(a, axis=1) != np.argmax(r, axis=1)
    limit = max(TIE_FACTOR * noise_level(a, r), resolution(a, r)) if tie else 0.0
    decisive = flips & (top1_margin(r) > limit)
    agree = n - int(decisive.sum())
    raw_name = name.replace("top1_agreement", "top1_raw")
    raw = Metric.check(raw_name, float(1 - flips.mean()) if n else 1.0, None, INFO,
                       detail=f"{int(flips.sum())} of {n} rows flip")
    ties = int(flips.sum()) - int(decisive.sum())
    why = f"{ties} near-tie flip{'s' if ties != 1 else ''} excused (TF margin ≤ {limit:.3g})" if tie else \
        "no near-tie allowance: the errors are out of bounds"
    if bound is None:
        return [raw, Metric.check(name, agree / n if n else 1.0, None, INFO, detail=why)]
    j = judge_agreement(agree, n, float(bound), confidence)
    detail = f"raw {format_value('top1_agreement', raw.value)}, {why}; " + j.interval_text(
        lambda v: format_value("top1_agreement", v), confidence)
    return [raw, Metric.judged(name, j.value, bound, ">=", j.verdict, detail)]


def judge_accuracy_drop(a: np.ndarray, r: np.ndarray, labels: np.ndarray, name: str, bound: float | None,
                        confidence: float) -> Metric:
    """TF's accuracy minus the artifact's on the same rows, judged by its paired interval (exact McNemar)."""
    from runtime_check.verify.statistics import judge_drop

    y = np.asarray(labels)
    tf_right, art_right = np.argmax(r, axis=1) == y, np.argmax(a, axis=1) == y
    b, c = int((tf_right & ~art_right).sum()), int((~tf_right & art_right).sum())
    n = len(y)
    if bound is None:
        return Metric.check(name, (b - c) / n if n else 0.0, None, INFO, detail=f"{b} rows only TF gets right, {c} "
                            "only the artifact")
    j = judge_drop(b, c, n, float(bound), confidence)
    detail = f"{b} rows only TF gets right, {c} only the artifact; " + j.interval_text(
        lambda v: format_value("accuracy_drop", v), confidence)
    return Metric.judged(name, j.value, bound, "<=", j.verdict, detail)


def compare_outputs(
    candidate: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    tol: Tolerance,
    *,
    batch1: Mapping[str, np.ndarray] | None = None,
    classification: Collection[str] | None = None,
) -> list[Metric]:
    """All parity metrics of ``candidate`` against ``reference`` (same inputs, same order), for every output.

    The primary output (``primary_output``) keeps the plain metric names; every other
    output's metrics are named ``OUTPUT/metric``. Float outputs get max/mean absolute
    error, max relative error and SNR (reported), cosine; classification outputs
    (``classification``, default: those named like ``CLASSIFICATION_NAMES`` with
    shape ``[N, C]``) also top-1 agreement, and with ``labels`` accuracy and its drop.
    Integer outputs are compared exactly (``exact_match``). ``batch1`` holds the
    candidate's outputs for the first samples run one at a time (batch invariance,
    over every output); omitted, that check is skipped. Missing or misshapen outputs
    become failed metrics, never exceptions.
    """
    metrics: list[Metric] = []
    missing = sorted(set(reference) - set(candidate))
    metrics.append(
        Metric.check("outputs", "missing " + ", ".join(missing) if missing else "ok", "ok", "==",
                     detail=f"candidate has {sorted(candidate)}, reference has {sorted(reference)}" if missing else "")
    )
    bad_shape = [
        f"{k} {list(np.shape(candidate[k]))} vs {list(np.shape(reference[k]))}"
        for k in sorted(set(reference) & set(candidate))
        if np.shape(candidate[k]) != np.shape(reference[k])
    ]
    metrics.append(Metric.check("output_shapes", "; ".join(bad_shape) or "ok", "ok", "=="))
    metrics.append(Metric.check("nonfinite", nonfinite_count(candidate), 0, "=="))
    if missing or bad_shape or not reference:
        return metrics

    if classification is None:
        classification = classification_outputs(reference)
    primary = primary_output(reference, classification)
    order = [primary, *(k for k in reference if k != primary)]
    for k in order:
        a, r = candidate[k], reference[k]
        bounded = lambda m, value, op, k=k: Metric.check(metric_name(m, k, primary), value, tol.bound(m, k), op)  # noqa: E731
        info = lambda m, value, k=k: Metric.check(metric_name(m, k, primary), value, None, INFO)  # noqa: E731
        if is_integer(r):
            metrics.append(bounded("exact_match", exact_match(a, r), ">="))
            continue
        errors = [
            bounded("max_abs_error", max_abs_error(a, r), "<="),
            bounded("mean_abs_error", mean_abs_error(a, r), "<="),
            bounded("max_rel_error", max_rel_error(a, r), "<="),
            # a row of one value has cosine 1.0 whenever the sign agrees: reported, never the bound
            bounded("cosine", cosine_similarity(a, r), ">=") if values_per_row(r) > FEW_VALUES
            else info("cosine", cosine_similarity(a, r)),
            bounded("snr_db", snr_db(a, r), ">="),
        ]
        metrics.extend(errors)
        if k in classification and np.ndim(r) == 2:
            within = all(m.passed for m in errors)
            metrics.extend(judge_top1(a, r, metric_name("top1_agreement", k, primary), tol.bound("top1_agreement", k),
                                      tol.confidence, tie=within))
            if labels is not None and len(labels) == len(r):
                metrics.append(info("accuracy", accuracy(a, labels)))
                metrics.append(judge_accuracy_drop(a, r, labels, metric_name("accuracy_drop", k, primary),
                                                   tol.bound("accuracy_drop", k), tol.confidence))
    if PROBABILITIES in candidate and not is_integer(candidate[PROBABILITIES]):
        metrics.append(Metric.check("probability_sum", probability_sum_error(candidate[PROBABILITIES]),
                                    tol.bound("probability_sum"), "<="))
    if batch1 is not None and any(k in batch1 for k in reference):
        worst = max(max_abs_error(batch1[k], candidate[k][: len(batch1[k])]) for k in order if k in batch1)
        metrics.append(Metric.check("batch_invariance", worst, tol.bound("batch_invariance"), "<="))
    return metrics


def compare_exact(candidate: Mapping[str, np.ndarray], binding: Mapping[str, np.ndarray], name: str = "binding_max_abs_diff") -> Metric:
    """Max abs difference over every shared output; two runs of the same engine must agree exactly."""
    shared = sorted(set(candidate) & set(binding))
    if not shared or any(np.shape(candidate[k]) != np.shape(binding[k]) for k in shared):
        return Metric.check(name, "outputs differ in names or shapes", "same", "==")
    diffs = [max_abs_error(candidate[k], binding[k]) for k in shared]
    worst = math.nan if any(math.isnan(d) for d in diffs) else max(diffs)
    return Metric.check(name, worst, 0.0, "<=")
