"""The verification report as data: every artifact's checks, the evidence behind them, JSON in and out.

``ParityReport`` holds the per-artifact results plus what is needed to reproduce
the run (the reference, the exact input set, the host CPU, the versions of every
runtime, the timings) and, per artifact, an ``ArtifactDetail``: the few small
arrays the metrics summarise (a histogram of the logit errors, the confusion
matrix, the disagreements with TensorFlow), never the logits themselves.

It writes itself to ``verify-report.json`` atomically and is read back by
``ParityReport.load``, so a report is rendered again as text
(``runtime_check.verify.text``) or as a page (``runtime_check.verify.html_page``)
without running anything. The summary is the one paragraph a failure raises.

``verify --explain`` adds, per explained artifact, the layer-by-layer record of
``runtime_check.explain`` (``explanations``; ``artifacts.NAME.explain`` in the JSON),
so the JSON and the page are written from this one object and a reloaded report
shows it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import CLASS_NAMES, REPORT_NAME
from edgefm.core.errors import ManifestError
from edgefm.core.fileio import atomic_write_json
from edgefm.core.metrics import confusion_matrix
from edgefm.core.progress import plural
from runtime_check.verify.results import ArtifactResult, Metric
from runtime_check.verify.tolerances import loosen_hint

#: 2: adds host, class_names, training and artifacts_dir, so a report renders again from its JSON alone
REPORT_SCHEMA_VERSION = 2
__all__ = ["REPORT_NAME", "ArtifactDetail", "ParityReport", "default_html_path"]
#: disagreeing test images kept per artifact (for the HTML page and the JSON)
SHOWN_DISAGREEMENTS = 24
#: bins of the logit-error histogram, linear from 0 to the largest error
ERROR_BINS = 40


def default_html_path(report_path: Path) -> Path:
    """Where ``edgefm verify`` writes its HTML page unless told: the JSON report's path with ``.html``."""
    return Path(report_path).with_suffix(".html")


