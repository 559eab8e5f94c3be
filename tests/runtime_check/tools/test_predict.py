"""`edgefm predict`: every artifact kind, class-name sources, batching, and every bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.errors import ConfigError, ImageError, ManifestError, ModelFileError, UsageError
from edgefm.core.manifest import Manifest
from edgefm.data.images import load_image
from export.config import ExportConfig
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.tools.predict import PredictConfig, predict, softmax, top_k

from conftest import invoke_cli


@pytest.fixture(scope="module")
def exported(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny artifacts with every TFLite and ONNX variant exported."""
    from export.pipeline import export

    root = tmp_path_factory.mktemp("predict") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    data_dir, _ = tiny_data_session
    cfg = ExportConfig(artifacts=root, calibration_samples=32, data_dir=data_dir, verify_data=False)
    export(Manifest.load(root), cfg)
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three different images: dark-on-light RGB, light-on-dark gray, a wide RGBA."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    a = np.full((84, 84, 3), 250, dtype=np.uint8)
    a[20:70, 10:75] = rng.integers(0, 80, size=(50, 65, 1))
    b = np.zeros((28, 28), dtype=np.uint8)
    b[4:26, 9:19] = 220  # a trouser-like bar
    c = np.zeros((40, 120, 4), dtype=np.uint8)
    c[5:35, 10:110] = (200, 200, 200, 255)
    paths = [d / "shirt.png", d / "bar.png", d / "wide.png"]
    for p, arr in zip(paths, (a, b, c)):
        Image.fromarray(arr).save(p)
    return paths


def reference_probabilities(saved_model: Path, paths: list[Path]) -> np.ndarray:
    with TensorFlowRuntime(saved_model) as rt:
        x = np.stack([load_image(p).pixels for p in paths])
        return rt.infer({"images": x})["probabilities"]


@pytest.mark.parametrize("artifact", ["savedmodel", "tflite_float32", "onnx_float32", "tflite_int8", "onnx_int8"])
def test_every_artifact_kind_predicts_like_tensorflow(exported: Path, images: list[Path], artifact: str) -> None:
    manifest = Manifest.load(exported)
    model = exported / manifest.artifacts[artifact].path
    result = predict(PredictConfig(images=tuple(images), model=model, top_k=3))
    ref = reference_probabilities(exported / "saved_model", images)
    assert result.model == model and [p.image for p in result.predictions] == images
    assert result.runtime == {"savedmodel": "tensorflow", "tflite": "litert", "onnx": "onnxruntime"}[manifest.artifacts[artifact].format]
    got = np.array([[c.probability for c in sorted(p.top, key=lambda c: c.index)] for p in result.predictions])
    idx = np.array([[c.index for c in sorted(p.top, key=lambda c: c.index)] for p in result.predictions])
    atol = 1e-5 if artifact in ("savedmodel", "tflite_float32", "onnx_float32") else 0.05
    np.testing.assert_allclose(got, np.take_along_axis(ref, idx, axis=1), atol=atol)
    if atol < 1e-3:
        assert [p.best.index for p in result.predictions] == list(ref.argmax(axis=1))
    for p in result.predictions:
        assert len(p.top) == 3 and p.top[0].probability >= p.top[1].probability >= p.top[2].probability
        assert [c.name for c in p.top] == [CLASS_NAMES[c.index] for c in p.top]


def test_default_model_is_the_float32_tflite_and_labels_come_from_the_manifest(exported: Path, images: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(exported, root)
    manifest = Manifest.load(root)
    manifest.labels = [f"custom {i}" for i in range(10)]
    manifest.save(root)
    result = predict(PredictConfig(images=(images[1],), artifacts=root, top_k=10))
    assert result.model == root / "model_float32.tflite" and result.runtime == "litert"
    assert result.labels_source == "manifest"
    assert sorted(c.name for c in result.predictions[0].top) == sorted(manifest.labels)
    # The same file outside any artifacts directory: class names from its embedded metadata.
    alone = tmp_path / "elsewhere" / "m.tflite"
    alone.parent.mkdir()
    shutil.copy(root / "model_float32.tflite", alone)
    result = predict(PredictConfig(images=(images[1],), model=alone))
    assert result.labels_source == "metadata" and result.predictions[0].best.name in CLASS_NAMES


def test_invert_flag_and_auto_detection(exported: Path, images: list[Path]) -> None:
    auto = predict(PredictConfig(images=tuple(images), artifacts=exported))
    assert [p.inverted for p in auto.predictions] == [True, False, False]
    forced = predict(PredictConfig(images=tuple(images), artifacts=exported, invert=False))
    assert [p.inverted for p in forced.predictions] == [False, False, False]


def test_top_k_is_capped_at_the_number_of_classes() -> None:
    probs = softmax(np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]]))
    tops = top_k(probs, ["a", "b", "c"], 5)
    assert [[c.name for c in t] for t in tops] == [["b", "c", "a"], ["a", "b", "c"]]  # ties: lower index first
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_missing_tflite_artifact_says_to_export(tiny_artifacts: Path, images: list[Path]) -> None:
    with pytest.raises(ManifestError, match=r"no tflite_float32 artifact \(it lists: savedmodel\).*edgefm export"):
        predict(PredictConfig(images=(images[0],), artifacts=tiny_artifacts))


