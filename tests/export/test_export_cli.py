"""`edgefm export` through the real entry point: exit statuses, stderr, quiet converters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefm.core.manifest import Manifest

from conftest import invoke_cli, run_cli
from export_helpers import bucketize_model, copy_artifacts, snapshot, write_manifest_with_model

# Lines TensorFlow, the MLIR converter and ONNX Runtime's quantizer print when not silenced.
CONVERTER_NOISE = ("fully_quantize", "absl::InitializeLog", "oneDNN", "WARNING", "I0000", "W0000", "pre-processing")


@pytest.fixture
def artifacts(tiny_artifacts: Path, tmp_path: Path) -> Path:
    return copy_artifacts(tiny_artifacts, tmp_path / "artifacts")


def _data_args(tiny_data_session: tuple[Path, dict[str, str]]) -> list[str]:
    return ["--data-dir", str(tiny_data_session[0]), "--no-verify", "--calibration-samples", "32"]


def test_export_prints_the_table_and_nothing_from_the_converters(
    artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]
) -> None:
    res = run_cli("export", "--artifacts", str(artifacts), "--quantize", "int8", *_data_args(tiny_data_session))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["artifact", "file"]
    assert [ln.split()[0] for ln in lines[2:4]] == ["tflite_int8", "onnx_int8"]
    assert lines[-1] == f"-> {artifacts / 'manifest.json'}"
    for noise in CONVERTER_NOISE:
        assert noise not in res.stdout + res.stderr
    # stderr holds only the progress, off a TTY as timestamped lines: a line per variant, then what it wrote
    progress = res.stderr.splitlines()
    assert progress and all(re.match(r"\d\d:\d\d:\d\d ", ln) for ln in progress), res.stderr
    assert any(ln.endswith("calibrating int8 on 32 fashion-mnist samples (train split, seed 0)") for ln in progress), res.stderr
    assert any(ln.endswith("[0/2] converting: tflite_int8 (elapsed 0 s)") for ln in progress), res.stderr
    assert any("[1/2] converting: onnx_int8 (elapsed" in ln and "ETA" in ln for ln in progress), res.stderr
    assert re.search(r"exported onnx_int8: [\d.]+ KiB in [\d.]+ s$", progress[-1]), res.stderr
    assert {"tflite_int8", "onnx_int8"} <= set(Manifest.load(artifacts).artifacts)


def test_export_table_fits_columns(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    """$COLUMNS (or the terminal's width) reaches the table: at 60 columns one block per variant, nothing cut."""
    res = invoke_cli("export", "--artifacts", str(artifacts), "--quantize", "none", *_data_args(tiny_data_session),
                     env={"COLUMNS": "60"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == f"-> {artifacts / 'manifest.json'}"  # a path is printed whole, to be copied (the terminal wraps it)
    assert max(map(len, lines[:-1])) <= 60, res.stdout
    assert lines[:2] == ["tflite_float32", "   file model_float32.tflite  quantization none"], lines
    assert "onnx_float32" in lines and "x tflite_float32 1.00" in res.stdout


def test_quiet_prints_nothing(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    from click.testing import CliRunner

    from edgefm.cli.main import cli

    res = CliRunner().invoke(cli, ["export", "--artifacts", str(artifacts), "--format", "onnx", "--quantize", "none",
                                   "--quiet", *_data_args(tiny_data_session)])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    assert (artifacts / "model.onnx").is_file() and "onnx_float32" in Manifest.load(artifacts).artifacts


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "tiff"], "Invalid value for '--format'"),
        (["--quantize", "int4"], "Invalid value for '--quantize'"),
        (["--opset", "99"], "--opset must be between 13 and 18"),
        (["--calibration-samples", "0"], "--calibration-samples must be a positive integer"),
        (["--format", "onnx", "--quantize", "dynamic"], "there is no such variant"),
        (["--quantize", "none", "--int8-io"], "--int8-io applies to the full-integer TFLite model"),
    ],
)
def test_bad_options_exit_2_without_touching_the_directory(artifacts: Path, args: list[str], message: str) -> None:
    before = snapshot(artifacts)
    res = invoke_cli("export", "--artifacts", str(artifacts), *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr
    assert snapshot(artifacts) == before


def test_missing_artifacts_directory_exits_1(tmp_path: Path) -> None:
    res = invoke_cli("export", "--artifacts", str(tmp_path / "nowhere"))
    assert res.returncode == 1
    assert "nowhere does not exist. Run `edgefm train --artifacts" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr


def test_converter_failure_exits_1_and_keeps_the_previous_manifest(
    tmp_path: Path, tiny_data_session: tuple[Path, dict[str, str]]
) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    write_manifest_with_model(root, bucketize_model())
    before = snapshot(root)
    res = invoke_cli("export", "--artifacts", str(root), "--format", "onnx", "--quantize", "none",
                     *_data_args(tiny_data_session))
    assert res.returncode == 1, res.stdout + res.stderr
    stderr = res.stderr.strip().splitlines()[-1]  # the progress lines come first, the error paragraph last
    assert stderr.startswith("error: ONNX export of onnx_float32 failed (ValidationError): No Op registered for Bucketize")
    assert "Nothing was written" in stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
    assert snapshot(root) == before
