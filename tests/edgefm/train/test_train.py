"""Training: one step against a hand-computed gradient, determinism, resume, interruption, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgefm.core.errors import ConfigError
from edgefm.core.manifest import Manifest
from edgefm.core.metrics import confusion_matrix
from edgefm.train.config import TrainConfig
from edgefm.train.model import MLP
from edgefm.train.trainer import epoch_permutation, make_step_runner, pack_images, train

from conftest import REPO


def _numpy_sgd_step(w1, b1, w2, b2, x, y, lr):
    """Forward and backward of the reference MLP by hand (mean softmax cross-entropy)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    z1 = x @ w1.T + b1  # w1 is stored [hidden, 784]
    h = np.maximum(z1, 0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_logits = p.copy()
    d_logits[np.arange(len(y)), y] -= 1
    d_logits /= len(y)
    g_w2, g_b2 = h.T @ d_logits, d_logits.sum(0)
    d_h = d_logits @ w2.T * (z1 > 0)
    g_w1, g_b1 = d_h.T @ x, d_h.sum(0)
    return w1 - lr * g_w1, b1 - lr * g_b1, w2 - lr * g_w2, b2 - lr * g_b2


@pytest.mark.parametrize("eager", [False, True])
def test_one_step_matches_the_hand_computed_gradient(eager: bool) -> None:
    rng = np.random.default_rng(0)
    x_u8 = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    x = x_u8.astype(np.float32) / np.float32(255)
    y = np.array([0, 3, 9, 3, 1, 7], dtype=np.int32)
    m = MLP(hidden_units=5, seed=4)
    m.b1.assign(rng.normal(size=5).astype(np.float32) * 0.1)  # make biases matter
    before = [v.numpy().astype(np.float64) for v in (m.w1, m.b1, m.w2, m.b2)]
    expected = _numpy_sgd_step(*before, x, y, lr=0.1)
    run = make_step_runner(m, 0.1, eager=eager)
    loss_sum, correct = run(tf.constant(pack_images(x_u8)), tf.constant(y), tf.constant([[2, 0, 5, 1, 4, 3]], tf.int32))
    for got, want in zip((m.w1, m.b1, m.w2, m.b2), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    assert 0 <= float(correct) <= 6 and float(loss_sum) > 0


def test_epoch_permutation_is_seeded_per_epoch() -> None:
    a = epoch_permutation(100, seed=1, epoch=0).numpy()
    assert sorted(a) == list(range(100))
    np.testing.assert_array_equal(a, epoch_permutation(100, seed=1, epoch=0).numpy())
    assert not np.array_equal(a, epoch_permutation(100, seed=1, epoch=1).numpy())
    assert not np.array_equal(a, epoch_permutation(100, seed=2, epoch=0).numpy())


def test_confusion_matrix_counts() -> None:
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def _cfg(tmp_path: Path, data: Path, name: str = "a", **kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=32, hidden_units=8, data_dir=data, verify_data=False, quiet=True,
                artifacts=tmp_path / name)
    return TrainConfig(**{**base, **kw})


def _weights(root: Path) -> list[np.ndarray]:
    loaded = tf.saved_model.load(str(root / "saved_model"))
    return [getattr(loaded, n).numpy() for n in ("w1", "b1", "w2", "b2")]


def test_train_writes_savedmodel_manifest_curves_and_checkpoints(tmp_path: Path, tiny_data) -> None:
    data, _ = tiny_data
    result = train(_cfg(tmp_path, data, epochs=3, learning_rate=0.5))
    root = tmp_path / "a"
    m = Manifest.load(root)
    t = m.training
    for key in ("test_accuracy", "test_loss", "train_accuracy", "epochs", "epoch_seconds", "parameters",
                "seed", "model", "learning_rate", "batch_size", "resumed_from_epoch"):
        assert key in t, key
    assert t["epochs"] == 3 and len(t["epoch_seconds"]) == 3 and t["resumed_from_epoch"] == 0
    assert t["parameters"] == 784 * 8 + 8 + 8 * 10 + 10
    assert m.labels[7] == "Sneaker" and "tensorflow-cpu" in m.versions and "python" in m.versions
    sm = m.artifacts["savedmodel"]
    assert sm.format == "savedmodel" and sm.path == "saved_model" and len(sm.sha256) == 64
    assert sm.inputs[0].shape == [None, 28, 28]
    assert (root / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "checkpoints" / "state.json").is_file()
    # The synthetic classes are separable: training must learn them.
    assert t["test_accuracy"] > 0.5, t
    # The manifest's accuracy is what the saved model scores.
    from edgefm.data import fashion_mnist as ds

    test = ds.load_split("test", data, verify=False)
    fn = tf.saved_model.load(str(root / "saved_model")).signatures["serving_default"]
    preds = fn(images=tf.constant(test.scaled()))["logits"].numpy().argmax(1)
    assert t["test_accuracy"] == pytest.approx(float(np.mean(preds == test.labels)))
    assert len(result.history) == 3 and sum(map(sum, t["confusion_matrix"])) == len(test)


def test_same_seed_same_weights_and_metrics(tmp_path: Path, tiny_data) -> None:
    data, _ = tiny_data
    a = train(_cfg(tmp_path, data, "a", seed=5)).manifest.training
    b = train(_cfg(tmp_path, data, "b", seed=5)).manifest.training
    c = train(_cfg(tmp_path, data, "c", seed=6)).manifest.training
    for x, y in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b")):
        np.testing.assert_array_equal(x, y)
    assert [a[k] for k in ("test_loss", "train_loss")] == [b[k] for k in ("test_loss", "train_loss")]
    assert not all(np.array_equal(x, y) for x, y in zip(_weights(tmp_path / "a"), _weights(tmp_path / "c")))
    assert c["test_loss"] != a["test_loss"]


def test_resume_continues_to_the_same_weights(tmp_path: Path, tiny_data) -> None:
    data, _ = tiny_data
    train(_cfg(tmp_path, data, "straight", epochs=3))
    train(_cfg(tmp_path, data, "split", epochs=1))
    resumed = train(_cfg(tmp_path, data, "split", epochs=3, resume=True)).manifest.training
    assert resumed["resumed_from_epoch"] == 1 and len(resumed["history"]) == 3
    for x, y in zip(_weights(tmp_path / "straight"), _weights(tmp_path / "split")):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_cnn_resume_continues_momentum_and_batch_norm_to_the_same_weights(tmp_path: Path, tiny_data) -> None:
    """The CNN's run state is more than its weights: the momentum's velocity and the batch norm's moving
    statistics (what serving uses) are checkpointed too, so a resumed run ends where a straight one does."""
    data, _ = tiny_data
    kw = dict(model="cnn", hidden_units=8, batch_size=32)
    straight = train(_cfg(tmp_path, data, "straight", epochs=3, **kw)).manifest.training
    train(_cfg(tmp_path, data, "split", epochs=1, **kw))
    resumed = train(_cfg(tmp_path, data, "split", epochs=3, resume=True, **kw)).manifest.training
    assert straight["momentum"] == 0.9 and straight["flip_augmentation"] is True and straight["label_smoothing"] == 0.1
    names = ("k1", "c1b", "m1", "v1", "k2", "g2", "m2", "v2", "w1", "w2")
    a, b = (tf.saved_model.load(str(tmp_path / n / "saved_model")) for n in ("straight", "split"))
    for n in names:
        np.testing.assert_allclose(getattr(a, n).numpy(), getattr(b, n).numpy(), atol=1e-6, err_msg=n)
    assert not np.allclose(a.m2.numpy(), 0) and resumed["test_loss"] == pytest.approx(straight["test_loss"], abs=1e-5)


def test_xla_and_plain_graph_train_the_same_weights(tmp_path: Path, tiny_data) -> None:
    data, _ = tiny_data
    jit = train(_cfg(tmp_path, data, "jit", jit=True)).manifest.training
    plain = train(_cfg(tmp_path, data, "plain", jit=False)).manifest.training
    assert jit["jit_compile"] is True and plain["jit_compile"] is False
    for x, y in zip(_weights(tmp_path / "jit"), _weights(tmp_path / "plain")):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert jit["test_loss"] == pytest.approx(plain["test_loss"], abs=1e-5)


def test_resume_refuses_other_options_and_missing_checkpoint(tmp_path: Path, tiny_data) -> None:
    data, _ = tiny_data
    with pytest.raises(ConfigError, match="--resume: no checkpoint"):
        train(_cfg(tmp_path, data, "none", resume=True))
    train(_cfg(tmp_path, data, "x", epochs=1))
    with pytest.raises(ConfigError, match="hidden_units: checkpoint 8 vs now 16"):
        train(_cfg(tmp_path, data, "x", epochs=2, hidden_units=16, resume=True))
    state = tmp_path / "x" / "checkpoints" / "state.json"  # a checkpoint of edgefm 0.1 (w1 stored [784, hidden])
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "weights_layout"}))
    with pytest.raises(ConfigError, match="weights_layout: checkpoint None vs now 2"):
        train(_cfg(tmp_path, data, "x", epochs=2, resume=True))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_checkpoint_then_resume_finishes(tmp_path: Path, tiny_data, sig: signal.Signals) -> None:
    data, _ = tiny_data
    root = tmp_path / "run"
    args = ["--artifacts", str(root), "--data-dir", str(data), "--no-verify", "--hidden-units", "8",
            "--batch-size", "32", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgefm.cli", "train", "--epochs", "100000", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    state = root / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err and "no manifest claims a finished run" in err
    assert not (root / "manifest.json").exists()
    done = len(json.loads(state.read_text())["history"])
    assert done >= 1
    res = subprocess.run([sys.executable, "-m", "edgefm.cli", "train", "--resume", "--epochs", str(done + 1), *args],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    t = Manifest.load(root).training
    assert t["resumed_from_epoch"] == done and len(t["history"]) == done + 1
