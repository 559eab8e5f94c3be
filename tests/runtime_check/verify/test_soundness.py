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


def test_too_few_rows_against_the_export_is_inconclusive_exit_3(resnet: dict) -> None:
    """A bound below the int8 file's measured accuracy drop, on 1,000 rows that cannot confirm the drop: not a FAIL
    blamed on the export, not a PASS: INCONCLUSIVE, exit 3, with the rows that would decide."""
    import json

    from benchmarks import zoo

    from conftest import run_cli

    int8 = next(r for r in resnet["rows"] if r["variant"] == "tflite_int8")
    drop = int8["metrics"]["accuracy_drop"]
    assert drop > 0, int8  # TF gets a few more rows right than the int8 file
    root = zoo.zoo_dir() / "resnet"
    res = run_cli("verify", "--artifacts", str(root / "artifacts"), "--data", str(root / "test.npz"), "--labels-data",
                  str(root / "labels.npy"), "--only", "tflite_int8", "--bound", f"tflite_int8.accuracy_drop={drop / 2}",
                  "--no-html", "--json", "--report", str(root / "inconclusive-report.json"))
    assert res.returncode == 3, res.stderr
    report = json.loads(res.stdout)
    assert report["verdict"] == "INCONCLUSIVE" and report["passed"] is True
    assert report["artifacts"]["tflite_int8"]["metrics"]["accuracy_drop"]["inconclusive"] is True
    assert any(w["kind"] == "rows" and w["metric"] == "accuracy_drop" for w in report["weak_evidence"])
    assert "needs ≥" in res.stderr.splitlines()[-1] and res.stderr.splitlines()[-1].startswith("error: ")
