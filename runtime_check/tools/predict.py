"""Classify image files with any artifact: SavedModel directory, .tflite or .onnx.

The runtime follows from the file (``runtime_for``); images are prepared by
``edgefm.data.images`` and sent to the model in one batch. Class names come from the
manifest that lists the model, else from the model's embedded metadata, else
``edgefm.train.config.CLASS_NAMES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import CLASS_NAMES, DEFAULT_ARTIFACTS, IMAGE_SHAPE
from edgefm.core.errors import ConfigError, ImageError, ManifestError, ModelFileError, UsageError
from edgefm.core.manifest import Manifest, Preprocessing

#: the artifact ``predict`` uses when no --model is given
DEFAULT_ARTIFACT = "tflite_float32"


@dataclass(frozen=True)
class PredictConfig:
    """What ``edgefm predict`` does. ``invert=None``: decide per image from its background."""

    images: tuple[Path, ...]
    model: Path | None = None
    artifacts: Path = DEFAULT_ARTIFACTS
    top_k: int = 1
    invert: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "images", tuple(Path(p) for p in self.images))
        if not self.images:
            raise UsageError("Give at least one IMAGE file to classify, e.g. `edgefm predict shoe.png` (or run a "
                             "model on arrays: `edgefm predict --model m.onnx --input NAME=FILE.npy`).")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k <= 0:
            raise ConfigError(f"--top-k must be a positive integer, got {self.top_k!r}.")
        set_(self, "artifacts", Path(self.artifacts))
        if self.model is not None:
            set_(self, "model", Path(self.model))


@dataclass(frozen=True)
class ClassScore:
    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, and how the image was prepared."""

    image: Path
    top: list[ClassScore]
    inverted: bool
    original_size: tuple[int, int]

    @property
    def best(self) -> ClassScore:
        return self.top[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": str(self.image),
            "class": self.best.name,
            "index": self.best.index,
            "probability": self.best.probability,
            "top_k": [{"class": c.name, "index": c.index, "probability": c.probability} for c in self.top],
            "inverted": self.inverted,
            "original_size": list(self.original_size),
        }


@dataclass(frozen=True)
class PredictResult:
    model: Path
    runtime: str
    labels_source: str  # manifest | metadata | default
    predictions: list[Prediction] = field(default_factory=list)


def resolve_model(model: Path | None, artifacts: Path) -> tuple[Path, Manifest | None]:
    """The model file to run and the manifest that lists it (``None`` if none does)."""
    if model is None:
        manifest = Manifest.load(artifacts)
        if DEFAULT_ARTIFACT not in manifest.artifacts:
            known = ", ".join(sorted(manifest.artifacts)) or "none"
            raise ManifestError(
                f"The manifest in {artifacts} has no {DEFAULT_ARTIFACT} artifact (it lists: {known}). "
                f"Run `edgefm export --artifacts {artifacts} --format tflite` first, or pass --model "
                "with a SavedModel directory, a .tflite or a .onnx file."
            )
        return Path(artifacts) / manifest.artifacts[DEFAULT_ARTIFACT].path, manifest
    return Path(model), _manifest_listing(Path(model))


def _manifest_listing(model: Path) -> Manifest | None:
    """The manifest beside ``model`` if it lists that very path; else ``None``."""
    root = model.resolve().parent
    try:
        manifest = Manifest.load(root)
    except ManifestError:
        return None
    target = model.resolve()
    listed = any((root / a.path).resolve() == target for a in manifest.artifacts.values())
    return manifest if listed else None


def read_embedded_metadata(path: Path) -> dict[str, Any]:
    """``edgefm.formats.metadata.read_metadata(path)``, or ``{}`` when that reader is unavailable or fails."""
    try:
        from edgefm.formats.metadata import read_metadata
    except ImportError:
        return {}
    try:
        meta = read_metadata(Path(path))
    except Exception:  # noqa: BLE001 - metadata is a nicety: a model without readable metadata still predicts
        return {}
    return meta if isinstance(meta, dict) else {}


def embedded_class_names(meta: Mapping[str, Any]) -> list[str] | None:
    for key in ("class_names", "labels"):
        names = meta.get(key)
        if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
            return list(names)
    return None


