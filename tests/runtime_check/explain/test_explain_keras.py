"""--explain on a model that is not edgefm's: a small Keras CNN (conv, batch norm, conv, pooling, dense).

Brought and exported by the real pipeline (float32 .tflite and .onnx; tf2onnx computes the
convolutions channels-first, so its tensors are compared transposed, their layout traced through
its Transpose nodes), then planted faults:
the second convolution's kernel of the .tflite, the batch norm's folded scale of the .onnx.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from explain_helpers import scale_onnx_initializer, scale_tflite_tensor

from edgefm.core.manifest import Manifest
from edgefm.data.inputs import load_inputs
from runtime_check.explain.explain import explain_artifact, format_explanation
from runtime_check.explain.graphs import TensorFlowTap, name_key
from runtime_check.verify.config import CheckConfig

from conftest import redescribe

SCOPE = "functional_1/"  # Keras 3 names the traced model's ops under it


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import keras

    from export.bring import BringConfig, bring
    from export.config import ExportConfig
    from export.pipeline import run_export

    work = tmp_path_factory.mktemp("keras_cnn")
    # Keras numbers its models per process (functional, functional_1, ...) and SCOPE names the first: a worker
    # that built other Keras models before this one (pytest-xdist, in-process CLI tests) must start afresh
    keras.backend.clear_session()
    img = keras.Input((16, 16, 3), name="pic")
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv_a")(img)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, name="conv_b")(x)  # [N, 6, 6, 6]: its layout cannot be told by shape
    x = keras.layers.ReLU(name="act_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    keras.Model(img, keras.layers.Dense(5, name="logits")(x)).export(str(work / "sm"), format="tf_saved_model",
                                                                       verbose=False)
    np.savez(work / "in.npz", pic=np.random.default_rng(0).random((64, 16, 16, 3), dtype=np.float32))
    art = work / "artifacts"
    bring(BringConfig(source=work / "sm", artifacts=art))
    run_export(ExportConfig(artifacts=art, data=str(work / "in.npz"), calibration_samples=32, quantize="none"))
    return art, work / "in.npz"


@pytest.fixture(scope="module")
def tf_tap(cnn: tuple[Path, Path]) -> TensorFlowTap:
    return TensorFlowTap(cnn[0] / "saved_model")


def _explain(root: Path, name: str, data: Path, tf_tap: TensorFlowTap):
    manifest = Manifest.load(root)
    inputs = load_inputs(CheckConfig(artifacts=root, data=str(data)), manifest)
    return explain_artifact(tf_tap, root, name, manifest.deployable()[name], inputs)


def test_correct_cnn_exports_flag_no_layer(cnn: tuple[Path, Path], tf_tap: TensorFlowTap) -> None:
    root, data = cnn
    for name in ("tflite_float32", "onnx_float32"):
        ex = _explain(root, name, data, tf_tap)
        assert ex.error is None and ex.first_divergent is None, format_explanation(ex)
        keys = {name_key(t.tf) for t in ex.tensors}
        assert {SCOPE + "conv_a_1/Relu:0", SCOPE + "act_b_1/Relu:0", SCOPE + "gap_1/Mean:0"} <= keys, keys
    ex = _explain(root, "onnx_float32", data, tf_tap)
    # tf2onnx's Transpose nodes tell the layout, so even the square [N, 6, 6, 6] tensors are matched
    relu_b = next(t for t in ex.tensors if name_key(t.tf) == SCOPE + "act_b_1/Relu:0")
    assert relu_b.method == "name, channels-first"
    assert not [why for why in ex.unmatched.values() if "layout" in why or "shape" in why], ex.unmatched


def test_planted_tflite_conv_kernel_fault_is_named_first(cnn: tuple[Path, Path], tf_tap: TensorFlowTap,
                                                         tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(cnn[0], root)
    scale_tflite_tensor(root / "model_float32.tflite", SCOPE + "conv_b_1/convolution")
    redescribe(root, "tflite_float32")
    ex = _explain(root, "tflite_float32", cnn[1], tf_tap)
    bad = ex.first_divergent
    # LiteRT fuses conv_b and its ReLU: the fused tensor stands for the ReLU's output
    assert bad is not None and name_key(bad.tf) == SCOPE + "act_b_1/Relu:0", format_explanation(ex)
    before = ex.tensors[: ex.tensors.index(bad)]
    assert {SCOPE + "conv_a_1/Relu:0", SCOPE + "bn_1/batchnorm/mul_1:0"} <= {name_key(t.tf) for t in before}
    assert all(t.passed for t in before)


def test_planted_onnx_batchnorm_fault_is_named_first(cnn: tuple[Path, Path], tf_tap: TensorFlowTap,
                                                     tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(cnn[0], root)
    # tf2onnx folds the batch norm's gamma * rsqrt(var + eps) into one initializer named after the TF op
    scale_onnx_initializer(root / "model.onnx", SCOPE + "bn_1/batchnorm/mul:0")
    redescribe(root, "onnx_float32")
    ex = _explain(root, "onnx_float32", cnn[1], tf_tap)
    bad = ex.first_divergent
    assert bad is not None and name_key(bad.tf) == SCOPE + "bn_1/batchnorm/mul_1:0", format_explanation(ex)
    before = ex.tensors[: ex.tensors.index(bad)]
    assert SCOPE + "conv_a_1/Relu:0" in {name_key(t.tf) for t in before} and all(t.passed for t in before)
    assert ex.steepest is bad
