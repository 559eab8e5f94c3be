"""``edgefm verify`` as a library function: every exported model against TensorFlow.

``check(manifest, cfg)`` runs the SavedModel once in TensorFlow (the reference),
then each selected .tflite/.onnx artifact in its own runtime on the same inputs
(the held-out test split by default), computes every parity metric
(``runtime_check.verify.compare``) against the per-variant bounds
(``runtime_check.verify.tolerances``), and writes ``verify-report.json`` (and, when
``cfg.html`` is set, the self-contained page of ``runtime_check.verify.html_page``;
the CLI sets it by default). It collects
every failure (checksum mismatch, a model that does not load, a metric out of
bounds) into the report and never stops at the first; the caller decides what a
failed report means (the CLI exits 1). It prints nothing.

Speed: every model file is probed (loaded once in a child process, before this
process's runtimes see it) by one child for all of them; the ONNX structure check's
passes are remembered per user (``edgefm.core.verdicts``), so a verify of files that
passed it before never imports onnx. The reference is computed once
per SavedModel, input set and TensorFlow
version and then kept beside the manifest (``runtime_check.verify.reference_cache``):
a verify that finds it reuses it without importing TensorFlow, and the report says
whether the reference was computed or reused (``--recompute-reference`` forces a
run). Every runtime is activated once; the inputs are streamed from the dataset
file in batches, and each batch goes through every runtime in turn
(``stream_through``), so memory holds one batch of images, never all of them. Per
artifact only its ``[N, classes]`` outputs are gathered, and only a compact
``ArtifactDetail`` outlives the comparison (error histogram, confusion matrix,
the disagreements with TF).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import CLASS_NAMES, TFLITE_FORMAT
from edgefm.core.errors import (
    ConfigError,
    EdgefmError,
    ManifestError,
    ModelFileError,
    RuntimeUnavailableError,
    UsageError,
)
from edgefm.core.fileio import sha256_tree, tree_bytes
from edgefm.core.hostinfo import host_cpu, peak_rss_mb
from edgefm.core.manifest import Artifact, Manifest, TensorSpec, edgefm_version, tool_versions, utc_now
from edgefm.core.metrics import confusion_matrix
from edgefm.core.verdicts import user_passed_checks
from edgefm.data.inputs import Inputs, load_inputs
from runtime_check.runtimes.probe import STRUCTURE_CHECKS, PendingValidation
from runtime_check.runtimes.registry import BINDING, FORMAT_OF_SUFFIX, runner_kinds
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.verify import reference_cache
from runtime_check.verify.compare import (
    LOGITS,
    accuracy,
    classification_outputs,
    max_abs_error,
    primary_output,
)
from runtime_check.verify.config import CheckConfig
from runtime_check.verify.device_rows import DeviceRows
from runtime_check.verify.html_page import write_html
from runtime_check.verify.reference_cache import Reference, ReferenceKey
from runtime_check.verify.report import REPORT_NAME, ArtifactDetail, ParityReport, describe_inputs
from runtime_check.verify.results import ArtifactResult, Metric
from runtime_check.verify.rows import Judging, Row, judge_row, open_row, plan_rows, row_report_line, runtime_versions
from runtime_check.verify.streams import Stream, run_runtime, stream_through
from runtime_check.verify.tolerances import Tolerance, tolerance_for

ProgressFn = Callable[[str], None]
#: distributions whose versions go into the report
VERSIONED = ("numpy", "tensorflow-cpu", "tensorflow", "ai-edge-litert", "onnxruntime", "onnx", "tf2onnx")


# -- selection and validation (before anything heavy runs) ------------------------------------


def select_artifacts(manifest: Manifest, cfg: CheckConfig) -> dict[str, Artifact]:
    """The deployable artifacts to check: all of them, or those named by ``--only``.

    Unknown names in ``--only``, ``--atol``, ``--min-top1`` or ``--bound`` are usage errors that
    list the known names, so a typo never silently checks nothing.
    """
    deployable = manifest.deployable()
    if not deployable:
        raise ManifestError(
            f"The manifest in {cfg.artifacts} lists no exported .tflite or .onnx artifacts. Run "
            f"`edgefm export --artifacts {cfg.artifacts}` first."
        )
    known = ", ".join(deployable)
    for flag, names in (("--only", cfg.only), ("--atol", tuple(k.partition(".")[0] for k in cfg.atol)),
                        ("--min-top1", tuple(cfg.min_top1)),
                        ("--bound", tuple(cfg.bounds))):
        unknown = [n for n in names if n not in deployable]
        if unknown:
            raise UsageError(
                f"{flag}: unknown artifact name{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"the manifest in {cfg.artifacts} has: {known}."
            )
    if cfg.only:
        return {n: deployable[n] for n in dict.fromkeys(cfg.only)}
    return deployable


def require_native() -> None:
    """``--native``: the native runners (``runtime_check.native``) must be importable."""
    try:
        import runtime_check.native.runtime  # noqa: F401
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"native runners not available: {e}. The C runners live in runtime_check/native; run "
            "without --native to check the Python bindings only."
        ) from e


# -- running ------------------------------------------------------------------------------------


def checksum_metric(root: Path, art: Artifact, *, sha: str | None = None) -> Metric:
    """sha256 and size of the file against its manifest entry (a mismatch fails, never raises).

    ``sha``: the file's sha256 when the caller has already computed it.
    """
    path = root / art.path
    expected = f"sha256 {art.sha256} / {art.bytes} bytes"
    if not path.exists():
        return Metric.check("checksum", "missing", expected, "==", detail=f"{path} does not exist")
    sha, size = sha or sha256_tree(path), tree_bytes(path)
    found = f"sha256 {sha} / {size} bytes"
    detail = "" if found == expected else (
        f"{path} changed since the manifest was written (sha256 {sha[:12]}…, {size} bytes; "
        f"manifest: {art.sha256[:12]}…, {art.bytes} bytes)"
    )
    return Metric.check("checksum", found, expected, "==", detail=detail)


def check(manifest: Manifest, cfg: CheckConfig, *, progress: ProgressFn | None = None) -> ParityReport:
    """``verify`` holding the artifacts directory's lock (``edgefm.core.locking``): no export or train
    replaces a model or the manifest while they are compared (a checksum that changed under a
    running verify would be reported as a mismatch that is not one)."""
    from edgefm.core.locking import artifacts_lock

    with artifacts_lock(cfg.artifacts, "edgefm verify", notify=progress):
        return _check(manifest, cfg, progress=progress)


def run_check(cfg: CheckConfig, *, progress: ProgressFn | None = None) -> ParityReport:
    """What ``edgefm verify`` does: read the manifest inside the lock, then ``check``.

    With ``cfg.reference`` and ``cfg.models`` (one-shot, files edgefm did not write) the
    manifest is made in memory (``one_shot_manifest``) and the report goes to
    ``cfg.report`` (default ``./verify-report.json``); nothing is cached.
    """
    from dataclasses import replace

    from edgefm.core.locking import artifacts_lock

    if cfg.reference is not None:
        report = Path(cfg.report or REPORT_NAME).resolve()
        html = cfg.html if cfg.html is None or cfg.html.is_absolute() else cfg.html.resolve()
        cfg = replace(cfg, artifacts=report.parent, report=report, html=html)
        manifest = one_shot_manifest(cfg.reference, cfg.models)
        with artifacts_lock(cfg.artifacts, "edgefm verify", notify=progress):
            return _check(manifest, cfg, progress=progress)
    with artifacts_lock(cfg.artifacts, "edgefm verify", notify=progress):
        return _check(Manifest.load(cfg.artifacts), cfg, progress=progress)


def one_shot_manifest(reference: Path, models: Iterable[Path]) -> Manifest:
    """A manifest in memory for ``verify --reference DIR --model FILE...``: absolute paths, signature read from
    ``saved_model.pb``, each file's quantization from its metadata or its operators."""
    from edgefm.core.contract import SAVEDMODEL_KEY
    from edgefm.formats.metadata import read_metadata
    from edgefm.formats.onnx_file import onnx_quantization
    from edgefm.formats.savedmodel import read_signatures, require_savedmodel_dir
    from edgefm.formats.tflite_file import tflite_quantization

    reference = Path(reference).resolve()
    require_savedmodel_dir(reference)
    sig = read_signatures(reference).get(TensorFlowRuntime.signature_key)
    if sig is None:
        raise ModelFileError(f"--reference {reference} has no {TensorFlowRuntime.signature_key!r} signature; "
                             "bring it with `edgefm export --saved-model DIR --signature NAME` first.")
    specs = {side: [TensorSpec(n, str(i["dtype"]), list(i["shape"] or [])) for n, i in sig[side].items()]
             for side in ("inputs", "outputs")}
    artifacts = {SAVEDMODEL_KEY: Artifact(path=str(reference), format="savedmodel", quantization="none",
                                          sha256=sha256_tree(reference), bytes=tree_bytes(reference),
                                          inputs=specs["inputs"], outputs=specs["outputs"],
                                          extra={"brought": "one-shot"})}
    for model in models:
        model = Path(model).resolve()
        fmt = FORMAT_OF_SUFFIX.get(model.suffix.lower())
        if fmt is None or not model.is_file():
            raise UsageError(f"--model {model}: not a .tflite or .onnx file.")
        try:
            quant = str(read_metadata(model).get("quantization") or "")
        except (EdgefmError, OSError):
            quant = ""
        quant = quant or (tflite_quantization(model) if fmt == TFLITE_FORMAT else onnx_quantization(model))
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in model.stem)
        while name in artifacts:
            name += "_"
        artifacts[name] = Artifact(path=str(model), format=fmt, quantization=quant, sha256=sha256_tree(model),
                                   bytes=tree_bytes(model), inputs=[], outputs=[])
    return Manifest(model=reference.name, labels=[], artifacts=artifacts)


