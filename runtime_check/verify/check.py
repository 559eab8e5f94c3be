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

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import CLASS_NAMES, INPUT_NAME, ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import (
    ConfigError,
    DataError,
    DatasetError,
    EdgefmError,
    ManifestError,
    ModelFileError,
    RuntimeUnavailableError,
    UsageError,
)
from edgefm.core.fileio import sha256_tree, tree_bytes
from edgefm.core.hostinfo import host_cpu
from edgefm.core.manifest import Artifact, Manifest, TensorSpec, edgefm_version, tool_versions, utc_now
from edgefm.core.metrics import confusion_matrix
from edgefm.core.verdicts import user_passed_checks
from edgefm.data.fashion_mnist import scale_images
from edgefm.data.sources import InputSource
from runtime_check.runtimes.base import Runtime
from runtime_check.runtimes.probe import STRUCTURE_CHECKS, PendingValidation
from runtime_check.runtimes.registry import runtime_for
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.verify import reference_cache
from runtime_check.verify.compare import (
    LOGITS,
    ArtifactResult,
    Metric,
    accuracy,
    classification_outputs,
    compare_exact,
    compare_outputs,
    max_abs_error,
    primary_output,
)
from runtime_check.verify.config import CheckConfig
from runtime_check.verify.evidence import weak_evidence
from runtime_check.verify.html_page import write_html
from runtime_check.verify.reference_cache import Reference, ReferenceKey
from runtime_check.verify.report import REPORT_NAME, ArtifactDetail, ParityReport, describe_inputs
from runtime_check.verify.tolerances import Tolerance, tolerance_for

ProgressFn = Callable[[str], None]
NativeFactory = Callable[[Path], Runtime]
#: the result name of an artifact run by its native C runner
NATIVE_SUFFIX = "@native"
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


