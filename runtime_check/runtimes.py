"""One runtime interface for every way edgefm runs a model.

Shaped like Polygraphy's runners: the public ``activate / infer / deactivate``
live in the base class, which checks input names, dtypes and shapes once for
every backend; subclasses implement only the ``_impl`` hooks. Inputs and outputs
are *logical*: float32 images in, float32 logits/probabilities out, whatever the
file stores inside (int8 I/O is quantized and dequantized here from the tensor's
own scale and zero-point).

Heavy libraries are imported inside ``_activate_impl``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefm.errors import ModelFileError, RuntimeUnavailableError, UsageError
from edgefm.manifest import TensorSpec


class Runtime(abc.ABC):
    """Load a model, describe its I/O, run it on named NumPy inputs."""

    #: short name used in reports and ``--runtime`` options
    name: ClassVar[str] = "runtime"
    #: the artifact format this runtime executes
    format: ClassVar[str] = ""
    #: the command that writes this runtime's files (named in "does not exist" messages)
    made_by: ClassVar[str] = "edgefm export"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.active = False
        self.load_seconds: float | None = None
        self._input_specs: list[TensorSpec] = []
        self._output_specs: list[TensorSpec] = []

    # -- public API ---------------------------------------------------------------
    def activate(self) -> Runtime:
        if self.active:
            return self
        if not self.path.exists():
            raise ModelFileError(f"Model {self.path} does not exist. Check the path, or run `{self.made_by}`.")
        t0 = time.perf_counter()
        self._activate_impl()
        self.load_seconds = time.perf_counter() - t0
        self._input_specs, self._output_specs = self._io_specs_impl()
        self.active = True
        return self

    def deactivate(self) -> None:
        if self.active:
            self._deactivate_impl()
            self.active = False

    def __enter__(self) -> Runtime:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @property
    def input_specs(self) -> list[TensorSpec]:
        self._require_active()
        return self._input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        self._require_active()
        return self._output_specs

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on named inputs; returns named float32 outputs. Inputs checked here, once."""
        self._require_active()
        checked = self._check_feeds(feeds)
        outputs = self._infer_impl(checked)
        return {k: np.asarray(v) for k, v in outputs.items()}

    def infer_batched(self, feeds: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
        """``infer`` over the leading dimension in chunks of ``batch_size``, concatenated."""
        n = next(iter(feeds.values())).shape[0]
        if n == 0:
            raise UsageError(f"{self.path}: no inputs to run (0 rows).")
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, n, batch_size):
            parts.append(self.infer({k: v[start : start + batch_size] for k, v in feeds.items()}))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def versions(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "path": str(self.path), **self.versions()}

    # -- hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    @abc.abstractmethod
    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]: ...

    @abc.abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...

    def _deactivate_impl(self) -> None:
        return None

    # -- checks ------------------------------------------------------------------
    def _require_active(self) -> None:
        if not self.active:
            raise UsageError(f"{type(self).__name__} for {self.path} is not active; call activate() first.")

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {s.name: s for s in self._input_specs}
        if set(feeds) != set(expected):
            raise UsageError(
                f"{self.path}: inputs {sorted(feeds)} given, the model takes {sorted(expected)}."
            )
        out = {}
        for name, spec in expected.items():
            arr = np.asarray(feeds[name])
            if arr.dtype != np.dtype(spec.dtype):
                raise UsageError(f"{self.path}: input {name!r} is {arr.dtype}, the model takes {spec.dtype}.")
            if arr.ndim != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, arr.shape)
            ):
                raise UsageError(
                    f"{self.path}: input {name!r} has shape {list(arr.shape)}, the model takes "
                    f"{['N' if d is None else d for d in spec.shape]}."
                )
            out[name] = np.ascontiguousarray(arr)
        return out


def _shape(sig: Any) -> list[int | None]:
    return [None if (d is None or int(d) < 0) else int(d) for d in sig]


# -- TensorFlow (the reference) -----------------------------------------------------------


