"""The networks: shapes, parameter counts, initialisation and the serving signature."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgefm.core.contract import CLASS_NAMES
from edgefm.train.config import ModelKind
from edgefm.train.model import CNN, MLP, build_model, save_model


def test_mlp_matches_the_reference_architecture() -> None:
    m = MLP(hidden_units=20, seed=0)
    assert m.parameter_count == 784 * 20 + 20 + 20 * 10 + 10 == 15_910
    assert [tuple(v.shape) for v in (m.w1, m.b1, m.w2, m.b2)] == [(20, 784), (20,), (20, 10), (10,)]
    assert len(m.trainable_variables) == 4  # tf.Module tracks raw variables (keras.Model would not)


def test_hidden_units_changes_the_width() -> None:
    assert MLP(hidden_units=64).parameter_count == 784 * 64 + 64 + 64 * 10 + 10


def test_glorot_uniform_bounds_and_zero_biases() -> None:
    m = MLP(hidden_units=20, seed=3)
    limit = math.sqrt(6 / (784 + 20))
    w1 = m.w1.numpy()
    assert np.abs(w1).max() <= limit and np.abs(w1).max() > 0.9 * limit
    assert abs(float(w1.mean())) < 0.01
    assert not m.b1.numpy().any() and not m.b2.numpy().any()


def test_seed_determines_the_initial_weights() -> None:
    np.testing.assert_array_equal(MLP(seed=1).w1.numpy(), MLP(seed=1).w1.numpy())
    assert not np.array_equal(MLP(seed=1).w1.numpy(), MLP(seed=2).w1.numpy())


@pytest.mark.parametrize("kind", list(ModelKind))
def test_logits_shape_for_any_batch(kind: ModelKind) -> None:
    m = build_model(kind, 16, 0)
    for n in (1, 7):
        assert m(tf.zeros([n, 28, 28])).shape == (n, 10)


def test_cnn_serving_folds_batch_norm_into_the_same_function() -> None:
    m = CNN(hidden_units=8, seed=1)
    rng = np.random.default_rng(0)
    for v in (m.m1, m.m2, m.c1b, m.c2b):
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.1)
    for v in (m.v1, m.v2, m.g2):
        v.assign(rng.uniform(0.5, 2.0, size=v.shape).astype(np.float32))
    m.g2.assign(m.g2 * np.where(np.arange(m.c2) % 3 == 0, -1, 1).astype(np.float32))  # a negative scale folds too
    x = tf.constant(rng.random((5, 28, 28), dtype=np.float32))
    np.testing.assert_allclose(m(x).numpy(), m._logits(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_cnn_training_normalises_with_the_batch_statistics() -> None:
    """The fused batch norm of a training step is the textbook one: the batch's mean and biased variance
    normalise, and the moving variance takes the unbiased one."""
    m = CNN(hidden_units=8, seed=1)
    x = tf.constant(np.random.default_rng(0).random((6, 28, 28), dtype=np.float32))
    pooled = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(tf.reshape(x, [-1, 28, 28, 1]), m.k1, 1, "SAME")), 2, 2, "VALID")
    mean, var = tf.nn.moments(pooled, [0, 1, 2])
    y = m._norm(pooled, tf.ones_like(m.c1b), m.c1b, m.m1, m.v1, training=True)
    np.testing.assert_allclose(y.numpy(), ((pooled - mean) / tf.sqrt(var + m.bn_epsilon)).numpy(), atol=1e-4)
    n = 6 * 14 * 14
    np.testing.assert_allclose(m.m1.numpy(), (1 - m.bn_momentum) * mean.numpy(), rtol=1e-4, atol=1e-6)
    expected_v = m.bn_momentum + (1 - m.bn_momentum) * var.numpy() * n / (n - 1)
    np.testing.assert_allclose(m.v1.numpy(), expected_v, rtol=1e-4)


def test_cnn_is_small() -> None:
    from edgefm.train.config import DEFAULT_HIDDEN_UNITS

    assert CNN(hidden_units=DEFAULT_HIDDEN_UNITS[ModelKind.CNN]).parameter_count == 80_634 <= 100_000


def test_savedmodel_serving_signature(tmp_path: Path) -> None:
    m = MLP(hidden_units=8, seed=0)
    save_model(m, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    fn = loaded.signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    assert list(kwargs) == ["images"]
    assert kwargs["images"].shape.as_list() == [None, 28, 28] and kwargs["images"].dtype == tf.float32
    assert set(fn.structured_outputs) == {"logits", "probabilities"}
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    out = fn(images=tf.constant(x))
    np.testing.assert_allclose(out["logits"].numpy(), m(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-6)
    names = [s.decode() for s in loaded.signatures["labels"]()["class_names"].numpy()]
    assert names == list(CLASS_NAMES)
