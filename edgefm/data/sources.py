"""Inputs for any model: ``--data`` as ``.npz``, ``.npy``, a directory of images, or ``synthetic``.

``open_data(text, inputs, ...)`` returns an ``InputSource``: named batches in the
model's own dtypes, checked against the model's input specs *before* anything
runs (a missing input, a wrong dtype or shape, or a label count that does not
match is a ``DataError`` naming the array and what the model takes).

Memory stays bounded by the batch, not the data set: a ``.npy`` file is
memory-mapped, images are decoded batch by batch, synthetic inputs are drawn
batch by batch from a seeded generator. (``.npz`` members are read one array
at a time when first used: NumPy cannot memory-map inside a zip.)

Every source describes exactly what was fed (``info``: kind, path, count and the
sha256 of every batch in order), so a report and the reference cache name the inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import ConfigError, DataError, ManifestError
from edgefm.core.manifest import SUPPORTED_DTYPES, Preprocessing, TensorSpec
from edgefm.core.options import bounded_count
from edgefm.data.arrays import load_npy, load_npz, npz_names

SYNTHETIC = "synthetic"
#: rows drawn for ``--data synthetic`` when ``--samples`` is not given
SYNTHETIC_DEFAULT_COUNT = 256
#: value range per dtype kind for synthetic inputs, unless ``--value-range NAME=LO,HI``
DEFAULT_RANGES = {"f": (0.0, 1.0), "b": (0, 1)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: the name of an ``.npz`` array that holds labels (unless the model has an input of that name)
LABELS_KEY = "labels"


@dataclass
class InputSource:
    """Named input batches for a model, and their labels if any. Subclasses say where rows come from."""

    specs: list[TensorSpec]
    count: int
    labels: np.ndarray | None = None
    kind: str = ""
    path: str = ""
    notes: list[str] = field(default_factory=list)
    _digest: str | None = None

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Every row in order, ``batch_size`` at a time."""
        for start in range(0, self.count, batch_size):
            yield self.rows(start, min(self.count, start + batch_size))

    def head(self, n: int) -> dict[str, np.ndarray]:
        return self.rows(0, min(n, self.count))

    def sha256(self, batch_size: int = 1000) -> str:
        """sha256 over every input's bytes, batch by batch in input order (one pass, cached)."""
        if self._digest is None:
            digest = hashlib.sha256()
            for batch in self.batches(batch_size):
                for spec in self.specs:
                    digest.update(np.ascontiguousarray(batch[spec.name]).tobytes())
            self._digest = digest.hexdigest()
        return self._digest

    @property
    def info(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.kind,
            "path": self.path,
            "count": int(self.count),
            "inputs": {s.name: {"dtype": s.dtype, "shape": [int(self.count), *s.shape[1:]]} for s in self.specs},
            "sha256": self.sha256(),
        }
        if self.labels is not None:
            d["labels_sha256"] = hashlib.sha256(np.ascontiguousarray(self.labels).tobytes()).hexdigest()
        if self.notes:
            d["notes"] = list(self.notes)
        return d


@dataclass
class ArraySource(InputSource):
    """Rows of arrays (``.npz``, ``.npy`` memory-mapped, or arrays given in Python)."""

    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {s.name: np.ascontiguousarray(self.arrays[s.name][start:stop]) for s in self.specs}


@dataclass
class SyntheticSource(InputSource):
    """Seeded random rows per input dtype: the same seed gives the same rows, batch by batch."""

    seed: int = 0
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    dims: Mapping[str, list[int]] = field(default_factory=dict)  # each input's shape without the batch axis

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        out = {}
        for i, spec in enumerate(self.specs):
            # one generator per (input, row): any slice of rows is the same numbers whatever the batch size
            parts = [_random_row(spec, self.dims[spec.name], self.ranges.get(spec.name),
                                 np.random.default_rng([self.seed, i, r])) for r in range(start, stop)]
            out[spec.name] = np.stack(parts) if parts else np.zeros([0, *self.dims[spec.name]], spec.dtype)
        return out


@dataclass
class ImageDirSource(InputSource):
    """Image files of a directory (sorted), decoded and preprocessed batch by batch into one input."""

    files: Sequence[Path] = ()
    input_name: str = ""
    prep: Preprocessing | None = None

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        from edgefm.data.images import read_pixels

        assert self.prep is not None
        tensors = [self.prep.tensor(read_pixels(f, self.prep.size, self.prep.channels)[0]) for f in self.files[start:stop]]
        return {self.input_name: np.stack(tensors)}


