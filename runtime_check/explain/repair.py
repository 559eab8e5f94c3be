"""``verify --explain NAME --repair``: the smallest set of layers an int8 artifact keeps in float to pass.

Order of work per int8 artifact (``propose``), every step measured, none guessed:

1. the candidates: the layers the quantizer can keep in float, in graph order; a model
   with more than ``MAX_CANDIDATES`` is cut to those where ``--explain`` saw the most SNR
   lost in one step (``drop_db``), so a deep model costs a bounded number of conversions;
2. the cost of each: the model with only that layer in int8 (every other one float), run
   on the first ``ROWS`` verify inputs against TensorFlow; the layers are ranked by the
   SNR of the primary output, lowest (costliest) first. Keeping one layer float in an
   otherwise int8 model says little: an activation's range is shared by the layer that
   writes it and the one that reads it, so the reader re-quantizes what the writer kept
   (measured: neither of two such layers gains a dB alone, the pair repairs);
3. the set: layers are added in rank order until the model passes its verify bounds,
   then each is dropped again if the model passes without it;
4. with ``--repair`` the CLI exports that set (``export --keep-float``: the ``*_int8_mixed``
   variant beside the plain one) and verify runs again, so the report shows both.

The quantizer comes from ``export`` (``export.to_tflite.TFLiteKeepFloat``,
``export.to_onnx.OnnxKeepFloat``) and is passed in: this stage never imports ``export``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import EdgefmError
from edgefm.formats.layers import names_layer
from runtime_check.explain.explain import Explanation, first_rows, heading, paragraph
from runtime_check.verify.compare import compare_outputs
from runtime_check.verify.results import json_number
from runtime_check.verify.tolerances import Tolerance

#: verify inputs each trial runs on (top-1 agreement needs more than explain's 64)
ROWS = 1000
#: most layers whose cost is measured one by one
MAX_CANDIDATES = 8
SUFFIX = {TFLITE_FORMAT: ".tflite", ONNX_FORMAT: ".onnx"}


class KeepFloatQuantizer(Protocol):
    """What ``export`` offers per format: the layers it can keep in float and the model with some kept."""

    layers: list[tuple[str, str]]  # (label, tensor or node name), graph order

    def quantize(self, keep_float: Sequence[str]) -> bytes: ...


@dataclass
class Trial:
    """One selectively quantized model measured against TensorFlow."""

    keep_float: tuple[str, ...]
    passed: bool
    top1_agreement: float | None
    cosine: float | None
    snr_db: float
    accuracy: float | None
    bytes: int
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"keep_float": list(self.keep_float), "passed": self.passed, "top1_agreement": json_number(self.top1_agreement),
                "cosine": json_number(self.cosine), "snr_db": json_number(self.snr_db), "accuracy": json_number(self.accuracy),
                "bytes": self.bytes, "failed": self.failed}


@dataclass
class Repair:
    """The search for one artifact and what came of it."""

    name: str
    rows: int = 0
    layers: int = 0
    #: (layer, SNR in dB of the primary output when only that layer is int8), the costliest first
    ranking: list[tuple[str, float]] = field(default_factory=list)
    before: Trial | None = None
    proposal: Trial | None = None
    trials: list[Trial] = field(default_factory=list)
    #: the artifact ``--repair`` wrote (``tflite_int8_mixed``), once exported, and whether verify passed it
    exported: str | None = None
    verified: bool | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "layers": self.layers,
            "ranking": [{"layer": n, "snr_db_alone": json_number(g)} for n, g in self.ranking],
            "before": None if self.before is None else self.before.to_dict(),
            "proposal": None if self.proposal is None else self.proposal.to_dict(),
            "trials": len(self.trials), "exported": self.exported, "verified": self.verified,
            "seconds": round(self.seconds, 3), "error": self.error,
        }


def _metric(metrics: Sequence[Any], name: str) -> float | None:
    m = next((m for m in metrics if m.name == name), None)
    return None if m is None or not isinstance(m.value, (int, float)) else float(m.value)


def measure(model: bytes, fmt: str, keep_float: tuple[str, ...], feeds: Mapping[str, np.ndarray],
            reference: Mapping[str, np.ndarray], labels: np.ndarray | None, tol: Tolerance,
            batch_size: int = 250) -> Trial:
    """Run ``model`` (bytes of a .tflite/.onnx) in its runtime and hold it against ``reference`` with ``tol``."""
    from runtime_check.runtimes.registry import runtime_for

    with tempfile.TemporaryDirectory(prefix="edgefm-repair-") as tmp:
        path = Path(tmp) / f"trial{SUFFIX[fmt]}"
        path.write_bytes(model)
        with runtime_for(path) as rt:
            got = rt.infer_batched(feeds, batch_size)
    metrics = [m for m in compare_outputs(got, reference, labels, tol) if m.name != "batch_invariance"]
    snr = _metric(metrics, "snr_db")
    return Trial(keep_float, all(m.passed for m in metrics), _metric(metrics, "top1_agreement"),
                 _metric(metrics, "cosine"), -math.inf if snr is None else snr, _metric(metrics, "accuracy"),
                 len(model), [m.describe() for m in metrics if not m.passed])


def _priors(explanation: Explanation | None, labels: Sequence[str]) -> dict[str, float]:
    """Per layer, the most SNR ``--explain`` saw lost in one step at a tensor of that layer (-inf: none seen)."""
    prior = {label: -math.inf for label in labels}
    for t in (explanation.tensors if explanation else []):
        for label in labels:
            if names_layer(t.tf, label) or names_layer(t.candidate, label):
                prior[label] = max(prior[label], t.drop_db)
    return prior


def propose(name: str, fmt: str, quantizer: KeepFloatQuantizer, feeds: Mapping[str, np.ndarray],
            reference: Mapping[str, np.ndarray], labels: np.ndarray | None, tol: Tolerance,
            explanation: Explanation | None = None, max_candidates: int = MAX_CANDIDATES) -> Repair:
    """The smallest set of layers found that, kept in float, brings the int8 model within ``tol`` (module docstring)."""
    t0 = time.perf_counter()
    out = Repair(name, rows=len(next(iter(feeds.values()))))
    seen: dict[frozenset[str], Trial] = {}

    def trial(keep: Sequence[str]) -> Trial:
        key = frozenset(keep)
        if key not in seen:
            seen[key] = measure(quantizer.quantize(list(keep)), fmt, tuple(keep), feeds, reference, labels, tol)
            out.trials.append(seen[key])
        return seen[key]

    labels_ = list(dict.fromkeys(label for label, _ in quantizer.layers))
    out.layers = len(labels_)
    before = out.before = trial(())
    prior = _priors(explanation, labels_)
    order = {label: i for i, label in enumerate(labels_)}
    candidates = sorted(labels_, key=lambda n: (-prior[n], order[n]))[:max_candidates]
    # each layer's own cost: the model with only that layer in int8 (every other one float)
    alone = {c: trial([k for k in labels_ if k != c]) for c in candidates}
    ranked = sorted(candidates, key=lambda c: (alone[c].snr_db, order[c]))
    out.ranking = [(c, alone[c].snr_db) for c in ranked]
    if before.passed:
        out.proposal = before  # nothing to repair: the fully quantized model passes
    else:
        chosen: list[str] = []
        for c in ranked:
            chosen.append(c)
            if trial(chosen).passed:
                break
        if trial(chosen).passed:
            for c in reversed(list(chosen)):  # the least costly first
                rest = [k for k in chosen if k != c]
                if rest and trial(rest).passed:
                    chosen = rest
            out.proposal = trial(sorted(chosen, key=order.__getitem__))
    out.seconds = time.perf_counter() - t0
    return out


def format_repair(r: Repair, width: int | None = None) -> str:
    """The search's outcome in a few lines (wrapped to ``width``): before, the ranking, the proposed set."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    def para(text: str) -> list[str]:
        return paragraph(text, width)

    lines = heading(f"{r.name}: repair search over {r.layers} layers on {r.rows} inputs ({len(r.trials)} models "
                    f"measured, {r.seconds:.1f} s)", width)
    if r.error:
        return "\n".join([*lines, *para(f"could not repair: {r.error}")])
    if r.before is not None:
        lines += para(f"fully int8: top-1 agreement {pct(r.before.top1_agreement)}, SNR {r.before.snr_db:.1f} dB, "
                      f"{'passes' if r.before.passed else 'fails'}")
    if r.ranking:
        lines += para("costliest layers in int8 (output SNR with only that layer in int8): "
                      + ", ".join(f"{n} {g:.1f} dB" for n, g in r.ranking[:5]))
    p = r.proposal
    if p is None:
        lines += para("no set of the measured layers passes: the int8 error is spread over the model (try more "
                      "calibration samples, or the dynamic-range variant)")
    elif not p.keep_float:
        lines += para("nothing to repair: the fully quantized model passes its bounds")
    else:
        lines += para(f"keep in float: {', '.join(p.keep_float)} -> top-1 agreement {pct(p.top1_agreement)}, "
                      f"SNR {p.snr_db:.1f} dB, {p.bytes / 1024:.1f} KiB (fully int8: "
                      f"{(r.before.bytes if r.before else 0) / 1024:.1f} KiB)")
        how = f"edgefm export --quantize int8 --keep-float {','.join(p.keep_float)}"
        if r.exported:
            verdict = {True: "passes verify", False: "FAILS verify", None: "written"}[r.verified]
            lines += para(f"exported as {r.exported}: {verdict} (the same as `{how}`)")
        else:
            lines += para(f"to export it: `{how}` (or verify --repair)")
    return "\n".join(lines)


