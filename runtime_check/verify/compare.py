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

from runtime_check.verify.results import INFO, OUTPUT_SEP, Metric
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

    Probabilities beside logits are the same classes again: top-1 once, on the logits.
    """
    return {k for k, v in reference.items() if k in CLASSIFICATION_NAMES and np.ndim(v) == 2
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
        metrics.append(bounded("max_abs_error", max_abs_error(a, r), "<="))
        metrics.append(bounded("mean_abs_error", mean_abs_error(a, r), "<="))
        metrics.append(bounded("max_rel_error", max_rel_error(a, r), "<="))
        metrics.append(bounded("cosine", cosine_similarity(a, r), ">="))
        metrics.append(bounded("snr_db", snr_db(a, r), ">="))
        if k in classification and np.ndim(r) == 2:
            metrics.append(bounded("top1_agreement", top1_agreement(a, r), ">="))
            if labels is not None and len(labels) == len(r):
                acc, ref_acc = accuracy(a, labels), accuracy(r, labels)
                metrics.append(info("accuracy", acc))
                metrics.append(bounded("accuracy_drop", ref_acc - acc, "<="))
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