class TensorFlowRuntime(Runtime):
    """The SavedModel's ``serving_default`` signature, run by TensorFlow."""

    name = "tensorflow"
    format = "savedmodel"
    made_by = "edgefm train"
    signature_key = "serving_default"

    def _activate_impl(self) -> None:
        from edgefm.quiet import import_tensorflow, quiet_native_output

        if not (self.path / "saved_model.pb").is_file():
            raise ModelFileError(
                f"{self.path} is not a SavedModel directory (no saved_model.pb). Pass the directory "
                "that `edgefm train` wrote (artifacts/saved_model)."
            )
        with quiet_native_output() as captured:
            tf = import_tensorflow()
            if self.threads:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                except RuntimeError:
                    pass  # already initialised in this process
            try:
                self._loaded = tf.saved_model.load(str(self.path))
            except Exception as e:  # TF raises many types for a corrupt SavedModel
                load_error: Exception | None = e
            else:
                load_error = None
        if load_error is not None:
            detail = str(load_error).strip().splitlines()[0] if str(load_error).strip() else captured.tail(300)
            detail = detail.rstrip(". ")
            raise ModelFileError(
                f"TensorFlow could not load the SavedModel {self.path}: {detail}. Re-create it with `edgefm train`."
            ) from load_error
        if self.signature_key not in self._loaded.signatures:
            raise ModelFileError(
                f"SavedModel {self.path} has no {self.signature_key!r} signature (found: "
                f"{', '.join(self._loaded.signatures) or 'none'}). Re-create it with `edgefm train`."
            )
        self._fn = self._loaded.signatures[self.signature_key]

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        _, kwargs = self._fn.structured_input_signature
        ins = [TensorSpec(k, v.dtype.name, _shape(v.shape.as_list())) for k, v in sorted(kwargs.items())]
        outs = [
            TensorSpec(k, v.dtype.name, _shape(v.shape.as_list())) for k, v in self._fn.structured_outputs.items()
        ]
        return ins, outs

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        import tensorflow as tf

        res = self._fn(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in res.items()}

    def versions(self) -> dict[str, str]:
        import tensorflow as tf

        return {"tensorflow": tf.__version__}

    def labels(self) -> list[str] | None:
        """Class names from the SavedModel's ``labels`` signature, if it has one."""
        self._require_active()
        fn = self._loaded.signatures.get("labels")
        return None if fn is None else [b.decode("utf-8") for b in fn()["class_names"].numpy()]

    def signatures(self) -> dict[str, Any]:
        self._require_active()
        out = {}
        for key, fn in self._loaded.signatures.items():
            _, kwargs = fn.structured_input_signature
            out[key] = {
                "inputs": {k: {"dtype": v.dtype.name, "shape": _shape(v.shape.as_list())} for k, v in kwargs.items()},
                "outputs": {
                    k: {"dtype": v.dtype.name, "shape": _shape(v.shape.as_list())} for k, v in fn.structured_outputs.items()
                },
            }
        return out


# -- LiteRT -------------------------------------------------------------------------------


