"""The table of format facts: file suffix -> format -> the runner kinds that run it.

A runner kind is one way of running one format (the LiteRT binding, the native
LiteRT C runner, ...); ``RUNNER_KINDS`` names each by the module and class that
implement it, so this table imports none of them: a kind's module (``runtime_check.native``
included, a room above this one) is imported only when a runner of that kind is made.
Adding a runner kind is one module with its ``Runtime`` class and one line here
(docs/adding-a-runner.md). Verify plans one row per artifact and runner kind of
its format (``role``: the binding is the artifact's own row, a ``native`` kind gives
a ``NAME@<label>`` row under ``--native`` and runs on the ``--device`` boards).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgefm.core.contract import ONNX_FORMAT, SAVEDMODEL_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import ModelFileError, UsageError
from edgefm.formats import onnx_file, tflite_file
from runtime_check.runtimes.base import Runtime

#: file suffix -> artifact format (a SavedModel is a directory)
FORMAT_OF_SUFFIX: dict[str, str] = {tflite_file.SUFFIX: TFLITE_FORMAT, onnx_file.SUFFIX: ONNX_FORMAT}
#: artifact format -> its file suffix
SUFFIX_OF_FORMAT: dict[str, str] = {fmt: suffix for suffix, fmt in FORMAT_OF_SUFFIX.items()}

BINDING, NATIVE, REFERENCE = "binding", "native", "reference"
#: the row label of the native runner kinds on this machine: ``NAME@native``
NATIVE_LABEL = "native"


@dataclass(frozen=True)
class RunnerKind:
    """One way of running one format."""

    #: the runtime's name in reports (``Runtime.name``)
    name: str
    format: str
    #: ``binding`` (a Python binding in this process), ``native`` (a C runner in a child process, which a
    #: ``--device`` place can start on a board) or ``reference`` (TensorFlow)
    role: str
    #: ``module:Class`` of its ``Runtime``
    implementation: str
    #: the name of its verify row beside the binding's: ``NAME@<label>`` ("" for the binding)
    label: str = ""
    #: the Python module its runtime imports on activation (verify imports it early, while files are probed)
    preload: str = ""

    def runtime_class(self) -> type[Runtime]:
        module, _, cls = self.implementation.partition(":")
        return getattr(importlib.import_module(module), cls)


#: every runner kind; per format and role, the first one is the default
RUNNER_KINDS: tuple[RunnerKind, ...] = (
    RunnerKind("litert", TFLITE_FORMAT, BINDING, "runtime_check.runtimes.litert_runtime:LiteRTRuntime",
               preload="ai_edge_litert.interpreter"),
    RunnerKind("onnxruntime", ONNX_FORMAT, BINDING, "runtime_check.runtimes.onnx_runtime:OnnxRuntime",
               preload="onnxruntime"),
    RunnerKind("tensorflow", SAVEDMODEL_FORMAT, REFERENCE, "runtime_check.runtimes.tensorflow_runtime:TensorFlowRuntime"),
    RunnerKind("native-litert", TFLITE_FORMAT, NATIVE, "runtime_check.native.runtime:NativeLiteRTRuntime",
               label=NATIVE_LABEL),
    RunnerKind("native-onnxruntime", ONNX_FORMAT, NATIVE, "runtime_check.native.runtime:NativeOnnxRuntime",
               label=NATIVE_LABEL),
)


def runner_kinds(fmt: str, role: str) -> list[RunnerKind]:
    """The runner kinds of ``role`` for format ``fmt``, in the table's order."""
    return [k for k in RUNNER_KINDS if k.format == fmt and k.role == role]


def format_of(path: Path, *, what: str = "edgefm runs SavedModel directories, .tflite files (LiteRT) and .onnx "
                                          "files (ONNX Runtime)",
              missing: str = "Pass a SavedModel directory, a .tflite or a .onnx file.") -> str:
    """The format of the model at ``path`` by its suffix (a directory is a SavedModel); usage error otherwise."""
    path = Path(path)
    if path.is_dir():
        return SAVEDMODEL_FORMAT
    suffix = path.suffix.lower()
    if suffix in FORMAT_OF_SUFFIX:
        return FORMAT_OF_SUFFIX[suffix]
    if not path.exists():
        raise ModelFileError(f"Model {path} does not exist. {missing}")
    raise UsageError(f"{path}: unsupported model type {suffix or '(no extension)'!r}. {what}.")


def runtime_for(path: Path, *, threads: int | None = None) -> Runtime:
    """The runtime that runs ``path``: SavedModel directory (TensorFlow), ``.tflite`` or ``.onnx`` (their binding)."""
    fmt = format_of(path)
    kind = runner_kinds(fmt, REFERENCE if fmt == SAVEDMODEL_FORMAT else BINDING)[0]
    return kind.runtime_class()(Path(path), threads=threads)
