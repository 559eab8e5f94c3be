"""The fast lane of the soundness matrix (benchmarks/soundness.py): a real model, real exports, real runtimes.

The residual CNN with batch norm of ``benchmarks.zoo`` (trained here on Fashion-MNIST,
cached per user, keyed by the code), exported by edgefm: its float32 and int8 TFLite
files must PASS (their accuracy holds), and three planted faults must FAIL: one conv
channel zeroed (float32), the input range changed, int8 with a zeroed channel.
"""

from __future__ import annotations

import pytest

from benchmarks import soundness

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def resnet() -> dict:
    return soundness.model_rows("resnet", variants=("tflite_float32", "tflite_int8"),
                                only_faults=("conv_x0", "input_range", "int8_zeroed_channel"))


def test_good_exports_pass_where_accuracy_holds(resnet: dict) -> None:
    assert resnet["reference_accuracy"] > 0.5  # well above chance (0.1): the model means something
    rows = {r["variant"]: r for r in resnet["rows"]}
    assert set(rows) == {"tflite_float32", "tflite_int8"}
    for name, r in rows.items():
        assert r["accuracy_holds"], r
        assert r["verdict"] == "PASS", (name, r["failed"], r["details"])
    # the int8 file is also asked question (a): its runtime against the exact oracle of the same file
    assert rows["tflite_int8"]["metrics"]["oracle_steps"] <= 2


def test_planted_faults_are_caught(resnet: dict) -> None:
    faults = {f["fault"]: f for f in resnet["faults"]}
    assert set(faults) == {"conv_x0", "input_range", "int8_zeroed_channel"}
    for name, f in faults.items():
        assert f["verdict"] == "FAIL", (name, f["metrics"], f["details"])