class LiteRTRuntime(Runtime):
    """A .tflite file in ``ai_edge_litert.interpreter.Interpreter`` (the maintained TFLite)."""

    name = "litert"
    format = "tflite"
    signature_key = "serving_default"

    def _activate_impl(self) -> None:
        from runtime_check.validate import validate_model_file

        from edgefm.quiet import quiet_native_output

        validate_model_file(self.path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeUnavailableError("LiteRT is not installed: pip install ai-edge-litert") from e
        try:
            with quiet_native_output():  # LiteRT prints "INFO: Created ... XNNPACK delegate"
                self._interp = Interpreter(model_path=str(self.path), num_threads=self.threads)
                self._interp.allocate_tensors()
            sigs = self._interp.get_signature_list()
            key = self.signature_key if self.signature_key in sigs else next(iter(sigs))
            runner = self._interp.get_signature_runner(key)
            self._in = runner.get_input_details()
            self._out = runner.get_output_details()
            self._raw_in = {k: TensorSpec.from_litert(k, d) for k, d in self._in.items()}
            self._raw_out = {k: TensorSpec.from_litert(k, d) for k, d in self._out.items()}
        except (ValueError, RuntimeError, StopIteration) as e:
            raise ModelFileError(f"LiteRT could not load {self.path}: {e}") from e
        self._batch: int | None = None

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        # int8 I/O is hidden behind float32: callers always feed and get floats.
        def logical(specs: dict[str, TensorSpec]) -> list[TensorSpec]:
            return [TensorSpec(s.name, "float32", s.shape) for s in specs.values()]

        return logical(self._raw_in), logical(self._raw_out)

    def raw_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Specs as stored in the file (dtype int8 and scale/zero-point for int8 I/O)."""
        self._require_active()
        return list(self._raw_in.values()), list(self._raw_out.values())

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        if batch != self._batch:  # resize only when the batch changes: allocation is not free
            for name, d in self._in.items():
                self._interp.resize_tensor_input(d["index"], [batch, *feeds[name].shape[1:]], strict=False)
            self._interp.allocate_tensors()
            self._batch = batch
        for name, d in self._in.items():
            spec = self._raw_in[name]
            self._interp.set_tensor(d["index"], spec.quantize(feeds[name]) if spec.quantized else feeds[name])
        self._interp.invoke()
        out = {}
        for name, d in self._out.items():
            y = self._interp.get_tensor(d["index"])
            spec = self._raw_out[name]
            out[name] = spec.dequantize(y) if spec.quantized else y.copy()
        return out

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        return {"ai-edge-litert": metadata.version("ai-edge-litert")}

    def op_counts(self) -> dict[str, int]:
        """Operator histogram of the model's main subgraph, read from the flatbuffer.

        Read from the file, not from the interpreter: after ``allocate_tensors`` the
        interpreter reports XNNPACK's DELEGATE nodes instead of the model's operators.
        """
        import collections

        from ai_edge_litert import schema_py_generated as schema

        self._require_active()
        model = schema.Model.GetRootAs(self.path.read_bytes(), 0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            codes.append(custom.decode() if custom else names.get(code, f"OP_{code}"))
        graph = model.Subgraphs(0)
        counts = collections.Counter(codes[graph.Operators(j).OpcodeIndex()] for j in range(graph.OperatorsLength()))
        return dict(counts.most_common())


# -- ONNX Runtime ---------------------------------------------------------------------------


class OnnxRuntime(Runtime):
    """An .onnx file in ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"
    format = "onnx"

    def _activate_impl(self) -> None:
        from runtime_check.validate import validate_model_file

        validate_model_file(self.path)
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeUnavailableError("ONNX Runtime is not installed: pip install onnxruntime") from e
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(f"ONNX Runtime could not load {self.path}: {e}") from e

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(a: Any) -> TensorSpec:
            dtype = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}.get(a.type, a.type)
            return TensorSpec(a.name, dtype, [d if isinstance(d, int) else None for d in a.shape])

        return [spec(a) for a in self._session.get_inputs()], [spec(a) for a in self._session.get_outputs()]

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        names = [s.name for s in self._output_specs]
        return dict(zip(names, self._session.run(names, feeds)))

    def op_counts(self) -> dict[str, int]:
        """Operator histogram of the graph (node op_types, most frequent first)."""
        import collections

        import onnx

        self._require_active()
        graph = onnx.load(str(self.path), load_external_data=False).graph
        return dict(collections.Counter(n.op_type for n in graph.node).most_common())

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}


RUNTIMES: dict[str, type[Runtime]] = {
    TensorFlowRuntime.name: TensorFlowRuntime,
    LiteRTRuntime.name: LiteRTRuntime,
    OnnxRuntime.name: OnnxRuntime,
}


def runtime_for(path: Path, *, threads: int | None = None) -> Runtime:
    """The runtime that runs ``path``: SavedModel directory, ``.tflite`` or ``.onnx``."""
    path = Path(path)
    if path.is_dir():
        return TensorFlowRuntime(path, threads=threads)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return LiteRTRuntime(path, threads=threads)
    if suffix == ".onnx":
        return OnnxRuntime(path, threads=threads)
    if not path.exists():
        raise ModelFileError(f"Model {path} does not exist. Pass a SavedModel directory, a .tflite or a .onnx file.")
    raise UsageError(
        f"{path}: unsupported model type {suffix or '(no extension)'!r}. edgefm runs SavedModel "
        "directories, .tflite files (LiteRT) and .onnx files (ONNX Runtime)."
    )
