"""``explain(root, manifest, names, data)``: per artifact, every matched tensor against TensorFlow, in graph order.

Order of work per artifact: tap TensorFlow and the artifact (``graphs``), pair their
tensors (``match``), feed both the same first ``rows`` verify inputs batch by batch and
reduce each pair to ``TensorStats``; then the first tensor out of its variant's bound
(``SNR_BOUNDS_DB``, and ``LSB_BOUND`` for quantized tensors) is where the export parts from
TensorFlow. The record (``Explanation.to_dict``) goes under the artifact in
verify-report.json; ``format_explanation`` renders it for the terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import EdgefmError
from edgefm.core.manifest import Artifact, Manifest
from runtime_check.explain.graphs import LiteRTTap, OnnxTap, Tap, TensorFlowTap, name_key
from runtime_check.explain.match import Matching, match
from runtime_check.explain.stats import TensorStats
from runtime_check.verify.results import EXACT_DB, json_number

#: lowest SNR (dB) of a healthy tensor, per quantization of the artifact. float32 round-off
#: leaves > 120 dB on the tiny MLP (one op order against another: 1e-6 relative error is 120 dB);
#: float16 keeps ~11 bits (~66 dB per op, less after accumulation); dynamic-range int8 weights
#: and full int8 keep ~8 bits (~48 dB per tensor, ~25-35 dB after a few layers).
SNR_BOUNDS_DB: dict[str, float] = {"none": 80.0, "float16": 40.0, "dynamic": 20.0, "int8": 12.0}
#: rmse in quantization steps above which a quantized tensor is flagged (QuantizationDebugger's flag). Informational:
#: the steps are counted against TF's float tensor, so they accumulate along the graph (0.64 on a healthy
#: 2-layer MLP's int8 ONNX ReLU); judging by them would flag healthy deep int8 models. Judged: SNR.
LSB_BOUND = 0.7
#: the SNR one rounding to the variant's precision leaves on a full-scale signal (6.02 bits + 1.76 dB: float16's
#: 11-bit significand 68 dB, 8-bit integers 50 dB). A drop is measured from the upstream SNR capped at this level:
#: the first quantized layer after an exact input always "loses" ~90 dB by being quantized at all (measured on an
#: int8 MLP: 92 dB at fc1, a healthy layer), which would hide the layer whose error is out of proportion.
NOMINAL_DB: dict[str, float] = {"none": EXACT_DB, "float16": 68.0, "dynamic": 50.0, "int8": 50.0}
#: default verify inputs explained per artifact, and their batch
ROWS = 64
BATCH = 32


@dataclass
class TensorRecord:
    tf: str
    candidate: str
    method: str
    stats: TensorStats
    quantized: bool
    passed: bool = True
    #: SNR lost here: the worst SNR of the nearest compared TF tensors feeding it minus its own (exact: EXACT_DB)
    drop_db: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "tf": self.tf, "candidate": self.candidate, "matched_by": self.method,
            "max_abs_error": json_number(s.max_abs), "cosine": json_number(s.cosine), "snr_db": json_number(s.snr_db),
            "rmse_lsb": json_number(s.rmse_lsb), "max_error_lsb": json_number(s.max_lsb), "nonfinite": s.nonfinite,
            "channel_snr_db": json_number(s.median_channel_db), "quantized": self.quantized,
            "lsb_flag": bool(self.quantized and (s.rmse_lsb or 0) > LSB_BOUND), "drop_db": json_number(self.drop_db),
            "passed": self.passed,
        }


@dataclass
class Explanation:
    name: str
    path: str
    quantization: str
    rows: int
    snr_bound_db: float
    tensors: list[TensorRecord] = field(default_factory=list)
    fused_away: list[str] = field(default_factory=list)
    unmatched: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def first_divergent(self) -> TensorRecord | None:
        return next((t for t in self.tensors if not t.passed), None)

    @property
    def steepest(self) -> TensorRecord | None:
        """Where the most SNR is lost in one step: a single culprit stands out, gradual decay does not."""
        return max(self.tensors, key=lambda t: t.drop_db, default=None)

    def worst(self, n: int) -> list[TensorRecord]:
        """The ``n`` tensors of lowest SNR, the tensor's or its median channel's, whichever is lower."""
        def snr(t: TensorRecord) -> float:
            channels = t.stats.median_channel_db
            return min(t.stats.snr_db, math.inf if channels is None else channels)

        return sorted(self.tensors, key=snr)[:n]

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergent
        return {
            "path": self.path, "quantization": self.quantization, "rows": self.rows,
            "bounds": {"snr_db": self.snr_bound_db, "rmse_lsb_flag": LSB_BOUND},
            "first_divergent": None if first is None else first.to_dict(),
            "steepest_drop": None if self.steepest is None else self.steepest.to_dict(),
            "tensors": [t.to_dict() for t in self.tensors],
            "fused_away": self.fused_away, "unmatched": self.unmatched,
            "seconds": round(self.seconds, 3), "error": self.error,
        }


def open_tap(path: Path, fmt: str) -> tuple[Tap, dict[str, str]]:
    """The artifact's tap and each tapped tensor's name in the file."""
    if fmt == TFLITE_FORMAT:
        tap = LiteRTTap(path)
        return tap, {k: tap.tensor_name(k) for k in tap.nodes}
    if fmt == ONNX_FORMAT:
        tap = OnnxTap(path)
        return tap, {k: k for k in tap.nodes}
    raise EdgefmError(f"--explain: {path} is a {fmt} artifact; only .tflite and .onnx files can be explained.")


def first_rows(batches: Iterable[Mapping[str, np.ndarray]], rows: int) -> Iterable[dict[str, np.ndarray]]:
    """The batches cut to their first ``rows`` rows in all."""
    seen = 0
    for batch in batches:
        if seen >= rows:
            return
        take = min(rows - seen, len(next(iter(batch.values()))))
        yield {k: np.asarray(v[:take]) for k, v in batch.items()}
        seen += take


def explain_artifact(tf: TensorFlowTap, root: Path, name: str, art: Artifact, data: Any,
                     rows: int = ROWS, batch: int = BATCH) -> Explanation:
    """Every matched tensor of one artifact against TensorFlow on the first ``rows`` inputs of ``data``."""
    t0 = time.perf_counter()
    bound = SNR_BOUNDS_DB.get(art.quantization, SNR_BOUNDS_DB["int8"])
    out = Explanation(name, art.path, art.quantization, 0, bound)
    try:
        cand, names = open_tap(root / art.path, art.format)
        matching: Matching = match(tf, cand, names)
        stats = {p.candidate: TensorStats(scale=(q[0] if (q := cand.nodes[p.candidate].quant) else None))
                 for p in matching.pairs}
        for feeds in first_rows(data.batches(batch), rows):
            ref = tf.run(feeds)
            got = cand.run(feeds)
            out.rows += len(next(iter(feeds.values())))
            for p in matching.pairs:
                r, g = ref.get(p.tf), got.get(p.candidate)
                if r is None or g is None:
                    continue
                node = cand.nodes[p.candidate]
                if node.quant is not None and g.dtype.kind in "iu":
                    g = (g.astype(np.float64) - node.quant[1]) * node.quant[0]
                if p.perm is not None:
                    g = np.transpose(g, p.perm)
                if np.shape(r) != np.shape(g):
                    if np.size(r) != np.size(g):
                        matching.unmatched[p.candidate_name] = f"shape {list(np.shape(g))} vs TF {list(np.shape(r))}"
                        stats.pop(p.candidate, None)
                        continue
                    g = np.reshape(g, np.shape(r))  # e.g. a TFLite [N, 1, C] against TF [N, C]
                if p.candidate in stats:
                    stats[p.candidate].add(r, g)
        for p in matching.pairs:
            if p.candidate not in stats:
                continue
            s = stats[p.candidate]
            quantized = s.scale is not None
            channels = s.median_channel_db
            ok = s.nonfinite == 0 and s.snr_db >= bound and (channels is None or channels >= bound)
            out.tensors.append(TensorRecord(p.tf, p.candidate_name, p.method, s, quantized, ok))
        _drops(tf, out.tensors, NOMINAL_DB.get(art.quantization, EXACT_DB))
        out.fused_away, out.unmatched = matching.unmatched_tf, matching.unmatched_candidate
        cand.close()
    except EdgefmError as e:
        out.error = str(e)
    except Exception as e:  # noqa: BLE001 - a file verify already failed (truncated, foreign) must not stop the others
        first = (str(e).strip().splitlines() or [""])[0]
        out.error = f"{root / art.path} could not be run with its intermediate tensors: {type(e).__name__}: {first}"
    out.seconds = time.perf_counter() - t0
    return out


def _drops(tf: Tap, records: list[TensorRecord], cap: float = EXACT_DB) -> None:
    """Each record's ``drop_db``: against the nearest compared tensors upstream in TF's graph (their SNR capped at
    ``cap``, the level one rounding to the variant's precision leaves: ``NOMINAL_DB``)."""
    snr: dict[str, float] = {}
    for t in records:
        snr[t.tf] = min(snr.get(t.tf, math.inf), min(t.stats.snr_db, cap))
    for t in records:
        feeding, todo, seen = [], list(tf.nodes[t.tf].inputs) if t.tf in tf.nodes else [], set()
        while todo:
            n = todo.pop()
            if n in seen or n not in tf.nodes:
                continue
            seen.add(n)
            if n in snr:
                feeding.append(snr[n])
            else:
                todo.extend(tf.nodes[n].inputs)
        mine = min(t.stats.snr_db, cap)
        t.drop_db = (min(feeding) - mine) if feeding else (cap - mine)


def explain(root: Path, manifest: Manifest, names: Iterable[str], data: Any, rows: int = ROWS,
            batch: int = BATCH) -> dict[str, Explanation]:
    """``explain_artifact`` of each named artifact; TensorFlow is tapped once for all."""
    _, ref = manifest.savedmodel(root)
    tf = TensorFlowTap(root / ref.path)
    arts = manifest.deployable()
    return {n: explain_artifact(tf, root, n, arts[n], data, rows, batch) for n in names}


def _fmt(v: float | None, spec: str) -> str:
    if v is None:
        return "-"
    return format(v, spec) if math.isfinite(v) else ("exact" if v > 0 else str(v))


def paragraph(text: str, width: int | None) -> list[str]:
    """``text`` as lines indented by two, continued by four, within ``width`` columns (``None``: one line)."""
    import textwrap

    return textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="    ") if width else ["  " + text]


