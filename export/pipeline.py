"""``export(manifest, cfg) -> manifest``: every requested variant, converted, described, committed.

Order of work, so that a failure leaves the previous artifacts and manifest.json
untouched:

1. plan the variants (ConfigError for impossible requests), check the SavedModel
   (recorded in the manifest, unchanged on disk, has the serving signature with
   the edgefm contract) and load the calibration samples: fail before converting;
2. convert every variant *in memory*, embed metadata, check each file loads in
   its runtime; a converter exception becomes an ``ExportError`` quoting the
   converter's own output;
3. only then write each file atomically and save the manifest once.

``export`` therefore both writes the files and saves ``manifest.json`` (the two
must never disagree); it returns the new manifest and leaves the one passed in
unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefm.core.contract import INPUT_NAME, INPUT_SCALING, SERVING_SIGNATURE
from edgefm.core.errors import EdgefmError, ExportError, Interrupted, ManifestError, ModelFileError
from edgefm.core.fileio import StagedFiles, human_bytes, json_bytes, sha256_tree
from edgefm.core.interrupts import interrupts_noted, signals_deferred
from edgefm.core.locking import artifacts_lock
from edgefm.core.manifest import Artifact, Manifest, TensorSpec, edgefm_version, tool_versions, utc_now
from edgefm.core.progress import NoProgress, Progress
from edgefm.core.quiet import CapturedOutput, import_tensorflow, quiet_native_output
from edgefm.data.sources import InputSource, open_data
from edgefm.formats.metadata import metadata_entries
from edgefm.formats.savedmodel import SAVED_MODEL_PB, is_savedmodel_dir
from export import to_onnx, to_tflite
from export.calibration import fashion_calibration
from export.config import DATA_CALIBRATION_SAMPLES, FASHION_CALIBRATION_SAMPLES, ExportConfig, ExportFormat
from export.summary import summary_table
from export.variants import Exporter, Variant, plan, skipped

if TYPE_CHECKING:
    from export.bring import BringConfig

#: bytes kept free beyond what the commit writes (file-system metadata, other writers)
COMMIT_SPACE_MARGIN = 1 << 20
# Characters of a converter's exception and captured log quoted in an ExportError.
ERROR_QUOTE_CHARS = 600
TOOL_DISTRIBUTIONS: dict[ExportFormat, tuple[str, ...]] = {
    ExportFormat.TFLITE: ("ai-edge-litert",),
    ExportFormat.ONNX: ("tf2onnx", "onnx", "onnxruntime"),
}


@dataclass
class Converted:
    """One variant, converted and described, not yet on disk."""

    variant: Variant
    data: bytes
    artifact: Artifact


@dataclass
class ExportResult:
    manifest: Manifest
    exported: list[str]
    skipped: list[str]  # "onnx/float16"-style requests that have no variant
    table: str
    manifest_path: Path
    failed: list[Failed] = field(default_factory=list)  # ``--keep-going``: variants that did not convert


# -- checks before converting ------------------------------------------------------------


def source_savedmodel(manifest: Manifest, root: Path) -> tuple[Path, Artifact]:
    """The SavedModel the manifest records, checked on disk: exists, unchanged, serving signature."""
    root = Path(root)
    _, recorded = manifest.savedmodel(root)
    path = root / recorded.path
    if not is_savedmodel_dir(path):
        raise ModelFileError(
            f"No SavedModel at {path} (no {SAVED_MODEL_PB}), although {Manifest.path_in(root)} records one. "
            f"Run `edgefm train --artifacts {root}` to write it again."
        )
    actual = sha256_tree(path)
    if actual != recorded.sha256:
        raise ManifestError(
            f"The SavedModel at {path} changed since {Manifest.path_in(root)} was written (sha256 {actual[:12]}..., "
            f"recorded {recorded.sha256[:12]}...). Run `edgefm train --artifacts {root}` again so the manifest "
            "describes the model you export."
        )
    _check_signature(path, recorded)
    return path, recorded


def _check_signature(path: Path, recorded: Artifact) -> None:
    """TensorFlow loads the SavedModel, it has the serving signature, and that signature is the one recorded.

    The manifest's SavedModel entry records every input and output (name, dtype,
    shape): the model's contract as data, written by ``edgefm train`` or by
    ``edgefm export --saved-model/--keras``. A SavedModel whose signature differs was
    replaced behind the manifest's back; the variants would not match the record.
    """
    with quiet_native_output():
        tf = import_tensorflow()
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # TF raises many types for a corrupt SavedModel
            raise ModelFileError(
                f"TensorFlow cannot load the SavedModel {path} ({type(e).__name__}: {_first_line(e)}). "
                "Run `edgefm train` (or `edgefm export --saved-model`) to write it again."
            ) from e
    if SERVING_SIGNATURE not in loaded.signatures:
        found = ", ".join(loaded.signatures) or "none"
        raise ModelFileError(
            f"The SavedModel {path} has no {SERVING_SIGNATURE!r} signature (found: {found}); the exporters convert "
            "that signature. Re-create it with `edgefm train`, or bring your model with "
            "`edgefm export --saved-model DIR --signature NAME`."
        )
    if not recorded.inputs and not recorded.outputs:
        return  # a hand-made manifest that records no signature: the converters find out
    fn = loaded.signatures[SERVING_SIGNATURE]
    _, kwargs = fn.structured_input_signature
    outs = fn.structured_outputs if isinstance(fn.structured_outputs, dict) else {}
    actual = ({n: (s.dtype.name, s.shape.as_list()) for n, s in kwargs.items()},
              {n: (s.dtype.name, s.shape.as_list()) for n, s in outs.items()})
    want = ({s.name: (s.dtype, list(s.shape)) for s in recorded.inputs}, {s.name: (s.dtype, list(s.shape)) for s in recorded.outputs})
    if actual != want:
        def show(d: dict[str, tuple[str, list[int | None]]]) -> str:
            return ", ".join(f"{n} {t} {shape}" for n, (t, shape) in sorted(d.items())) or "none"

        raise ModelFileError(
            f"The SavedModel {path}'s {SERVING_SIGNATURE!r} signature is not the one the manifest records: inputs "
            f"{show(actual[0])} and outputs {show(actual[1])}, recorded inputs {show(want[0])} and outputs "
            f"{show(want[1])}. Re-create the artifacts (`edgefm train`, or `edgefm export --saved-model DIR --force`)."
        )


# -- conversion --------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:ERROR_QUOTE_CHARS]


def converter_reason(e: BaseException, log: str = "") -> str:
    """The converter's own words for a failure: its ``error:`` lines, deduplicated, else the first line.

    MLIR errors come wrapped in long location prefixes (``loc(callsite(fused[...]))``); the text
    after the last ``error: `` on a line is the part a user can act on.
    """
    found: list[str] = []
    for line in f"{e}\n{log}".splitlines():
        if "error: " in line:
            msg = line.rsplit("error: ", 1)[1].strip()
            if msg.startswith("loc("):  # drop the MLIR location
                msg = msg.rsplit("): ", 1)[-1].strip()
            if msg and not msg.endswith(":") and msg not in found:
                found.append(msg)
        elif line.strip().startswith("TF Select ops:") and line.strip() not in found:
            found.append(line.strip())
    # what names the op goes first: the quote is cut at ERROR_QUOTE_CHARS, and the converter's generic lines
    # ("failed while converting: 'main'...", with a URL) can come before it in the captured log
    found.sort(key=lambda m: not (" op " in m or m.startswith("TF Select ops:")))
    reason = "; ".join(found) if found else _first_line(e)
    return _without_temp_paths(reason)[:ERROR_QUOTE_CHARS]


def _without_temp_paths(text: str) -> str:
    """A converter quotes the temporary directory it worked in (``/tmp/tmpab12cd/...``): gone once it fails."""
    import re
    import tempfile

    return re.sub(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^\s'\",;:)]+", "<temporary file>", text)


#: converter words -> what they mean for the user's model, said once in a --keep-going summary
KNOWN_CAUSES = {
    "TensorListReserve": "a dynamic sequence length (TFLite needs the length fixed, or Select TF ops)",
    "TF Select ops:": "TensorFlow ops without a TFLite builtin (Select TF ops)",
}


@contextlib.contextmanager
def converter_step(what: str) -> Iterator[CapturedOutput]:
    """Run a conversion quietly; wrap a third-party failure in an ExportError that quotes it."""
    captured = CapturedOutput()
    try:
        with quiet_native_output() as captured:
            yield captured
    except EdgefmError:
        raise
    except Exception as e:
        reason = converter_reason(e, captured.text).rstrip(". ")
        raise ExportError(
            f"{what} failed ({type(e).__name__}): {reason}. Nothing was written: the previous artifacts "
            "and manifest.json are unchanged. The SavedModel probably uses an operator this converter or "
            "runtime does not support; export the other variants with --format/--quantize, or change the model."
        ) from e


def _tools(fmt: ExportFormat) -> dict[str, str]:
    tf = import_tensorflow()
    return {"tensorflow": tf.__version__, "edgefm": edgefm_version(), **tool_versions(*TOOL_DISTRIBUTIONS[fmt])}


def embedded_metadata(manifest: Manifest, variant: Variant, source_sha256: str, int8_io: bool) -> dict[str, Any]:
    """What travels inside the file (see edgefm.formats.metadata.read_metadata)."""
    saved = manifest.savedmodel()[1]
    inputs = [s.name for s in saved.inputs] or [INPUT_NAME]
    preps = {n: manifest.preprocessing_for(n) for n in inputs}
    scaling = INPUT_SCALING if manifest.takes_fashion_images() else "; ".join(f"{n}: {p.describe()}" for n, p in preps.items() if p)
    return {
        "edgefm_version": edgefm_version(),
        "model": manifest.model,
        "labels": list(manifest.labels),
        "input_scaling": scaling,
        "input_name": inputs[0],
        "input_names": inputs,
        "output_names": [s.name for s in saved.outputs],
        "classes": manifest.class_names(),
        "preprocessing": dict(manifest.preprocessing),
        "source_savedmodel_sha256": source_sha256,
        "format": variant.format.value,
        "quantization": variant.quantization.value,
        "variant": variant.name,
        "int8_io": int8_io,
    }


def _describe(
    variant: Variant, data: bytes, specs: tuple[list[TensorSpec], list[TensorSpec]], seconds: float, extra: dict[str, Any]
) -> Artifact:
    return Artifact(
        path=variant.filename,
        format=variant.format.value,
        quantization=variant.quantization.value,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        inputs=specs[0],
        outputs=specs[1],
        created=utc_now(),
        tools=_tools(variant.format),
        extra={**extra, "seconds": round(seconds, 3)},
    )


#: the exporter of each format: one signature (``export.variants.Exporter``), looped over by ``convert_all``
EXPORTERS: dict[ExportFormat, Exporter] = {ExportFormat.TFLITE: to_tflite.export_tflite, ExportFormat.ONNX: to_onnx.export_onnx}
#: how messages name each format
FORMAT_LABELS: dict[ExportFormat, str] = {ExportFormat.TFLITE: "TFLite", ExportFormat.ONNX: "ONNX"}


def convert_variant(
    variant: Variant, saved_model: Path, manifest: Manifest, source_sha: str, cfg: ExportConfig,
    calibration: InputSource | None,
) -> Converted:
    """One variant converted in memory by its format's exporter, described for the manifest."""
    calibration = calibration if variant.needs_calibration else None
    metadata = metadata_entries(embedded_metadata(manifest, variant, source_sha, variant.int8_io(cfg)))
    t0 = time.perf_counter()
    with converter_step(f"{FORMAT_LABELS[variant.format]} export of {variant.name}"):
        out = EXPORTERS[variant.format](variant, saved_model, calibration, cfg, metadata)
    extra: dict[str, Any] = {**out.extra, "source_savedmodel_sha256": source_sha}
    if calibration is not None:
        extra.update(calibration_samples=int(calibration.count), calibration_seed=cfg.seed,
                     calibration_data=calibration.kind + (f" {calibration.path}" if calibration.path else ""),
                     # what --data said, absolute: a later export of the same model (--keep-float) calibrates alike
                     calibration_source=_absolute_source(cfg.data))
    return Converted(variant, out.data, _describe(variant, out.data, (out.inputs, out.outputs), time.perf_counter() - t0, extra))


