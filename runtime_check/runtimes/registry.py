"""Which runtime runs a model: picked by the file's suffix (a SavedModel is a directory)."""

from __future__ import annotations

from pathlib import Path

from edgefm.core.errors import ModelFileError, UsageError
from runtime_check.runtimes.base import Runtime
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.onnx_runtime import OnnxRuntime
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

#: file suffix -> the runtime for it; a directory is a SavedModel (TensorFlow)
BY_SUFFIX: dict[str, type[Runtime]] = {".tflite": LiteRTRuntime, ".onnx": OnnxRuntime}


def runtime_for(path: Path, *, threads: int | None = None) -> Runtime:
    """The runtime that runs ``path``: SavedModel directory, ``.tflite`` or ``.onnx``."""
    path = Path(path)
    if path.is_dir():
        return TensorFlowRuntime(path, threads=threads)
    suffix = path.suffix.lower()
    if suffix in BY_SUFFIX:
        return BY_SUFFIX[suffix](path, threads=threads)
    if not path.exists():
        raise ModelFileError(f"Model {path} does not exist. Pass a SavedModel directory, a .tflite or a .onnx file.")
    raise UsageError(
        f"{path}: unsupported model type {suffix or '(no extension)'!r}. edgefm runs SavedModel "
        "directories, .tflite files (LiteRT) and .onnx files (ONNX Runtime)."
    )