def heading(text: str, width: int | None) -> list[str]:
    """``paragraph`` with its first line not indented: the head of a section of such paragraphs."""
    lines = paragraph(text, width)
    lines[0] = lines[0][2:]
    return lines


def format_explanation(ex: Explanation, worst: int = 5, width: int | None = None) -> str:
    """The first divergent tensor, then the worst ``worst`` by SNR; what was fused away. Fits ``width`` columns."""
    def para(text: str) -> list[str]:
        return paragraph(text, width)

    lines = heading(f"{ex.name} ({ex.path}, {ex.quantization}): {len(ex.tensors)} tensors compared with TensorFlow "
                    f"on {ex.rows} inputs, bound SNR >= {ex.snr_bound_db:g} dB ({ex.seconds:.1f} s)", width)
    if ex.error:
        return "\n".join([*lines, *para(f"could not explain: {ex.error}")])
    first = ex.first_divergent
    if first is None:
        lines += para("no tensor out of bounds: the export follows TensorFlow layer by layer")
    else:
        cand = first.candidate if len(first.candidate) <= 60 else first.candidate[:59] + "…"
        lines += para(f"first divergent: {name_key(first.tf)} (as {cand}, matched by {first.method}): "
                      f"SNR {_fmt(first.stats.snr_db, '.1f')} dB, max abs error {first.stats.max_abs:.3g}")
        channels = first.stats.median_channel_db
        if channels is not None and channels < ex.snr_bound_db <= first.stats.snr_db:
            lines += para(f"its median channel has SNR {channels:.1f} dB against the tensor's "
                          f"{first.stats.snr_db:.1f} dB: a few channels hold the tensor's range and the others fall "
                          "to a few quantization steps (an outlier channel). Keep this layer and the one reading it "
                          "in float (--repair finds the set), or even out the channels' scales before export.")
    steep = ex.steepest
    if steep is not None and first is not None and steep.tf != first.tf:
        lines += para(f"steepest drop: {name_key(steep.tf)} loses {steep.drop_db:.1f} dB of SNR in one step "
                      f"(the first divergent one lost {first.drop_db:.1f} dB)")
    tf_w = 44 if width is None else max(20, min(60, width - 65))
    how_w = 40 if width is None else max(8, width - tf_w - 49)
    lines.append(f"  {'TF tensor':<{tf_w}} {'SNR dB':>7} {'ch. dB':>6} {'cosine':>8} {'max err':>8} {'LSB':>5}  "
                 "matched by"[:width])
    for t in ex.worst(worst):
        s = t.stats
        short = name_key(t.tf)  # without the call wrappers (the report keeps the full name)
        name = short if len(short) <= tf_w else "…" + short[-tf_w + 1:]
        how = ("OUT " if not t.passed else "") + t.method
        lines.append(f"  {name:<{tf_w}} {_fmt(s.snr_db, '7.1f'):>7} {_fmt(s.median_channel_db, '6.1f'):>6} "
                     f"{s.cosine:8.5f} {s.max_abs:8.2g} "
                     f"{_fmt(s.rmse_lsb, '5.2f'):>5}  {how[:how_w]}")
    if ex.fused_away:
        lines += para(f"without a counterpart (fused away): {', '.join(map(name_key, ex.fused_away))}")
    return "\n".join(lines)


