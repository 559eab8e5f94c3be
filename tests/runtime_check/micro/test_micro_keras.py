"""A brought model in TFLite Micro and Vela: keras.applications MobileNetV2 (weights=None), int8.

Built as tests/test_any_model.py builds it (32x32, alpha 0.35, BatchNormalization
statistics re-estimated on the inputs so its outputs differ between inputs), brought
and exported to int8 by the real pipeline. Untrained, its classes are near-ties,
so the TFLM row is held against LiteRT on the same file (the int8 kernels, which
is what TFLM changes), not against TensorFlow's top-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime_check.micro.arena import find_arena
from runtime_check.micro.check import micro_row
from runtime_check.micro.npu_fit import npu_fit
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.verify.compare import compare_outputs
from runtime_check.verify.tolerances import default_tolerance

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROWS = 48


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    import keras

    from export.bring import BringConfig, bring
    from export.config import ExportConfig
    from export.pipeline import run_export

    work = tmp_path_factory.mktemp("micro_keras")
    keras.utils.set_random_seed(0)
    pixels = np.random.default_rng(0).random((ROWS, 32, 32, 3), dtype=np.float32)
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                         classifier_activation=None)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(pixels, training=True)
    net.save(work / "mobilenet_v2.keras")
    feeds = {net.layers[0].name: pixels}
    np.savez(work / "in.npz", **feeds)
    art = work / "artifacts"
    bring(BringConfig(source=work / "mobilenet_v2.keras", artifacts=art, keras=True))
    run_export(ExportConfig(artifacts=art, data=str(work / "in.npz"), calibration_samples=32, format="tflite",
                            quantize="int8"))
    return art, feeds


def test_a_brought_mobilenet_gets_a_tflm_row_an_arena_and_an_npu_fit(mobilenet) -> None:
    art, feeds = mobilenet
    path = art / "model_int8.tflite"
    with TensorFlowRuntime(art / "saved_model") as tf_rt:
        reference = tf_rt.infer(feeds)
    assert float(np.ptp(next(iter(reference.values())), axis=0).max()) > 1e-3  # not degenerate
    tol = default_tolerance("tflite", "int8")
    row = micro_row("tflite_int8", path, feeds, lambda got: compare_outputs(got, reference, None, tol))
    assert row.error is None and row.metrics, row.describe()
    arena = find_arena(path)
    assert row.arena == arena or row.arena.bytes == arena.bytes
    assert arena.bytes > 32 * 32 * 3  # at least the int8 input
    # TFLM and LiteRT's reference kernels agree on every value of every int8 tensor (measured: bit-exact);
    # XNNPACK is the path that differs on this untrained network (measured: most logits, up to ~100 steps)
    audit = row.audit
    assert audit is not None and audit["intermediates"]["tensors"] > 20
    assert audit["intermediates"]["first_over_one_step"] is None
    same = audit["outputs"]["TFLM vs LiteRT reference kernels"]["exact_match_rate"]
    assert same >= 0.95, same
    with LiteRTRuntime(path) as lite:
        assert set(lite.infer(feeds)) == set(reference)
    fit = npu_fit(path, "ethos-u55-128")
    assert fit.by_type.get("Conv2D", {}).get("NPU", 0) + fit.by_type.get("DepthwiseConv2D", {}).get("NPU", 0) > 10
    assert fit.sram_kib > 0 and fit.inference_seconds > 0
