"""A .tflite file in LiteRT's Python interpreter (``ai_edge_litert``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgefm.core.contract import SERVING_SIGNATURE, TFLITE_FORMAT
from edgefm.core.errors import ModelFileError
from edgefm.core.manifest import TensorSpec
from runtime_check.runtimes.base import Runtime, import_runtime


class LiteRTRuntime(Runtime):
    """A .tflite file in ``ai_edge_litert.interpreter.Interpreter`` (the maintained TFLite)."""

    name = "litert"
    probe_before_load = True
    format = TFLITE_FORMAT
    signature_key = SERVING_SIGNATURE

    def _activate_impl(self) -> None:
        from edgefm.core.quiet import quiet_native_output

        litert = import_runtime("ai_edge_litert.interpreter", "ai-edge-litert")
        try:
            with quiet_native_output():  # LiteRT prints "INFO: Created ... XNNPACK delegate"
                self._interp = litert.Interpreter(model_path=str(self.path), num_threads=self.threads,
                                                  **self._interpreter_options(litert))
                try:
                    self._interp.allocate_tensors()
                except RuntimeError:  # a dynamic spatial size fails at its stored 1s: allocated in infer (probe.py)
                    if not any(-1 in list(d["shape_signature"])[1:] for d in self._interp.get_input_details()):
                        raise
            self._in, self._out = self._io_details()
            self._raw_in = {k: TensorSpec.from_litert(k, d) for k, d in self._in.items()}
            self._raw_out = {k: TensorSpec.from_litert(k, d) for k, d in self._out.items()}
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"LiteRT could not load {self.path}: {e or type(e).__name__}") from e
        self._batch: tuple[tuple[int, ...], ...] | None = None

    def _io_details(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Inputs and outputs by name: the serving signature's (else the first one's), or the tensors'.

        A file without SignatureDefs (``TFLiteConverter.from_concrete_functions([cf])``
        without a trackable object, and many published files) is addressed by its
        tensors: named as stored (``serving_default_x:0``, ``Identity``, ``Identity_1``),
        in subgraph order. ``Runtime.expecting`` matches those names to a reference's.
        """
        sigs = self._interp.get_signature_list()
        if sigs:
            key = self.signature_key if self.signature_key in sigs else next(iter(sigs))
            runner = self._interp.get_signature_runner(key)
            return runner.get_input_details(), runner.get_output_details()

        def by_name(details: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            named: dict[str, dict[str, Any]] = {}
            for d in details:  # a name the file repeats (or leaves empty) gets its tensor index
                named[d["name"] if d["name"] and d["name"] not in named else f"{d['name'] or 'tensor'}#{d['index']}"] = d
            return named

        return by_name(self._interp.get_input_details()), by_name(self._interp.get_output_details())

    def _interpreter_options(self, litert: Any) -> dict[str, Any]:
        """More keyword arguments of ``Interpreter`` (a subclass picks other kernels: runtime_check.device.ledger)."""
        return {}

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        # Quantized (int8/uint8/int16 with a scale) I/O is hidden behind float32: callers feed and
        # get floats. Every other tensor keeps its own dtype: a uint8 image input without a scale
        # takes uint8 pixels (making it float32 would make _check_feeds demand floats that
        # set_tensor then refuses), an int64 argmax output stays int64.
        def logical(specs: dict[str, TensorSpec]) -> list[TensorSpec]:
            return [TensorSpec(s.name, "float32" if s.quantized else s.dtype, s.shape) for s in specs.values()]

        return logical(self._raw_in), logical(self._raw_out)

    def raw_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Specs as stored in the file (dtype int8 and scale/zero-point for int8 I/O)."""
        self._require_active()
        return list(self._raw_in.values()), list(self._raw_out.values())

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        shapes = tuple(tuple(feeds[name].shape) for name in self._in)
        if shapes != self._batch:  # resize only when a shape changes: allocation is not free
            for name, d in self._in.items():
                self._interp.resize_tensor_input(d["index"], list(feeds[name].shape), strict=False)
            self._interp.allocate_tensors()
            self._batch = shapes
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
