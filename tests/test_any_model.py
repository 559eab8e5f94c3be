"""Any model in: models edgefm did not train go through export -> verify (native included) -> benchmark -> inspect.

The models are built here and nobody tuned them: a ``keras.applications``
MobileNetV2 (``weights=None``, no download) at 32x32, a two-input model with an
int64 output, a uint8-image Keras model, a regression model without classes, and
a model with a dynamic spatial size. Each is exported to every variant that
converts, with int8 calibrated on the test's own data, and verified in LiteRT,
ONNX Runtime and the native C runners against TensorFlow.

Keras's ``weights=None`` architectures are degenerate at initialisation (every
BatchNormalization keeps moving variance 1 while the activations shrink: the
MobileNetV2 logits are ~1e-11 and identical for every input, so any export
"matches"). The fixture re-estimates the BatchNormalization statistics on the
inputs (one forward pass in training mode with momentum 0) and the test asserts
that the reference outputs really differ between inputs, so a pass is not vacuous.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke_cli

ROWS = 48
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _keras_models(root: Path) -> dict[str, Path]:
    import keras

    # seeded weights: these untrained models' classes are near-ties, so each run must build the same ones
    # (unseeded, one clean-clone run drew a dynamic-size model whose onnx_int8 flipped 2 of 48 top-1s)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    out = {}
    pixels = rng.random((ROWS, 32, 32, 3), dtype=np.float32)
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                         classifier_activation=None)
    for layer in net.layers:  # BatchNormalization statistics of these inputs (see the module docstring)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(pixels, training=True)
    net.save(root / "mobilenet_v2.keras")
    np.savez(root / "mobilenet_v2.npz", **{net.layers[0].name: pixels})  # the signature names inputs after the InputLayer
    np.save(root / "mobilenet_v2_labels.npy", rng.integers(0, 10, ROWS))
    (root / "mobilenet_v2_labels.txt").write_text("".join(f"class{i}\n" for i in range(10)))
    out["mobilenet_v2"] = root / "mobilenet_v2.keras"

    img = keras.Input((16, 16, 3), dtype="uint8", name="photo")
    x = keras.layers.Rescaling(1 / 255)(img)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(4, name="logits")(x)
    uint8 = keras.Model(img, logits)
    uint8.export(str(root / "uint8_image"), format="tf_saved_model", verbose=False)
    np.savez(root / "uint8_image.npz", photo=rng.integers(0, 256, (ROWS, 16, 16, 3), dtype=np.uint8))
    out["uint8_image"] = root / "uint8_image"

    img = keras.Input((None, None, 3), name="frame")
    x = keras.layers.Conv2D(4, 3, activation="relu")(img)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dyn = keras.Model(img, keras.layers.Dense(3)(x))
    dyn.export(str(root / "dynamic_size"), format="tf_saved_model", verbose=False)
    np.savez(root / "dynamic_size.npz", frame=rng.random((ROWS, 20, 24, 3), dtype=np.float32))
    out["dynamic_size"] = root / "dynamic_size"
    return out


def _tf_models(root: Path) -> dict[str, Path]:
    import tensorflow as tf

    rng = np.random.default_rng(1)
    w = tf.constant(rng.normal(size=(12, 3)).astype(np.float32))

    class TwoInputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="a"),
                                      tf.TensorSpec([None, 4], tf.int32, name="b")])
        def serve(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
            value = tf.matmul(tf.concat([a, tf.cast(b, tf.float32) / 10.0], axis=1), w)
            return {"value": value, "ids": tf.argmax(value, axis=1)}  # ids: int64

    class Regression(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(rng.normal(size=(5, 1)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"price": tf.matmul(tf.nn.relu(features), self.w) + 1.0}

    out = {}
    for name, module in (("two_inputs", TwoInputs()), ("regression", Regression())):
        tf.saved_model.save(module, str(root / name), signatures={"serving_default": module.serve})
        out[name] = root / name
    np.savez(root / "two_inputs.npz", a=rng.random((ROWS, 8), dtype=np.float32),
             b=rng.integers(0, 10, (ROWS, 4)).astype(np.int32))
    np.save(root / "regression.npy", rng.random((ROWS, 5), dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    _keras_models(root)
    _tf_models(root)
    return root


def _data(zoo: Path, name: str) -> Path:
    return zoo / f"{name}.npz" if (zoo / f"{name}.npz").exists() else zoo / f"{name}.npy"


@pytest.fixture(scope="module")
def exported(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    """Every small model brought, exported (--keep-going) and verified with the native runners."""
    from export.bring import BringConfig, bring
    from export.config import ExportConfig
    from export.pipeline import run_export
    from runtime_check.verify.check import run_check
    from runtime_check.verify.config import CheckConfig

    out = {}
    for name in ("two_inputs", "uint8_image", "regression", "dynamic_size"):
        art = tmp_path_factory.mktemp(name)
        bring(BringConfig(source=zoo / name, artifacts=art))
        result = run_export(ExportConfig(artifacts=art, data=str(_data(zoo, name)), calibration_samples=32,
                                         keep_going=True))
        report = run_check(CheckConfig(artifacts=art, data=str(_data(zoo, name)), native=True, invariance_samples=2,
                                       batch_size=16))
        out[name] = (art, (result, report))
    return out


EVERY_VARIANT = {"tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8"}


@pytest.mark.parametrize("name", ["two_inputs", "uint8_image", "regression", "dynamic_size"])
def test_every_variant_converts_and_matches_tf_in_every_runtime(exported: dict, name: str) -> None:
    art, (result, report) = exported[name]
    assert set(result.exported) == EVERY_VARIANT, [f.message for f in result.failed]
    rows = {a.name: a for a in report.artifacts}
    assert set(rows) == EVERY_VARIANT | {f"{n}@native" for n in EVERY_VARIANT}
    failed = {n: [m.describe() for m in a.failures] or a.error for n, a in rows.items() if not a.passed}
    assert not failed, failed
    for n in EVERY_VARIANT:  # the C runner gives the binding's numbers exactly, for every dtype here
        assert rows[f"{n}@native"].metric("binding_max_abs_diff").value == 0.0
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["artifacts"]["savedmodel"]["extra"]["brought"] == "savedmodel"
    assert report.inputs["source"] in ("npz", "npy") and report.inputs["count"] == ROWS


def test_the_contract_is_the_models_own(exported: dict) -> None:
    """Names, dtypes and dynamic dimensions come from the signature; integer outputs are compared exactly."""
    art, (_, report) = exported["two_inputs"]
    saved = json.loads((art / "manifest.json").read_text())["artifacts"]["savedmodel"]
    assert [(t["name"], t["dtype"], t["shape"]) for t in saved["inputs"]] == [
        ("a", "float32", [None, 8]), ("b", "int32", [None, 4])]
    assert [(t["name"], t["dtype"]) for t in saved["outputs"]] == [("ids", "int64"), ("value", "float32")]
    row = {a.name: a for a in report.artifacts}["onnx_float32"]
    assert row.metric("ids/exact_match").value == 1.0 and row.metric("ids/exact_match").bound == 1.0
    assert row.metric("max_abs_error").value <= 1e-4  # "value" is the primary (float) output
    uint8 = json.loads((exported["uint8_image"][0] / "manifest.json").read_text())
    assert uint8["artifacts"]["savedmodel"]["inputs"][0]["dtype"] == "uint8"
    assert uint8["preprocessing"]["photo"]["dtype"] == "uint8" and uint8["preprocessing"]["photo"]["size"] == [16, 16]
    dyn = json.loads((exported["dynamic_size"][0] / "manifest.json").read_text())
    assert dyn["artifacts"]["savedmodel"]["inputs"][0]["shape"] == [None, None, None, 3]
    assert dyn["preprocessing"] == {}  # no fixed size: images need --preprocess size=H,W
    reg = {a.name: a for a in exported["regression"][1][1].artifacts}["tflite_float32"]
    assert "top1_agreement" not in {m.name for m in reg.metrics}  # a regression output has no classes


def test_reference_outputs_are_not_degenerate(exported: dict) -> None:
    """Each model's reference differs between inputs, so its parity says something."""
    for name, (art, _) in exported.items():
        with np.load(art / "reference-outputs.npz") as ref:
            floats = [ref[k] for k in ref.files if ref[k].dtype.kind == "f" and k.startswith("out_")]  # not b1_
            assert floats and max(float(np.std(v, axis=0).max()) for v in floats) > 1e-3, name


