"""An .onnx file in ONNX Runtime's CPU execution provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgefm.core.contract import ONNX_FORMAT
from edgefm.core.errors import ModelFileError
from edgefm.core.manifest import TensorSpec
from edgefm.formats.onnx_file import ORT_TYPES
from runtime_check.runtimes.base import Runtime, import_runtime


class OnnxRuntime(Runtime):
    """An .onnx file in ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"
    probe_before_load = True
    format = ONNX_FORMAT

    def _activate_impl(self) -> None:
        ort = import_runtime("onnxruntime", "onnxruntime")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self._session_options(opts, ort)
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(f"ONNX Runtime could not load {self.path}: {e}") from e

    def _session_options(self, opts: Any, ort: Any) -> None:
        """Change the session's options (a subclass turns graph optimisation off: runtime_check.device.ledger)."""

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(a: Any) -> TensorSpec:
            dtype = ORT_TYPES.get(a.type, a.type)
            return TensorSpec(a.name, dtype, [d if isinstance(d, int) else None for d in a.shape])

        return [spec(a) for a in self._session.get_inputs()], [spec(a) for a in self._session.get_outputs()]

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]  # the file's own names (Runtime.expecting)
        return dict(zip(names, self._session.run(names, feeds)))

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}