def run_repair(cfg: Any, explanations: Mapping[str, Explanation],
               quantizer_for: Callable[[str, str], KeepFloatQuantizer], rows: int = ROWS) -> dict[str, Repair]:
    """The search for every explained int8 artifact, on the first ``rows`` of the verify inputs.

    ``cfg``: verify's ``CheckConfig``; ``quantizer_for(name, format)``: export's keep-float quantizer of the
    manifest's SavedModel, calibrated as artifact ``name`` was (``export.pipeline.keep_float_quantizer``).
    """
    from edgefm.core.manifest import Manifest
    from edgefm.data.inputs import load_inputs
    from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
    from runtime_check.verify.check import artifact_tolerance

    root = Path(cfg.artifacts)
    manifest = Manifest.load(root)
    arts = manifest.deployable()
    wanted = [n for n in explanations if n in arts and arts[n].quantization == "int8"]
    if not wanted:
        return {}
    data = load_inputs(cfg, manifest)
    chunks = list(first_rows(data.batches(min(rows, 1000)), rows))
    feeds = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    taken = len(next(iter(feeds.values())))
    labels = None if data.labels is None else np.asarray(data.labels)[:taken]
    _, saved = manifest.savedmodel(root)
    with TensorFlowRuntime(root / saved.path) as tf_rt:
        reference = tf_rt.infer_batched(feeds, 250)
    out: dict[str, Repair] = {}
    for name in wanted:
        art = arts[name]
        tol = artifact_tolerance(manifest, root, name, art, cfg)  # the bounds verify judged it by
        try:
            out[name] = propose(name, art.format, quantizer_for(name, art.format), feeds, reference, labels, tol,
                                explanations.get(name))
        except EdgefmError as e:
            out[name] = Repair(name, error=str(e))
    return out