def native_factory() -> NativeFactory:
    """``runtime_check.native.runtime.native_runtime_for``, imported only when ``--native`` asks."""
    try:
        from runtime_check.native.runtime import native_runtime_for
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"native runners not available: {e}. The C runners live in runtime_check/native; run "
            "without --native to check the Python bindings only."
        ) from e
    return native_runtime_for


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyInputs:
    """The verify inputs, read from the dataset file batch by batch whenever they are fed.

    Streaming: no runtime, and no part of verify, holds all N images at once; each
    pass (``batches``) reads the split's image file again (a 60,000-image pass
    decompresses 26 MB in ~0.15 s) and scales one batch at a time, so verify's
    memory grows with the batch size, not with the number of inputs. What is
    kept whole is small: the labels and every runtime's ``[N, classes]`` outputs.
    """

    split: str
    data_dir: Path
    count: int
    labels: np.ndarray
    info: dict[str, Any]
    #: the first ``invariance_samples`` rows of each input (the batch-1 runs), kept: at most a few dozen
    head: dict[str, np.ndarray]
    input_name: str = INPUT_NAME

    def __len__(self) -> int:
        return self.count

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """float32 [0, 1] batches of the ``count`` images in order (``uint8 / 255``, as ``Split.scaled``)."""
        from edgefm.data import fashion_mnist as ds

        # verified by load_inputs' pass already: the later passes read the same file unchecked
        for batch in ds.stream_images(self.split, self.data_dir, batch_size=batch_size, count=self.count, verify=False):
            yield {self.input_name: scale_images(batch)}

    def images_at(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """The dataset's uint8 pixels of a few images (those the page shows), in one more pass."""
        from edgefm.data import fashion_mnist as ds

        wanted, out, start = sorted(set(indices)), {}, 0
        if not wanted:
            return out
        for batch in ds.stream_images(self.split, self.data_dir, batch_size=1000, count=wanted[-1] + 1, verify=False):
            out.update({i: np.array(batch[i - start]) for i in wanted if start <= i < start + len(batch)})
            start += len(batch)
        return out


@dataclass(frozen=True)
class SourceInputs:
    """Verify inputs of any model (``--data``): an ``edgefm.data.sources.InputSource`` with VerifyInputs' face."""

    source: InputSource
    info: dict[str, Any]
    head: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return self.source.count

    @property
    def labels(self) -> np.ndarray | None:
        return self.source.labels

    def __len__(self) -> int:
        return self.source.count

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        return self.source.batches(batch_size)

    def images_at(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        return {}  # the page shows Fashion-MNIST images only


Inputs = VerifyInputs | SourceInputs


def load_inputs(cfg: CheckConfig, manifest: Manifest | None = None) -> Inputs:
    """``--data`` as the model's inputs, or (no ``--data``, edgefm's own model) the Fashion-MNIST split."""
    if cfg.data is None and (manifest is None or manifest.takes_fashion_images()):
        return load_fashion_inputs(cfg)
    assert manifest is not None
    from edgefm.data.sources import open_data

    inputs = manifest.savedmodel()[1].inputs
    classes = next(iter(manifest.class_names().values()), [])
    source = open_data(cfg.data or "synthetic", inputs, samples=cfg.samples, seed=cfg.seed,
                       value_ranges=cfg.value_ranges, preprocessing=manifest.image_preprocessing(),
                       labels_file=cfg.labels_data,
                       class_names=classes)
    n_inv = min(cfg.invariance_samples, source.count)
    head = source.head(n_inv)
    info = {
        **source.info,
        "batch_size": cfg.batch_size,
        "invariance_samples": n_inv,
        "invariance_sha256": _digest(head),
    }
    if source.labels is not None and classes:
        bad = np.flatnonzero((source.labels < 0) | (source.labels >= len(classes)))
        if len(bad):
            raise DataError(f"The labels of {cfg.data} hold class id {int(source.labels[bad[0]])} (row {int(bad[0])}), "
                            f"outside the model's {len(classes)} classes.")
    return SourceInputs(source, info, head)


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def load_fashion_inputs(cfg: CheckConfig) -> VerifyInputs:
    """The verify inputs (streamed; see ``VerifyInputs``), their labels, and a record of exactly which ones.

    One pass over the image file here checks it (structure; the official sha256 unless
    ``--no-verify``) and hashes the float32 images the runtimes will see, batch by batch.
    """
    from edgefm.data import fashion_mnist as ds

    data_dir = ds.locate(cfg.data_dir)
    labels = ds.load_labels(cfg.split, data_dir, verify=cfg.verify_data)
    n = len(labels) if cfg.samples is None else cfg.samples
    if n > len(labels):
        raise ConfigError(f"--samples {n}: the {cfg.split} split has only {len(labels)} images; pass at most {len(labels)}.")
    if n == 0:
        raise ConfigError(f"The {cfg.split} split in {data_dir} is empty; there is nothing to verify on.")
    n_inv = min(cfg.invariance_samples, int(n))
    digest, head, seen = hashlib.sha256(), [], 0
    # count=None: the whole file is read (for its sha256), the images past n only counted
    for batch in ds.stream_images(cfg.split, data_dir, batch_size=cfg.batch_size, verify=cfg.verify_data):
        use = scale_images(batch[: max(0, n - seen)])
        digest.update(use.tobytes())  # the same digest as of all n float32 images at once
        if seen < n_inv:
            head.append(use[: n_inv - seen])
        seen += len(batch)
    if seen != len(labels):
        raise DatasetError(
            f"{data_dir}: the {cfg.split} split holds {seen} images but {len(labels)} labels; the files belong to "
            "different releases. Re-install or re-fetch the dataset."
        )
    head_images = np.concatenate(head)
    info = {
        "source": "fashion-mnist",
        "split": cfg.split,
        "data_dir": str(data_dir),
        "checksums_verified": cfg.verify_data,
        "count": int(n),
        "first_index": 0,
        "dtype": "float32",
        "shape": [int(n), *map(int, head_images.shape[1:])],
        "scaling": "uint8 / 255",
        "sha256": digest.hexdigest(),
        "labels_sha256": hashlib.sha256(np.ascontiguousarray(labels[:n]).tobytes()).hexdigest(),
        "batch_size": cfg.batch_size,
        "invariance_samples": n_inv,
        "invariance_sha256": hashlib.sha256(head_images.tobytes()).hexdigest(),
    }
    return VerifyInputs(cfg.split, data_dir, int(n), np.asarray(labels[:n]), info, {INPUT_NAME: head_images})


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


@dataclass
class Stream:
    """One runtime fed the input stream: its outputs gathered batch by batch, its timings, or what stopped it."""

    name: str
    runtime: Runtime
    timings: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None
    _parts: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _b1: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        return _concatenated(self._parts)

    @property
    def batch1(self) -> dict[str, np.ndarray]:
        return _concatenated(self._b1)

    def _feed(self, batch: Mapping[str, np.ndarray], into: dict[str, list[np.ndarray]], timing: str) -> None:
        if self.error is not None:
            return
        t0 = time.perf_counter()
        try:
            out = self.runtime.infer(batch)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one broken runtime must not stop the others
            self.error = e
            return
        finally:
            self.timings[timing] = self.timings.get(timing, 0.0) + time.perf_counter() - t0
        for k, v in out.items():
            into.setdefault(k, []).append(v)


def stream_through(streams: list[Stream], data: Inputs, batch_size: int) -> None:
    """Activate every runtime, feed each batch of one pass over the inputs to all of them, then the batch-1 runs.

    A runtime that fails to load or to run keeps its error and gets nothing more;
    the others go on. Every runtime is deactivated at the end.
    """
    for s in streams:
        t0 = time.perf_counter()
        try:
            s.runtime.activate()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - recorded per runtime
            s.error = e
        s.timings["load"] = time.perf_counter() - t0
    try:
        for batch in data.batches(batch_size):
            for s in streams:
                s._feed(batch, s._parts, "infer")
        for i in range(len(next(iter(data.head.values())))):
            for s in streams:
                s._feed({k: v[i : i + 1] for k, v in data.head.items()}, s._b1, "batch1")
    finally:
        for s in streams:
            s.runtime.deactivate()
    for s in streams:
        s.timings["total"] = sum(s.timings.get(k, 0.0) for k in ("load", "infer", "batch1"))


def run_runtime(runtime: Runtime, data: Inputs, batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """One runtime through the whole stream: its outputs, batch-1 outputs and timings; its error is raised."""
    stream = Stream(runtime.name, runtime)
    stream_through([stream], data, batch_size)
    if stream.error is not None:
        raise stream.error
    timings = dict(stream.timings)
    timings.pop("total", None)
    return stream.outputs, stream.batch1, timings


def _concatenated(chunks: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-batch outputs joined along the batch."""
    if not chunks:
        raise UsageError("no inputs to run (0 rows).")
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _describe_error(e: BaseException) -> str:
    return str(e) if isinstance(e, EdgefmError) else f"{type(e).__name__}: {e}"


def judge(
    stream: Stream,
    art: Artifact,
    reference: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    tol: Tolerance,
    *,
    checksum: Metric | None = None,
    binding: Mapping[str, np.ndarray] | None = None,
    classification: Iterable[str] | None = None,
) -> tuple[ArtifactResult, dict[str, np.ndarray] | None]:
    """One streamed runtime's outputs against the reference; its error becomes the result's ``error``.

    With ``binding`` (the Python binding's outputs of the same file), the exact
    match of the two runs is checked as well. Returns the outputs for reuse.
    """
    result = ArtifactResult(stream.name, stream.runtime.name, art.path, art.format, art.quantization)
    if checksum is not None:
        result.metrics.append(checksum)
    result.timings.update(stream.timings)
    outputs = None
    try:
        if stream.error is not None:
            raise stream.error
        outputs = stream.outputs
        result.metrics.extend(compare_outputs(outputs, reference, labels, tol, batch1=stream.batch1,
                                              classification=None if classification is None else set(classification)))
        if binding is not None:
            result.metrics.append(compare_exact(outputs, binding))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one broken artifact must not hide the others' results
        result.error = _describe_error(e)
    return result, outputs


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
        fmt = {".tflite": TFLITE_FORMAT, ".onnx": ONNX_FORMAT}.get(model.suffix.lower())
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
    t_start = time.perf_counter()
    say = progress or (lambda _msg: None)
    root = Path(cfg.artifacts)
    selected = select_artifacts(manifest, cfg)
    tolerances = {n: artifact_tolerance(manifest, root, n, a, cfg) for n, a in selected.items()}
    make_native = native_factory() if cfg.native else None
    devices = None  # --device: extra runtimes per artifact (runtime_check.device), rows NAME@BOARD
    if cfg.devices:
        from runtime_check.device.rows import DeviceRows

        devices = DeviceRows.prepare(cfg)
    ref_name, ref_art = manifest.savedmodel(root)
    json_path = Path(cfg.report or root / REPORT_NAME)
    if cfg.html is not None and cfg.html.resolve() == json_path.resolve():
        raise ConfigError(
            f"The HTML page {cfg.html} would overwrite the JSON report of the same name; pass --html with "
            "another path (or --no-html)."
        )
    _outputs_are_not_inputs(root, ref_art, selected, {"--report": json_path, "--html": cfg.html})
    timings: dict[str, float] = {}

    # One probe process for every file the runtimes will load (their activate() then hits its cache). It runs
    # while the inputs and the reference are prepared; no runtime here loads a file before probe.wait().
    t_probe = time.perf_counter()
    # The structure checks remember the files that passed them (edgefm.core.verdicts): a warm verify of
    # unchanged files then never imports onnx for its checker (0.5 s, most of it ml_dtypes).
    probe = PendingValidation((root / a.path for a in selected.values() if (root / a.path).suffix.lower() in STRUCTURE_CHECKS),
                              passed=user_passed_checks())
    _import_runtimes(selected.values())

    t0 = time.perf_counter()
    data = load_inputs(cfg, manifest)
    labels, inputs = data.labels, data.info
    timings["load_inputs"] = time.perf_counter() - t0
    say(f"inputs: {describe_inputs(inputs)}")

    # The reference: computed once, or reused from the cache beside the manifest.
    t0 = time.perf_counter()
    ref_path = root / ref_art.path
    ref_sha = sha256_tree(ref_path) if ref_path.exists() else None
    ref_checksum = checksum_metric(root, ref_art, sha=ref_sha)
    say(f"reference: {ref_art.path} (TensorFlow, or its cached outputs) on {inputs['count']} images…")
    ref, ref_cache, ref_versions = reference_outputs(root, ref_path, ref_sha, data, cfg)
    reference, ref_b1, ref_timings = ref.outputs, ref.batch1, ref.timings
    timings["reference"] = time.perf_counter() - t0
    class_names = manifest.class_names()
    classification = _classification_outputs(manifest, reference)
    primary = primary_output(reference, classification or ())
    for out_name, names in class_names.items():
        got = reference.get(out_name)
        n_classes = None if got is None or np.ndim(got) != 2 else int(np.shape(got)[1])
        if n_classes is not None and len(names) != n_classes:
            raise ManifestError(
                f"{Manifest.path_in(root)} names {len(names)} classes, but the reference SavedModel "
                f"{root / ref_art.path} has {n_classes} outputs per image: every report, page and labels.txt would "
                "name the wrong class. Give one name per output (re-create the artifacts with `edgefm train`)."
            )
    classes = classification if classification is not None else classification_outputs(reference)
    scored = primary if primary in classes else None
    if labels is not None and cfg.labels_data is not None and not classes:
        shapes = ", ".join(f"{k} {list(np.shape(v))}" for k, v in reference.items())
        raise DataError(f"--labels-data {cfg.labels_data}: labels are class ids, but no output of this model is a "
                        f"classification output (outputs: {shapes}). Drop --labels-data, or export the model with "
                        "--labels FILE naming the classes of its [N, classes] output.")
    ref_acc = accuracy(reference[scored], labels) if scored is not None and labels is not None else None
    reference_metrics = [
        ref_checksum,
        Metric.check("batch_invariance", max(max_abs_error(ref_b1[k], reference[k][: len(ref_b1[k])]) for k in ref_b1),
                     None, "info"),
    ]
    how = "in TensorFlow" if ref_cache["status"] == "computed" else f"reused from {ref_cache['path']}"
    acc_text = f", accuracy {100 * ref_acc:.2f}%" if ref_acc is not None else ""
    say(f"reference: {ref_art.path} {how}{acc_text} ({timings['reference']:.1f} s)")
    if ref_cache.get("note"):
        say(f"reference cache: {ref_cache['note']}")
    versions = {**tool_versions(*VERSIONED), "edgefm": edgefm_version(), **ref_versions}

    probe.wait()
    timings["probe"] = time.perf_counter() - t_probe  # the wall time until every file was probed

    # Every runtime, one pass over the inputs (each batch goes through all of them).
    results: list[ArtifactResult] = []
    details: dict[str, ArtifactDetail] = {}
    sizes: dict[str, int] = {}
    streams: dict[str, Stream] = {}
    failed: dict[str, ArtifactResult] = {}
    for name, art in selected.items():
        path = root / art.path
        if (size := _size(path)) is not None:
            sizes[name] = size
        try:
            streams[name] = Stream(name, runtime_for(path))
        except EdgefmError as e:
            failed[name] = ArtifactResult(name, art.format, art.path, art.format, art.quantization, [], str(e))
        if devices is not None:
            devices.add_streams(name, art, path, streams, failed, Stream)
        if make_native is not None:
            try:
                streams[name + NATIVE_SUFFIX] = Stream(name + NATIVE_SUFFIX, make_native(path))
            except EdgefmError as e:
                failed[name + NATIVE_SUFFIX] = ArtifactResult(name + NATIVE_SUFFIX, "native", art.path, art.format,
                                                              art.quantization, [], str(e))
    t0 = time.perf_counter()
    stream_through(list(streams.values()), data, cfg.batch_size)
    timings["run"] = time.perf_counter() - t0
    for name, art in selected.items():
        tol = tolerances[name]
        if name in failed:
            result, outputs = failed[name], None
            result.metrics.insert(0, checksum_metric(root, art))
        else:
            result, outputs = judge(streams[name], art, reference, labels, tol, checksum=checksum_metric(root, art),
                                    classification=classification)
            versions.update(_versions(streams[name].runtime))
            if outputs is not None and art.quantization == "int8":  # question (a): the runtime vs the exact oracle
                _add_oracle(result, outputs, root / art.path, art, data, cfg, tol)
        results.append(result)
        _keep_detail(details, name, outputs, reference, labels, scored)
        say(f"{name}: {result.runtime} {result.verdict} ({result.timings.get('total', 0.0):.1f} s)")
        for dres, douts in devices.results(name, art, streams, failed, lambda s, a=art, t=tol: judge(
                s, a, reference, labels, t), outputs) if devices is not None else ():
            results.append(dres)
            _keep_detail(details, dres.name, douts, reference, labels)
            say(f"{dres.name}: {dres.runtime} {dres.verdict} ({dres.timings.get('total', 0.0):.1f} s)")
        if make_native is None:
            continue
        native = name + NATIVE_SUFFIX
        if native in failed:
            nres, noutputs = failed[native], None
        else:
            nres, noutputs = judge(streams[native], art, reference, labels, tol, binding=outputs,
                                   classification=classification)
            if outputs is None and nres.error is None:
                nres.metrics.append(Metric.check("binding_max_abs_diff", "binding did not run", "same", "=="))
            versions.update(_versions(streams[native].runtime))
        results.append(nres)
        _keep_detail(details, native, noutputs, reference, labels, scored)
        say(f"{native}: {nres.runtime} {nres.verdict} ({nres.timings.get('total', 0.0):.1f} s)")

    if devices is not None:
        versions.update(devices.versions())
    shown = sorted({int(i) for d in details.values() for i in d.shown})
    report = ParityReport(
        artifacts=results,
        reference={
            "name": ref_name,
            "path": ref_art.path,
            "runtime": TensorFlowRuntime.name,
            "sha256": ref_art.sha256,
            "bytes": _size(root / ref_art.path),
            "accuracy": ref_acc,
            "timings": {k: round(v, 4) for k, v in ref_timings.items()},
            "cache": ref_cache,
        },
        inputs=inputs,
        versions=versions,
        timings=timings,
        reference_metrics=reference_metrics,
        host=host_cpu(),
        details=details,
        sizes=sizes,
        reference_confusion=None if ref_acc is None or scored is None else confusion_matrix(
            labels, np.argmax(reference[scored], axis=1), reference[scored].shape[1]),
        class_names=list(class_names.get(scored or "", [])) or (list(CLASS_NAMES) if scored == LOGITS else []),
        images=data.images_at(shown),  # the dataset's uint8 pixels
        training=dict(manifest.training),
        artifacts_dir=root,
        devices=devices.describe() if devices is not None else {},
        weak_evidence=weak_evidence(reference, classes, inputs, results),
    )
    report.path = json_path  # the page names it
    try:
        if cfg.html is not None:
            t0 = time.perf_counter()
            write_html(report, cfg.html)
            timings["html"] = time.perf_counter() - t0
            say(f"html: {cfg.html} ({timings['html']:.1f} s)")
    finally:  # the JSON report is written even if the page could not be
        from runtime_check.tools.benchmark import peak_rss_mb

        timings["total"] = time.perf_counter() - t_start
        report.resources["peak_rss_mb"] = round(peak_rss_mb(), 1)
        report.write(json_path)
    return report


def artifact_tolerance(manifest: Manifest, root: Path, name: str, art: Artifact, cfg: CheckConfig) -> Tolerance:
    """The bounds verify holds artifact ``name`` to: its variant's, with ``cfg``'s overrides; scale-free for a
    model edgefm did not train (``export --saved-model/--keras`` marks its SavedModel "brought")."""
    brought = "brought" in manifest.savedmodel(root)[1].extra
    return tolerance_for(name, art.format, art.quantization, atol=cfg.atol, min_top1=cfg.min_top1, bounds=cfg.bounds,
                         relative=brought, confidence=cfg.confidence)


def _add_oracle(result: ArtifactResult, outputs: Mapping[str, np.ndarray], path: Path, art: Artifact, data: Inputs,
                cfg: CheckConfig, tol: Tolerance) -> None:
    """``oracle_steps``: the same file in the exact oracle (``runtime_check.verify.oracle``); a failure to run it
    is the metric's failure, never the verify's."""
    from runtime_check.verify.oracle import ORACLE_METRIC, oracle_metric, run_oracle

    t0 = time.perf_counter()
    try:
        ran = run_oracle(path, data.batches(cfg.batch_size))
        if ran is not None:
            result.metrics.append(oracle_metric(outputs, ran[1], art, tol.bound(ORACLE_METRIC), ran[0]))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - recorded as the metric
        result.metrics.append(Metric.check(ORACLE_METRIC, "oracle did not run", "ran", "==", detail=_describe_error(e)))
    result.timings["oracle"] = time.perf_counter() - t0


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


#: artifact format -> the Python module its runtime imports in activate()
RUNTIME_MODULES = {TFLITE_FORMAT: "ai_edge_litert.interpreter", ONNX_FORMAT: "onnxruntime"}


def _import_runtimes(artifacts: Iterable[Artifact]) -> None:
    """Import the runtimes' Python modules now, while the probe child runs (they load no model file)."""
    import importlib

    for module in dict.fromkeys(RUNTIME_MODULES[a.format] for a in artifacts if a.format in RUNTIME_MODULES):
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


def _versions(runtime: Runtime) -> dict[str, str]:
    """A runtime's library versions; a runtime that cannot tell is not an error."""
    try:
        return dict(runtime.versions())
    except Exception:  # noqa: BLE001 - versions are informational
        return {}
