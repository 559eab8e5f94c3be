"""`edgefm inspect`: specs, quantization, operators, metadata and signatures of each artifact kind."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.errors import ModelFileError, UsageError
from edgefm.core.fileio import sha256_file
from edgefm.core.manifest import Manifest
from export.config import ExportConfig
from runtime_check.tools.inspect_model import format_report, inspect_model

from conftest import invoke_cli


@pytest.fixture(scope="module")
def exported(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported to every variant, int8 with int8 inputs/outputs (so they carry scales)."""
    from export.pipeline import export

    root = tmp_path_factory.mktemp("inspect") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    data_dir, _ = tiny_data_session
    cfg = ExportConfig(artifacts=root, calibration_samples=32, int8_io=True, data_dir=data_dir, verify_data=False)
    export(Manifest.load(root), cfg)
    return root


def test_tflite_float32(exported: Path) -> None:
    path = exported / "model_float32.tflite"
    report = inspect_model(path)
    manifest = Manifest.load(exported)
    assert (report.format, report.runtime) == ("tflite", "litert")
    assert report.bytes == path.stat().st_size and report.sha256 == sha256_file(path)
    assert [(s.name, s.dtype, s.shape, s.scale) for s in report.inputs] == [("images", "float32", [None, 28, 28], None)]
    assert {s.name: s.shape for s in report.outputs} == {"logits": [None, 10], "probabilities": [None, 10]}
    assert report.operators["FULLY_CONNECTED"] == 2 and report.operators["SOFTMAX"] == 1
    assert report.metadata["labels"] == list(CLASS_NAMES)
    assert report.metadata["source_savedmodel_sha256"] == manifest.artifacts["savedmodel"].sha256
    assert "edgefm" in report.details["metadata_entries"]
    assert not report.signatures


def test_tflite_int8_io_shows_scale_and_zero_point(exported: Path) -> None:
    report = inspect_model(exported / "model_int8io.tflite")
    (images,) = report.inputs
    assert images.dtype == "int8" and images.shape == [None, 28, 28]
    # Calibrated on the synthetic images (max 230/255): the range [0, 0.9] over 256 steps.
    assert images.scale == pytest.approx(230 / 255 / 255, rel=0.01) and images.zero_point == -128
    assert all(o.dtype == "int8" and o.scale and o.scale > 0 and isinstance(o.zero_point, int) for o in report.outputs)
    text = format_report(report)
    assert re.search(r"images +int8 +\[N, 28, 28\]  scale=0\.0035\d* zero_point=-128", text), text


def test_onnx(exported: Path) -> None:
    report = inspect_model(exported / "model.onnx")
    assert (report.format, report.runtime) == ("onnx", "onnxruntime")
    assert report.operators["MatMul"] == 2 and report.operators["Relu"] == 1
    assert report.details["opset"]["ai.onnx"] == 17
    assert report.metadata["labels"] == list(CLASS_NAMES) and report.metadata["variant"] == "onnx_float32"
    q = inspect_model(exported / "model_int8.onnx")
    assert sum(n for op, n in q.operators.items() if "Quant" in op or "Integer" in op) > 0


def test_savedmodel_signatures(exported: Path) -> None:
    report = inspect_model(exported / "saved_model")
    assert (report.format, report.runtime) == ("savedmodel", "tensorflow")
    assert report.sha256 == Manifest.load(exported).artifacts["savedmodel"].sha256
    assert set(report.signatures) == {"serving_default", "labels"}
    assert report.signatures["serving_default"]["inputs"]["images"]["shape"] == [None, 28, 28]
    assert report.metadata == {} and report.operators == {}
    assert "serving_default: (images float32 [N, 28, 28]) ->" in format_report(report)


def test_unreadable_metadata_is_reported_not_fatal(exported: Path, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(exported / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "edgefm":
            prop.value = "{not json"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    report = inspect_model(path)
    assert report.metadata == {} and "not valid JSON" in (report.metadata_error or "")
    assert "metadata: unreadable" in format_report(report)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.tflite does not exist"):
        inspect_model(tmp_path / "nope.tflite")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UsageError, match=r"unsupported model type '\.txt'"):
        inspect_model(tmp_path / "x.txt")


def test_cli_json_and_text(exported: Path) -> None:
    proc = invoke_cli("inspect", str(exported / "model_float32.tflite"), "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["format"] == "tflite" and d["inputs"][0]["shape"] == [None, 28, 28]
    assert d["operators"]["FULLY_CONNECTED"] == 2 and d["metadata"]["labels"] == list(CLASS_NAMES)
    proc = invoke_cli("inspect", str(exported / "model.onnx"))
    assert proc.returncode == 0, proc.stderr
    assert "format:   onnx (runtime: onnxruntime)" in proc.stdout and "MatMul" in proc.stdout
    assert "images           float32  [N, 28, 28]" in proc.stdout and "labels: T-shirt/top, Trouser" in proc.stdout


@pytest.mark.parametrize(
    ("name", "content", "code", "message"),
    [
        ("missing.onnx", None, 1, r"missing\.onnx does not exist"),
        ("bad.tflite", b"PK\x03\x04" + b"\x00" * 100, 1, r"bad\.tflite is not a TFLite model"),
        ("bad.onnx", b"\xff" * 64, 1, r"bad\.onnx is not a valid ONNX protobuf"),
        ("notes.txt", b"hello", 2, r"unsupported model type '\.txt'"),
    ],
    ids=["missing", "zip-as-tflite", "garbage-onnx", "unsupported-ext"],
)
def test_cli_bad_files(tmp_path: Path, name: str, content: bytes | None, code: int, message: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    proc = invoke_cli("inspect", str(tmp_path / name))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and re.search(message, " ".join(proc.stderr.split())), proc.stderr
