"""Real models, second pass: the files, layers and mistakes a new user brings (issue 29).

Each model is built here (no download), small, once per module, and run in the real
runtimes: TensorFlow, LiteRT, ONNX Runtime and the native C runners.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

ROWS = 16
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- a .tflite without SignatureDefs -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_signature(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SavedModel with two outputs, and the same function converted without a SignatureDef."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("nosig")
    rng = np.random.default_rng(0)

    class TwoOutputs(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            logits = tf.matmul(features, self.w)
            return {"logits": logits, "score": tf.reduce_sum(logits, axis=1, keepdims=True)}

    module = TwoOutputs()
    tf.saved_model.save(module, str(root / "saved_model"), signatures={"serving_default": module.serve})
    # from_concrete_functions without the trackable object writes no SignatureDef (get_signature_list() == {})
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()])
    (root / "nosig.tflite").write_bytes(converter.convert())
    np.save(root / "x.npy", rng.random((ROWS, 6), dtype=np.float32))
    return root


def test_no_signature_file_has_none(no_signature: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=str(no_signature / "nosig.tflite")).get_signature_list() == {}


def test_no_signature_verify_matches_by_position_and_shape(no_signature: Path) -> None:
    """verify (binding and native runner) pairs Identity/Identity_1 with logits/score and says so."""
    res = run_cli("verify", "--reference", str(no_signature / "saved_model"), "--model", str(no_signature / "nosig.tflite"),
                  "--data", str(no_signature / "x.npy"), "--native", "--no-html",
                  "--report", str(no_signature / "report.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Identity -> logits, Identity_1 -> score" in res.stdout
    report = json.loads((no_signature / "report.json").read_text())
    rows = report["artifacts"]
    assert set(rows) == {"nosig", "nosig@native"}
    for row in rows.values():
        assert row["passed"], row
        assert "matched by position and shape" in row["metrics"]["io_names"]["detail"]
        assert "score/cosine" in row["metrics"]  # the second output was compared, not dropped
    assert rows["nosig@native"]["metrics"]["binding_max_abs_diff"]["value"] == 0


def test_no_signature_predict_benchmark_inspect(no_signature: Path) -> None:
    model = str(no_signature / "nosig.tflite")
    res = run_cli("inspect", model)
    assert res.returncode == 0, res.stderr
    assert "Identity_1" in res.stdout and "signature_defs: 0" in res.stdout
    res = run_cli("predict", "--model", model, "--input", f"features={no_signature / 'x.npy'}",
                  "--save-outputs", str(no_signature / "out.npz"))
    assert res.returncode == 0, res.stderr
    import tensorflow as tf

    ref = tf.saved_model.load(str(no_signature / "saved_model")).signatures["serving_default"](
        features=tf.constant(np.load(no_signature / "x.npy")))
    with np.load(no_signature / "out.npz") as out:
        np.testing.assert_allclose(out["Identity"], ref["logits"].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["Identity_1"], ref["score"].numpy(), rtol=1e-5, atol=1e-4)
    res = run_cli("benchmark", "--model", model, "--runs", "3", "--batch-sizes", "1")
    assert res.returncode == 0, res.stderr
    assert "nosig.tflite" in res.stdout


def test_match_tensors_pairs_by_name_then_shape() -> None:
    from edgefm.core.manifest import TensorSpec
    from runtime_check.runtimes.base import match_tensors

    ref = [TensorSpec("logits", "float32", [None, 4]), TensorSpec("score", "float32", [None, 1])]
    same, how = match_tensors(ref, ref)
    assert same == {"logits": "logits", "score": "score"} and how == ""
    # the file lists the [N, 1] output first: shape decides, not position alone
    pairs, how = match_tensors([TensorSpec("Identity", "float32", [None, 1]), TensorSpec("Identity_1", "float32", [None, 4])], ref)
    assert pairs == {"Identity": "score", "Identity_1": "logits"} and "position and shape" in how
    pairs, _ = match_tensors([TensorSpec("Identity", "float32", [None, 7])], ref)
    assert pairs == {}  # nothing fits: the caller's name check reports the difference


# -- a SavedModel with signatures but no serving_default ----------------------------------------------------------

@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf

    class EncodeDecode(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def encode(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"code": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="code")])
        def decode(self, code: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": code / 2.0}

    root = tmp_path_factory.mktemp("twosig") / "encdec"
    module = EncodeDecode()
    tf.saved_model.save(module, str(root), signatures={"encode": module.encode, "decode": module.decode})
    return root


def test_inspect_lists_signatures_without_serving_default(two_signatures: Path) -> None:
    res = run_cli("inspect", str(two_signatures))
    assert res.returncode == 0, res.stderr
    assert "encode: (x float32 [N, 3]) -> code float32 [N, 3]" in res.stdout
    assert "decode: (code float32 [N, 3]) -> y float32 [N, 3]" in res.stdout
    assert f"edgefm export --saved-model {two_signatures} --signature NAME" in res.stdout
    assert "edgefm train" not in res.stdout + res.stderr


def test_export_without_serving_default_names_signature(two_signatures: Path, tmp_path: Path) -> None:
    res = run_cli("export", "--saved-model", str(two_signatures), "--artifacts", str(tmp_path / "art"), "--format", "tflite",
                  "--quantize", "none")
    assert res.returncode != 0
    assert "Pass --signature with one of them" in res.stderr and "encode" in res.stderr
    assert not (tmp_path / "art").exists()
    res = run_cli("export", "--saved-model", str(two_signatures), "--signature", "encode", "--artifacts", str(tmp_path / "art"),
                  "--format", "tflite", "--quantize", "none", "--no-verify")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "art" / "model_float32.tflite").is_file()


# -- a variable-length LSTM (TensorListReserve in TFLite) ---------------------------------------------------------

@pytest.fixture(scope="module")
def lstm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras BiLSTM over sequences of any length: TFLite cannot lower its tensor lists unless the length is pinned."""
    import keras

    root = tmp_path_factory.mktemp("lstm")
    keras.utils.set_random_seed(0)
    seq = keras.Input((None, 8), name="seq")
    x = keras.layers.Bidirectional(keras.layers.LSTM(4))(seq)
    keras.Model(seq, keras.layers.Dense(3)(x)).save(root / "lstm.keras")
    np.save(root / "seq.npy", np.random.default_rng(0).random((ROWS, 40, 8), dtype=np.float32))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_failed_export_leaves_artifacts_as_they_were(lstm: Path, no_signature: Path, tmp_path: Path) -> None:
    """A conversion that fails after the model was brought undoes the bringing; the corrected command needs no --force."""
    art = tmp_path / "art"
    res = run_cli("export", "--saved-model", str(no_signature / "saved_model"), "--artifacts", str(art), "--format", "onnx",
                  "--quantize", "none", "--data", str(no_signature / "x.npy"))
    assert res.returncode == 0, res.stderr
    before = _tree(art)
    args = ("export", "--keras", str(lstm / "lstm.keras"), "--format", "tflite", "--quantize", "none",
            "--data", str(lstm / "seq.npy"))
    res = run_cli(*args, "--artifacts", str(art), "--force")
    assert res.returncode == 1, res.stderr
    assert "TensorListReserve" in res.stderr and "Nothing was written" in res.stderr
    assert _tree(art) == before  # the other model's SavedModel and manifest, byte for byte, and nothing else

    fresh = tmp_path / "fresh"
    res = run_cli(*args, "--artifacts", str(fresh))
    assert res.returncode == 1 and not fresh.exists()
    res = run_cli("export", "--keras", str(lstm / "lstm.keras"), "--format", "onnx", "--quantize", "none",
                  "--data", str(lstm / "seq.npy"), "--artifacts", str(fresh))  # corrected: no --force needed
    assert res.returncode == 0, res.stderr
    assert (fresh / "model.onnx").is_file()
    # a sequence of any length: synthetic inputs cannot size it, benchmark --data can
    res = run_cli("benchmark", "--model", str(fresh / "model.onnx"), "--runs", "3", "--batch-sizes", "1,4")
    assert res.returncode == 1 and "Pass --data with real inputs" in res.stderr, res.stderr
    res = run_cli("benchmark", "--model", str(fresh / "model.onnx"), "--runs", "3", "--batch-sizes", "1,4",
                  "--data", str(lstm / "seq.npy"), "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)["results"][0]
    assert result["error"] is None and [s["batch_size"] for s in result["latency"]] == [1, 4]


# -- a model that scales its own pixels ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def self_rescaling(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """keras.applications EfficientNetB0 (weights=None; Rescaling then Normalization take the input) and PNGs.

    Its BatchNormalization statistics are re-estimated on 0-255 pixels (one training-mode pass
    with momentum 0, as tests/test_any_model.py does) so classes depend on the input. Returns the
    directory, Keras's classes of the images as 0-255 values, and as values scaled by 1/255.
    """
    import keras
    from PIL import Image

    root = tmp_path_factory.mktemp("effnet")
    keras.utils.set_random_seed(0)
    net = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=4, classifier_activation=None)
    pixels = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(pixels, training=True)
    net.save(root / "effnet.keras")
    for i in range(6):
        Image.fromarray(pixels[i].astype(np.uint8)).save(root / f"img{i}.png")
    raw = net.predict(pixels[:6], verbose=0).argmax(axis=1)
    scaled = net.predict(pixels[:6] / 255, verbose=0).argmax(axis=1)
    return root, raw, scaled


def test_self_rescaling_model_predicts_as_keras(self_rescaling: tuple[Path, np.ndarray, np.ndarray]) -> None:
    """export records scale=1 for a model whose first layer rescales, says so, and predict gives Keras's class."""
    root, raw, scaled = self_rescaling
    assert (raw != scaled).any(), "the scale must change some class, or this test shows nothing"
    art = root / "art"
    res = run_cli("export", "--keras", str(root / "effnet.keras"), "--artifacts", str(art), "--format", "tflite",
                  "--quantize", "none")
    assert res.returncode == 0, res.stderr
    # the layer is 'rescaling', or 'rescaling_N' in a process that built other Keras models first (pytest-xdist)
    assert re.search(r"the model scales its own pixels \(its layer 'rescaling(_\d+)?' takes the input\)", res.stderr), res.stderr
    assert "--preprocess scale=1/255" in res.stderr
    manifest = json.loads((art / "manifest.json").read_text())
    assert next(iter(manifest["preprocessing"].values()))["scale"] == 1.0
    images = [str(root / f"img{i}.png") for i in range(len(raw))]
    res = run_cli("predict", *images, "--artifacts", str(art), "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]  # one JSON object per image
    assert [r["index"] for r in rows] == raw.tolist()


# -- a .keras file with a custom layer ----------------------------------------------------------------------------

SWISH_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="rm_test")
class ScaledSwish(keras.layers.Layer):
    def __init__(self, alpha=1.5, **kw):
        super().__init__(**kw)
        self.alpha = alpha

    def call(self, x):
        return self.alpha * x * keras.ops.sigmoid(x)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
'''


@pytest.fixture(scope="module")
def custom_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .keras file using ``ScaledSwish`` from the user's module ``rm_swish`` (not importable from the repo)."""
    import importlib
    import sys

    import keras

    root = tmp_path_factory.mktemp("custom")
    (root / "rm_swish.py").write_text(SWISH_MODULE)
    sys.path.insert(0, str(root))
    try:
        swish = importlib.import_module("rm_swish")
        keras.utils.set_random_seed(0)
        x = keras.Input((5,), name="features")
        keras.Model(x, keras.layers.Dense(3)(swish.ScaledSwish()(keras.layers.Dense(4)(x)))).save(root / "custom.keras")
    finally:
        sys.path.remove(str(root))
    np.save(root / "features.npy", np.random.default_rng(0).random((ROWS, 5), dtype=np.float32))
    return root


def test_import_brings_custom_layers(custom_layer: Path, tmp_path: Path) -> None:
    args = ("export", "--keras", str(custom_layer / "custom.keras"), "--artifacts", str(tmp_path / "art"), "--format", "tflite",
            "--quantize", "none", "--data", str(custom_layer / "features.npy"))
    res = run_cli(*args)
    assert res.returncode == 1, res.stderr
    assert "the custom class 'ScaledSwish' (saved from the module 'rm_swish')" in res.stderr
    assert "Pass --import rm_swish" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "art").exists()
    res = run_cli(*args, "--import", "rm_swish", env={"PYTHONPATH": str(custom_layer)})
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "art" / "model_float32.tflite").is_file()
    res = run_cli("inspect", str(tmp_path / "art" / "model_float32.tflite"), "--import", "rm_no_such_module")
    assert res.returncode == 2
    assert "--import rm_no_such_module: importing it failed (ModuleNotFoundError" in res.stderr


def test_missing_class_advice_without_module() -> None:
    from edgefm.core.usermodules import missing_class_advice

    assert missing_class_advice("Could not locate function 'my_loss'. Make sure ...").startswith(
        "it uses the custom class 'my_loss', which")
    assert missing_class_advice("some other error") is None


# -- an output whose shape is computed at run time ---------------------------------------------------------------

@pytest.fixture(scope="module")
def runtime_shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detection-like head ending in Keras Reshape((-1, 6)): TFLite computes the output shape from the batch
    (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE), so the output tensor is dynamic in LiteRT."""
    import keras

    root = tmp_path_factory.mktemp("reshape")
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    boxes = keras.layers.Reshape((-1, 6))(keras.layers.Conv2D(6, 3, padding="same")(image))
    keras.Model(image, boxes).export(str(root / "saved_model"), format="tf_saved_model", verbose=False)
    np.save(root / "image.npy", np.random.default_rng(0).random((ROWS, 8, 8, 3), dtype=np.float32))
    res = run_cli("export", "--saved-model", str(root / "saved_model"), "--artifacts", str(root / "art"), "--format", "tflite",
                  "--quantize", "none", "--data", str(root / "image.npy"))
    assert res.returncode == 0, res.stderr
    return root


def test_runtime_shaped_output_is_never_read_as_zeros(runtime_shaped: Path) -> None:
    """LiteRT's C API leaves such an output unwritten: the native row says so instead of comparing zeros."""
    from edgefm.formats.tflite_file import tflite_op_counts
    from runtime_check.verify.check import run_check
    from runtime_check.verify.config import CheckConfig

    art = runtime_shaped / "art"
    assert {"SHAPE", "RESHAPE"} <= set(tflite_op_counts(art / "model_float32.tflite"))
    report = run_check(CheckConfig(artifacts=art, data=str(runtime_shaped / "image.npy"), native=True, html=None,
                                   devices=("qemu-aarch64:cortex-a72",)))  # the emulated Arm board runs the same runner
    rows = {r.name: r for r in report.artifacts}
    assert rows["tflite_float32"].passed  # the Python binding reads the dynamic tensor
    for place in ("tflite_float32@native", "tflite_float32@aarch64-cortex-a72"):
        row = rows[place]
        assert not row.passed and row.error is not None, place
        assert "did not write output 'output_0'" in row.error and "computed at run time" in row.error, row.error
        assert not any(m.name.endswith("cosine") for m in row.metrics)  # no numbers were compared


def test_keep_going_says_each_cause_once(lstm: Path, tmp_path: Path) -> None:
    """Four TFLite variants failing alike make one line of the summary, not the converter's text four times."""
    import tempfile

    res = run_cli("export", "--keras", str(lstm / "lstm.keras"), "--artifacts", str(tmp_path / "art"), "--keep-going",
                  "--data", str(lstm / "seq.npy"))
    assert res.returncode == 1, res.stderr
    final = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(final) == 1, res.stderr
    assert ("TFLite: 4 variants (tflite_float32, tflite_float16, tflite_dynamic, tflite_int8) failed on a dynamic "
            "sequence length") in final[0]
    assert final[0].count("element_shape to be static") == 1 and final[0].endswith("written: onnx_float32, onnx_int8.")
    assert len(final[0]) < 400, final[0]
    assert res.stderr.count("element_shape to be static") == 2  # the first variant's note and the summary
    assert "failed tflite_int8: as tflite_float32 did" in res.stderr
    assert tempfile.gettempdir() + "/tmp" not in res.stderr


def test_benchmark_model_native_and_predict_arrays_from_artifacts(runtime_shaped: Path, no_signature: Path) -> None:
    """`benchmark --model F --native` times F in its C runner too; `predict --input` takes the artifacts' model."""
    res = run_cli("benchmark", "--model", str(no_signature / "nosig.tflite"), "--native", "--runs", "3", "--batch-sizes", "1",
                  "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)["results"]}
    assert set(rows) == {"nosig.tflite", "nosig.tflite@native"}
    assert rows["nosig.tflite@native"]["error"] is None and rows["nosig.tflite@native"]["latency"][0]["p50_ms"] > 0
    art = runtime_shaped / "art"
    res = run_cli("predict", "--artifacts", str(art), "--input", f"image={runtime_shaped / 'image.npy'}",
                  "--save-outputs", str(runtime_shaped / "out.npz"))
    assert res.returncode == 0, res.stderr
    with np.load(runtime_shaped / "out.npz") as out:
        assert out["output_0"].shape == (ROWS, 64, 6) and np.abs(out["output_0"]).max() > 0
