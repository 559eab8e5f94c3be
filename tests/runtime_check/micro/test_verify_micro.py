"""`edgefm verify --micro` and `--npu` through the real CLI, on the session's trained MLP (every variant)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from micro_helpers import flip_one_channel

from runtime_check.micro.arena import find_arena

from conftest import redescribe, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def artifacts(trained_artifacts: Path, tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    shutil.copytree(trained_artifacts, root)
    for old in root.glob("verify-report.*"):
        old.unlink()
    return root


def _verify(root: Path, *args: str):
    return run_cli("verify", "--artifacts", str(root), "--samples", "500", "--no-html", "--json", *args)


def test_verify_micro_and_npu_add_tflm_rows_the_arena_the_audit_and_the_fit(artifacts: Path) -> None:
    res = _verify(artifacts, "--micro", "--npu", "ethos-u55-128")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads(res.stdout)
    rows = report["artifacts"]
    # TFLM has kernels for int8 and float32, not for float16 weights or dynamic range: no rows for those
    assert {"tflite_int8@tflm", "tflite_float32@tflm"} <= set(rows)
    assert not {"tflite_float16@tflm", "tflite_dynamic@tflm"} & set(rows)
    row = rows["tflite_int8@tflm"]
    assert row["passed"] and row["runtime"] == "tflm" and "top1_agreement" in row["metrics"]
    micro = row["micro"]
    assert micro["arena"]["bytes"] == find_arena(artifacts / "model_int8.tflite").bytes
    assert "upper bound for a 32-bit Cortex-M" in micro["arena"]["note"]
    assert micro["host_latency"]["note"].startswith("host")
    audit = micro["rounding_audit"]
    assert audit["labels"]["1"] == "rounding (expected: TFLM rounds twice)" and audit["intermediates"]["tensors"] >= 4
    fit = report["npu"]["tflite_int8"]
    assert fit["config"] == "ethos-u55-128" and fit["npu_ops"] > 0 and fit["sram_kib"] > 0
    assert fit["note"] == "estimate: Ethos-U cannot run here"


def test_a_planted_one_channel_fault_fails_the_tflm_row(artifacts: Path) -> None:
    flip_one_channel(artifacts / "model_int8.tflite")
    redescribe(artifacts, "tflite_int8")
    res = _verify(artifacts, "--micro", "--only", "tflite_int8")
    assert res.returncode == 1, res.stderr[-2000:]
    rows = json.loads(res.stdout)["artifacts"]
    assert not rows["tflite_int8@tflm"]["passed"]


@pytest.mark.parametrize(("args", "says"), [
    (("--npu", "ethos-u99"), "Pick one of: ethos-u55-32"),
    (("--micro", "--only", "onnx_float32,onnx_int8"), "none of the artifacts is one"),
    (("--micro", "--only", "tflite_float16"), "tflite float16"),
    (("--npu", "ethos-u55-128", "--only", "tflite_float16"), "none of the artifacts is one"),
])
def test_bad_requests_are_one_paragraph_exit_2_and_write_nothing(artifacts: Path, args: tuple[str, ...],
                                                                  says: str) -> None:
    res = run_cli("verify", "--artifacts", str(artifacts), "--samples", "100", *args)
    assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not list(artifacts.glob("verify-report.*"))
