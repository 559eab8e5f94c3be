"""The export targets, measured on a model trained on the real Fashion-MNIST.

The reference MLP (784-20-10) is trained here with plain SGD (5 epochs, lr 0.1,
batch 64) so this test does not depend on `edgefm train`; then every variant is
exported and judged on the full test split against TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefm.core.manifest import Manifest
from edgefm.data import fashion_mnist as ds
from export.config import ExportConfig

from export_helpers import write_manifest_with_model

pytestmark = pytest.mark.integration

SIZE_RATIO_MAX = {"tflite_int8": 0.35, "tflite_float16": 0.6, "tflite_dynamic": 0.35}
FLOAT_MAX_ABS_ERR = 1e-4
MIN_TOP1_AGREEMENT = {"tflite_float16": 0.999, "tflite_dynamic": 0.97, "tflite_int8": 0.97, "onnx_int8": 0.97}
MAX_ACCURACY_DROP_POINTS = 1.5


def train_reference_mlp(data_dir: Path, epochs: int = 5, batch: int = 64, lr: float = 0.1, seed: int = 0) -> object:
    import tensorflow as tf

    from edgefm.train.model import MLP

    train = ds.load_split("train", data_dir)
    x, y = tf.constant(train.scaled()), tf.constant(train.labels.astype(np.int32))
    model = MLP(hidden_units=20, seed=seed)

    @tf.function
    def epoch(order: tf.Tensor) -> None:
        for i in tf.range(tf.shape(order)[0] // batch):
            idx = order[i * batch : (i + 1) * batch]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather(y, idx), model(tf.gather(x, idx))))
            for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables)):
                v.assign_sub(lr * g)

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        epoch(tf.constant(rng.permutation(len(train)).astype(np.int32)))
    return model


@pytest.fixture(scope="module")
def real_export(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    from export.pipeline import export

    root = tmp_path_factory.mktemp("real") / "artifacts"
    root.mkdir()
    manifest = write_manifest_with_model(root, train_reference_mlp(real_data))
    return root, export(manifest, ExportConfig(artifacts=root, data_dir=real_data))


def test_targets_on_the_real_test_split(real_export: tuple[Path, Manifest], real_data: Path) -> None:
    from runtime_check.runtimes.registry import runtime_for

    root, manifest = real_export
    test = ds.load_split("test", real_data)
    x = test.scaled()
    with runtime_for(root / "saved_model") as tf_rt:
        ref = tf_rt.infer_batched({"images": x}, 1000)["logits"]
    ref_acc = np.mean(ref.argmax(1) == test.labels)
    assert ref_acc > 0.80  # the model really learned

    f32_bytes = manifest.artifacts["tflite_float32"].bytes
    for name, artifact in manifest.deployable().items():
        with runtime_for(root / artifact.path) as rt:
            logits = rt.infer_batched({"images": x}, 1000)["logits"]
        agreement = np.mean(logits.argmax(1) == ref.argmax(1))
        accuracy = np.mean(logits.argmax(1) == test.labels)
        if name in SIZE_RATIO_MAX:
            assert artifact.bytes <= SIZE_RATIO_MAX[name] * f32_bytes, name
        if artifact.quantization == "none":
            assert np.max(np.abs(logits - ref)) <= FLOAT_MAX_ABS_ERR, name
            assert agreement == 1.0, name
        else:
            assert agreement >= MIN_TOP1_AGREEMENT[name], (name, agreement)
            assert abs(accuracy - ref_acc) * 100 <= MAX_ACCURACY_DROP_POINTS, (name, accuracy, ref_acc)
        assert artifact.extra["seconds"] < 30, name  # seconds, not minutes
