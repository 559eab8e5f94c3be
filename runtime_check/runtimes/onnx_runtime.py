"""An .onnx file in ONNX Runtime's CPU execution provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgefm.core.contract import ONNX_FORMAT
from edgefm.core.errors import ModelFileError, RuntimeUnavailableError
from edgefm.core.manifest import TensorSpec
from runtime_check.runtimes.base import Runtime


class OnnxRuntime(Runtime):
    """An .onnx file in ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"
    format = ONNX_FORMAT

    def _activate_impl(self) -> None:
        from runtime_check.runtimes.probe import validate_model_file

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

