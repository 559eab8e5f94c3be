"""Verify's rows as data: planned once, named from their parts, the native row tied to its binding by a field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.manifest import Artifact
from runtime_check.device.targets import parse_target
from runtime_check.runtimes import registry
from runtime_check.verify.device_rows import Board, DeviceRows
from runtime_check.verify.results import artifact_of, is_native_row, row_name
from runtime_check.verify.rows import plan_rows


def _art(path: str, fmt: str) -> Artifact:
    return Artifact(path=path, format=fmt, quantization="none", sha256="0" * 64, bytes=1, inputs=[], outputs=[])


SELECTED = {"tflite_float32": _art("model.tflite", TFLITE_FORMAT), "onnx_float32": _art("model.onnx", ONNX_FORMAT)}


def test_binding_rows_alone_without_native() -> None:
    rows = plan_rows(SELECTED, Path("/a"), native=False, devices=None)
    assert [(r.name, r.runner.name, r.equals) for r in rows] == [
        ("tflite_float32", "litert", None), ("onnx_float32", "onnxruntime", None)]
    assert all(r.is_binding for r in rows)


def test_native_rows_equal_their_binding_by_a_field() -> None:
    rows = plan_rows(SELECTED, Path("/a"), native=True, devices=None)
    assert [(r.name, r.runner.name, r.equals) for r in rows] == [
        ("tflite_float32", "litert", None), ("tflite_float32@native", "native-litert", "tflite_float32"),
        ("onnx_float32", "onnxruntime", None), ("onnx_float32@native", "native-onnxruntime", "onnx_float32")]
    assert [r.path for r in rows] == [Path("/a/model.tflite")] * 2 + [Path("/a/model.onnx")] * 2


def test_device_rows_between_the_binding_and_the_native_row() -> None:
    board = Board(parse_target("qemu-aarch64:cortex-a72"))
    rows = plan_rows({"tflite_float32": SELECTED["tflite_float32"]}, Path("/a"), native=True,
                     devices=DeviceRows([board]))
    assert [r.name for r in rows] == ["tflite_float32", "tflite_float32@aarch64-cortex-a72", "tflite_float32@native"]
    assert rows[1].board is board and rows[1].runner.name == "native-litert" and rows[1].equals is None


def test_a_second_runner_kind_is_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second .tflite native runner (e.g. TFLite Micro) gets its own row with no change to verify."""
    tflm = registry.RunnerKind("native-tflm", TFLITE_FORMAT, registry.NATIVE,
                               "runtime_check.native.runtime:NativeLiteRTRuntime", label="tflm")
    monkeypatch.setattr(registry, "RUNNER_KINDS", (*registry.RUNNER_KINDS, tflm))
    rows = plan_rows({"tflite_float32": SELECTED["tflite_float32"]}, Path("/a"), native=True, devices=None)
    assert [(r.name, r.equals) for r in rows] == [
        ("tflite_float32", None), ("tflite_float32@native", "tflite_float32"), ("tflite_float32@tflm", "tflite_float32")]


def test_row_names_read_back_from_a_report() -> None:
    assert row_name("onnx_int8") == "onnx_int8" and row_name("onnx_int8", "native") == "onnx_int8@native"
    assert artifact_of("onnx_int8@aarch64-cortex-a72") == "onnx_int8" and artifact_of("onnx_int8") == "onnx_int8"
    assert is_native_row("onnx_int8@native") and not is_native_row("onnx_int8@aarch64-cortex-a72")


def test_an_unrun_row_says_where_it_would_have_run() -> None:
    board = Board(parse_target("qemu-aarch64:cortex-a72"))
    rows = plan_rows({"tflite_float32": SELECTED["tflite_float32"]}, Path("/a"), native=True,
                     devices=DeviceRows([board]))
    from edgefm.core.errors import EdgefmError

    assert [r.unrun(EdgefmError("gone")).runtime for r in rows] == ["tflite", "device qemu-aarch64:cortex-a72", "native"]