@pytest.mark.slow
def test_keras_model_walkthrough_with_the_readme_commands(zoo: Path, tmp_path: Path) -> None:
    """The README's "Your own model": a saved Keras MobileNetV2 through export, verify --native, benchmark, inspect."""
    art = tmp_path / "mobilenet"
    data, labels = zoo / "mobilenet_v2.npz", zoo / "mobilenet_v2_labels.npy"
    res = invoke_cli("export", "--keras", str(zoo / "mobilenet_v2.keras"), "--labels", str(zoo / "mobilenet_v2_labels.txt"),
                     "--data", str(data), "--calibration-samples", "32", "--artifacts", str(art))
    assert res.returncode == 0, res.stderr
    assert "tflite_int8" in res.stdout and "onnx_int8" in res.stdout
    assert f"calibrating int8 on 32 npz samples ({data})" in res.stderr
    res = invoke_cli("verify", "--artifacts", str(art), "--data", str(data), "--labels-data", str(labels), "--native",
                     "--samples", "32", "--json")
    report = json.loads(res.stdout)
    rows = report["artifacts"]
    failed = {n: a.get("error") or [m for m, v in a["metrics"].items() if not v["passed"]] for n, a in rows.items()
              if not a["passed"]}
    # Every variant ran in every runtime, and the C runners gave their bindings' numbers exactly. float32 passes;
    # the reduced-precision variants of this untrained network may not (measured: after the BatchNormalization
    # re-estimate its activations span a range where float16 flips ~5% of the top-1 classes and int8 ~55%),
    # and when one does not, verify must say so with exit 1.
    assert all(a.get("error") is None for a in rows.values()), failed
    assert all(rows[f"{n}@native"]["metrics"]["binding_max_abs_diff"]["value"] == 0 for n in EVERY_VARIANT)
    assert not {n for n in failed if n.split("@")[0] in ("tflite_float32", "onnx_float32")}, failed
    assert res.returncode == (1 if failed else 0), res.stderr
    assert len(report["artifacts"]) == 12 and report["class_names"] == [f"class{i}" for i in range(10)]
    assert "accuracy" in report["artifacts"]["tflite_float32"]["metrics"]  # labels given: accuracy reported
    with np.load(art / "reference-outputs.npz") as ref:  # the cache keeps outputs by index (reference_cache.py)
        assert float(np.std(ref["out_0"], axis=0).max()) > 1e-2  # not a degenerate network
    res = invoke_cli("benchmark", "--model", str(art / "model_int8.tflite"), "--runs", "3", "--batch-sizes", "1")
    assert res.returncode == 0, res.stderr
    res = invoke_cli("inspect", str(art / "model_int8.onnx"))
    assert res.returncode == 0 and "input_layer" in res.stdout, res.stderr