def class_names(model: Path, manifest: Manifest | None, num_classes: int) -> tuple[list[str], str]:
    """Class names for ``num_classes`` outputs and where they came from."""
    if manifest is not None and len(manifest.labels) == num_classes:
        return list(manifest.labels), "manifest"
    names = embedded_class_names(read_embedded_metadata(model))
    if names is not None and len(names) == num_classes:
        return names, "metadata"
    if len(CLASS_NAMES) == num_classes:
        return list(CLASS_NAMES), "default"
    return [f"class {i}" for i in range(num_classes)], "none"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(outputs: Mapping[str, np.ndarray], model: Path) -> np.ndarray:
    """[N, C] class probabilities: the ``probabilities`` output, else softmax of ``logits``/the only output."""
    if "probabilities" in outputs:
        probs = np.asarray(outputs["probabilities"], dtype=np.float32)
    elif "logits" in outputs or len(outputs) == 1:
        probs = softmax(np.asarray(outputs.get("logits", next(iter(outputs.values()))), dtype=np.float64))
    else:
        raise ModelFileError(
            f"{model} has outputs {sorted(outputs)}; edgefm predict needs one named `probabilities` "
            "or `logits` (the outputs `edgefm export` writes)."
        )
    if probs.ndim != 2:
        raise ModelFileError(f"{model}: the class output has shape {list(probs.shape)}, expected [N, classes].")
    return probs.astype(np.float32)


def model_feeds(pixels: np.ndarray, runtime: Any) -> dict[str, np.ndarray]:
    """The model's one input, reshaped from [N, 28, 28] to what it declares (e.g. [N, 784])."""
    specs = runtime.input_specs
    if len(specs) != 1:
        raise ModelFileError(
            f"{runtime.path} takes {len(specs)} inputs ({', '.join(s.name for s in specs)}); "
            "edgefm predict feeds one image tensor."
        )
    spec = specs[0]
    if spec.dtype != "float32":
        raise ModelFileError(f"{runtime.path} takes {spec.dtype} input {spec.name!r}; edgefm feeds float32 images in [0, 1].")
    dims = list(spec.shape[1:])
    if dims == [None, None]:  # dynamic height and width
        dims = list(IMAGE_SHAPE)
    if None in dims or math.prod(dims) != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        raise ModelFileError(
            f"{runtime.path} takes input {spec.name!r} of shape "
            f"{['N' if d is None else d for d in spec.shape]}, which does not hold one 28x28 image per row."
        )
    return {spec.name: pixels.reshape([pixels.shape[0], *dims])}


def run_model(runtime: Any, pixels: np.ndarray) -> np.ndarray:
    """Probabilities for a batch of [N, 28, 28] images: one infer call (or fixed-size chunks)."""
    feeds = model_feeds(pixels, runtime)
    n = pixels.shape[0]
    fixed = runtime.input_specs[0].shape[0]
    if fixed is None or fixed == n:
        outputs = runtime.infer(feeds)
    else:  # a model with a fixed batch: pad to a multiple of it
        pad = (-n) % fixed
        padded = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in feeds.items()}
        outputs = {k: v[:n] for k, v in runtime.infer_batched(padded, fixed).items()}
    return probabilities(outputs, runtime.path)


