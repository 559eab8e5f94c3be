"""The manifest: one typed record of an artifacts directory, shared by every stage.

``train`` creates it, ``export`` adds artifacts, ``verify`` reads it. It is written
as ``manifest.json`` beside the artifacts, atomically.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import (
    DEPLOYABLE_FORMATS,
    IMAGE_SHAPE,
    INPUT_NAME,
    MANIFEST_NAME,
    SAVEDMODEL_FORMAT,
    SAVEDMODEL_KEY,
)
from edgefm.core.errors import ManifestError
from edgefm.core.fileio import atomic_write_json, confined, sha256_tree, tree_bytes

SCHEMA_VERSION = 1


@dataclass
class TensorSpec:
    """A model input or output. ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: str
    shape: list[int | None]
    scale: float | None = None
    zero_point: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(d["name"]),
            dtype=str(d["dtype"]),
            shape=[None if s is None else int(s) for s in d["shape"]],
            scale=d.get("scale"),
            zero_point=d.get("zero_point"),
        )

    @classmethod
    def from_litert(cls, name: str, details: dict[str, Any]) -> TensorSpec:
        """A tensor as a LiteRT interpreter describes it (signature runner details), as stored.

        Integer tensors with a scale are quantized: they get ``scale`` and ``zero_point``.
        """
        dtype = np.dtype(details["dtype"])
        scale, zero_point = details.get("quantization", (0.0, 0))
        quantized = bool(scale) and dtype.kind in "iu"
        return cls(
            name=name,
            dtype=dtype.name,
            shape=[None if int(s) < 0 else int(s) for s in details["shape_signature"]],
            scale=float(scale) if quantized else None,
            zero_point=int(zero_point) if quantized else None,
        )

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float32 values to this tensor's integer dtype: round half to even, shift, clip (LiteRT's rule)."""
        info = np.iinfo(self.dtype)
        return np.clip(np.round(x / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        """This tensor's integers back to float32 values."""
        return (y.astype(np.float32) - self.zero_point) * np.float32(self.scale)


