"""Helpers shared by the export tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.manifest import Manifest
from export.config import ExportConfig

CALIBRATION_SAMPLES = 64


@dataclass(frozen=True)
class Exported:
    root: Path
    manifest: Manifest
    before: Manifest  # the manifest as it was before exporting


def copy_artifacts(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def export_config(root: Path, data_dir: Path, **kw: object) -> ExportConfig:
    return ExportConfig(
        artifacts=root, data_dir=data_dir, verify_data=False, calibration_samples=CALIBRATION_SAMPLES, **kw  # type: ignore[arg-type]
    )


def write_manifest_with_model(root: Path, model: object) -> Manifest:
    """An artifacts directory holding ``model`` (a tf.Module) saved by the project's own writer."""
    from edgefm.core.manifest import tool_versions
    from edgefm.train.model import write_savedmodel

    manifest = Manifest(model="mlp", labels=list(CLASS_NAMES), versions=tool_versions("tensorflow-cpu"))
    manifest.artifacts["savedmodel"] = write_savedmodel(model, root)  # type: ignore[arg-type]
    manifest.save(root)
    return manifest


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), to prove a failed export changed nothing."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def bucketize_model() -> object:
    """The reference MLP plus a Bucketize op: LiteRT has a kernel for it, ONNX has none (tf2onnx leaves it as is)."""
    import tensorflow as tf

    from edgefm.train.model import MLP

    class BucketizedMLP(MLP):
        def __call__(self, images: tf.Tensor) -> tf.Tensor:
            logits = super().__call__(images)
            return logits + tf.cast(tf.raw_ops.Bucketize(input=logits, boundaries=[0.0, 1.0]), tf.float32)

    return BucketizedMLP(hidden_units=8, seed=0)
