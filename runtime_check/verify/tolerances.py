"""Default parity tolerances, per variant, as data.

Keyed by ``(format, quantization)``; ``"*"`` as the format matches any format, so a
future ONNX float16 or int8 export gets the same bounds as its TFLite twin.
Every bounded metric can be overridden per artifact with one option,
``--bound NAME.METRIC=VALUE`` (``VALUE`` ``info`` makes it informational);
``--atol NAME=VALUE`` and ``--min-top1 NAME=VALUE`` are its short forms for
``max_abs_error`` and ``top1_agreement``. ``BOUNDED_METRICS`` is the one registry
of which metric each bound belongs to.

Where the numbers come from: six real Fashion-MNIST models (the reference MLP,
784-20-10, trained 5 epochs with seeds 0-3 and by ``edgefm train``, and the CNN
trained 2 epochs), each exported to every variant and run on the full
10,000-image test split. Worst case measured over those runs, then the bound
chosen (max |dlogit| 1e-4 for float32 is 5x the worst seen, 3e-2 for float16 4.5x):

================  ============  =============  ==========  ========  =========
variant           max |dlogit|  mean |dlogit|  top-1 agr.  acc. chg  max bound
================  ============  =============  ==========  ========  =========
float32 (TFLite)  1.8e-5        1.5e-6         100%        0         1e-4
float32 (ONNX)    1.6e-5        9.6e-7         100%        0         1e-4
float16           6.7e-3        9.3e-4         99.97%      +0.01 pt  3e-2
dynamic range     0.10          1.5e-2         99.75%      -0.09 pt  0.5
int8 (TFLite)     8.2           4.5e-2         99.01%      -0.28 pt  (info)
int8 (ONNX, QDQ)  8.2           6.3e-2         98.76%      -0.41 pt  (info)
================  ============  =============  ==========  ========  =========

Quantized int8 logits can differ from TF by several units where the calibration
range clips them, so int8 is judged by top-1 agreement, accuracy drop, the mean
error and cosine, and its max logit error is only reported. Batch-1 versus
large-batch outputs were bit-identical in every runtime; the int8 probabilities
(an int8 tensor with scale 1/256) sum to 1 within 0.012.

Re-derived on real models (``benchmarks.zoo``: keras.applications MobileNetV2 alpha 0.35
and EfficientNetB0 at 32x32x3, a residual CNN with batch norm, an Embedding + GRU text
model, a two-output Conv1D model with an ``[N, 1]`` regression head, a detection head with
boxes ``[N, 2, 4]`` and scores ``[N, 2]``; trained briefly, weights=None; 1,000 verify
rows; ``python -m benchmarks.soundness``). Worst good export per variant, and the planted
faults nearest to it:

==========  =================  ===========  ==========  ===========  =========================
variant     SNR dB (min)       max rel.     cosine      top-1 raw /  nearest planted fault
            over outputs       err (max)    (min, >2    decisive
                                            values)     (min)
==========  =================  ===========  ==========  ===========  =========================
float32     122                4e-6         1.000000    100 / 100%   conv x1.05: 31 dB, 9e-4
float16     57                 3.2e-3       0.999999    99.9 / 100%  (float32 faults only)
dynamic     36.9               3.2e-2       0.99990     98.6 / 100%  (float32 faults only)
int8        24.3 (MNv2 ONNX)   0.15         0.9982      95.2 / 98.7% zeroed channel: 12.3 dB,
                                                                     cosine 0.965 / boxes 0.9942;
                                                                     head x1.5+0.2: 1.2-1.9 dB
==========  =================  ===========  ==========  ===========  =========================

Hence: SNR is bounded for every output of every variant (float32 60, float16 35, dynamic
15, int8 10 dB: an ``[N, 1]`` head scaled x1.5 + 0.2 is at 1.9 dB); int8 cosine 0.995
(0.999 failed every good MobileNetV2 int8 file at accuracy drop 0.6 pt, and a zeroed
channel stays below 0.995 on every model); decisive top-1 100% for float32 (held exactly: a decisive flip is never float32
rounding), 99.9% float16, 98% dynamic and 97% int8, each judged by its interval (edgefm's
own CNN float16 had 1 decisive flip in 2,000 rows, its MLP dynamic 2 in 10,000: an exact
100% failed them); the int8 runtime within 16 quantization steps of the exact oracle of the same
file (good files: 1-8 steps, ``runtime_check.verify.oracle``). Accuracy-drop bounds are
unchanged and judged by their paired interval (``runtime_check.verify.statistics``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from edgefm.core.errors import ConfigError, UsageError
from runtime_check.verify.results import artifact_of


@dataclass(frozen=True)
class BoundedMetric:
    """A metric that has a bound: the Tolerance field that holds it, and the values that make sense."""

    field: str
    low: float  # smallest bound that can be asked for
    high: float  # largest


#: metric name (as in reports) -> where its bound lives. Metrics not listed here
#: (checksum, outputs, output_shapes, nonfinite, binding_max_abs_diff) are exact and cannot be loosened.
BOUNDED_METRICS: dict[str, BoundedMetric] = {
    "max_abs_error": BoundedMetric("max_abs", 0.0, math.inf),
    "mean_abs_error": BoundedMetric("mean_abs", 0.0, math.inf),
    "cosine": BoundedMetric("min_cosine", -1.0, 1.0),
    "top1_agreement": BoundedMetric("min_top1", 0.0, 1.0),
    "accuracy_drop": BoundedMetric("max_accuracy_drop", -1.0, 1.0),
    "batch_invariance": BoundedMetric("batch_invariance", 0.0, math.inf),
    "probability_sum": BoundedMetric("probability_sum", 0.0, math.inf),
    "exact_match": BoundedMetric("min_exact", 0.0, 1.0),
    "max_rel_error": BoundedMetric("max_rel", 0.0, math.inf),
    "snr_db": BoundedMetric("min_snr_db", -math.inf, math.inf),
    "oracle_steps": BoundedMetric("oracle_steps", 0.0, math.inf),
}
#: metrics a report shows that hold no bound, and where their bound went (named in the ``--bound`` error)
REPORTED_ONLY: dict[str, str] = {
    "top1_raw": "the raw top-1 agreement counts flips on near-ties, so the bound is on the decisive one; set "
                "it with --bound NAME.top1_agreement=VALUE (or --min-top1 NAME=VALUE).",
    "accuracy": "the artifact's accuracy is judged by its change from TensorFlow's; set --bound "
                "NAME.accuracy_drop=VALUE (a fraction: 0.01 is 1 point).",
}
#: separates an output's name from a metric's: ``--bound NAME.OUTPUT/METRIC=VALUE`` (compare.OUTPUT_SEP)
OUTPUT_SEP = "/"
#: how the CLI spells the per-metric override (named in failure messages)
BOUND_OPTION = "--bound"


@dataclass(frozen=True)
class Tolerance:
    """Bounds for one variant. ``None`` makes a metric informational (reported, never failing)."""

    max_abs: float | None  # logits, max over all elements
    mean_abs: float | None  # logits, mean over all elements
    min_cosine: float  # mean over samples of the per-sample cosine of the logits
    min_top1: float  # fraction of samples whose argmax matches TF's
    max_accuracy_drop: float  # TF accuracy minus candidate accuracy (fraction)
    batch_invariance: float  # max |logits(batch 1) - logits(large batch)|
    probability_sum: float  # max |sum(probabilities) - 1|
    min_exact: float = 1.0  # integer outputs (class ids, indices): fraction of equal elements
    max_rel: float | None = None  # max |error| / max |reference| (reported unless bounded)
    min_snr_db: float | None = None  # SNR in dB (reported unless bounded)
    #: bounds of one output's metric, ``(("probabilities/max_abs_error", 1e-3), ...)``: ``--atol NAME.OUTPUT``
    per_output: tuple[tuple[str, float | None], ...] = ()
    #: int8: max difference, in output quantization steps, of the runtime from the exact oracle of the same file
    oracle_steps: float | None = None
    #: the confidence of the intervals of the rates (top-1 agreement, accuracy drop): ``verify --confidence``
    confidence: float = 0.95

    def bound(self, metric: str, output: str | None = None) -> float | None:
        """The bound of ``metric`` (a name of ``BOUNDED_METRICS``) for ``output``; ``None``: informational.

        A bound set for ``OUTPUT/metric`` wins over the variant's bound of ``metric``.
        """
        if output is not None:
            for key, value in self.per_output:
                if key == f"{output}{OUTPUT_SEP}{metric}":
                    return value
        return getattr(self, BOUNDED_METRICS[metric].field)

    def with_bounds(self, overrides: Mapping[str, float | None]) -> Tolerance:
        """A copy with the bounds of the named metrics replaced (``OUTPUT/metric`` names: that output's only)."""
        plain = {BOUNDED_METRICS[m].field: v for m, v in overrides.items() if OUTPUT_SEP not in m}
        qualified = tuple((m, v) for m, v in overrides.items() if OUTPUT_SEP in m)
        kept = tuple((m, v) for m, v in self.per_output if m not in dict(qualified))
        return replace(self, **plain, per_output=kept + qualified)


#: int8 SNR against TF, every output (a one-value output too: its cosine cannot fail); see the table above
INT8_MIN_SNR_DB = 10.0
#: int8: the runtime against the exact oracle of the same file, in output quantization steps (runtime_check.verify.oracle)
#: (good files measured 1-8 steps, but EfficientNetB0's int8 TFLite 31: XNNPACK vs reference kernels; 2x that)
ORACLE_MAX_STEPS = 64

FLOAT32 = Tolerance(
    max_abs=1e-4, mean_abs=1e-5, min_cosine=0.99999, min_top1=1.0,
    max_accuracy_drop=0.001, batch_invariance=1e-5, probability_sum=1e-5, min_snr_db=60.0,
)
FLOAT16 = Tolerance(
    max_abs=3e-2, mean_abs=5e-3, min_cosine=0.9999, min_top1=0.999,
    max_accuracy_drop=0.005, batch_invariance=1e-3, probability_sum=1e-4, min_exact=0.999, min_snr_db=35.0,
)
DYNAMIC = Tolerance(
    max_abs=0.5, mean_abs=5e-2, min_cosine=0.999, min_top1=0.98,
    max_accuracy_drop=0.015, batch_invariance=1e-2, probability_sum=1e-4, min_exact=0.98, min_snr_db=15.0,
)
INT8 = Tolerance(
    max_abs=None, mean_abs=0.25, min_cosine=0.995, min_top1=0.97,
    max_accuracy_drop=0.015, batch_invariance=0.5, probability_sum=0.03, min_exact=0.97, min_snr_db=INT8_MIN_SNR_DB,
    oracle_steps=ORACLE_MAX_STEPS,
)

#: Scale-free bounds for a model edgefm did not train, per quantization: (max relative error, min SNR in dB).
#: Absolute bounds (the table above) were measured on edgefm's own networks, whose logits are ~10; a model
#: brought from elsewhere has outputs of any scale and any depth. Measured: a keras.applications MobileNetV2
#: (alpha 0.35, 32x32, weights=None, BatchNormalization statistics of the inputs) float32 .tflite differs from
#: TF by max |d| 1.4e-4 on logits up to 3.2 (relative 4.2e-5, SNR 91 dB) -- over the absolute 1e-4, and no fault.
#: So these models are judged by max_rel_error (max |d| / max |reference|), SNR and cosine; max/mean |d| are
#: reported, and bounded when asked (--atol NAME[.OUTPUT]=V, --bound NAME.max_abs_error=V).
RELATIVE_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "none": (1e-4, 60.0),
    "float16": (1e-2, 35.0),
    "dynamic": (0.1, 15.0),
    "int8": (None, INT8_MIN_SNR_DB),  # max relative error reported: int8 clips outside its calibration range
}