def test_bad_inputs_raise_clear_errors(exported: Path, images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least one IMAGE"):
        PredictConfig(images=())
    with pytest.raises(ConfigError, match="--top-k must be a positive integer"):
        PredictConfig(images=(images[0],), top_k=0)
    (tmp_path / "x.pt").write_bytes(b"\0" * 64)
    with pytest.raises(UsageError, match=r"unsupported model type '\.pt'"):
        predict(PredictConfig(images=(images[0],), model=tmp_path / "x.pt"))
    with pytest.raises(ModelFileError, match="not a SavedModel directory"):
        predict(PredictConfig(images=(images[0],), model=tmp_path))
    # Images are checked before the model is loaded.
    with pytest.raises(ImageError, match=r"nope\.png does not exist"):
        predict(PredictConfig(images=(tmp_path / "nope.png",), model=tmp_path / "x.pt"))


# -- the command line ------------------------------------------------------------------------


def test_cli_json_lines_batch_many_images(exported: Path, images: list[Path]) -> None:
    proc = invoke_cli("predict", *map(str, images), "--artifacts", str(exported), "--top-k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["image"] for r in rows] == list(map(str, images))
    for r in rows:
        assert r["runtime"] == "litert" and r["class"] in CLASS_NAMES and len(r["top_k"]) == 3
        assert r["top_k"][0]["class"] == r["class"] and 0 < r["probability"] <= 1
    assert [r["inverted"] for r in rows] == [True, False, False]


def test_cli_text_output_onnx_and_no_invert(exported: Path, images: list[Path]) -> None:
    proc = invoke_cli("predict", str(images[0]), "--model", str(exported / "model.onnx"), "--no-invert")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"model: {exported / 'model.onnx'} (onnxruntime; class names from manifest)")
    assert lines[1].startswith(f"{images[0]}: ") and lines[1].endswith("%")
    assert "inverted" not in proc.stdout


def _truncated_tflite(exported: Path) -> bytes:
    return (exported / "model_float32.tflite").read_bytes()[:3000]


BAD_FILES = {
    # id: (file name, content (None: absent), exit status, message)
    "text-as-png": ("text.png", lambda e: b"hello\n", 1, r"text\.png is not an image Pillow can read"),
    "missing-image": ("missing.png", None, 1, r"missing\.png does not exist"),
    "foreign-tflite": ("model.tflite", lambda e: b"\x00" * 200, 1, r"model\.tflite is not a TFLite model"),
    "truncated-tflite": ("model.tflite", _truncated_tflite, 1, r"cannot load .*model\.tflite.*not a valid Flatbuffer"),
    "corrupt-onnx": ("model.onnx", lambda e: b"\x08\x07garbage" * 40, 1, r"model\.onnx is not a valid ONNX protobuf"),
    "unsupported-ext": ("model.h5", lambda e: b"HDF", 2, r"unsupported model type '\.h5'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_cli_bad_files_exit_non_zero_without_traceback(exported: Path, images: list[Path], tmp_path: Path, case: str) -> None:
    name, content, code, message = BAD_FILES[case]
    target = tmp_path / name
    if content is not None:
        target.write_bytes(content(exported))
    args = [str(target)] if name.endswith(".png") else [str(images[1]), "--model", str(target)]
    proc = invoke_cli("predict", *args, "--artifacts", str(exported))
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert re.search(message, " ".join(proc.stderr.split())), proc.stderr


def test_cli_without_export_and_bad_options(tiny_artifacts: Path, images: list[Path], tmp_path: Path) -> None:
    proc = invoke_cli("predict", str(images[0]), "--artifacts", str(tiny_artifacts))
    assert proc.returncode == 1 and "edgefm export" in proc.stderr and "Traceback" not in proc.stderr
    proc = invoke_cli("predict", str(images[0]), "--artifacts", str(tmp_path / "none"))
    assert proc.returncode == 1 and "edgefm train" in proc.stderr
    proc = invoke_cli("predict", str(images[0]), "--top-k", "0")
    assert proc.returncode == 2 and "--top-k must be a positive integer" in proc.stderr
    proc = invoke_cli("predict")
    assert proc.returncode == 2 and "Give at least one IMAGE file" in proc.stderr and "--input NAME=FILE.npy" in proc.stderr
