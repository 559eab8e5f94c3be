"""The reference: a SavedModel's serving signature run by TensorFlow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgefm.core.contract import SAVEDMODEL_FORMAT, SERVING_SIGNATURE
from edgefm.core.errors import ModelFileError
from edgefm.core.manifest import TensorSpec
from edgefm.formats.savedmodel import require_savedmodel_dir
from runtime_check.runtimes.base import Runtime, _shape


class TensorFlowRuntime(Runtime):
    """The SavedModel's ``serving_default`` signature, run by TensorFlow."""

    name = "tensorflow"
    format = SAVEDMODEL_FORMAT
    made_by = "edgefm train"
    signature_key = SERVING_SIGNATURE

    def _activate_impl(self) -> None:
        from edgefm.core.quiet import import_tensorflow, quiet_native_output

        require_savedmodel_dir(self.path)
        with quiet_native_output() as captured:
            tf = import_tensorflow()
            if self.threads:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                except RuntimeError:
                    pass  # already initialised in this process
            try:
                self._loaded = tf.saved_model.load(str(self.path))
            except Exception as e:  # noqa: BLE001 - TF raises many types for a corrupt SavedModel; reported below
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