def top_k(probs: np.ndarray, names: Sequence[str], k: int) -> list[list[ClassScore]]:
    """The ``k`` most likely classes per row, most likely first (ties: lower index first)."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[ClassScore(int(i), names[int(i)], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def require_content(prepared: Sequence[Any]) -> None:
    """Refuse images that are all background once prepared (a 1x1 or one-colour image).

    The model would still return a class for them, confidently and meaninglessly.
    """
    blank = [p for p in prepared if not np.any(p.pixels)]
    if blank:
        names = ", ".join(f"{p.path} ({p.original_size[0]}x{p.original_size[1]})" for p in blank)
        raise ImageError(
            f"Nothing to classify in {names}: once made 28x28 every pixel is background (a one-colour or "
            "1x1 image, or an item darker than a dark background). Pass a picture of one clothing item on "
            "a plain background, or force the colours with --invert / --no-invert."
        )


def image_preprocessing(model: Path, manifest: Manifest | None) -> Preprocessing | None:
    """How an image becomes ``model``'s input: the manifest's record, else the one embedded in the file.

    ``None`` for edgefm's own 28x28 networks (their path below inverts light backgrounds
    and centres the item, as Fashion-MNIST was made) and for files that record none.
    """
    record: dict[str, Any] | None = None
    if manifest is not None and len(manifest.preprocessing) == 1:
        record = next(iter(manifest.preprocessing.values()))
    else:
        embedded = read_embedded_metadata(model).get("preprocessing")
        if isinstance(embedded, dict) and len(embedded) == 1:
            record = next(iter(embedded.values()))
    if not isinstance(record, dict):
        return None
    try:
        prep = Preprocessing.from_dict(record)
    except (ManifestError, KeyError, TypeError, ValueError):
        return None
    fashion = prep.layout == "NHW" and prep.size == IMAGE_SHAPE and prep.channels == 1
    return None if fashion else prep


def _class_output(outputs: Mapping[str, np.ndarray], model: Path, manifest: Manifest | None) -> dict[str, np.ndarray]:
    """The classification output alone, when the manifest or the file names it (others may be boxes, ids...)."""
    declared = list(manifest.class_names()) if manifest is not None else []
    if not declared:
        classes = read_embedded_metadata(model).get("classes")
        declared = list(classes) if isinstance(classes, dict) else []
    for name in declared:
        if name in outputs:
            return {name: outputs[name]}
    return dict(outputs)


def _predict_images(config: PredictConfig, prep: Preprocessing, model_path: Path, manifest: Manifest | None,
                    runtime: Any) -> PredictResult:
    """Any image classifier: each image decoded, resized and scaled as its preprocessing record says."""
    from edgefm.data.images import read_pixels

    read = [read_pixels(p, prep.size, prep.channels) for p in config.images]  # bad images fail before the model loads
    batch = np.stack([prep.tensor(pixels) for pixels, _ in read])
    with runtime:
        specs = runtime.input_specs
        if len(specs) != 1:
            raise ModelFileError(f"{model_path} takes {len(specs)} inputs; images feed a model with one image input "
                                 "(run it on arrays with --input NAME=FILE.npy).")
        outputs = runtime.infer({specs[0].name: batch})
    probs = probabilities(_class_output(outputs, model_path, manifest), model_path)
    names, source = class_names(model_path, manifest, probs.shape[1])
    tops = top_k(probs, names, config.top_k)
    return PredictResult(model=model_path, runtime=runtime.name, labels_source=source, predictions=[
        Prediction(image=p, top=t, inverted=prep.invert, original_size=size)
        for p, t, (_, size) in zip(config.images, tops, read)])


def run_arrays(model: Path, inputs: Mapping[str, Path]) -> dict[str, np.ndarray]:
    """Any model on named ``.npy`` inputs (``predict --input NAME=FILE.npy``): its outputs, checked inputs first."""
    from edgefm.data.arrays import load_npy
    from edgefm.data.sources import check_arrays
    from runtime_check.runtimes.registry import runtime_for

    arrays = {name: load_npy(path, f"--input {name}={path}") for name, path in inputs.items()}
    runtime = runtime_for(Path(model))
    with runtime:
        specs = runtime.input_specs
        missing = [s.name for s in specs if s.name not in arrays]
        extra = sorted(set(arrays) - {s.name for s in specs})
        if missing or extra:
            raise UsageError(f"{model} takes the inputs {', '.join(f'{s.name} {s.dtype} {s.shape}' for s in specs)}; "
                             + (f"missing: {', '.join(missing)}. " if missing else "")
                             + (f"not inputs of the model: {', '.join(extra)}. " if extra else "")
                             + "Pass one --input NAME=FILE.npy per input.")
        check_arrays(arrays, specs, str(model))
        return {k: np.asarray(v) for k, v in runtime.infer(arrays).items()}


def predict(config: PredictConfig) -> PredictResult:
    """Classify ``config.images`` with the configured model; images are read before the model loads."""
    from edgefm.data.images import load_images, require_image_files
    from runtime_check.runtimes.registry import runtime_for

    require_image_files(config.images)  # a missing image is named before any model is looked at
    model_path, manifest = resolve_model(config.model, config.artifacts)
    prep = image_preprocessing(model_path, manifest)
    if prep is None and config.model is not None:
        # no record: a model whose one input is an RGB/gray image of a fixed size gets the preprocessing its shape implies
        runtime = runtime_for(model_path)
        with runtime:
            specs = runtime.input_specs
        implied = Preprocessing.for_input(specs[0]) if len(specs) == 1 else None
        fits_fashion = len(specs) == 1 and None not in specs[0].shape[1:] and math.prod(
            d for d in specs[0].shape[1:] if d is not None) == IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        if implied is not None and not fits_fashion:
            prep = implied
    if prep is not None:
        return _predict_images(config, prep, model_path, manifest, runtime_for(model_path))
    prepared = load_images(config.images, config.invert)
    require_content(prepared)
    runtime = runtime_for(model_path)
    with runtime:
        pixels = np.stack([p.pixels for p in prepared]).astype(np.float32)
        probs = run_model(runtime, pixels)
    if probs.shape[0] != len(prepared):
        raise ModelFileError(f"{model_path} returned {probs.shape[0]} rows for {len(prepared)} images.")
    names, source = class_names(model_path, manifest, probs.shape[1])
    tops = top_k(probs, names, config.top_k)
    return PredictResult(
        model=model_path,
        runtime=runtime.name,
        labels_source=source,
        predictions=[
            Prediction(image=p.path, top=t, inverted=p.inverted, original_size=p.original_size)
            for p, t in zip(prepared, tops)
        ],
    )