def calibration_for(manifest: Manifest, cfg: ExportConfig) -> InputSource:
    """What int8 is calibrated on: ``--data`` (its first rows), else Fashion-MNIST's train split for edgefm's
    own model, else seeded random inputs (a note says so in the manifest and the summary)."""
    if cfg.data is None and manifest.takes_fashion_images():
        n = cfg.calibration_samples or FASHION_CALIBRATION_SAMPLES
        return fashion_calibration(n, cfg.seed, cfg.data_dir, verify=cfg.verify_data)
    n = cfg.calibration_samples or DATA_CALIBRATION_SAMPLES
    inputs = manifest.savedmodel()[1].inputs
    source = open_data(cfg.data or "synthetic", inputs, seed=cfg.seed, value_ranges=cfg.value_ranges,
                       preprocessing=manifest.image_preprocessing(),
                       samples=None if cfg.data not in (None, "synthetic") else n)
    source.count = min(source.count, n)
    return source


def _absolute_source(data: str | None) -> str | None:
    if data is None or data == "synthetic":
        return data
    return str(Path(data).resolve())


def recorded_calibration(art: Artifact | None) -> dict[str, Any]:
    """``ExportConfig`` fields that calibrate as the export that wrote ``art`` did (its manifest record)."""
    if art is None or "calibration_samples" not in art.extra:
        return {}
    extra = art.extra
    source = extra.get("calibration_source")
    if source is None and "calibration_source" not in extra:  # a manifest of edgefm 0.1: "npz /path/x.npz" or so
        kind, _, path = str(extra.get("calibration_data", "")).partition(" ")
        source = None if kind == "fashion-mnist" else ("synthetic" if kind == "synthetic" else path or None)
    return {"data": source, "calibration_samples": int(extra["calibration_samples"]),
            "seed": int(extra.get("calibration_seed", 0))}