# -- bad input: a clear message, a non-zero exit, nothing half-written -------------------------------


def test_unsupported_dtype_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    import tensorflow as tf

    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"n": tf.strings.length(text)}

    m = Strings()
    tf.saved_model.save(m, str(tmp_path / "strings"), signatures={"serving_default": m.serve})
    res = invoke_cli("export", "--saved-model", str(tmp_path / "strings"), "--artifacts", str(tmp_path / "art"))
    assert res.returncode == 1 and "input 'text' is string" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "art").exists()


def test_data_that_does_not_fit_the_signature(exported: dict, zoo: Path, tmp_path: Path) -> None:
    art = exported["two_inputs"][0]
    np.savez(tmp_path / "missing.npz", a=np.zeros((4, 8), np.float32))
    np.savez(tmp_path / "shape.npz", a=np.zeros((4, 7), np.float32), b=np.zeros((4, 4), np.int32))
    np.savez(tmp_path / "dtype.npz", a=np.zeros((4, 8), np.float64), b=np.zeros((4, 4), np.int32))
    np.save(tmp_path / "few_labels.npy", np.zeros(3, np.int64))
    cases = {
        "missing.npz": "has no array named 'b'",
        "shape.npz": "array 'a' has shape [4, 7], the model's input is float32 [N, 8]",
        "dtype.npz": "array 'a' is float64, the model's input is float32",
    }
    before = sorted(p.name for p in art.iterdir())
    for file, words in cases.items():
        res = invoke_cli("verify", "--artifacts", str(art), "--data", str(tmp_path / file), "--no-html")
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, (file, res.stderr)
    res = invoke_cli("verify", "--artifacts", str(art), "--data", str(_data(zoo, "two_inputs")), "--samples", "4",
                     "--labels-data", str(tmp_path / "few_labels.npy"), "--no-html")
    assert res.returncode == 2 and "has 3 labels for 4 rows" in res.stderr, res.stderr
    assert sorted(p.name for p in art.iterdir()) == before  # no report was written for a run that could not start


def test_unconvertible_op_names_the_op_and_keep_going_writes_what_converts(tmp_path: Path) -> None:
    import tensorflow as tf

    class Inverse(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.linalg.inv(x + 3 * tf.eye(3))}

    m = Inverse()
    tf.saved_model.save(m, str(tmp_path / "inverse"), signatures={"serving_default": m.serve})
    art = tmp_path / "art"
    res = invoke_cli("export", "--saved-model", str(tmp_path / "inverse"), "--artifacts", str(art), "--format", "tflite",
                     "--quantize", "none")
    assert res.returncode == 1 and "'tf.MatrixInverse' op is neither a custom op nor a flex op" in res.stderr, res.stderr
    assert "Nothing was written" in res.stderr
    # issue 29: the failed conversion undoes the bringing too (it left a manifest and the SavedModel before)
    assert not art.exists()
    res = invoke_cli("export", "--saved-model", str(tmp_path / "inverse"), "--artifacts", str(art), "--keep-going",
                     "--data", "synthetic", "--json")
    assert res.returncode == 1 and "No variant converted" in res.stderr and "MatrixInverse" in res.stderr