def _check(manifest: Manifest, cfg: CheckConfig, *, progress: ProgressFn | None = None) -> ParityReport:
    """Verify every selected artifact against the TensorFlow reference; write and return the report.

    Raises only for problems that prevent any comparison (unusable manifest,
    dataset or reference SavedModel, unknown names, ``--native`` without native
    runners). Every parity failure is recorded in the returned report instead.
    """
    run = Run(manifest, cfg, say=progress or (lambda _msg: None))
    selected = select_artifacts(manifest, cfg)
    tolerances = {n: artifact_tolerance(manifest, run.root, n, a, cfg) for n, a in selected.items()}
    if cfg.native:
        require_native()
    devices = _prepare_devices(cfg)
    json_path = _report_path(cfg, run.root, manifest.savedmodel(run.root)[1], selected)
    probe = _start_probe(run, selected)
    data = run.timed("load_inputs", load_inputs, cfg, manifest)
    run.say(f"inputs: {describe_inputs(data.info)}")
    ref = _reference(run, data)
    probe.wait()
    run.timings["probe"] = time.perf_counter() - run.t_probe  # the wall time until every file was probed
    rows = plan_rows(selected, run.root, native=cfg.native, devices=devices)
    judged = _run_rows(run, rows, data, Judging(ref.outputs, data.labels, tolerances, ref.classification, devices,
                                                          io=(ref.art.inputs, ref.art.outputs)),
                       scored=ref.scored)
    report = _report(run, ref, data, judged, devices)
    _write(run, report, json_path)
    return report