#: dtypes a model's inputs and outputs may have (what every runtime and the native runners handle)
SUPPORTED_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
#: the largest image side a preprocessing record may ask for
MAX_IMAGE_SIDE = 8192
#: image tensor layouts: channels last, channels first, or no channel axis (grayscale)
LAYOUTS = ("NHWC", "NCHW", "NHW")


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes one image input's tensor: the record ``predict`` and ``--data DIR`` follow.

    Decoded to ``channels`` (1 gray, 3 RGB) at ``size`` (height, width), optionally
    inverted (``255 - pixel``), then ``(pixel * scale - mean) / std`` per channel
    and cast to ``dtype`` in ``layout``. An integer ``dtype`` skips the arithmetic:
    the uint8 pixels go in as they are.
    """

    size: tuple[int, int]
    channels: int = 3
    layout: str = "NHWC"
    scale: float = 1 / 255
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    invert: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "size", tuple(int(v) for v in self.size))
        set_(self, "mean", tuple(float(v) for v in self.mean))
        set_(self, "std", tuple(float(v) for v in self.std))
        problems = []
        if len(self.size) != 2 or min(self.size) < 1:
            problems.append(f"size {list(self.size)} (two positive numbers, height and width)")
        elif max(self.size) > MAX_IMAGE_SIDE:
            problems.append(f"size {list(self.size)} (at most {MAX_IMAGE_SIDE:,} per side: one float32 RGB image of "
                            f"{MAX_IMAGE_SIDE:,}x{MAX_IMAGE_SIDE:,} is already 805 MB)")
        if not math.isfinite(self.scale) or self.scale == 0:
            problems.append(f"scale {self.scale} (a finite number other than 0, e.g. 1/255)")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            problems.append("mean or std not finite")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} (1 or 3)")
        if self.layout not in LAYOUTS or (self.layout == "NHW" and self.channels != 1):
            problems.append(f"layout {self.layout!r} ({', '.join(LAYOUTS)}; NHW only with channels=1)")
        for what, values in (("mean", self.mean), ("std", self.std)):
            if values and len(values) not in (1, self.channels):
                problems.append(f"{what} has {len(values)} values (1 or {self.channels})")
        if any(v == 0 for v in self.std):
            problems.append("std 0")
        if self.dtype not in SUPPORTED_DTYPES:
            problems.append(f"dtype {self.dtype!r}")
        if problems:
            raise ManifestError(f"Image preprocessing: {'; '.join(problems)}.")

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels ``[H, W, channels]`` (``edgefm.data.images.read_pixels``) -> this input's tensor, no batch axis."""
        x = 255 - pixels if self.invert else pixels
        if np.dtype(self.dtype).kind in "iub":
            out = x
        else:
            out = x.astype(np.float32) * np.float32(self.scale)
            if self.mean:
                out = out - np.asarray(self.mean, np.float32)
            if self.std:
                out = out / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            out = np.moveaxis(out, -1, 0)
        elif self.layout == "NHW":
            out = out[..., 0]
        return np.ascontiguousarray(out, dtype=self.dtype)

    def describe(self) -> str:
        parts = [f"{self.size[0]}x{self.size[1]}", "gray" if self.channels == 1 else "RGB", self.layout, self.dtype]
        if np.dtype(self.dtype).kind == "f":
            parts.append(f"scale {self.scale:.6g}")
            if self.mean:
                parts.append(f"mean {list(self.mean)}")
            if self.std:
                parts.append(f"std {list(self.std)}")
        if self.invert:
            parts.append("inverted")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "channels": self.channels, "layout": self.layout, "scale": self.scale,
                "mean": list(self.mean), "std": list(self.std), "invert": self.invert, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(size=tuple(d["size"]), channels=int(d.get("channels", 3)), layout=str(d.get("layout", "NHWC")),
                   scale=float(d.get("scale", 1 / 255)), mean=tuple(d.get("mean", ())), std=tuple(d.get("std", ())),
                   invert=bool(d.get("invert", False)), dtype=str(d.get("dtype", "float32")))

    @classmethod
    def for_input(cls, spec: TensorSpec, **given: Any) -> Preprocessing | None:
        """The preprocessing an image input's shape implies (``[N,H,W,C]``, ``[N,C,H,W]`` with C 1 or 3, or
        ``[N,H,W]``), with the ``given`` fields (from ``--preprocess``) winning; ``None`` if it is no image."""
        dims = spec.shape[1:]
        if len(dims) == 3 and dims[-1] in (1, 3):
            layout, channels, hw = "NHWC", dims[-1], dims[:2]
        elif len(dims) == 3 and dims[0] in (1, 3):
            layout, channels, hw = "NCHW", dims[0], dims[1:]
        elif len(dims) == 2:
            layout, channels, hw = "NHW", 1, dims
        else:
            return None
        fields: dict[str, Any] = {"layout": layout, "channels": channels, "dtype": spec.dtype}
        if None not in hw:
            fields["size"] = tuple(hw)
        if np.dtype(spec.dtype).kind not in "f" and spec.dtype != "float16":
            fields["scale"] = 1.0
        fields.update(given)
        if "size" not in fields:
            return None  # a dynamic spatial size needs --preprocess size=H,W
        if None not in hw and tuple(int(v) for v in fields["size"]) != tuple(hw):
            raise ManifestError(f"Image preprocessing: size {list(fields['size'])} does not fit input {spec.name!r}, "
                                f"whose height and width are fixed at {list(hw)}.")
        return cls(**fields)