def keep_float_quantizer(root: Path, fmt: str, like: str | None = None) -> to_tflite.TFLiteKeepFloat | to_onnx.OnnxKeepFloat:
    """The manifest's SavedModel, ready to be quantized to int8 with any layers in float (``verify --repair``).

    Calibrated as the artifact ``like`` was (its manifest record), else with export's defaults.
    """
    manifest = Manifest.load(root)
    cfg = ExportConfig(artifacts=Path(root), **recorded_calibration(manifest.artifacts.get(like or "")))
    saved_model, _ = source_savedmodel(manifest, cfg.artifacts)
    calibration = calibration_for(manifest, cfg)
    with converter_step(f"int8 calibration of {saved_model} ({fmt})"):
        if fmt == ExportFormat.TFLITE.value:
            return to_tflite.TFLiteKeepFloat(saved_model, calibration)
        return to_onnx.OnnxKeepFloat(to_onnx.float_onnx(saved_model, cfg.opset), calibration)


def export_keep_float(root: Path, fmt: str, keep_float: tuple[str, ...], like: str | None = None,
                      progress: Progress | None = None) -> str:
    """Export the ``*_int8_mixed`` variant of ``fmt`` with ``keep_float`` in float, calibrated like ``like``; its name."""
    manifest = Manifest.load(root)
    cfg = ExportConfig(artifacts=Path(root), format=fmt, quantize="int8", keep_float=keep_float,
                       **recorded_calibration(manifest.artifacts.get(like or "")))
    export(manifest, cfg, progress)
    return plan(cfg)[0].name