def test_one_shot_comparison_and_saved_outputs(exported: dict, zoo: Path, tmp_path: Path) -> None:
    """Files edgefm did not write, judged without a manifest; the reference saved once, judged later without TF."""
    from runtime_check.verify.check import run_check
    from runtime_check.verify.config import CheckConfig

    art = exported["two_inputs"][0]
    data = str(_data(zoo, "two_inputs"))
    golden = tmp_path / "golden.npz"
    first = run_check(CheckConfig(reference=art / "saved_model", models=(art / "model.onnx", art / "model_int8.tflite"),
                                  data=data, report=tmp_path / "one-shot.json", save_outputs=golden, invariance_samples=2))
    assert first.passed, first.summary()
    assert {a.name: a.quantization for a in first.artifacts} == {"model": "none", "model_int8": "int8"}  # from metadata
    assert first.reference["cache"]["status"] == "computed" and golden.is_file()
    assert not (art / "verify-report.json").exists() or (tmp_path / "one-shot.json").is_file()
    later = run_check(CheckConfig(reference=art / "saved_model", models=(art / "model.onnx",), data=data,
                                  report=tmp_path / "later.json", load_outputs=golden, invariance_samples=2))
    assert later.passed and later.reference["cache"]["status"] == "loaded"
    res = invoke_cli("verify", "--reference", str(art / "saved_model"), "--model", str(art / "model.onnx"), "--data", data,
                     "--samples", "8", "--load-outputs", str(golden), "--report", str(tmp_path / "bad.json"), "--no-html")
    assert res.returncode == 2 and "was saved for other inputs" in res.stderr, res.stderr
    assert not (tmp_path / "bad.json").exists()


def test_predict_any_image_classifier_and_arrays(exported: dict, tmp_path: Path) -> None:
    from PIL import Image

    from runtime_check.tools.predict import PredictConfig, predict, run_arrays

    art = exported["uint8_image"][0]
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    result = predict(PredictConfig(images=(tmp_path / "p.png",), artifacts=art, top_k=4))
    [pred] = result.predictions
    assert [c.name for c in pred.top] and sorted(c.index for c in pred.top) == [0, 1, 2, 3]  # the model's 4 classes
    assert abs(sum(c.probability for c in pred.top) - 1) < 1e-5 and pred.original_size == (50, 40)
    two = exported["two_inputs"][0]
    np.save(tmp_path / "a.npy", np.ones((3, 8), np.float32))
    np.save(tmp_path / "b.npy", np.ones((3, 4), np.int32))
    out = run_arrays(two / "model_float32.tflite", {"a": tmp_path / "a.npy", "b": tmp_path / "b.npy"})
    assert out["ids"].dtype == np.int64 and out["value"].shape == (3, 3)
    assert np.array_equal(out["ids"], out["value"].argmax(axis=1))


def test_keep_going_writes_the_variants_that_convert(tmp_path: Path) -> None:
    """tf.math.cumprod has no TFLite builtin (measured: the converter asks for Flex) but converts to ONNX."""
    import tensorflow as tf

    class CumProd(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.math.cumprod(x, axis=1)}

    m = CumProd()
    tf.saved_model.save(m, str(tmp_path / "cumprod"), signatures={"serving_default": m.serve})
    art = tmp_path / "art"
    res = invoke_cli("export", "--saved-model", str(tmp_path / "cumprod"), "--artifacts", str(art), "--keep-going",
                     "--data", "synthetic", "--json")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "4 variants did not convert (--keep-going wrote the others)" in res.stderr and "Cumprod" in res.stderr
    out = json.loads(res.stdout)
    assert set(out["exported"]) == {"onnx_float32", "onnx_int8"} and set(out["failed"]) == {
        "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"}
    manifest = json.loads((art / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"savedmodel", "onnx_float32", "onnx_int8"}
    assert (art / "model.onnx").is_file() and not list(art.glob("*.tflite"))


def test_inspect_reads_each_variants_quantization_from_the_file(exported: dict) -> None:
    """What ``verify --model`` of a foreign file and ``inspect`` rely on: the ops and tensors say the quantization."""
    from runtime_check.tools.inspect_model import inspect_model

    art = exported["uint8_image"][0]
    manifest = json.loads((art / "manifest.json").read_text())
    for name, entry in manifest["artifacts"].items():
        if entry["format"] not in ("tflite", "onnx"):
            continue
        found = inspect_model(art / entry["path"]).quantization
        if entry["quantization"] == "dynamic":
            # the dynamic-range quantizer keeps weights of fewer than 1,024 elements in float (TFLite's quantize_weights
            # weights_min_num_elements default; measured: this model's 108-element kernel stays float32), so a tiny model's
            # "dynamic" file holds no int8 tensor and reads as float
            assert found in ("dynamic", "none"), name
        else:
            assert found == entry["quantization"], name