def _random_row(spec: TensorSpec, dims: list[int], rng_range: tuple[float, float] | None,
                rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=dims).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = rng_range or (max(info.min, 0), min(info.max, 255) if dtype.itemsize == 1 else min(info.max, 100))
        return rng.integers(int(lo), int(hi), size=dims, endpoint=True).astype(dtype)
    lo, hi = rng_range or DEFAULT_RANGES["f"]
    return (lo + (hi - lo) * rng.random(dims, dtype=np.float32)).astype(dtype)


# -- opening and checking ---------------------------------------------------------------------


def open_data(
    text: str | Path,
    inputs: Sequence[TensorSpec],
    *,
    samples: int | None = None,
    seed: int = 0,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    preprocessing: Mapping[str, Preprocessing] | None = None,
    labels_file: Path | None = None,
    class_names: Sequence[str] = (),
    option: str = "--data",
) -> InputSource:
    """The input source ``text`` names, checked against the model's ``inputs``; ``DataError`` if it does not fit.

    ``samples`` keeps the first rows only (synthetic: draws that many). ``labels_file``
    (``--labels-data``, one integer per row) gives labels; so do an ``.npz`` array
    named ``labels`` and, for a directory of images, sub-directories named like
    ``class_names``.
    """
    inputs = list(inputs)
    unsupported = [f"{s.name} ({s.dtype})" for s in inputs if s.dtype not in SUPPORTED_DTYPES]
    if unsupported:
        raise DataError(f"The model has inputs of a dtype edgefm does not feed: {', '.join(unsupported)}; "
                        f"supported: {', '.join(SUPPORTED_DTYPES)}.")
    ranges = dict(value_ranges or {})
    unknown = sorted(set(ranges) - {s.name for s in inputs})
    if unknown:
        raise ConfigError(f"--value-range names {', '.join(map(repr, unknown))}, not an input of the model "
                          f"(inputs: {', '.join(s.name for s in inputs)}).")
    for spec in inputs:
        if spec.name in ranges:
            _check_range(spec, ranges[spec.name])
    text = str(text)
    if text == SYNTHETIC:
        source: InputSource = _synthetic(inputs, samples, seed, ranges)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise DataError(f"{option} {path}: no such file or directory. Pass an .npz, an .npy, a directory of "
                            f"images or '{SYNTHETIC}'.")
        if path.is_dir():
            source = _image_dir(path, inputs, preprocessing or {}, class_names, option)
        elif path.suffix.lower() == ".npz":
            source = _npz(path, inputs, option, samples)
        elif path.suffix.lower() == ".npy":
            source = _npy(path, inputs, option)
        else:
            raise DataError(f"{option} {path}: not an .npz, .npy or a directory of images. Save the inputs with "
                            "numpy.savez(FILE, NAME=array, ...) (one array per model input, named like it).")
        if samples is not None:
            if samples > source.count:
                raise ConfigError(f"--samples {samples}: {path} holds only {source.count} rows.")
            source.count = samples
            if source.labels is not None:
                source.labels = source.labels[:samples]
    if labels_file is not None:
        source.labels = _labels(Path(labels_file), source.count)
    if source.count == 0:
        raise DataError(f"{option} {text} holds no rows; there is nothing to run.")
    return source


def _check_range(spec: TensorSpec, value_range: tuple[float, float]) -> None:
    """A ``--value-range`` the input's dtype can hold (an int8 input cannot take 300), else a ConfigError."""
    dtype = np.dtype(spec.dtype)
    info = np.iinfo(dtype) if dtype.kind in "iu" else (np.finfo(dtype) if dtype.kind == "f" else None)
    lo, hi = value_range
    if info is not None and not float(info.min) <= lo <= hi <= float(info.max):
        raise ConfigError(f"--value-range {spec.name}={lo:g},{hi:g}: input {spec.name!r} is {spec.dtype}, which holds "
                          f"values from {info.min} to {info.max}; give a range inside it.")