@dataclass
class Failed:
    """A variant that did not convert (``--keep-going``): its name and the converter's words."""

    name: str
    message: str

    @property
    def cause(self) -> str:
        """The converter's words alone (no variant name): equal for variants that failed alike."""
        return self.message.split("): ", 1)[-1].strip().rstrip(".")


def failure_summary(failures: list[Failed], written: list[str]) -> str:
    """One line per cause, not the converter's text once per variant (--keep-going).

    ``TFLite: 4 variants (tflite_float32, ...) failed on a dynamic sequence length (...): 'tf.TensorListReserve'
    op requires ...; written: onnx_float32, onnx_int8.``
    """
    groups: dict[str, list[str]] = {}
    for f in failures:
        groups.setdefault(f.cause, []).append(f.name)
    parts = []
    for cause, names in groups.items():
        formats = sorted({n.split("_", 1)[0] for n in names})
        what = "/".join({"tflite": "TFLite", "onnx": "ONNX"}.get(f, f) for f in formats)
        meaning = next((m for key, m in KNOWN_CAUSES.items() if key in cause), "")
        count = f"{len(names)} variants" if len(names) > 1 else "1 variant"
        quote = cause.split("; ", 1)[0] if meaning else cause  # a known cause needs its first words only
        parts.append(f"{what}: {count} ({', '.join(names)}) failed on {meaning + ': ' if meaning else ''}{quote}")
    tail = f"; written: {', '.join(written)}" if written else ""
    return ". ".join(parts) + tail + "."


