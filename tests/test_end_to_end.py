"""The main job on the real dataset, through the real CLI: train -> export -> verify -> predict.

These are the integration tests of the whole product: real Fashion-MNIST, real
TensorFlow, LiteRT and ONNX Runtime, every command in a subprocess as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefm.core.fileio import sha256_file
from edgefm.core.manifest import Manifest

from conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ok(res) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def mlp_run(trained_artifacts: Path) -> Path:
    """The session's trained and exported reference MLP (conftest), shared with the README examples."""
    return trained_artifacts


def test_reference_mlp_reaches_the_accuracy_floor(mlp_run: Path) -> None:
    t = Manifest.load(mlp_run).training
    assert t["model"] == "mlp" and t["parameters"] == 15_910 and t["epochs"] == 5
    assert t["test_accuracy"] >= 0.835, t["test_accuracy"]
    assert t["train_accuracy"] >= 0.84
    assert 0.3 < t["test_loss"] < 0.5


def test_export_meets_size_targets(mlp_run: Path) -> None:
    arts = Manifest.load(mlp_run).artifacts
    f32 = arts["tflite_float32"].bytes
    assert arts["tflite_int8"].bytes <= 0.35 * f32
    assert arts["tflite_float16"].bytes <= 0.6 * f32
    for a in arts.values():
        if a.format != "savedmodel":
            assert sha256_file(mlp_run / a.path) == a.sha256
            assert a.inputs[0].shape[0] is None  # dynamic batch kept


def test_verify_passes_on_the_full_test_split(mlp_run: Path) -> None:
    res = run_cli("verify", "--artifacts", str(mlp_run))
    _ok(res)
    report = json.loads((mlp_run / "verify-report.json").read_text())
    assert report["passed"] is True
    arts = report["artifacts"]
    assert {"tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32"} <= set(arts)

    def metric(name: str, key: str) -> float:
        return arts[name]["metrics"][key]["value"]

    for name in ("tflite_float32", "onnx_float32"):
        assert metric(name, "max_abs_error") <= 1e-4
        assert metric(name, "top1_agreement") == 1.0
    assert metric("tflite_int8", "top1_agreement") >= 0.97
    assert metric("tflite_int8", "accuracy_drop") <= 0.015


def test_predict_on_a_real_test_image(mlp_run: Path, tmp_path: Path) -> None:
    image = tmp_path / "sneaker.png"
    _ok(_demo_image(image))
    res = run_cli("predict", str(image), "--artifacts", str(mlp_run), "--json")
    _ok(res)
    line = json.loads(res.stdout.strip().splitlines()[0])
    assert "Sneaker" in json.dumps(line)


def _demo_image(path: Path):
    import subprocess
    import sys

    from conftest import REPO

    return subprocess.run([sys.executable, "-m", "edgefm.data.demo_image", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cnn_reaches_90_percent_and_exports_and_verifies(tmp_path: Path, real_data: Path) -> None:
    root = tmp_path / "cnn"
    _ok(run_cli("train", "--model", "cnn", "--artifacts", str(root), "-q", timeout=900))
    t = Manifest.load(root).training
    assert t["model"] == "cnn" and t["test_accuracy"] >= 0.90, t["test_accuracy"]
    assert t["parameters"] < 100_000
    _ok(run_cli("export", "--artifacts", str(root), "-q"))
    _ok(run_cli("verify", "--artifacts", str(root), "--samples", "2000", "-q"))