def _synthetic(inputs: list[TensorSpec], samples: int | None, seed: int,
               ranges: Mapping[str, tuple[float, float]]) -> SyntheticSource:
    dims = {}
    for s in inputs:
        rest = s.shape[1:]
        if None in rest:
            raise DataError(f"Input {s.name!r} has the dynamic shape {_shape(s.shape)}: synthetic data needs a size. "
                            "Pass --data with real inputs (an .npz or .npy).")
        dims[s.name] = [int(d) for d in rest]
    count = SYNTHETIC_DEFAULT_COUNT if samples is None else bounded_count(samples, "--samples", " with --data synthetic")
    note = f"seeded random inputs (seed {seed}): parity on random data; no labels, so no accuracy"
    return SyntheticSource(specs=inputs, count=count, kind=SYNTHETIC, path=SYNTHETIC, notes=[note], seed=seed,
                           ranges=ranges, dims=dims)


def _npz(path: Path, inputs: list[TensorSpec], option: str, max_rows: int | None) -> ArraySource:
    names = npz_names(path, f"{option} {path}")  # never unpickles: edgefm.data.arrays reads plain arrays only
    missing = [s.name for s in inputs if s.name not in names]
    if missing:
        raise DataError(f"{option} {path} has no array named {', '.join(map(repr, missing))} (it has: "
                        f"{', '.join(names) or 'none'}); save one array per model input, named like it: "
                        f"{', '.join(f'{s.name} {s.dtype} {_shape(s.shape)}' for s in inputs)}.")
    wanted = [s.name for s in inputs]
    with_labels = LABELS_KEY in names and LABELS_KEY not in wanted
    arrays = load_npz(path, wanted + ([LABELS_KEY] if with_labels else []), f"{option} {path}", max_rows)
    labels = arrays.pop(LABELS_KEY) if with_labels else None
    count = check_arrays(arrays, inputs, str(path))
    if labels is not None:
        labels = _check_labels(labels, count, f"{path}: array {LABELS_KEY!r}")
    return ArraySource(specs=inputs, count=count, labels=labels, kind="npz", path=str(path), arrays=arrays)


def _npy(path: Path, inputs: list[TensorSpec], option: str) -> ArraySource:
    if len(inputs) != 1:
        raise DataError(f"{option} {path}: an .npy holds one array, but the model has {len(inputs)} inputs "
                        f"({', '.join(s.name for s in inputs)}); pass an .npz with one array per input.")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{option} {path} is not a readable .npy file ({e}).") from e
    arrays = {inputs[0].name: array}
    count = check_arrays(arrays, inputs, str(path))
    return ArraySource(specs=inputs, count=count, kind="npy", path=str(path), arrays=arrays)


