"""A .tflite file in TensorFlow Lite Micro on the host (the ``tflite-micro`` wheel).

TFLM is what microcontrollers run: its reference kernels round differently from
LiteRT's (tflite-micro#3252), so a check in LiteRT proves nothing about TFLM.
The interpreter is created at the smallest arena the file needs
(``runtime_check.micro.arena``, found in a child process first: TFLM segfaults
where it should raise), so every row it produces also proves that arena works.

TFLM runs one sample at a time (its tensors have the batch dimension of the
file, 1): ``infer`` loops over the rows. Int8 I/O is quantized and dequantized
exactly as ``LiteRTRuntime`` does (``TensorSpec.quantize``/``dequantize``).
Inputs and outputs are named from the file's signature (``tflite_io_names``):
TFLM's Python API addresses them by position only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgefm.core.contract import SERVING_SIGNATURE, TFLITE_FORMAT
from edgefm.core.errors import ModelFileError
from edgefm.core.manifest import TensorSpec
from runtime_check.micro.arena import Arena, find_arena, require_tflm
from runtime_check.runtimes.base import Runtime, import_runtime

#: finding the arena is the probe: results kept per (path, size, mtime) for the life of the process
_arenas: dict[tuple[str, int, int], Arena] = {}


def tflm_spec(name: str, details: dict[str, Any]) -> TensorSpec:
    """A tensor as TFLM describes it (``get_input_details``), as stored; leading 1 = one row of many.

    TFLM's quantization parameters are empty for float tensors (measured), and per-tensor for I/O.
    """
    dtype = np.dtype(details["dtype"])
    q = details.get("quantization_parameters") or {}
    scales, zero_points = list(q.get("scales", [])), list(q.get("zero_points", []))
    quantized = bool(scales) and bool(scales[0]) and dtype.kind in "iu"
    shape: list[int | None] = [int(d) for d in details["shape"]]
    if shape and shape[0] == 1:
        shape[0] = None
    return TensorSpec(name, dtype.name, shape, float(scales[0]) if quantized else None,
                      int(zero_points[0]) if quantized else None)


def arena_for(path: Any) -> Arena:
    """``find_arena`` once per file state in this process."""
    from pathlib import Path

    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _arenas:
        _arenas[key] = find_arena(Path(path))
    return _arenas[key]


class TFLMRuntime(Runtime):
    """A .tflite file in ``tflite_micro.runtime.Interpreter``, one row at a time, at its exact arena."""

    name = "tflm"
    format = TFLITE_FORMAT
    signature_key = SERVING_SIGNATURE

    def _activate_impl(self) -> None:
        from edgefm.core.quiet import quiet_native_output
        from edgefm.formats.tflite_file import tflite_io_names
        from runtime_check.runtimes.probe import check_structure

        require_tflm()
        check_structure(self.path)
        #: the smallest arena this file loads with (its search is the crash-safe probe)
        self.arena = arena_for(self.path)
        tflm = import_runtime("tflite_micro.python.tflite_micro.runtime", "tflite-micro")
        in_names, out_names = tflite_io_names(self.path, self.signature_key)
        try:
            with quiet_native_output():
                self._interp = tflm.Interpreter.from_bytes(self.path.read_bytes(), arena_size=self.arena.bytes)
                self._raw_in = [tflm_spec(n, self._interp.get_input_details(i)) for i, n in enumerate(in_names)]
                self._raw_out = [tflm_spec(n, self._interp.get_output_details(i)) for i, n in enumerate(out_names)]
        except (RuntimeError, ValueError) as e:
            raise ModelFileError(f"TFLite Micro could not load {self.path}: {e}") from e

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def logical(specs: list[TensorSpec]) -> list[TensorSpec]:
            return [TensorSpec(s.name, "float32" if s.quantized else s.dtype, s.shape) for s in specs]

        return logical(self._raw_in), logical(self._raw_out)

    def raw_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Specs as stored in the file (dtype int8 and scale/zero-point for int8 I/O)."""
        self._require_active()
        return list(self._raw_in), list(self._raw_out)

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        rows = next(iter(feeds.values())).shape[0] if feeds else 1
        fixed = [spec.shape[0] is not None for spec in self._raw_in]
        stored = [spec.quantize(feeds[spec.name]) if spec.quantized else feeds[spec.name] for spec in self._raw_in]
        parts: list[list[np.ndarray]] = [[] for _ in self._raw_out]
        for r in range(1 if any(fixed) else rows):
            for i, x in enumerate(stored):
                self._interp.set_input(x if fixed[i] else x[r : r + 1], i)
            self._interp.invoke()
            for j in range(len(self._raw_out)):
                parts[j].append(np.array(self._interp.get_output(j)))
        out = {}
        for spec, chunks in zip(self._raw_out, parts):
            y = np.concatenate(chunks) if spec.shape and spec.shape[0] is None else chunks[0]
            out[spec.name] = spec.dequantize(y) if spec.quantized else y
        return out

    def versions(self) -> dict[str, str]:
        return {"tflite-micro": require_tflm()}