def convert_all(manifest: Manifest, cfg: ExportConfig, progress: Progress | None = None,
                failures: list[Failed] | None = None) -> list[Converted]:
    """Every planned variant converted in memory, in registry order; nothing is written.

    ``progress`` hears each step (the SavedModel check, calibration, then one unit per variant).
    With ``cfg.keep_going`` a variant whose converter fails is appended to ``failures``
    and the others go on; without it the first failure raises.
    """
    progress = progress or NoProgress()
    variants = plan(cfg)
    progress.start("checking the SavedModel")
    saved_model, recorded = source_savedmodel(manifest, cfg.artifacts)
    calibration = None
    if any(v.needs_calibration for v in variants):
        progress.start("loading the calibration samples")
        calibration = calibration_for(manifest, cfg)
        where = f" ({calibration.path})" if calibration.path else ""
        progress.note(f"calibrating int8 on {calibration.count:,} {calibration.kind or 'input'} samples{where}")
    progress.start("converting", total=len(variants))
    converted = []
    for i, v in enumerate(variants):
        progress.advance(i, v.name)
        try:
            c = convert_variant(v, saved_model, manifest, recorded.sha256, cfg, calibration)
        except ExportError as e:
            if not cfg.keep_going or failures is None:
                raise
            failed = Failed(v.name, str(e).split(" Nothing was written")[0])
            same = next((f.name for f in failures if f.cause == failed.cause), None)
            failures.append(failed)
            progress.note(f"failed {v.name}: " + (f"as {same} did" if same else failed.message))
            continue
        progress.note(f"exported {v.name}: {human_bytes(c.artifact.bytes)} in {c.artifact.extra['seconds']:.1f} s")
        converted.append(c)
    progress.finish()
    if failures is not None and not converted:
        raise ExportError("No variant converted. " + failure_summary(failures, []))
    return converted


# -- public API --------------------------------------------------------------------------


def export(manifest: Manifest, cfg: ExportConfig, progress: Progress | None = None,
           failures: list[Failed] | None = None) -> Manifest:
    """Convert the manifest's SavedModel to every variant ``cfg`` asks for; return the new manifest.

    Holds the artifacts directory's lock (``edgefm.core.locking``) from the first
    read to the commit, and reads ``manifest.json`` again inside it, so a second
    export or a train on the same directory waits instead of losing artifacts.
    Writes the files and ``manifest.json`` together, after every conversion
    succeeded (``_commit``). ``manifest`` itself is not modified.
    """
    with artifacts_lock(cfg.artifacts, "edgefm export", notify=(progress or NoProgress()).note):
        manifest = _current_manifest(manifest, cfg.artifacts)
        with interrupts_noted() as seen:
            try:
                converted = convert_all(manifest, cfg, progress, failures)
            except (KeyboardInterrupt, EdgefmError) as e:
                if not (seen or isinstance(e, KeyboardInterrupt)):
                    raise
                raise Interrupted(
                    f"Export interrupted ({seen[0] if seen else 'SIGINT'}) before anything was written: the files and "
                    f"manifest.json in {cfg.artifacts} are as they were. Run `edgefm export` again to convert."
                ) from None
        updated = copy.deepcopy(manifest)
        for fmt in dict.fromkeys(c.variant.format for c in converted):
            updated.versions.update(_tools(fmt))
        for c in converted:
            updated.artifacts[c.variant.name] = c.artifact
        _commit(cfg.artifacts, converted, updated)
    return updated