DEFAULT_TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("*", "none"): FLOAT32,
    ("*", "float16"): FLOAT16,
    ("*", "dynamic"): DYNAMIC,
    ("*", "int8"): INT8,
}


def default_tolerance(fmt: str, quantization: str, table: Mapping[tuple[str, str], Tolerance] = DEFAULT_TOLERANCES) -> Tolerance:
    """The bounds for ``(format, quantization)``: an exact entry first, then the any-format one."""
    for key in ((fmt, quantization), ("*", quantization)):
        if key in table:
            return table[key]
    known = ", ".join(sorted({q for _, q in table}))
    raise UsageError(
        f"No parity tolerance for {fmt} artifacts quantized as {quantization!r} (known quantizations: "
        f"{known}). Re-export with a supported --quantize, or add an entry to runtime_check/tolerances.py."
    )


def tolerance_for(
    name: str,
    fmt: str,
    quantization: str,
    *,
    atol: Mapping[str, float] | None = None,
    min_top1: Mapping[str, float] | None = None,
    bounds: Mapping[str, Mapping[str, float | None]] | None = None,
    relative: bool = False,
    confidence: float | None = None,
) -> Tolerance:
    """Default bounds for the variant, with the per-artifact overrides.

    ``relative``: a model edgefm did not train, judged scale-free (``RELATIVE_BOUNDS``).
    ``bounds`` maps artifact name -> metric -> bound (``--bound``); ``atol`` and
    ``min_top1`` (``--atol``, ``--min-top1``) are applied first, so ``--bound`` wins.
    """
    tol = default_tolerance(fmt, quantization)
    if relative:
        max_rel, min_snr = RELATIVE_BOUNDS.get(quantization, (None, None))
        tol = replace(tol, max_abs=None, mean_abs=None, max_rel=max_rel, min_snr_db=min_snr)
    if atol and name in atol:
        tol = replace(tol, max_abs=atol[name])
    for key, value in (atol or {}).items():  # --atol NAME.OUTPUT=VALUE: that output's max_abs_error
        artifact, _, output = key.partition(".")
        if artifact == name and output:
            tol = tol.with_bounds({f"{output}{OUTPUT_SEP}max_abs_error": value})
    if min_top1 and name in min_top1:
        tol = replace(tol, min_top1=min_top1[name])
    if bounds and name in bounds:
        tol = tol.with_bounds(bounds[name])
    return tol if confidence is None else replace(tol, confidence=confidence)