@dataclass
class ArtifactDetail:
    """What one artifact's metrics summarise, small enough to keep for the page and the JSON.

    ``error_counts``/``error_edges``: histogram of ``|candidate - reference|`` over
    every finite logit (linear bins from 0 to the largest error; one bin
    ``[0, 0]`` when every logit is identical). ``confusion``: true label x this
    artifact's top-1. ``disagreements``: how many samples' top-1 differs from
    TF's; ``shown`` holds up to ``SHOWN_DISAGREEMENTS`` of them (test-set
    indices), those where TF was most sure first (largest gap between TF's
    logits of the two classes), with both predictions and the true label.
    """

    error_edges: np.ndarray
    error_counts: np.ndarray
    confusion: np.ndarray
    disagreements: int
    shown: np.ndarray
    shown_reference: np.ndarray
    shown_candidate: np.ndarray
    shown_label: np.ndarray

    @classmethod
    def from_logits(
        cls,
        candidate: np.ndarray,
        reference: np.ndarray,
        labels: np.ndarray,
        *,
        keep: int = SHOWN_DISAGREEMENTS,
    ) -> ArtifactDetail:
        """Summarise ``[N, C]`` candidate logits against the reference's (same inputs, same order)."""
        a = np.asarray(candidate, np.float64)
        r = np.asarray(reference, np.float64)
        labels = np.asarray(labels, np.int64)
        num_classes = r.shape[1]
        err = np.abs(a - r).ravel()
        err = err[np.isfinite(err)]
        hi = float(err.max()) if err.size else 0.0
        if hi > 0:
            counts, edges = np.histogram(err, bins=ERROR_BINS, range=(0.0, hi))
        else:
            counts, edges = np.array([err.size]), np.array([0.0, 0.0])
        cand_top, ref_top = a.argmax(axis=1), r.argmax(axis=1)
        idx = np.flatnonzero(cand_top != ref_top)
        rows = np.arange(len(r))[idx]
        gap = r[rows, ref_top[idx]] - r[rows, cand_top[idx]]
        shown = idx[np.argsort(-gap, kind="stable")[:keep]]
        return cls(
            error_edges=edges.astype(np.float64),
            error_counts=counts.astype(np.int64),
            confusion=confusion_matrix(labels, cand_top, num_classes),
            disagreements=int(idx.size),
            shown=shown,
            shown_reference=ref_top[shown],
            shown_candidate=cand_top[shown],
            shown_label=labels[shown],
        )

    @property
    def max_error(self) -> float:
        return float(self.error_edges[-1])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArtifactDetail:
        shown = d["disagreements"]["shown"]
        column = lambda key: np.array([s[key] for s in shown], np.int64)  # noqa: E731
        return cls(
            error_edges=np.array(d["error_histogram"]["edges"], np.float64),
            error_counts=np.array(d["error_histogram"]["counts"], np.int64),
            confusion=np.array(d["confusion_matrix"], np.int64),
            disagreements=int(d["disagreements"]["count"]),
            shown=column("index"),
            shown_reference=column("reference"),
            shown_candidate=column("candidate"),
            shown_label=column("label"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_histogram": {"edges": self.error_edges.tolist(), "counts": self.error_counts.tolist()},
            "confusion_matrix": self.confusion.tolist(),
            "disagreements": {
                "count": self.disagreements,
                "shown": [
                    {"index": int(i), "label": int(y), "reference": int(r), "candidate": int(c)}
                    for i, y, r, c in zip(self.shown, self.shown_label, self.shown_reference, self.shown_candidate)
                ],
            },
        }

@dataclass
class ParityReport:
    """Every artifact's checks against the TensorFlow reference on one input set."""

    artifacts: list[ArtifactResult]
    reference: dict[str, Any]
    inputs: dict[str, Any]
    versions: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    reference_metrics: list[Metric] = field(default_factory=list)
    #: the CPU the runtimes ran on (edgefm.core.hostinfo.host_cpu): model, features, int8 kernel path
    host: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was written, if it was
    # -- the evidence the page shows (saved in the JSON too, but for the images) --
    details: dict[str, ArtifactDetail] = field(default_factory=dict)  # by result name
    sizes: dict[str, int] = field(default_factory=dict)  # bytes on disk, by result name
    reference_confusion: np.ndarray | None = None
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    # uint8 test images of the shown disagreements; not in the JSON: ``load`` reads them from the dataset again
    images: dict[int, np.ndarray] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # the manifest's training record (curves)
    artifacts_dir: Path | None = None
    html_path: Path | None = None  # where the page was written, if it was
    #: what the run cost this process: ``peak_rss_mb`` (its peak resident memory, VmHWM)
    resources: dict[str, Any] = field(default_factory=dict)
    #: ``--device`` boards (emulator, CPU, libraries and their sha256) and the kernel-path ledger
    devices: dict[str, Any] = field(default_factory=dict)
    #: ``verify --explain``: by manifest name, the record ``Explanation.to_dict`` makes (every compared tensor in
    #: graph order, the first divergent one, the bounds); JSON-ready, so a reloaded report renders the same page.
    #: An explained artifact verify did not check (``--only``) has only this in the JSON's ``artifacts``.
    explanations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``verify --repair``: by manifest name, the record ``Repair.to_dict`` makes (``artifacts.NAME.repair``)
    repairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``verify --micro``: by row name (NAME@tflm), its arena, host latency and rounding audit
    #: (``runtime_check.micro.check.micro_extras``; ``artifacts.NAME@tflm.micro``)
    micro: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``verify --npu CONFIG``: by artifact name, Vela's fit report (``NpuFit.to_dict``; an estimate, never parity)
    npu: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: when the verdict proves little (runtime_check.verify.evidence): synthetic inputs, a one-class reference,
    #: bounds these rows cannot settle; one ``{"kind", "text", ...}`` each
    weak_evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def inconclusive(self) -> bool:
        """Nothing failed, but some bound needs more rows than these to be shown (exit status 3)."""
        return self.passed and any(a.inconclusive for a in self.artifacts)

    @property
    def verdict(self) -> str:
        return "FAIL" if not self.passed else "INCONCLUSIVE" if self.inconclusive else "PASS"

    def inconclusive_summary(self) -> str:
        """The InconclusiveError message: which bounds of which artifacts, and the rows that would settle them."""
        parts = [f"{a.name}: {m.name} ({m.detail.rsplit('; ', 1)[-1]})" for a in self.artifacts for m in a.inconclusive]
        return (f"No artifact failed, but {self.inputs.get('count')} rows cannot show every bound: "
                + "; ".join(parts) + ". Verify on more rows (--samples, or a larger --data), or loosen the bound "
                "(--bound NAME.METRIC=VALUE) if it asks for more than the task needs.")

    @property
    def passed(self) -> bool:
        return bool(self.artifacts) and all(m.passed for m in self.reference_metrics) and all(
            a.passed for a in self.artifacts
        )

    def result(self, name: str) -> ArtifactResult:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(f"no result for {name!r} (have: {', '.join(a.name for a in self.artifacts)})")

    # -- failures ---------------------------------------------------------------
    def failures(self) -> list[str]:
        """One line per failed check: ``artifact: metric = value (bound op x)``."""
        lines = [f"reference ({self.reference.get('name', 'savedmodel')}): {m.describe()}" for m in self.reference_metrics if not m.passed]
        for a in self.artifacts:
            if a.error:
                lines.append(f"{a.name}: could not run in {a.runtime}: {a.error}")
            lines.extend(f"{a.name}: {m.describe()}" for m in a.failures)
        return lines

    def summary(self) -> str:
        """One paragraph naming the failing artifacts and metrics (the ParityError message)."""
        failed = [a for a in self.artifacts if not a.passed]
        if self.passed:
            return f"All {plural(len(self.artifacts), 'artifact')} match TensorFlow on {self.inputs.get('count')} inputs."
        parts = []
        for a in failed:
            what = ([f"did not run ({a.error})"] if a.error else []) + [m.describe() for m in a.failures]
            parts.append(f"{a.name} [{a.runtime}]: " + "; ".join(what))
        ref_bad = [m.describe() for m in self.reference_metrics if not m.passed]
        if ref_bad:
            parts.insert(0, "the reference SavedModel: " + "; ".join(ref_bad))
        where = f" Full report: {self.path}." if self.path else ""
        hints = list(dict.fromkeys(h for a in failed for m in a.failures if (h := loosen_hint(a.name, m.name))))
        loosen = (
            ", if the difference is expected for that variant, loosen the bounds that failed: " + " ".join(hints)
            if hints else ""
        )
        return (
            f"{len(failed)} of {len(self.artifacts)} artifacts do not match TensorFlow on "
            f"{self.inputs.get('count')} {self.inputs.get('split', '')} inputs: " + " | ".join(parts) + "."
            f"{where} Re-export the failing artifacts (`edgefm export`){' or' if hints else ''}{loosen}."
        )

    # -- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        checked = {a.name for a in self.artifacts}
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "passed": self.passed,
            "verdict": self.verdict,
            "weak_evidence": self.weak_evidence,
            "reference": {
                **self.reference,
                "metrics": {m.name: m.to_dict() for m in self.reference_metrics},
                **({"confusion_matrix": self.reference_confusion.tolist()} if self.reference_confusion is not None else {}),
            },
            "inputs": self.inputs,
            "artifacts": {
                a.name: {
                    **a.to_dict(),
                    **({"bytes": self.sizes[a.name]} if a.name in self.sizes else {}),
                    **({"details": self.details[a.name].to_dict()} if a.name in self.details else {}),
                    **({"explain": self.explanations[a.name]} if a.name in self.explanations else {}),
                    **({"repair": self.repairs[a.name]} if a.name in self.repairs else {}),
                    **({"micro": self.micro[a.name]} if a.name in self.micro else {}),
                }
                for a in self.artifacts
            } | {name: {**({"explain": self.explanations[name]} if name in self.explanations else {}),
                        **({"repair": self.repairs[name]} if name in self.repairs else {})}
                 for name in {**self.explanations, **self.repairs} if name not in checked},
            "failures": self.failures(),
            "host": self.host,
            "versions": self.versions,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "resources": self.resources,
            "class_names": list(self.class_names),
            "training": self.training,
            **({"artifacts_dir": str(self.artifacts_dir)} if self.artifacts_dir is not None else {}),
            **({"devices": self.devices} if self.devices else {}),
            **({"npu": self.npu} if self.npu else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityReport:
        """The report ``to_dict`` wrote (images excepted: see ``load``)."""
        # an entry holding only "explain": an artifact explained but not checked (--only)
        checked = {name: a for name, a in d["artifacts"].items() if not (isinstance(a, dict) and a.keys() == {"explain"})}
        artifacts = [ArtifactResult.from_dict(name, a) for name, a in checked.items()]
        reference = {k: v for k, v in d["reference"].items() if k not in ("metrics", "confusion_matrix")}
        ref_cm = d["reference"].get("confusion_matrix")
        return cls(
            artifacts=artifacts,
            reference=reference,
            inputs=dict(d["inputs"]),
            versions=dict(d.get("versions", {})),
            timings=dict(d.get("timings", {})),
            resources=dict(d.get("resources", {})),
            reference_metrics=[Metric.from_dict(k, m) for k, m in d["reference"].get("metrics", {}).items()],
            host=dict(d.get("host", {})),
            details={n: ArtifactDetail.from_dict(a["details"]) for n, a in checked.items() if "details" in a},
            sizes={n: int(a["bytes"]) for n, a in checked.items() if "bytes" in a},
            reference_confusion=None if ref_cm is None else np.array(ref_cm, np.int64),
            class_names=list(d.get("class_names") or CLASS_NAMES),
            training=dict(d.get("training", {})),
            artifacts_dir=Path(d["artifacts_dir"]) if d.get("artifacts_dir") else None,
            devices=dict(d.get("devices", {})),
            micro={n: dict(a["micro"]) for n, a in d["artifacts"].items() if "micro" in a},
            npu=dict(d.get("npu", {})),
            explanations={n: dict(a["explain"]) for n, a in d["artifacts"].items() if "explain" in a},
            repairs={n: dict(a["repair"]) for n, a in d["artifacts"].items() if "repair" in a},
            weak_evidence=list(d.get("weak_evidence", [])),
        )

    @classmethod
    def load(cls, path: Path, *, images: bool = True) -> ParityReport:
        """Read ``verify-report.json`` back; with ``images``, the shown test images come from the dataset again.

        Nothing is run: the verdict, metrics and evidence are the file's. A dataset
        that is gone only leaves the page without its thumbnails.
        """
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ManifestError(f"Cannot read the verify report {path} ({e}). Run `edgefm verify` to write it again.") from e
        if not isinstance(raw, dict) or raw.get("schema_version") != REPORT_SCHEMA_VERSION:
            found = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
            raise ManifestError(
                f"{path} is a verify report of schema version {found!r}; this edgefm reads version "
                f"{REPORT_SCHEMA_VERSION}. Run `edgefm verify` to write it again."
            )
        try:
            report = cls.from_dict(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ManifestError(f"{path} is missing or has a malformed field ({e!r}). Run `edgefm verify` again.") from e
        report.path = path
        if images:
            report.images = _shown_images(report)
        return report

    def write(self, path: Path) -> Path:
        """Write the JSON report atomically; remember where."""
        self.path = Path(path)
        atomic_write_json(self.path, self.to_dict())
        return self.path


def describe_inputs(info: dict[str, Any]) -> str:
    """``10000 images of the test split`` / ``256 rows of synthetic``, for progress lines and tables."""
    if info.get("source", "fashion-mnist") == "fashion-mnist":
        return f"{info.get('count')} images of the {info.get('split')} split"
    return f"{info.get('count')} rows of {info.get('source')} {info.get('path', '')}".rstrip()


def _shown_images(report: ParityReport) -> dict[int, np.ndarray]:
    """The uint8 test images of the shown disagreements, read from the dataset the report names (or none)."""
    from edgefm.core.errors import DatasetError
    from edgefm.data.fashion_mnist import load_split

    wanted = sorted({int(i) for d in report.details.values() for i in d.shown})
    if not wanted or not report.inputs.get("data_dir") or report.inputs.get("source", "fashion-mnist") != "fashion-mnist":
        return {}
    try:
        split = load_split(report.inputs.get("split", "test"), Path(report.inputs["data_dir"]), verify=False)
    except (DatasetError, OSError):
        return {}
    return {i: np.asarray(split.images[i]) for i in wanted if 0 <= i < len(split)}