def explain_names(cfg: Any, names: Iterable[str]) -> list[str]:
    """The artifact names ``--explain`` gave (repeatable, comma-separated), each checked against the manifest.

    Called before verify runs, so a mistyped name costs no verify; [] means "every failing one".
    """
    from edgefm.core.errors import UsageError

    wanted = list(dict.fromkeys(n.strip() for group in names for n in group.split(",") if n.strip()))
    if cfg.reference is not None:
        raise UsageError("--explain needs an artifacts directory with a manifest (not --reference/--model): it "
                         "taps the SavedModel and the artifacts the manifest records.")
    if not wanted:
        return []
    root = Path(cfg.artifacts)
    deployable = Manifest.load(root).deployable()
    unknown = [n for n in wanted if n not in deployable]
    if unknown:
        raise UsageError(f"--explain: unknown artifact name{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; the manifest in {root} has: {', '.join(deployable)}.")
    return wanted


def run_explain(cfg: Any, report: Any, names: Iterable[str] = (), rows: int = ROWS,
                progress: Any = None) -> dict[str, Explanation]:
    """What ``edgefm verify --explain [NAME ...]`` does after ``check``: explain the named artifacts (default:
    every failing one), on the first ``rows`` of the same verify inputs, and add the records to the report (its
    JSON and its page are written again).

    ``cfg``: the ``CheckConfig`` verify ran with; ``report``: its ``ParityReport`` (written); ``progress``: an
    ``edgefm.core.progress.Progress`` told each step (freezing TensorFlow's graph takes seconds).
    """
    from edgefm.core.progress import NoProgress
    from edgefm.data.inputs import load_inputs
    from runtime_check.verify.check import add_explanations
    from runtime_check.verify.results import artifact_of

    progress = progress or NoProgress()
    wanted = explain_names(cfg, names)
    root = Path(cfg.artifacts)
    manifest = Manifest.load(root)
    deployable = manifest.deployable()
    if not wanted:  # every artifact that failed (a native runner's failure explains its file)
        wanted = list(dict.fromkeys(artifact_of(a.name) for a in report.artifacts if not a.passed))
        wanted = [n for n in wanted if n in deployable]
    if not wanted:
        return {}
    data = load_inputs(cfg, manifest)
    progress.start("explain: freezing TensorFlow's serving graph to read its every tensor")
    _, ref = manifest.savedmodel(root)
    tf = TensorFlowTap(root / ref.path)
    progress.start("explain: comparing every tensor", total=len(wanted))
    explanations = {}
    for i, n in enumerate(wanted):
        progress.advance(i, n)
        explanations[n] = explain_artifact(tf, root, n, deployable[n], data, rows)
    progress.finish()
    add_explanations(report, explanations)
    return explanations