def check_bound(name: str, metric: str, value: float | None) -> None:
    """A ``--bound NAME.METRIC=VALUE`` that names a known metric with a value in its range, else a ConfigError."""
    where = f"{BOUND_OPTION} {name}.{metric}"
    metric = metric.rsplit(OUTPUT_SEP, 1)[-1]  # OUTPUT/metric: the output is checked against the model later
    if metric in REPORTED_ONLY:
        raise ConfigError(f"{where}: {metric!r} is reported, never bounded: {REPORTED_ONLY[metric]}")
    if metric not in BOUNDED_METRICS:
        raise ConfigError(
            f"{where}: {metric!r} has no bound to set; metrics with bounds are "
            f"{', '.join(BOUNDED_METRICS)} (checksum, outputs, NaN/Inf and the native runner's exact match "
            "with its binding cannot be loosened)."
        )
    if value is None:
        return
    spec = BOUNDED_METRICS[metric]
    if not (math.isfinite(value) and spec.low <= value <= spec.high):
        high = "" if math.isinf(spec.high) else f" and at most {spec.high:g}"
        raise ConfigError(f"{where}={value}: the bound must be a number of at least {spec.low:g}{high}.")


def loosen_hint(artifact: str, metric: str) -> str | None:
    """The option that would move ``metric``'s bound for ``artifact`` (``name@native`` shares ``name``'s)."""
    if metric.rsplit(OUTPUT_SEP, 1)[-1] not in BOUNDED_METRICS:
        return None
    return f"{BOUND_OPTION} {artifact_of(artifact)}.{metric}=VALUE"