@dataclass
class Artifact:
    """One file or directory the pipeline produced."""

    path: str  # relative to the artifacts directory
    format: str  # savedmodel | tflite | onnx
    quantization: str  # none | float16 | dynamic | int8
    sha256: str
    bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    created: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        return cls(
            path=str(d["path"]),
            format=str(d["format"]),
            quantization=str(d.get("quantization", "none")),
            sha256=str(d["sha256"]),
            bytes=int(d["bytes"]),
            inputs=[TensorSpec.from_dict(t) for t in d.get("inputs", [])],
            outputs=[TensorSpec.from_dict(t) for t in d.get("outputs", [])],
            created=str(d.get("created", "")),
            tools=dict(d.get("tools", {})),
            extra=dict(d.get("extra", {})),
        )

    @classmethod
    def describe(cls, root: Path, path: Path, **kw: Any) -> Artifact:
        """Hash and size ``path`` (file or directory) and record it relative to ``root``."""
        return cls(
            path=Path(path).relative_to(root).as_posix(),
            sha256=sha256_tree(path),
            bytes=tree_bytes(path),
            **kw,
        )


@dataclass
class Manifest:
    model: str
    labels: list[str]
    training: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: image input name -> ``Preprocessing.to_dict()``: how an image file becomes that input
    preprocessing: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: classification output name -> its class names (``labels`` are those of the first one)
    classes: dict[str, list[str]] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # -- persistence -------------------------------------------------------
    @staticmethod
    def path_in(root: Path) -> Path:
        return Path(root) / MANIFEST_NAME

    @classmethod
    def load(cls, root: Path) -> Manifest:
        root = Path(root)
        path = cls.path_in(root)
        if not root.is_dir():
            raise ManifestError(
                f"Artifacts directory {root} does not exist. Run `edgefm train --artifacts {root}` "
                "first, or pass --artifacts with the directory that holds manifest.json."
            )
        if not path.is_file():
            raise ManifestError(
                f"No manifest.json in {root}. It is written by `edgefm train`; run "
                f"`edgefm train --artifacts {root}` first (or an interrupted run left no finished manifest)."
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # too deeply nested
            raise ManifestError(
                f"{path} is not valid JSON ({e}). Delete it and re-run `edgefm train` (and export) "
                "to rebuild the artifacts directory."
            ) from e
        if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
            found = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
            raise ManifestError(
                f"{path} has schema version {found!r}; this edgefm reads version {SCHEMA_VERSION}. "
                "Re-create the artifacts with this edgefm (`edgefm train`, then `edgefm export`)."
            )
        try:
            manifest = cls(
                model=str(raw["model"]),
                labels=[str(x) for x in raw["labels"]],
                training=dict(raw.get("training", {})),
                artifacts={k: Artifact.from_dict(v) for k, v in raw.get("artifacts", {}).items()},
                versions=dict(raw.get("versions", {})),
                preprocessing={str(k): dict(v) for k, v in raw.get("preprocessing", {}).items()},
                classes={str(k): [str(x) for x in v] for k, v in raw.get("classes", {}).items()},
            )
            for d in manifest.preprocessing.values():
                Preprocessing.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ManifestError(
                f"{path} is missing or has a malformed field ({e!r}). Re-create the artifacts "
                "with `edgefm train` and `edgefm export`."
            ) from e
        for name, art in manifest.artifacts.items():  # nothing outside the directory is read, hashed or run
            check_artifact_name(name, f"{path}: artifact")
            confined(root, art.path, f"{path}: artifact {name!r} has the path")
        bad_labels = [label for label in manifest.labels if not label.strip() or "\n" in label or "\r" in label]
        if bad_labels:
            raise ManifestError(
                f"{path} has class names that are empty or hold a line break ({bad_labels[:3]!r}); labels.txt "
                "holds one name per line. Fix the names and re-export."
            )
        return manifest

    def save(self, root: Path) -> Path:
        path = self.path_in(root)
        atomic_write_json(path, self.to_dict())
        return path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # schema_version first, for humans reading the file.
        return {"schema_version": d.pop("schema_version"), **d}

    # -- queries -----------------------------------------------------------
    def artifact(self, name: str) -> Artifact:
        try:
            return self.artifacts[name]
        except KeyError:
            known = ", ".join(sorted(self.artifacts)) or "none"
            raise ManifestError(f"No artifact named {name!r} in the manifest (known: {known}).") from None

    def preprocessing_for(self, name: str) -> Preprocessing | None:
        """The recorded preprocessing of image input ``name``, or ``None``."""
        d = self.preprocessing.get(name)
        return None if d is None else Preprocessing.from_dict(d)

    def image_preprocessing(self) -> dict[str, Preprocessing]:
        """Every recorded image input's preprocessing, by input name."""
        return {name: Preprocessing.from_dict(d) for name, d in self.preprocessing.items()}

    def takes_fashion_images(self) -> bool:
        """The model takes what ``edgefm train``'s networks take: one float32 ``images`` [N, 28, 28] input
        (a manifest that records no inputs counts as one). Export calibrates and verify checks such a
        model on Fashion-MNIST unless ``--data`` says otherwise."""
        inputs = self.savedmodel()[1].inputs
        return not inputs or [(s.name, s.dtype, list(s.shape)) for s in inputs] == [
            (INPUT_NAME, "float32", [None, *IMAGE_SHAPE])]

    def class_names(self) -> dict[str, list[str]]:
        """Classification output -> class names: ``classes``, or ``labels`` for the first output (older manifests)."""
        if self.classes:
            return dict(self.classes)
        if not self.labels:
            return {}
        try:
            specs = self.savedmodel()[1].outputs
        except ManifestError:  # a manifest without its SavedModel still names its classes
            specs = []
        first = next((s.name for s in specs if s.name == "logits"), specs[0].name if specs else "logits")
        return {first: list(self.labels)}

    def deployable(self) -> dict[str, Artifact]:
        return {k: a for k, a in self.artifacts.items() if a.format in DEPLOYABLE_FORMATS}

    def savedmodel(self, root: Path | None = None) -> tuple[str, Artifact]:
        """The SavedModel every stage starts from: ``(name, artifact)``; the one lookup of it.

        The entry named ``savedmodel`` first, else the first artifact of format
        ``savedmodel``; none is a ManifestError that says to run ``edgefm train``.
        """
        named = self.artifacts.get(SAVEDMODEL_KEY)
        if named is not None and named.format == SAVEDMODEL_FORMAT:
            return SAVEDMODEL_KEY, named
        for name, art in self.artifacts.items():
            if art.format == SAVEDMODEL_FORMAT:
                return name, art
        where = f" in {root}" if root is not None else ""
        flag = f" --artifacts {root}" if root is not None else ""
        raise ManifestError(
            f"The manifest{where} records no SavedModel (no {SAVEDMODEL_KEY!r} artifact). "
            f"Run `edgefm train{flag}` first."
        )


def check_artifact_name(name: str, where: str) -> str:
    """``name`` if it can name a file or directory of its own: no separator, no ``.``/``..``, no control character.

    Artifact names become paths (``<board dir>/<name>``, ``<bundle>/<name>``, report and page names)
    and are printed: a manifest name ``./../victim`` made ``verify --device ssh://`` remove a directory
    beside the board's, and an escape sequence in one reached the terminal. One check, at the load.
    """
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or ".." in name
           or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name))
    if bad:
        raise ManifestError(
            f"{where} name {name!r} cannot be used: artifact names become file names, so they may not be "
            "empty or hold '/', '\\', '..' or control characters. Rename the artifact in manifest.json (or re-export)."
        )
    return name


def tool_versions(*packages: str) -> dict[str, str]:
    """Versions of Python and of the named distributions that are installed."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def utc_now() -> str:
    """The time stamps of manifests, artifacts and reports: UTC, ISO 8601, to the second."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def edgefm_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("edgefm")
    except metadata.PackageNotFoundError:
        return "0+unknown"
