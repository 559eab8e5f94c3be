"""Bad input to the verdict's options: each a one-paragraph message and exit 2 (never a traceback, never 70).

``--bound`` on a metric that is reported but holds no bound (the raw top-1 after the
bound moved to the decisive one), a confidence level outside (0, 1), and labels for a
model without a classification output (a real Keras regression model, exported by
edgefm, verified by the real CLI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


def fails_cleanly(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), proc.stderr  # one paragraph, on one line
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.parametrize("metric, needle", [
    ("top1_raw", "the bound is on the decisive one"),
    ("accuracy", "NAME.accuracy_drop=VALUE"),
    ("top1_decisive", "has no bound to set"),
])
def test_bound_on_a_metric_without_a_bound(tmp_path: Path, metric: str, needle: str) -> None:
    fails_cleanly(run_cli("verify", "--artifacts", str(tmp_path), "--bound", f"tflite_int8.{metric}=0.9"),
                  f"--bound tflite_int8.{metric}", needle)


@pytest.mark.parametrize("level", ["0", "1", "1.5", "-0.2", "nan"])
def test_confidence_outside_zero_one(tmp_path: Path, level: str) -> None:
    fails_cleanly(run_cli("verify", "--artifacts", str(tmp_path), "--confidence", level),
                  f"--confidence {float(level)}", "strictly between 0 and 1")


def test_labels_for_a_model_without_classes(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="features")
    net = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(inp)))
    net.save(tmp_path / "regression.keras")
    x = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    np.savez(tmp_path / "x.npz", features=x)
    np.save(tmp_path / "y.npy", np.zeros(32, np.int64))
    art = tmp_path / "art"
    done = run_cli("export", "--keras", str(tmp_path / "regression.keras"), "--artifacts", str(art), "--format",
                   "tflite", "--quantize", "none", "--data", str(tmp_path / "x.npz"))
    assert done.returncode == 0, done.stderr[-2000:]
    message = fails_cleanly(run_cli("verify", "--artifacts", str(art), "--data", str(tmp_path / "x.npz"),
                                    "--labels-data", str(tmp_path / "y.npy"), "--no-html"),
                            "--labels-data", "no output of this model is a classification output", "output_0 [32, 1]")
    assert len(message) < 600
