"""Bring a model edgefm did not train: a TF2 SavedModel or a Keras 3 file becomes an artifacts directory.

``import_model(source, cfg)`` writes ``ARTIFACTS/saved_model`` and a ``manifest.json``
whose SavedModel entry records the model's own signature (every named input and
output, dtype and shape), the preprocessing of each image input (implied by its
shape, or given with ``--preprocess``) and the class names given with ``--labels``:
after it, ``export``/``verify`` treat the directory exactly as one ``edgefm train`` wrote.

- A SavedModel is copied byte for byte when the signature asked for is
  ``serving_default``; another signature is saved again as ``serving_default``
  (``tf.saved_model.save(loaded, dir, signatures=...)``), because every converter
  and runtime here reads that key.
- A ``.keras`` file is loaded with ``keras.saving.load_model`` and exported with
  ``model.export(dir, format="tf_saved_model")``, the way Keras itself makes a
  SavedModel for serving: inputs are named like the Keras inputs, outputs
  ``output_0``... (Keras 3 docs, "Model export").

Loading a SavedModel or a Keras file runs its code: only bring models you trust.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefm.core.contract import SAVEDMODEL_DIRNAME, SAVEDMODEL_FORMAT, SAVEDMODEL_KEY, SERVING_SIGNATURE
from edgefm.core.errors import ConfigError, ManifestError, ModelFileError
from edgefm.core.fileio import atomic_directory, sha256_tree
from edgefm.core.manifest import (
    SUPPORTED_DTYPES,
    Artifact,
    Manifest,
    Preprocessing,
    TensorSpec,
    edgefm_version,
    tool_versions,
    utc_now,
)
from edgefm.core.quiet import import_tensorflow, quiet_native_output
from edgefm.formats.savedmodel import read_signatures, require_savedmodel_dir


@dataclass(frozen=True)
class BringConfig:
    """Where the model comes from and what to record about it."""

    source: Path
    artifacts: Path
    keras: bool = False  # ``source`` is a .keras file
    signature: str = SERVING_SIGNATURE
    labels: Path | None = None  # one class name per line
    preprocess: dict[str, Any] = field(default_factory=dict)  # --preprocess fields for the (one) image input
    force: bool = False  # replace an artifacts directory that holds another model
    extra: dict[str, Any] = field(default_factory=dict)


def import_model(cfg: BringConfig) -> Manifest:
    """Write ``cfg.artifacts/saved_model`` and its manifest; return the manifest (unchanged if already there)."""
    source = Path(cfg.source)
    labels = _read_labels(cfg.labels) if cfg.labels is not None else []
    with quiet_native_output():  # read_signatures imports TensorFlow's protobufs: its start-up lines stay off stderr
        import_tensorflow()
    if cfg.keras:
        if not source.is_file() or source.suffix != ".keras":
            raise ModelFileError(f"--keras {source}: not a .keras file. Save the model with model.save('model.keras').")
    else:
        require_savedmodel_dir(source)
        signatures = read_signatures(source)
        if cfg.signature not in signatures:
            raise ModelFileError(
                f"The SavedModel {source} has no signature {cfg.signature!r} (it has: {', '.join(signatures) or 'none'}). "
                "Pass --signature with one of them."
            )
    root = Path(cfg.artifacts)
    target = root / SAVEDMODEL_DIRNAME
    if root.resolve() == source.resolve() or target.resolve() == source.resolve() or root.resolve().is_relative_to(source.resolve()):
        raise ConfigError(f"--artifacts {root} is the model's own directory (or inside it); pass another --artifacts.")
    root.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as staging:
        own_scaling = _stage_savedmodel(source, staging, cfg)
        inputs, outputs = _signature_specs(staging, source)
        given = dict(cfg.preprocess)
        if own_scaling and "scale" not in given:  # the model's first layer scales 0-255 pixels itself
            given["scale"] = 1.0
        preprocessing = _preprocessing(inputs, given)  # option errors before anything is replaced
        classes = _classes(outputs, labels, cfg.labels)
        new_sha = sha256_tree(staging)
        existing = _existing(root)
        if existing is not None and not cfg.force:
            same = existing.artifacts.get(SAVEDMODEL_KEY)
            if same is not None and same.sha256 == new_sha:
                raise _Unchanged(existing)
            raise ConfigError(
                f"{root} already holds the artifacts of another model ({Manifest.path_in(root)}: {existing.model!r}). "
                "Pass --force to replace them, or another --artifacts directory."
            )
    # the staging directory is now ARTIFACTS/saved_model
    saved = Artifact.describe(
        root, target, format=SAVEDMODEL_FORMAT, quantization="none", inputs=inputs, outputs=outputs,
        created=utc_now(), tools=tool_versions("tensorflow-cpu", "tensorflow", "keras"),
        extra={"source": str(source.resolve()), "signature": cfg.signature, "brought": "keras" if cfg.keras else "savedmodel",
               **({"scales_own_pixels": own_scaling} if own_scaling else {}), **cfg.extra},
    )
    manifest = Manifest(
        model=source.stem if cfg.keras else source.resolve().name,
        labels=next(iter(classes.values()), []),
        artifacts={SAVEDMODEL_KEY: saved},
        versions={"edgefm": edgefm_version(), **tool_versions("tensorflow-cpu", "tensorflow", "numpy")},
        preprocessing={k: p.to_dict() for k, p in preprocessing.items()},
        classes=classes,
    )
    # the old variants described another model: the new manifest lists the SavedModel only
    manifest.save(root)
    return manifest


class _Unchanged(Exception):
    """The model is already in the artifacts directory: nothing to write."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest


def bring(cfg: BringConfig) -> Manifest:
    """``import_model``, or the manifest already there when the same model was brought before."""
    try:
        return import_model(cfg)
    except _Unchanged as same:
        return same.manifest


@contextmanager
def undone_on_failure(root: Path) -> Iterator[None]:
    """Bring and export as one step: if anything inside fails, ``root`` is left exactly as it was.

    ``export --saved-model/--keras`` first brings the model (``ARTIFACTS/saved_model`` and a
    manifest), then converts it; a conversion that fails must not leave the brought model
    behind (a later, corrected command would then meet "another model" and need --force).
    A directory the step made goes whole; in one that existed, the SavedModel is kept as
    hard links beside it (no copy of its bytes) and put back with the manifest's old text.
    """
    root = Path(root)
    if not root.exists():
        try:
            yield
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return
    manifest = Manifest.path_in(root)
    old_manifest = manifest.read_bytes() if manifest.is_file() else None
    saved = root / SAVEDMODEL_DIRNAME
    backup = None
    if saved.is_dir():
        import tempfile

        backup = Path(tempfile.mkdtemp(prefix=f".{SAVEDMODEL_DIRNAME}.", suffix=".undo", dir=root)) / SAVEDMODEL_DIRNAME
        try:
            shutil.copytree(saved, backup, copy_function=os.link)
        except OSError:  # a file system without hard links: a copy
            shutil.rmtree(backup, ignore_errors=True)
            shutil.copytree(saved, backup)
    try:
        yield
    except BaseException:
        from edgefm.core.fileio import atomic_write_bytes

        if backup is not None:
            shutil.rmtree(saved, ignore_errors=True)
            os.replace(backup, saved)
        elif saved.exists():
            shutil.rmtree(saved, ignore_errors=True)
        if old_manifest is not None:
            atomic_write_bytes(manifest, old_manifest)
        else:
            manifest.unlink(missing_ok=True)
        raise
    finally:
        if backup is not None:
            shutil.rmtree(backup.parent, ignore_errors=True)


def _existing(root: Path) -> Manifest | None:
    if not Manifest.path_in(root).is_file():
        return None
    try:
        return Manifest.load(root)
    except ManifestError:
        return None  # an unreadable manifest describes nothing worth keeping


def preprocessing_notes(manifest: Manifest, given: dict[str, Any]) -> list[str]:
    """What ``bring`` assumed about each image input's pixels, and how to change it (printed by ``export``)."""
    saved = manifest.artifacts.get(SAVEDMODEL_KEY)
    layer = saved.extra.get("scales_own_pixels") if saved is not None else None
    notes = []
    for name, record in manifest.preprocessing.items():
        prep = Preprocessing(**record) if isinstance(record, dict) else record
        if "scale" in given or not prep.dtype.startswith("float"):
            continue  # the user said, or integer pixels go in as they are
        if layer:
            notes.append(f"image input {name!r}: the model scales its own pixels (its layer {layer!r} takes the input), "
                         "so image files go in as 0-255 values (scale=1). If it expects [0, 1], pass "
                         "--preprocess scale=1/255.")
        else:
            notes.append(f"image input {name!r}: assumed pixels scaled by {prep.scale:.6g} ({prep.describe()}). If the "
                         "model takes 0-255 values, pass --preprocess scale=1 (and mean=/std= if it normalizes).")
    return notes


def _own_pixel_scaling(model: Any) -> str | None:
    """The name of a ``Rescaling``/``Normalization`` layer fed straight by a model input, else None.

    keras.applications' EfficientNet, MobileNetV3 and ConvNeXt (``include_preprocessing``)
    start so: they take 0-255 pixels, and scaling them by 1/255 first gives wrong classes.
    """
    import keras

    inputs = list(getattr(model, "inputs", None) or [])
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            continue
        try:
            fed = layer.input
        except (AttributeError, ValueError):  # a layer used twice has no single input
            continue
        if any(fed is t for t in inputs):
            return str(layer.name)
    return None