def _current_manifest(given: Manifest, root: Path) -> Manifest:
    """The manifest on disk, read inside the lock, when it records the same SavedModel as ``given``.

    Another export may have added artifacts since ``given`` was read: they are kept.
    Otherwise ``given`` stands, and ``source_savedmodel`` checks it against the
    SavedModel on disk, so a train that replaced the model meanwhile is a
    ManifestError, never a manifest that mixes two models.
    """
    if not Manifest.path_in(root).is_file():
        return given
    try:
        current = Manifest.load(root)
        if current.savedmodel(root)[1].sha256 == given.savedmodel(root)[1].sha256:
            return current
    except ManifestError:
        pass
    return given


def _commit(root: Path, converted: list[Converted], updated: Manifest) -> None:
    """Every new file and the manifest that describes them, or none of it.

    Free space is checked first (a clear error instead of a failed write). Then all
    files and the manifest are staged beside their targets; a write error while
    staging removes the staged files and leaves every old file as it was. Only then
    are they renamed into place, with SIGINT/SIGTERM held.
    """
    manifest_bytes = json_bytes(updated.to_dict())
    need = sum(len(c.data) for c in converted) + len(manifest_bytes)
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = None
    if free is not None and free < need + COMMIT_SPACE_MARGIN:
        raise ExportError(
            f"Not enough free space in {root} to write the export: {human_bytes(need)} needed (plus "
            f"{human_bytes(COMMIT_SPACE_MARGIN)} of margin), {human_bytes(free)} free. Nothing was written; free some "
            "space or pass --artifacts on another disk."
        )
    staged = StagedFiles()
    try:
        for c in converted:
            staged.add(root / c.variant.filename, c.data)
        staged.add(Manifest.path_in(root), manifest_bytes)
        with signals_deferred():
            staged.commit()
    finally:
        staged.discard()  # a no-op after a commit


def run_export(cfg: ExportConfig, progress: Progress | None = None) -> ExportResult:
    """What ``edgefm export`` does: load the manifest, export, describe the result."""
    names = [v.name for v in plan(cfg)]  # option errors before touching the disk
    failures: list[Failed] = []
    manifest = export(Manifest.load(cfg.artifacts), cfg, progress, failures)
    names = [n for n in names if n not in {f.name for f in failures}]
    return ExportResult(
        failed=failures,
        manifest=manifest,
        exported=names,
        skipped=[f"{f.value}/{q.value}" for f, q in skipped(cfg)],
        table=summary_table(manifest, names),
        manifest_path=Manifest.path_in(cfg.artifacts),
    )


def bring_and_export(cfg: ExportConfig, brought: BringConfig | None = None,
                     progress: Progress | None = None) -> ExportResult:
    """``edgefm export`` as one call: a model brought in first (``--saved-model``/``--keras``), then every variant.

    The bringing holds the artifacts directory's lock (the lock lives on the directory,
    so it is made first); if it fails or is interrupted, a directory this call created
    is removed again: nothing half-written stays.
    """
    if brought is None:
        return run_export(cfg, progress)
    from export.bring import preprocessing_notes, undone_on_failure

    # a model brought and then not converted leaves ARTIFACTS as it was (no half-done step to --force past)
    with undone_on_failure(brought.artifacts):
        manifest = bring_locked(brought, progress)
        for note in preprocessing_notes(manifest, brought.preprocess):
            (progress or NoProgress()).note(f"note: {note}")
        return run_export(cfg, progress)


def bring_locked(cfg: BringConfig, progress: Progress | None = None) -> Manifest:
    """``export.bring.bring`` under the directory's lock, rolled back (a directory it made removed) on failure."""
    from export.bring import bring

    progress = progress or NoProgress()
    progress.start(f"bringing {cfg.source}")
    created = not cfg.artifacts.exists()
    try:
        cfg.artifacts.mkdir(parents=True, exist_ok=True)  # the lock lives on the directory
        with artifacts_lock(cfg.artifacts, "edgefm export", notify=progress.note):
            return bring(cfg)
    except BaseException:
        if created:  # nothing half-written: the directory this command made goes again
            shutil.rmtree(cfg.artifacts, ignore_errors=True)
        raise