@dataclass
class Run:
    """One verify's surroundings: the manifest, the options, the progress line and the timings."""

    manifest: Manifest
    cfg: CheckConfig
    say: ProgressFn
    timings: dict[str, float] = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)
    t_probe: float = 0.0

    @property
    def root(self) -> Path:
        return Path(self.cfg.artifacts)

    def timed(self, step: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[step] = time.perf_counter() - t0


@dataclass
class ReferenceRun:
    """The reference's outputs and everything the report says of it."""

    name: str
    art: Artifact
    outputs: dict[str, np.ndarray]
    timings: dict[str, float]
    cache: dict[str, Any]
    versions: dict[str, str]
    metrics: list[Metric]
    classification: set[str] | None
    scored: str | None
    accuracy: float | None


@dataclass
class Judged:
    """Every row's result, in the report's order, and what the page keeps of each."""

    results: list[ArtifactResult] = field(default_factory=list)
    details: dict[str, ArtifactDetail] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def _prepare_devices(cfg: CheckConfig) -> DeviceRows | None:
    """``--device``: every board readied once (rows ``NAME@BOARD``); None without ``--device``."""
    if not cfg.devices:
        return None
    return DeviceRows.prepare(cfg)


def _report_path(cfg: CheckConfig, root: Path, ref_art: Artifact, selected: Mapping[str, Artifact]) -> Path:
    """Where the JSON report goes; neither it nor the page may overwrite each other or an input."""
    json_path = Path(cfg.report or root / REPORT_NAME)
    if cfg.html is not None and cfg.html.resolve() == json_path.resolve():
        raise ConfigError(
            f"The HTML page {cfg.html} would overwrite the JSON report of the same name; pass --html with "
            "another path (or --no-html)."
        )
    _outputs_are_not_inputs(root, ref_art, selected, {"--report": json_path, "--html": cfg.html})
    return json_path


def _start_probe(run: Run, selected: Mapping[str, Artifact]) -> PendingValidation:
    """One probe process for every file the runtimes will load (their activate() then hits its cache).

    It runs while the inputs and the reference are prepared; no runtime here loads a
    file before probe.wait(). The structure checks remember the files that passed them
    (edgefm.core.verdicts): a warm verify of unchanged files then never imports onnx for
    its checker (0.5 s, most of it ml_dtypes).
    """
    run.t_probe, root = time.perf_counter(), run.root
    probe = PendingValidation((root / a.path for a in selected.values() if (root / a.path).suffix.lower() in STRUCTURE_CHECKS),
                              passed=user_passed_checks())
    _import_runtimes(selected.values())
    return probe


def _reference(run: Run, data: Inputs) -> ReferenceRun:
    """The reference: computed once, or reused from the cache beside the manifest; its accuracy and checks."""
    t0 = time.perf_counter()
    root, manifest = run.root, run.manifest
    ref_name, ref_art = manifest.savedmodel(root)
    ref_path = root / ref_art.path
    ref_sha = sha256_tree(ref_path) if ref_path.exists() else None
    ref_checksum = checksum_metric(root, ref_art, sha=ref_sha)
    run.say(f"reference: {ref_art.path} (TensorFlow, or its cached outputs) on {data.info['count']} images…")
    ref, ref_cache, ref_versions = reference_outputs(root, ref_path, ref_sha, data, run.cfg)
    reference, ref_b1 = ref.outputs, ref.batch1
    run.timings["reference"] = time.perf_counter() - t0
    classification = _classification_outputs(manifest, reference)
    primary = primary_output(reference, classification or ())
    _class_names_fit(manifest, root, ref_art, reference)
    scored = primary if primary in (classification if classification is not None
                                    else classification_outputs(reference)) else None
    labels = data.labels
    ref_acc = accuracy(reference[scored], labels) if scored is not None and labels is not None else None
    metrics = [
        ref_checksum,
        Metric.check("batch_invariance", max(max_abs_error(ref_b1[k], reference[k][: len(ref_b1[k])]) for k in ref_b1),
                     None, "info"),
    ]
    how = "in TensorFlow" if ref_cache["status"] == "computed" else f"reused from {ref_cache['path']}"
    acc_text = f", accuracy {100 * ref_acc:.2f}%" if ref_acc is not None else ""
    run.say(f"reference: {ref_art.path} {how}{acc_text} ({run.timings['reference']:.1f} s)")
    if ref_cache.get("note"):
        run.say(f"reference cache: {ref_cache['note']}")
    versions = {**tool_versions(*VERSIONED), "edgefm": edgefm_version(), **ref_versions}
    return ReferenceRun(ref_name, ref_art, reference, ref.timings, ref_cache, versions, metrics, classification,
                        scored, ref_acc)


def _class_names_fit(manifest: Manifest, root: Path, ref_art: Artifact, reference: Mapping[str, np.ndarray]) -> None:
    """Every classification output's class names are as many as its scores per image."""
    for out_name, names in manifest.class_names().items():
        got = reference.get(out_name)
        n_classes = None if got is None or np.ndim(got) != 2 else int(np.shape(got)[1])
        if n_classes is not None and len(names) != n_classes:
            raise ManifestError(
                f"{Manifest.path_in(root)} names {len(names)} classes, but the reference SavedModel "
                f"{root / ref_art.path} has {n_classes} outputs per image: every report, page and labels.txt would "
                "name the wrong class. Give one name per output (re-create the artifacts with `edgefm train`)."
            )


def _run_rows(run: Run, rows: list[Row], data: Inputs, ctx: Judging, *, scored: str | None) -> Judged:
    """Every row, one pass over the inputs (each batch goes through all of them), then each judged in turn."""
    judged = Judged()
    opened: dict[str, Stream | ArtifactResult] = {}
    ledger: dict[str, list[Stream]] = {}  # the device ledger's other host kernel path per artifact (never a row)
    for row in rows:
        if row.is_binding and (size := _size(row.path)) is not None:
            judged.sizes[row.artifact] = size
        try:
            opened[row.name] = open_row(row, ctx.devices)
            if ctx.io is not None:  # a file without the reference's tensor names (runtime_check.runtimes.base)
                opened[row.name].runtime.expecting(*ctx.io)  # type: ignore[union-attr]
        except EdgefmError as e:
            opened[row.name] = row.unrun(e)
        if row.is_binding and ctx.devices is not None:
            ledger[row.artifact] = ctx.devices.ledger_streams(row.artifact, row.path)
    streams = [s for s in opened.values() if isinstance(s, Stream)] + [s for ls in ledger.values() for s in ls]
    t0 = time.perf_counter()
    stream_through(streams, data, run.cfg.batch_size)
    run.timings["run"] = time.perf_counter() - t0
    for row in rows:
        checksum = checksum_metric(run.root, row.art) if row.is_binding else None
        result, outputs = judge_row(row, opened[row.name], ctx, checksum=checksum)
        if row.board is None and not isinstance(opened[row.name], ArtifactResult):
            judged.versions.update(runtime_versions(opened[row.name]))
        if row.is_binding and ctx.devices is not None:
            ctx.devices.record_ledger(row.artifact, row.art, ledger.get(row.artifact, []), outputs)
        judged.results.append(result)
        _keep_detail(judged.details, row.name, outputs, ctx.reference, ctx.labels, scored)
        run.say(row_report_line(result))
    return judged


def _report(run: Run, ref: ReferenceRun, data: Inputs, judged: Judged, devices: DeviceRows | None) -> ParityReport:
    """The report of this verify, from the reference and the judged rows."""
    root, scored, labels = run.root, ref.scored, data.labels
    versions = {**ref.versions, **judged.versions, **(devices.versions() if devices is not None else {})}
    class_names = run.manifest.class_names()
    shown = sorted({int(i) for d in judged.details.values() for i in d.shown})
    return ParityReport(
        artifacts=judged.results,
        reference={
            "name": ref.name,
            "path": ref.art.path,
            "runtime": TensorFlowRuntime.name,
            "sha256": ref.art.sha256,
            "bytes": _size(root / ref.art.path),
            "accuracy": ref.accuracy,
            "timings": {k: round(v, 4) for k, v in ref.timings.items()},
            "cache": ref.cache,
        },
        inputs=data.info,
        versions=versions,
        timings=run.timings,
        reference_metrics=ref.metrics,
        host=host_cpu(),
        details=judged.details,
        sizes=judged.sizes,
        reference_confusion=None if ref.accuracy is None or scored is None else confusion_matrix(
            labels, np.argmax(ref.outputs[scored], axis=1), ref.outputs[scored].shape[1]),
        class_names=list(class_names.get(scored or "", [])) or (list(CLASS_NAMES) if scored == LOGITS else []),
        images=data.images_at(shown),  # the dataset's uint8 pixels
        training=dict(run.manifest.training),
        artifacts_dir=root,
        devices=devices.describe() if devices is not None else {},
    )


def _write(run: Run, report: ParityReport, json_path: Path) -> None:
    """The page (if asked), then the JSON report: written even if the page could not be."""
    report.path = json_path  # the page names it
    cfg, timings = run.cfg, run.timings
    try:
        if cfg.html is not None:
            t0 = time.perf_counter()
            write_html(report, cfg.html)
            timings["html"] = time.perf_counter() - t0
            run.say(f"html: {cfg.html} ({timings['html']:.1f} s)")
    finally:
        timings["total"] = time.perf_counter() - run.t_start
        report.resources["peak_rss_mb"] = round(peak_rss_mb(), 1)
        report.write(json_path)


def artifact_tolerance(manifest: Manifest, root: Path, name: str, art: Artifact, cfg: CheckConfig) -> Tolerance:
    """The bounds verify holds artifact ``name`` to: its variant's, with ``cfg``'s overrides; scale-free for a
    model edgefm did not train (``export --saved-model/--keras`` marks its SavedModel "brought")."""
    brought = "brought" in manifest.savedmodel(root)[1].extra
    return tolerance_for(name, art.format, art.quantization, atol=cfg.atol, min_top1=cfg.min_top1, bounds=cfg.bounds,
                         relative=brought)


def add_explanations(report: ParityReport, explanations: Mapping[str, Any], repairs: Mapping[str, Any] | None = None) -> None:
    """``verify --explain``'s records (``runtime_check.explain.explain.Explanation`` by manifest name), and
    ``--repair``'s (``runtime_check.explain.repair.Repair``), into ``report``, then the report written again
    where it was, both from this one object: the page (``report.html_path``, if it had one) and the JSON
    (``report.path``, ``artifacts.NAME.explain`` and ``.repair``), each atomically, the JSON even if the page
    cannot be written (as ``check`` does)."""
    for name, ex in explanations.items():
        report.explanations[name] = ex.to_dict()
    for name, r in (repairs or {}).items():
        report.repairs[name] = r.to_dict()
    try:
        if report.html_path is not None:
            write_html(report, report.html_path)
    finally:
        if report.path is not None:
            report.write(report.path)


def _outputs_are_not_inputs(root: Path, reference: Artifact, selected: Mapping[str, Artifact],
                            outputs: Mapping[str, Path | None]) -> None:
    """A report written over manifest.json, a model being verified or a SavedModel file would destroy it."""
    inputs = {Manifest.path_in(root).resolve(): "manifest.json"}
    inputs.update({(root / a.path).resolve(): f"artifact {n!r}" for n, a in selected.items()})
    saved = (root / reference.path).resolve()
    for flag, out in outputs.items():
        if out is None:
            continue
        target = Path(out).resolve()
        what = inputs.get(target) or ("a file of the reference SavedModel" if target.is_relative_to(saved) else None)
        if what:
            raise ConfigError(f"{flag} {out} is {what}, an input of this verify; writing there would destroy it. "
                              f"Pass {flag} with another path.")


def reference_outputs(
    root: Path, path: Path, sha: str | None, data: Inputs, cfg: CheckConfig
) -> tuple[Reference, dict[str, Any], dict[str, str]]:
    """The reference outputs, the cache record for the report, and the TensorFlow version they came from.

    Reused from ``reference_cache`` when its key matches (TensorFlow is then not
    imported); otherwise TensorFlow runs and the result is cached. A bad cache is a
    note in the record, never an error.
    """
    inputs = data.info
    # what the outputs depend on (an unknown SavedModel sha256 is "": such a key is never looked up)
    made_of = ReferenceKey(
        savedmodel_sha256=sha or "",
        signature=TensorFlowRuntime.signature_key,
        inputs_sha256=inputs["sha256"],
        count=int(inputs["count"]),
        invariance_sha256=inputs["invariance_sha256"],
        invariance_samples=int(inputs["invariance_samples"]),
        batch_size=cfg.batch_size,
        tensorflow=reference_cache.tensorflow_version(),
    )
    record: dict[str, Any] = {"path": reference_cache.CACHE_NAME}
    note = ""
    if cfg.load_outputs is not None:
        if sha is None:
            raise ModelFileError(f"--load-outputs: the reference SavedModel {path} is missing, so its sha256 is unknown.")
        loaded, saved_key = reference_cache.load_outputs(cfg.load_outputs, made_of)
        record.update(status="loaded", path=str(cfg.load_outputs), computed=loaded.computed)
        if saved_key.get("savedmodel_sha256") != made_of.savedmodel_sha256:
            record["note"] = "saved from another SavedModel than the one the manifest records"
        return loaded, record, {"tensorflow": str(saved_key.get("tensorflow"))}
    # the cache beside the manifest: not for a missing SavedModel, nor one-shot (no artifacts directory)
    key = None if sha is None or cfg.reference is not None else made_of
    if key is not None and cfg.recompute_reference:
        note = "--recompute-reference: TensorFlow ran again"
    elif key is not None:
        cached, note = reference_cache.load(root, key)
        if cached is not None and cached.outputs:
            record.update(status="reused", computed=cached.computed)
            if cfg.save_outputs is not None:
                reference_cache.save_outputs(cfg.save_outputs, key, cached)
                record["saved"] = str(cfg.save_outputs)
            return cached, record, {"tensorflow": str(key.tensorflow)}
    tf_runtime = TensorFlowRuntime(path)
    try:
        outputs, b1, timings = run_runtime(tf_runtime, data, cfg.batch_size)
    except UsageError as e:  # the feeds were checked against the recorded signature: the file is at fault (exit 1)
        raise ModelFileError(
            f"The reference SavedModel {path} does not take the inputs its manifest records ({e}). "
            "Re-create the artifacts (`edgefm train`, or `edgefm export --saved-model DIR --force`)."
        ) from e
    ref = Reference(outputs, b1, timings, utc_now())
    if key is not None and outputs:
        saved = reference_cache.save(root, key, ref)
        note = "; ".join(n for n in (note, saved) if n)
    record.update(status="computed", computed=ref.computed)
    if cfg.save_outputs is not None:
        reference_cache.save_outputs(cfg.save_outputs, made_of, ref)
        record["saved"] = str(cfg.save_outputs)
    if note:
        record["note"] = note
    return ref, record, tf_runtime.versions()


def _import_runtimes(artifacts: Iterable[Artifact]) -> None:
    """Import the runtimes' Python modules now, while the probe child runs (they load no model file)."""
    import importlib

    modules = (k.preload for a in artifacts for k in runner_kinds(a.format, BINDING) if k.preload)
    for module in dict.fromkeys(modules):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the runtime says so, with what to install, when it is activated


def _keep_detail(
    details: dict[str, ArtifactDetail],
    name: str,
    outputs: Mapping[str, np.ndarray] | None,
    reference: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    scored: str | None = LOGITS,
) -> None:
    """Summarise one run's class scores for the page (nothing without labelled, comparable class scores)."""
    if scored is None or labels is None or outputs is None or scored not in outputs:
        return
    if np.shape(outputs[scored]) != np.shape(reference[scored]):
        return
    details[name] = ArtifactDetail.from_logits(outputs[scored], reference[scored], labels)


def _classification_outputs(manifest: Manifest, reference: Mapping[str, np.ndarray]) -> set[str] | None:
    """Outputs the manifest declares as classification (with class names); ``None``: compare guesses by name."""
    declared = {k for k in manifest.class_names() if k in reference}
    return declared or None



def _size(path: Path) -> int | None:
    """Bytes on disk of a file or directory; ``None`` if it is gone."""
    try:
        return tree_bytes(path) if path.exists() else None
    except OSError:
        return None
