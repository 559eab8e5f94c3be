"""Library error paths: each a clear message, and nothing written when an export fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefm.core.errors import ConfigError, DatasetError, ExportError, ManifestError, ModelFileError
from edgefm.core.manifest import Artifact, Manifest, TensorSpec
from export.config import ExportConfig
from export.pipeline import converter_reason, export
from export.variants import plan

from export_helpers import bucketize_model, copy_artifacts, export_config, snapshot, write_manifest_with_model


@pytest.fixture
def artifacts(tiny_artifacts: Path, tmp_path: Path) -> Path:
    return copy_artifacts(tiny_artifacts, tmp_path / "artifacts")


@pytest.fixture(scope="module")
def bucketize_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bucketize") / "artifacts"
    root.mkdir()
    write_manifest_with_model(root, bucketize_model())
    return root


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"format": "tiff"}, "--format: unknown value 'tiff'; choose one of tflite, onnx, all"),
        ({"quantize": "int4"}, "--quantize: unknown value 'int4'; choose one of none, float16, dynamic, int8, all"),
        ({"opset": 9}, "--opset must be between 13 and 18"),
        ({"calibration_samples": 0}, "--calibration-samples must be a positive integer"),
    ],
)
def test_bad_options_are_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExportConfig(**kw)  # type: ignore[arg-type]


def test_a_request_without_any_variant_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--format onnx --quantize float16: there is no such variant.*none, int8"):
        plan(ExportConfig(format="onnx", quantize="float16"))  # type: ignore[arg-type]


def test_int8_io_needs_the_int8_tflite_variant() -> None:
    with pytest.raises(ConfigError, match="--int8-io applies to the full-integer TFLite model"):
        plan(ExportConfig(format="onnx", quantize="int8", int8_io=True))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--int8-io"):
        plan(ExportConfig(format="tflite", quantize="float16", int8_io=True))  # type: ignore[arg-type]


# -- the SavedModel ----------------------------------------------------------------------------


def test_manifest_without_savedmodel(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    manifest = Manifest.load(artifacts)
    del manifest.artifacts["savedmodel"]
    with pytest.raises(ManifestError, match=r"records no SavedModel.*edgefm train --artifacts"):
        export(manifest, export_config(artifacts, tiny_data_session[0], quantize="none"))


def test_savedmodel_missing_on_disk(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    shutil.rmtree(artifacts / "saved_model")
    with pytest.raises(ModelFileError, match=r"No SavedModel at .*saved_model \(no saved_model.pb\)"):
        export(Manifest.load(artifacts), export_config(artifacts, tiny_data_session[0], quantize="none"))


def test_savedmodel_changed_since_the_manifest(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    (artifacts / "saved_model" / "assets").mkdir(exist_ok=True)
    (artifacts / "saved_model" / "assets" / "extra.txt").write_text("changed")
    with pytest.raises(ManifestError, match="changed since .*manifest.json was written"):
        export(Manifest.load(artifacts), export_config(artifacts, tiny_data_session[0], quantize="none"))


def _describe_savedmodel(root: Path, manifest: Manifest | None = None) -> Manifest:
    """Record root/saved_model as it is on disk, so only the property under test is wrong."""
    manifest = manifest or Manifest(model="mlp", labels=["a"] * 10)
    manifest.artifacts["savedmodel"] = Artifact.describe(
        root, root / "saved_model", format="savedmodel", quantization="none", inputs=[], outputs=[]
    )
    return manifest


def test_savedmodel_without_serving_signature(tmp_path: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    import tensorflow as tf

    from edgefm.train.model import MLP

    model = MLP(hidden_units=4, seed=0)
    tf.saved_model.save(model, str(tmp_path / "saved_model"), signatures={"labels": model.labels})
    manifest = _describe_savedmodel(tmp_path)
    with pytest.raises(ModelFileError, match=r"has no 'serving_default' signature \(found: labels\)"):
        export(manifest, export_config(tmp_path, tiny_data_session[0], quantize="none"))


def test_savedmodel_unlike_the_recorded_signature(tmp_path: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    """The manifest records images -> logits/probabilities; the SavedModel on disk takes pixels -> scores."""
    import tensorflow as tf

    class Flat(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="pixels")])
        def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": pixels[:, :10]}

    m = Flat()
    tf.saved_model.save(m, str(tmp_path / "saved_model"), signatures={"serving_default": m.serve})
    manifest = _describe_savedmodel(tmp_path)
    manifest.artifacts["savedmodel"].inputs = [TensorSpec("images", "float32", [None, 28, 28])]
    manifest.artifacts["savedmodel"].outputs = [TensorSpec("logits", "float32", [None, 10])]
    with pytest.raises(ModelFileError, match=r"is not the one the manifest records: inputs pixels float32 \[None, 784\] "
                                             r"and outputs scores float32 \[None, 10\], recorded inputs images"):
        export(manifest, export_config(tmp_path, tiny_data_session[0], quantize="none"))


def test_corrupt_savedmodel(artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    (artifacts / "saved_model" / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    manifest = _describe_savedmodel(artifacts, Manifest.load(artifacts))
    with pytest.raises(ModelFileError, match="TensorFlow cannot load the SavedModel"):
        export(manifest, export_config(artifacts, tiny_data_session[0], quantize="none"))


# -- nothing half-written ----------------------------------------------------------------------


def test_converter_failure_midway_leaves_previous_artifacts_and_manifest(
    bucketize_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root = copy_artifacts(bucketize_artifacts, tmp_path / "artifacts")
    # A previous, successful export of one variant...
    previous = export(Manifest.load(root), export_config(root, tiny_data_session[0], format="tflite", quantize="none"))
    assert set(previous.deployable()) == {"tflite_float32"}
    before = snapshot(root)
    # ...then every variant: the four TFLite ones convert, ONNX fails on Bucketize.
    with pytest.raises(ExportError, match=r"onnx_float32 failed \(ValidationError\): No Op registered for Bucketize"
                                          r".*Nothing was written"):
        export(Manifest.load(root), export_config(root, tiny_data_session[0]))
    assert snapshot(root) == before  # same files, same bytes, no temporary files left behind
    assert set(Manifest.load(root).deployable()) == {"tflite_float32"}


def test_missing_calibration_data_fails_before_converting(
    artifacts: Path, tmp_path: Path
) -> None:
    before = snapshot(artifacts)
    with pytest.raises(DatasetError, match="does not exist"):
        export(Manifest.load(artifacts), export_config(artifacts, tmp_path / "no-data", format="tflite"))
    assert snapshot(artifacts) == before


def test_converter_reason_keeps_the_actionable_part() -> None:
    mlir = RuntimeError(
        'Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(fused["Erf:", "Erf@f"] at '
        'fused["S:", "S_1"])): \'tf.Erf\' op is neither a custom op nor a flex op\n'
        "<unknown>:0: error: failed while converting: 'main': \n"
    )
    assert converter_reason(mlir, "TF Select ops: Erf\n") == (
        "'tf.Erf' op is neither a custom op nor a flex op; TF Select ops: Erf"
    )
    assert converter_reason(ValueError("plain message\nsecond line")) == "plain message"