def _image_dir(path: Path, inputs: list[TensorSpec], preprocessing: Mapping[str, Preprocessing],
               class_names: Sequence[str], option: str) -> ImageDirSource:
    images = [s for s in inputs if s.name in preprocessing] or [
        s for s in inputs if Preprocessing.for_input(s) is not None]
    if len(inputs) != 1 or len(images) != 1:
        raise DataError(f"{option} {path}: a directory of images feeds a model with one image input; this model takes "
                        f"{', '.join(f'{s.name} {s.dtype} {_shape(s.shape)}' for s in inputs)}. Pass an .npz instead.")
    spec = images[0]
    prep = preprocessing.get(spec.name) or Preprocessing.for_input(spec)
    if prep is None:
        raise DataError(f"{option} {path}: input {spec.name!r} {_shape(spec.shape)} has no fixed image size; pass "
                        "--preprocess size=H,W (and channels, scale, mean, std as the model was trained).")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{option} {path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    labels, notes = None, [f"images preprocessed as {prep.describe()}"]
    parents = {f.parent.relative_to(path).as_posix() for f in files}
    if class_names and all(p in class_names for p in parents):  # path/CLASS/image.png: labels from the folders
        labels = np.array([list(class_names).index(f.parent.relative_to(path).as_posix()) for f in files], np.int64)
        notes.append("labels from the sub-directory names")
    return ImageDirSource(specs=[spec], count=len(files), labels=labels, kind="images", path=str(path), notes=notes,
                          files=files, input_name=spec.name, prep=prep)


def check_arrays(arrays: Mapping[str, np.ndarray], inputs: Sequence[TensorSpec], where: str) -> int:
    """The common row count of ``arrays`` if each fits its input (dtype, rank, static dims), else a ``DataError``."""
    counts = {}
    for spec in inputs:
        a = arrays[spec.name]
        want = _shape(spec.shape)
        if a.dtype != np.dtype(spec.dtype):
            raise DataError(f"{where}: array {spec.name!r} is {a.dtype}, the model's input is {spec.dtype} {want}. "
                            f"Convert it (array.astype(numpy.{spec.dtype})) and save it again.")
        fixed = spec.shape[1:]
        if a.ndim != len(spec.shape) or any(w is not None and w != g for w, g in zip(fixed, a.shape[1:])):
            raise DataError(f"{where}: array {spec.name!r} has shape {list(a.shape)}, the model's input is "
                            f"{spec.dtype} {want} (N rows first).")
        if spec.shape[0] is not None and a.shape[0] % spec.shape[0]:
            raise DataError(f"{where}: array {spec.name!r} has {a.shape[0]} rows, the model takes batches of "
                            f"exactly {spec.shape[0]}.")
        counts[spec.name] = int(a.shape[0])
    if len(set(counts.values())) > 1:
        raise DataError(f"{where}: the arrays have different row counts ({counts}); every input needs one row per sample.")
    return next(iter(counts.values()), 0)


def _labels(path: Path, count: int) -> np.ndarray:
    labels = load_npy(path, f"--labels-data {path}", max_rows=count)
    return _check_labels(labels, count, f"--labels-data {path}")


def _check_labels(labels: np.ndarray, count: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be one integer class id per row, got {labels.dtype} {list(labels.shape)}.")
    if len(labels) < count:
        raise DataError(f"{where} has {len(labels)} labels for {count} rows of inputs; give one label per row.")
    return labels[:count].astype(np.int64)


def _shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("N" if i == 0 and d is None else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + "]"


# -- option parsing ---------------------------------------------------------------------------


def parse_preprocess(items: Sequence[str]) -> dict[str, Any]:
    """``--preprocess size=224,224 channels=3 scale=1/255 mean=0.485,0.456,0.406 std=... invert layout=NCHW``
    -> the fields given; ``preprocessing_for`` completes them from the image input's shape."""
    given: dict[str, Any] = {}
    for item in " ".join(items).replace(";", " ").split():
        key, eq, value = item.partition("=")
        try:
            if key == "invert" and not eq:
                given["invert"] = True
            elif key in ("size", "mean", "std"):
                nums = [_number(v) for v in value.split(",") if v]
                given[key] = tuple(int(v) for v in nums) if key == "size" else tuple(nums)
            elif key == "channels":
                given[key] = int(value)
            elif key == "scale":
                given[key] = _number(value)
            elif key in ("layout", "dtype"):
                given[key] = value
            elif key == "invert":
                given[key] = value.lower() in ("1", "true", "yes")
            else:
                raise ValueError(f"unknown key {key!r}")
        except ValueError as e:
            raise ConfigError(f"--preprocess {item!r}: {e}. Keys: size=H,W channels=1|3 layout=NHWC|NCHW|NHW "
                              "scale=1/255 mean=M[,M,M] std=S[,S,S] invert dtype=float32.") from e
    return given


def preprocessing_for(spec: TensorSpec, given: Mapping[str, Any]) -> Preprocessing | None:
    """The preprocessing of image input ``spec``: what its shape implies, with the ``--preprocess`` fields winning."""
    try:
        prep = Preprocessing.for_input(spec, **given)
        if prep is None and given:
            prep = Preprocessing(**{"size": (0, 0), **given})  # says what is missing (a size)
        return prep
    except (ManifestError, TypeError) as e:
        raise ConfigError(f"--preprocess for input {spec.name!r}: {e}") from e


def _number(text: str) -> float:
    """``0.5``, ``1/255``."""
    num, slash, den = text.partition("/")
    value = float(num) / float(den) if slash and float(den) else (float(num) if not slash else math.inf)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_value_ranges(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``--value-range NAME=LO,HI`` (repeatable)."""
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            lo, hi = (_number(v) for v in value.split(","))
            if not eq or not name or not lo <= hi:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--value-range {item!r}: expected NAME=LO,HI with LO <= HI (e.g. images=0,1).") from None
        out[name] = (lo, hi)
    return out
