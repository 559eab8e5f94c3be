"""``verify --repair`` and ``export --keep-float``: an int8 model broken by one outlier channel is repaired.

The model is ``examples/outlier_mlp.py``'s (the README's walk-through): a real Keras MLP
(784-32-32-10) trained for two epochs on 10,000 real Fashion-MNIST images, then given an outlier channel: hidden unit j of ``fc2`` scaled by
300 and ``fc3``'s weights from it by 1/300. ReLU is positively homogeneous, so the float
model computes the same function (TensorFlow's accuracy is unchanged), but int8's
per-tensor activation range of ``fc2``'s output grows 300-fold and the other 31 units
quantize to a few steps: both int8 exports fail verify (measured: top-1 agreement 33%).
The fault lives in the tensor ``fc2`` writes and ``fc3`` reads, so the repair must keep
both sides of it in float and may keep ``fc1`` int8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.manifest import Manifest
from runtime_check.explain.repair import propose
from runtime_check.verify.tolerances import INT8

from conftest import invoke_cli

FC2, FC3_TFLITE = "functional_1/fc2_1", "output_0"  # TFLite names the last layer by the signature output it writes


@pytest.fixture(scope="module")
def outlier_mlp(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/outlier_mlp.py``'s model (the README's walk-through), int8 exported to .tflite and .onnx."""
    import subprocess
    import sys

    from conftest import REPO

    work = tmp_path_factory.mktemp("repair")
    made = subprocess.run([sys.executable, str(REPO / "examples" / "outlier_mlp.py")], cwd=work, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert made.returncode == 0, made.stderr
    (work / "in.npz").symlink_to(work / "test.npz")
    (work / "labels.npy").symlink_to(work / "test_labels.npy")
    (work / "calib.npz").symlink_to(work / "calibration.npz")
    res = invoke_cli("export", "--keras", str(work / "outlier.keras"), "--artifacts", str(work / "art"), "--data",
                     str(work / "calib.npz"), "--format", "all", "--quantize", "int8", "-q")
    assert res.returncode == 0, res.stderr
    return work


def _verify(work: Path, *args: str):
    return invoke_cli("verify", "--artifacts", str(work / "art"), "--data", str(work / "in.npz"), "--labels-data",
                      str(work / "labels.npy"), "--no-html", *args)


def test_repair_keeps_the_outlier_layers_float_and_the_repaired_variants_pass(outlier_mlp: Path) -> None:
    res = _verify(outlier_mlp, "--repair")
    assert res.returncode == 1, res.stdout + res.stderr  # the fully quantized files still fail, as they should
    assert "Traceback" not in res.stderr
    report = json.loads((outlier_mlp / "art" / "verify-report.json").read_text())
    arts = report["artifacts"]
    for name in ("tflite_int8", "onnx_int8"):
        repair = arts[name]["repair"]
        before, after = repair["before"], repair["proposal"]
        assert not before["passed"] and before["top1_agreement"] < 0.6, repair
        assert after is not None and after["passed"], repair
        keep = after["keep_float"]
        assert any(k.startswith(FC2) for k in keep), keep  # the layer that writes the outlier tensor
        assert not any("fc1" in k for k in keep), keep  # and not the healthy first layer
        assert repair["exported"] == f"{name}_mixed"
        # explained on the way: the cause is named (fc2's output, whose median channel drowns), not only its reader
        first = arts[name]["explain"]["first_divergent"]
        assert "fc2" in first["tf"] and first["channel_snr_db"] < 12.0 <= first["snr_db"], first
        # the exported variant, verified by the second run on all 1,000 inputs, beside the fully quantized one
        mixed, plain = arts[f"{name}_mixed"], arts[name]
        assert mixed["passed"] and not plain["passed"]
        top1 = {a: arts[a]["metrics"]["top1_agreement"]["value"] for a in (name, f"{name}_mixed")}
        assert top1[f"{name}_mixed"] >= max(0.97, top1[name]), top1
    assert "keep in float:" in res.stdout and "exported as tflite_int8_mixed" in res.stdout
    manifest = Manifest.load(outlier_mlp / "art")
    assert manifest.artifacts["tflite_int8_mixed"].extra["keep_float"] == arts["tflite_int8"]["repair"]["proposal"]["keep_float"]
    assert "fc2" in repr(arts["tflite_int8"]["repair"]["ranking"][0])  # the costliest layer alone in int8


def test_ranking_is_stable_across_calibration_seeds(outlier_mlp: Path) -> None:
    from edgefm.data.sources import open_data
    from export.to_tflite import TFLiteKeepFloat

    manifest = Manifest.load(outlier_mlp / "art")
    specs = manifest.savedmodel()[1].inputs
    feeds = {"images": np.load(outlier_mlp / "in.npz")["images"][:300]}
    from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

    with TensorFlowRuntime(outlier_mlp / "art" / "saved_model") as tf_rt:
        reference = tf_rt.infer(feeds)
    calib = np.load(outlier_mlp / "calib.npz")["images"]
    tops = []
    for seed in (0, 1):
        rows = np.random.default_rng(seed).choice(len(calib), 200, replace=False)
        np.savez(outlier_mlp / f"calib{seed}.npz", images=calib[rows])
        source = open_data(str(outlier_mlp / f"calib{seed}.npz"), specs)
        r = propose("tflite_int8", "tflite", TFLiteKeepFloat(outlier_mlp / "art" / "saved_model", source), feeds,
                    reference, None, INT8)
        assert r.proposal is not None and r.proposal.passed, r
        tops.append(r.ranking[0][0])
    assert tops[0] == tops[1] == FC2, tops


def test_keep_float_by_hand_writes_the_mixed_variant(outlier_mlp: Path, tmp_path: Path) -> None:
    import shutil

    art = tmp_path / "art"
    shutil.copytree(outlier_mlp / "art", art)
    res = invoke_cli("export", "--artifacts", str(art), "--data", str(outlier_mlp / "calib.npz"), "--format", "tflite",
                     "--quantize", "int8", "--keep-float", f"{FC2},{FC3_TFLITE}", "-q")
    assert res.returncode == 0, res.stderr
    res = invoke_cli("verify", "--artifacts", str(art), "--data", str(outlier_mlp / "in.npz"), "--only",
                     "tflite_int8_mixed", "--no-html", "-q")
    assert res.returncode == 0, res.stdout + res.stderr


def test_unknown_keep_float_layer_names_the_layers_and_writes_nothing(outlier_mlp: Path) -> None:
    before = (outlier_mlp / "art" / "manifest.json").read_bytes()
    res = invoke_cli("export", "--artifacts", str(outlier_mlp / "art"), "--data", str(outlier_mlp / "calib.npz"),
                     "--format", "tflite", "--quantize", "int8", "--keep-float", "no_such_layer", "-q")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--keep-float no_such_layer" in res.stderr and FC2 in res.stderr, res.stderr
    assert (outlier_mlp / "art" / "manifest.json").read_bytes() == before


def test_keep_float_needs_an_int8_variant_and_float_io(outlier_mlp: Path) -> None:
    for extra, says in ((("--quantize", "float16"), "--quantize int8"), (("--quantize", "int8", "--int8-io"), "--int8-io")):
        res = invoke_cli("export", "--artifacts", str(outlier_mlp / "art"), "--keep-float", FC2, *extra, "-q")
        assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_unknown_explain_name_fails_before_verify_runs(outlier_mlp: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    res = _verify(outlier_mlp, "--explain", "tflite_int9", "--report", str(report))
    assert res.returncode == 2 and "unknown artifact name 'tflite_int9'" in res.stderr, res.stderr
    assert not report.exists()  # nothing ran, nothing was written