def _stage_savedmodel(source: Path, staging: Path, cfg: BringConfig) -> str | None:
    """Write the SavedModel to convert into ``staging``; returns ``_own_pixel_scaling`` of a Keras model."""
    if not cfg.keras and cfg.signature == SERVING_SIGNATURE:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        return None
    with quiet_native_output():
        tf = import_tensorflow()
        try:
            if cfg.keras:
                import keras

                model = keras.saving.load_model(str(source), compile=False)
                model.export(str(staging), format="tf_saved_model", verbose=False)
                return _own_pixel_scaling(model)
            loaded = tf.saved_model.load(str(source))
            tf.saved_model.save(loaded, str(staging), signatures={SERVING_SIGNATURE: loaded.signatures[cfg.signature]})
            return None
        except Exception as e:  # Keras and TF raise many types for a model they cannot load or save
            from edgefm.core.usermodules import missing_class_advice

            what = "Keras could not load or export" if cfg.keras else "TensorFlow could not re-save"
            if (advice := missing_class_advice(str(e))) is not None:
                raise ModelFileError(f"{what} {source}: {advice}.") from e
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise ModelFileError(f"{what} {source} ({type(e).__name__}: {first[:300]}).") from e


def _signature_specs(savedmodel: Path, source: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    sig = read_signatures(savedmodel).get(SERVING_SIGNATURE)
    if sig is None:
        raise ModelFileError(f"{source} has no {SERVING_SIGNATURE!r} signature after export; edgefm converts that one.")
    specs: dict[str, list[TensorSpec]] = {}
    bad = []
    for side in ("inputs", "outputs"):
        specs[side] = []
        for name, info in sig[side].items():
            dtype, shape = str(info["dtype"]), info["shape"]
            if dtype not in SUPPORTED_DTYPES:
                bad.append(f"{side[:-1]} {name!r} is {dtype}")
            if shape is None:
                bad.append(f"{side[:-1]} {name!r} has an unknown rank")
                shape = []
            specs[side].append(TensorSpec(name, dtype, list(shape)))
    if bad:
        raise ModelFileError(
            f"The model {source} cannot be exported by edgefm: {'; '.join(bad)}. Supported dtypes: "
            f"{', '.join(SUPPORTED_DTYPES)}, with a known rank. Change the serving signature (e.g. cast the tensor) "
            "and save the model again."
        )
    if not specs["inputs"] or not specs["outputs"]:
        raise ModelFileError(f"The model {source}'s {SERVING_SIGNATURE!r} signature has no inputs or no outputs.")
    return specs["inputs"], specs["outputs"]


def _preprocessing(inputs: list[TensorSpec], given: dict[str, Any]) -> dict[str, Preprocessing]:
    """Image inputs and how an image file becomes each: their shape's, with ``--preprocess`` for the one image input."""
    from edgefm.data.sources import preprocessing_for

    found = {s.name: p for s in inputs if (p := Preprocessing.for_input(s)) is not None}
    if given:
        images = [s for s in inputs if s.name in found] or [s for s in inputs if len(s.shape) in (3, 4)]
        if len(images) != 1:
            raise ConfigError(f"--preprocess applies to a model with one image input; this one has "
                              f"{', '.join(s.name for s in inputs)}.")
        prep = preprocessing_for(images[0], given)
        if prep is not None:
            found = {images[0].name: prep}
    return found


def _read_labels(path: Path) -> list[str]:
    try:
        names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--labels {path}: cannot read it ({e}); pass a UTF-8 text file, one class name per line.") from e
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"--labels {path} holds no class names (one per line).")
    if len(set(names)) != len(names):
        raise ConfigError(f"--labels {path} names a class twice; class names must be distinct.")
    return names


def _classes(outputs: list[TensorSpec], labels: list[str], path: Path | None) -> dict[str, list[str]]:
    """The output ``--labels`` names: the first 2-D float output whose class count matches."""
    if not labels:
        return {}
    fits = [s for s in outputs if len(s.shape) == 2 and s.dtype.startswith("float") and s.shape[1] in (len(labels), None)]
    if not fits:
        shapes = ", ".join(f"{s.name} {s.dtype} {s.shape}" for s in outputs)
        raise ConfigError(f"--labels {path} names {len(labels)} classes, but no output of the model has {len(labels)} "
                          f"scores per row (outputs: {shapes}).")
    return {fits[0].name: labels}
