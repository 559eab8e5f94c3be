"""Any model in: the native runners with several inputs and outputs of every dtype.

Tiny models are built here in TensorFlow (a tf.Module whose tf.function is the
serving signature), saved as a SavedModel, converted to .tflite with
``TFLiteConverter.from_saved_model(signature_keys=["serving_default"])`` and to
.onnx with ``tf2onnx.convert.from_function``. Each one runs in the native runner
(a C program, empty environment) and in the runtime's Python binding (LiteRT's
signature runner, an ONNX Runtime InferenceSession) on the same seeded inputs:
the outputs must be bit-identical, dtype included.

Converter facts (TensorFlow 2.21, tf2onnx 1.17), learned here:
- The TFLite converter refuses float16 *arithmetic* ("'tf.Mul' op is neither a custom
  op nor a flex op" for Mul/AddV2 on f16), but float16 *I/O* converts: Cast f16 -> f32,
  compute, Cast back. So the float16 model casts; tf2onnx takes either.
- int16 Mul converts to a builtin TFLite MUL and LiteRT runs it unquantized; int16 Sub
  does not convert (it needs Select ops), so int16 arithmetic here is Mul only.
- Every TFLite signature input and output keeps the name given in the tf.TensorSpec /
  the returned dict; tf2onnx keeps the same names for the graph's inputs and outputs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime_check.native.build import NativeRunner, build_runner
from runtime_check.native.runtime import NativeLiteRTRuntime, NativeOnnxRuntime
from runtime_check.runtimes.litert_runtime import LiteRTRuntime

#: every dtype the runners pass through, in the order the 16-tensor model cycles through them
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
#: the runners' MAX_TENSORS (runner_common.h)
MAX_TENSORS = 16
N = 5  # rows per batch

#: a model: its input signature (tf.TensorSpecs) and its serving function
Model = tuple[list[Any], Callable[..., dict[str, Any]]]


def _tf() -> Any:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _two_in(tf: Any) -> Model:
    sig = [tf.TensorSpec([None, 4], tf.float32, name="x"), tf.TensorSpec([None, 4], tf.int32, name="k")]

    def serve(x: Any, k: Any) -> dict[str, Any]:
        y = x * tf.cast(k, tf.float32) + 0.25
        return {"y": y, "idx": tf.argmax(y, axis=1, output_type=tf.int64), "mask": y > 0.0}

    return sig, serve


def _image(tf: Any) -> Model:
    sig = [tf.TensorSpec([None, 8, 8, 3], tf.uint8, name="pixels")]

    def serve(pixels: Any) -> dict[str, Any]:
        return {"mean": tf.reduce_mean(tf.cast(pixels, tf.float32) / 255.0, axis=[1, 2])}

    return sig, serve


def _half(tf: Any) -> Model:
    sig = [tf.TensorSpec([None, 4], tf.float16, name="h"), tf.TensorSpec([None, 4], tf.int16, name="s")]

    def serve(h: Any, s: Any) -> dict[str, Any]:
        f = tf.cast(h, tf.float32) * 3.0 + 0.5  # float16 arithmetic does not convert to TFLite: cast
        return {"h2": tf.cast(f, tf.float16), "s2": s * tf.constant(3, tf.int16), "f": f}

    return sig, serve


def _many(tf: Any) -> Model:
    """MAX_TENSORS inputs in_00.. cycling through DTYPES, one output out_NN of the same dtype each."""
    dts = [DTYPES[i % len(DTYPES)] for i in range(MAX_TENSORS)]
    sig = [tf.TensorSpec([None, 3], getattr(tf, d), name=f"in_{i:02d}") for i, d in enumerate(dts)]

    def serve(*xs: Any) -> dict[str, Any]:
        out = {}
        for i, (x, d) in enumerate(zip(xs, dts)):
            if d == "bool":
                y = tf.logical_not(x)
            elif d.startswith("float"):
                y = tf.cast(tf.cast(x, tf.float32) * 2.0 - float(i), x.dtype)
            else:  # integer arithmetic on int32, cast back: TFLite has few int8/uint8 kernels without a scale
                y = tf.cast(tf.cast(x, tf.int32) * 2 + i, x.dtype)
            out[f"out_{i:02d}"] = y
        return out

    return sig, serve


MODELS: dict[str, Callable[[Any], Model]] = {"two_in": _two_in, "image": _image, "half": _half, "many": _many}


def _save_and_convert(tf: Any, name: str, builder: Callable[[Any], Model], root: Path) -> None:
    import tf2onnx

    sig, fn = builder(tf)
    module = tf.Module()
    module.serve = tf.function(fn, input_signature=sig)
    saved = root / f"{name}_savedmodel"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve.get_concrete_function()})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
    (root / f"{name}.tflite").write_bytes(conv.convert())
    onnx_model, _ = tf2onnx.convert.from_function(module.serve, input_signature=sig, opset=17)
    (root / f"{name}.onnx").write_bytes(onnx_model.SerializeToString())


def _int16x8(tf: Any, root: Path) -> None:
    """A float model quantized to TFLite's 16x8 mode with int16 I/O (scale, zero point 0)."""
    w = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    module = tf.Module()
    module.serve = tf.function(
        lambda x: {"z": tf.nn.relu(tf.matmul(x, tf.constant(w)))},
        input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")],
    )
    saved = root / "int16x8_savedmodel"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve.get_concrete_function()})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
    rng = np.random.default_rng(2)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    (root / "int16x8.tflite").write_bytes(conv.convert())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf = _tf()
    root = tmp_path_factory.mktemp("any-dtype")
    for name, builder in MODELS.items():
        _save_and_convert(tf, name, builder, root)
    _int16x8(tf, root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native-cache")


@pytest.fixture(scope="module")
def runners(cache: Path) -> dict[str, NativeRunner]:
    return {kind: build_runner(kind, cache=cache) for kind in ("litert", "onnxruntime")}


def _random(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype.startswith("float"):
        return (rng.standard_normal(shape) * 4).astype(dtype)
    info = np.iinfo(dtype)  # int8/uint8 over their whole range: doubling wraps, and both sides must wrap alike
    return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True).astype(dtype)


def _feeds(specs: list[tuple[str, str, tuple[int, ...]]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: _random(dtype, shape, rng) for name, dtype, shape in specs}


def _specs(model: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) of each input, for a batch of N."""
    if model == "two_in":
        return [("x", "float32", (N, 4)), ("k", "int32", (N, 4))]
    if model == "image":
        return [("pixels", "uint8", (N, 8, 8, 3))]
    if model == "half":
        return [("h", "float16", (N, 4)), ("s", "int16", (N, 4))]
    return [(f"in_{i:02d}", DTYPES[i % len(DTYPES)], (N, 3)) for i in range(MAX_TENSORS)]


def _binding(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The runtime's own Python binding on ``feeds``."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds)))
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return {k: np.array(v) for k, v in runner(**feeds).items()}


def _assert_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].dtype == w.dtype, (name, got[name].dtype, w.dtype)
        assert got[name].shape == w.shape, (name, got[name].shape, w.shape)
        # bits, not values: float16 rounding and NaN payloads must match too
        assert got[name].tobytes() == w.tobytes(), name
        assert np.array_equal(got[name], w, equal_nan=w.dtype.kind == "f"), name


NATIVE = {".tflite": NativeLiteRTRuntime, ".onnx": NativeOnnxRuntime}
CASES = [(m, fmt) for m in MODELS for fmt in (".tflite", ".onnx")]


@pytest.mark.parametrize(("model", "fmt"), CASES, ids=[f"{m}{f}" for m, f in CASES])
def test_native_outputs_are_bit_identical_to_the_binding(models: Path, cache: Path, runners: dict, model: str, fmt: str) -> None:
    path = models / f"{model}{fmt}"
    feeds = _feeds(_specs(model), seed=7)
    with NATIVE[fmt](path, cache=cache) as native:
        # what the file declares, dtype for dtype: nothing unquantized is turned into float32
        assert {s.name: s.dtype for s in native.input_specs} == {n: d for n, d, _ in _specs(model)}
        got = native.infer(feeds)
        batched = native.infer_batched(feeds, batch_size=2)  # 2 + 2 + 1 rows, in one runner process
    want = _binding(path, feeds)
    _assert_identical(got, want)
    # against the binding run in the same chunks: ONNX Runtime's ReduceMean of the image model
    # rounds differently for a batch of 1 than for 5 (last bit), in Python and in C alike
    chunks = [_binding(path, {k: v[i : i + 2] for k, v in feeds.items()}) for i in range(0, N, 2)]
    _assert_identical(batched, {k: np.concatenate([c[k] for c in chunks]) for k in want})
    if model == "two_in":
        assert {k: v.dtype.name for k, v in got.items()} == {"y": "float32", "idx": "int64", "mask": "bool"}
    if model == "many":
        assert {k: v.dtype.name for k, v in got.items()} == {f"out_{i:02d}": DTYPES[i % len(DTYPES)] for i in range(MAX_TENSORS)}


def test_litert_python_runtime_keeps_an_unquantized_uint8_input(models: Path) -> None:
    """LiteRTRuntime declared every input float32, so a uint8 image model could not be fed at all."""
    feeds = _feeds(_specs("image"), seed=3)
    with LiteRTRuntime(models / "image.tflite") as rt:
        assert [(s.name, s.dtype) for s in rt.input_specs] == [("pixels", "uint8")]
        assert [(s.name, s.dtype) for s in rt.output_specs] == [("mean", "float32")]
        got = rt.infer(feeds)
    _assert_identical(got, _binding(models / "image.tflite", feeds))
    with LiteRTRuntime(models / "two_in.tflite") as rt:
        assert {s.name: s.dtype for s in rt.output_specs} == {"y": "float32", "idx": "int64", "mask": "bool"}


def test_int16x8_quantized_io_matches_the_python_runtime(models: Path, cache: Path, runners: dict, tmp_path: Path) -> None:
    """TFLite 16x8: the runner quantizes float32 to int16 and dequantizes as LiteRTRuntime does in NumPy."""
    path = models / "int16x8.tflite"
    x = np.random.default_rng(4).standard_normal((N, 4)).astype(np.float32)
    with NativeLiteRTRuntime(path, cache=cache) as native:
        raw_in, raw_out = native.raw_specs()
        assert [(s.dtype, s.zero_point) for s in raw_in + raw_out] == [("int16", 0), ("int16", 0)]
        assert [s.dtype for s in native.input_specs + native.output_specs] == ["float32", "float32"]
        got = native.infer({"x": x})
    with LiteRTRuntime(path) as binding:
        assert binding.raw_specs() == (raw_in, raw_out)
        want = binding.infer({"x": x})
    _assert_identical(got, want)
    np.save(tmp_path / "x.npy", raw_in[0].quantize(x))  # int16 as stored is accepted too; --raw keeps int16 out
    proc = _run(runners["litert"], path, tmp_path, {"x": tmp_path / "x.npy"}, "--raw")
    assert proc.returncode == 0, proc.stderr
    z = np.load(tmp_path / "out" / "z.npy")
    assert z.dtype == np.int16 and np.array_equal(raw_out[0].dequantize(z), want["z"])


def _run(runner: NativeRunner, model: Path, tmp: Path, inputs: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp / "out").mkdir(exist_ok=True)
    args = [a for name, file in inputs.items() for a in ("--input", f"{name}={file}")]
    cmd = runner.command("run", model, *args, "--output-dir", str(tmp / "out"), *extra)
    return subprocess.run(cmd, env={}, capture_output=True, text=True, timeout=120)


def _error_line(stderr: str) -> str:
    return next(ln for ln in stderr.splitlines() if ": error: " in ln)


@pytest.mark.parametrize("fmt", [".tflite", ".onnx"])
def test_an_input_that_does_not_fit_is_exit_6_naming_it(models: Path, runners: dict, tmp_path: Path, fmt: str) -> None:
    runner = runners["litert" if fmt == ".tflite" else "onnxruntime"]
    feeds = _feeds(_specs("two_in"), seed=1)
    for name, arr in feeds.items():
        np.save(tmp_path / f"{name}.npy", arr)
    files = {name: tmp_path / f"{name}.npy" for name in feeds}
    ok = _run(runner, models / f"two_in{fmt}", tmp_path, files)
    assert ok.returncode == 0, ok.stderr
    cases = {
        "int32 for float32": (("x", feeds["x"].astype(np.int32)), "input 'x' in {f} is int32, the model takes float32"),
        "float32 for int32": (("k", feeds["k"].astype(np.float32)), "input 'k' in {f} is float32, the model takes int32"),
        "float64 (no runner dtype)": (("k", feeds["k"].astype(np.float64)), "input 'k': {f}: dtype '<f8' is not supported"),
        "bool for int32": (("k", feeds["k"] > 0), "input 'k' in {f} is bool, the model takes int32"),
        "wrong width": (("x", np.zeros((N, 5), np.float32)), "'x' in {f} has shape [5,5], the model takes [N,4]"),
        "wrong rank": (("k", np.zeros((N,), np.int32)), "'k' in {f} has shape [5], the model takes [N,4]"),
    }
    for what, ((name, arr), message) in cases.items():
        bad = tmp_path / f"bad_{name}.npy"
        np.save(bad, arr)
        proc = _run(runner, models / f"two_in{fmt}", tmp_path, {**files, name: bad})
        assert proc.returncode == 6, (what, proc.stderr)
        assert message.format(f=bad) in _error_line(proc.stderr), (what, proc.stderr)
    unknown = _run(runner, models / f"two_in{fmt}", tmp_path, {**files, "z": files["x"]})
    assert unknown.returncode == 6 and "no input named 'z' (its inputs: " in unknown.stderr, unknown.stderr
    missing = _run(runner, models / f"two_in{fmt}", tmp_path, {"x": files["x"]})
    assert missing.returncode == 6 and "no --input given for the model's input 'k'" in missing.stderr, missing.stderr


@pytest.mark.parametrize("fmt", [".tflite", ".onnx"])
def test_check_mode_compares_other_dtypes_exactly(models: Path, runners: dict, tmp_path: Path, fmt: str) -> None:
    runner = runners["litert" if fmt == ".tflite" else "onnxruntime"]
    path = models / f"half{fmt}"
    feeds = _feeds(_specs("half"), seed=2)
    want = _binding(path, feeds)
    args: list[str] = []
    for name, arr in feeds.items():
        np.save(tmp_path / f"{name}.npy", arr)
        args += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]
    for name, arr in want.items():
        np.save(tmp_path / f"want_{name}.npy", arr)
        args += ["--expect", f"{name}={tmp_path / f'want_{name}.npy'}"]
    ok = subprocess.run(runner.command("check", path, *args, "--atol", "0"), env={}, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "check: PASS" in ok.stdout, ok.stdout + ok.stderr
    assert "PASS\th2\tfloat16\texact\tdiffering=0" in ok.stdout and "PASS\ts2\tint16\texact\tdiffering=0" in ok.stdout
    off = want["s2"].copy()
    off[1, 2] += 1
    np.save(tmp_path / "want_s2.npy", off)
    bad = subprocess.run(runner.command("check", path, *args), env={}, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 9 and "FAIL\ts2\tint16\texact\tdiffering=1\tfirst_index=6" in bad.stdout, bad.stdout


def test_more_than_max_tensors_is_refused_by_name(runners: dict, tmp_path: Path) -> None:
    """17 inputs: exit 4 with the limit, not a buffer overrun (a plain ONNX graph of Identity nodes)."""
    from onnx import TensorProto, helper, save

    n = MAX_TENSORS + 1
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"i{k}"], [f"o{k}"]) for k in range(n)],
        "wide",
        [helper.make_tensor_value_info(f"i{k}", TensorProto.FLOAT, [1]) for k in range(n)],
        [helper.make_tensor_value_info(f"o{k}", TensorProto.FLOAT, [1]) for k in range(n)],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "wide.onnx")
    proc = subprocess.run(runners["onnxruntime"].command("info", tmp_path / "wide.onnx"), env={}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4 and f"has {n} inputs and {n} outputs; this runner handles 1 to {MAX_TENSORS} of each" in proc.stderr, proc.stderr
