"""TFLite Micro on the host and Arm Vela, for real, on edgefm's MLP and CNN int8 exports.

The MLP is the session's ``trained_artifacts`` (trained on the real Fashion-MNIST,
every variant exported); the CNN is trained one epoch by the real CLI here and
exported to int8 (its shapes are what matter for the arena and the NPU; one epoch
is well above chance). Nothing is mocked: the arena is re-checked by creating
TFLM interpreters in a child process, Vela compiles the files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from micro_helpers import flip_one_channel

from edgefm.core.errors import ModelFileError, UsageError
from edgefm.data import fashion_mnist as ds
from runtime_check.micro.arena import TflmUnsupported, find_arena
from runtime_check.micro.npu_fit import npu_fit
from runtime_check.micro.rounding import ONE_STEP, describe_audit, rounding_audit
from runtime_check.micro.tflm_runtime import TFLMRuntime
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.verify.compare import compare_outputs
from runtime_check.verify.tolerances import default_tolerance

from conftest import run_cli

pytestmark = pytest.mark.integration
ROWS = 300


@pytest.fixture(scope="module")
def cnn(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("micro_cnn") / "artifacts"
    for args in (("train", "--model", "cnn", "--epochs", "1"), ("export", "--format", "tflite", "--quantize", "int8")):
        res = run_cli(*args, "--artifacts", str(root), "-q", timeout=900)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout + res.stderr
    return root


@pytest.fixture(scope="module")
def models(trained_artifacts: Path, cnn: Path) -> dict[str, Path]:
    return {"mlp": trained_artifacts, "cnn": cnn}


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    split = ds.load_split("test")
    return ds.scale_images(split.images[:ROWS]), split.labels[:ROWS]


def _loads_in_child(path: Path, arena: int) -> bool:
    """Whether TFLM creates an interpreter for ``path`` with ``arena`` bytes (in a child: TFLM may segfault)."""
    code = ("import sys\nfrom tflite_micro.python.tflite_micro import runtime\n"
            "runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(arena)], capture_output=True, timeout=120)
    return proc.returncode == 0


def test_only_one_tensorflow_is_installed() -> None:
    """tflite-micro goes in with --no-deps: its `tensorflow` requirement must never pull a second TensorFlow."""
    names = {(d.metadata["Name"] or "").lower().replace("_", "-") for d in metadata.distributions()}
    assert "tensorflow-cpu" in names and "tflite-micro" in names
    assert "tensorflow" not in names


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_printed_arena_works_and_16_bytes_less_does_not(models: dict[str, Path], model: str) -> None:
    path = models[model] / "model_int8.tflite"
    arena = find_arena(path)
    assert arena.bytes % 16 == 0 and arena.bytes > 1024
    assert _loads_in_child(path, arena.bytes)
    assert not _loads_in_child(path, arena.bytes - 16)
    assert arena.head and arena.tail and arena.head + arena.tail <= arena.bytes
    assert f"arena {arena.bytes:,} B" in arena.describe() and "upper bound for a 32-bit Cortex-M" in arena.describe()


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_tflm_rows_pass_against_tensorflow_with_the_int8_bounds(models: dict[str, Path], model: str,
                                                               images: tuple[np.ndarray, np.ndarray]) -> None:
    x, labels = images
    with TensorFlowRuntime(models[model] / "saved_model") as tf_rt:
        reference = tf_rt.infer({"images": x})
    with TFLMRuntime(models[model] / "model_int8.tflite") as micro:
        assert [s.name for s in micro.input_specs] == ["images"]
        got = micro.infer({"images": x})
        assert micro.versions()["tflite-micro"].startswith("0.dev")
    metrics = compare_outputs(got, reference, labels, default_tolerance("tflite", "int8"))
    failed = [m.describe() for m in metrics if not m.passed]
    assert not failed, failed
    top1 = next(m for m in metrics if m.name == "top1_agreement")
    assert top1.value >= 0.95


def test_tflm_float32_matches_litert_to_float_precision(models: dict[str, Path],
                                                       images: tuple[np.ndarray, np.ndarray]) -> None:
    path = models["mlp"] / "model_float32.tflite"
    with TFLMRuntime(path) as micro, LiteRTRuntime(path) as lite:
        a, b = micro.infer({"images": images[0]}), lite.infer({"images": images[0]})
    assert set(a) == set(b) == {"logits", "probabilities"}
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_planted_one_channel_fault_fails_the_tflm_row(models: dict[str, Path], model: str, tmp_path: Path,
                                                        images: tuple[np.ndarray, np.ndarray]) -> None:
    planted = tmp_path / "model_int8.tflite"
    shutil.copy(models[model] / "model_int8.tflite", planted)
    flip_one_channel(planted)
    assert planted.read_bytes() != (models[model] / "model_int8.tflite").read_bytes()
    x, labels = images
    with TensorFlowRuntime(models[model] / "saved_model") as tf_rt:
        reference = tf_rt.infer({"images": x})
    with TFLMRuntime(planted) as micro:
        got = micro.infer({"images": x})
    metrics = compare_outputs(got, reference, labels, default_tolerance("tflite", "int8"))
    assert any(not m.passed for m in metrics), [m.describe() for m in metrics]


def test_the_rounding_audit_labels_one_step_and_names_where_more_starts(models: dict[str, Path],
                                                                         images: tuple[np.ndarray, np.ndarray]) -> None:
    x = images[0][:100]
    for model in ("mlp", "cnn"):
        audit = rounding_audit(models[model] / "model_int8.tflite", {"images": x})
        assert audit["labels"]["1"] == ONE_STEP
        pair = audit["outputs"]["TFLM vs LiteRT reference kernels"]["outputs"]["logits"]
        hist = pair["step_histogram"]
        assert sum(hist.values()) == 100 * 10 and int(hist.get("0", 0)) >= 900  # mostly identical
        inter = audit["intermediates"]
        assert inter["tensors"] >= 4 and sum(inter["step_histogram"].values()) > 100 * 784
        first = inter["first_over_one_step"]
        assert audit["flagged"] == (first is not None or any(p["flagged"] for p in audit["outputs"].values()))
        if first is not None:  # named, with how far its inputs already were apart
            assert first["op"] and first["max_steps"] > 1 and "input_max_steps" in first
            assert any(line.startswith("FLAGGED") for line in describe_audit(audit))


def test_ops_tflm_lacks_are_all_named_and_litert_still_runs_them(tmp_path: Path) -> None:
    from edgefm.core.quiet import import_tensorflow, quiet_native_output

    with quiet_native_output():
        tf = import_tensorflow()
        fn = tf.function(lambda x: tf.math.top_k(tf.math.sign(x) + tf.math.atan2(x, x + 1.0), k=3).values,
                         input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        blob = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn).convert()
    path = tmp_path / "ops.tflite"
    path.write_bytes(blob)
    with pytest.raises(TflmUnsupported, match=r"no kernel for SIGN, ATAN2, TOPK_V2 \(LiteRT runs") as e:
        TFLMRuntime(path).activate()
    assert e.value.missing_ops == ["SIGN", "ATAN2", "TOPK_V2"]
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_path=str(path))  # a concrete function converts without a signature: by index
    lite.allocate_tensors()
    lite.set_tensor(lite.get_input_details()[0]["index"], np.ones((1, 8), np.float32))
    lite.invoke()
    assert lite.get_tensor(lite.get_output_details()[0]["index"]).shape == (1, 3)


def test_float16_and_dynamic_files_are_refused_with_tflms_reason(models: dict[str, Path]) -> None:
    with pytest.raises(TflmUnsupported, match=r"DEQUANTIZE .*failed to prepare"):
        find_arena(models["mlp"] / "model_float16.tflite")
    with pytest.raises(TflmUnsupported, match=r"FULLY_CONNECTED .*failed to prepare"):
        find_arena(models["mlp"] / "model_dynamic.tflite")


def test_a_truncated_file_is_a_model_error_not_a_crash(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    whole = (models["mlp"] / "model_int8.tflite").read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFileError, match="cut.tflite"):
        TFLMRuntime(path).activate()


def test_npu_fit_on_the_cnn(models: dict[str, Path]) -> None:
    fit = npu_fit(models["cnn"] / "model_int8.tflite", "ethos-u55-128")
    assert fit.npu_ops > 10 and fit.cpu_ops >= 1
    assert fit.by_type["Conv2D"] == {"NPU": 4} and "CPU" in fit.by_type["Quantize"]
    assert any(fb["op"] == "QUANTIZE" and "Float32" in fb["reason"] for fb in fit.cpu_fallback)
    assert 1 < fit.sram_kib < 1024 and 10 < fit.flash_kib < 1024
    assert 0 < fit.inference_seconds < 0.1 and fit.cycles > 1000
    text = "\n".join(fit.describe())
    assert "estimate: Ethos-U cannot run here" in text and "SRAM" in text and "flash" in text
    assert json.loads(json.dumps(fit.to_dict()))["note"] == "estimate: Ethos-U cannot run here"


def test_npu_refuses_unknown_configs_and_non_int8_files(models: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match=r"'ethos-u99' is not an Ethos-U configuration.*ethos-u55-128.*ethos-u85-2048"):
        npu_fit(models["cnn"] / "model_int8.tflite", "ethos-u99")
    with pytest.raises(UsageError, match=r"needs a full-integer \(int8\).*is float16"):
        npu_fit(models["mlp"] / "model_float16.tflite", "ethos-u55-128")
    with pytest.raises(UsageError, match=r"is not one"):
        npu_fit(models["mlp"] / "model_int8.onnx", "ethos-u55-128")


def test_micro_row_is_a_verdict_with_arena_latency_and_audit(models: dict[str, Path],
                                                           images: tuple[np.ndarray, np.ndarray]) -> None:
    from runtime_check.micro.check import micro_row

    x, labels = images
    with TensorFlowRuntime(models["cnn"] / "saved_model") as tf_rt:
        reference = tf_rt.infer({"images": x})
    tol = default_tolerance("tflite", "int8")
    judge = lambda got: compare_outputs(got, reference, labels, tol)  # noqa: E731
    row = micro_row("tflite_int8", models["cnn"] / "model_int8.tflite", {"images": x}, judge)
    assert row.name == "tflite_int8@tflm" and row.passed, row.describe()
    d = json.loads(json.dumps(row.to_dict()))
    assert d["arena"]["bytes"] == find_arena(models["cnn"] / "model_int8.tflite").bytes
    assert d["host_latency"]["note"].startswith("host") and d["host_latency"]["seconds_per_row"] > 0
    assert d["rounding_audit"]["rows"] == 200
    # a file TFLM cannot run is a row error naming why, not an exception
    bad = micro_row("tflite_float16", models["mlp"] / "model_float16.tflite", {"images": x}, judge)
    assert not bad.passed and "DEQUANTIZE" in bad.error and bad.describe()[0].startswith("tflite_float16@tflm: ERROR")


def test_inspect_micro_and_npu_from_the_cli(models: dict[str, Path]) -> None:
    path = models["cnn"] / "model_int8.tflite"
    res = run_cli("inspect", str(path), "--micro", "--npu", "ethos-u55-128")
    assert res.returncode == 0, res.stderr
    arena = find_arena(path)
    assert "tflite micro: runs" in res.stdout and f"arena {arena.bytes:,} B" in res.stdout
    assert "NPU" in res.stdout and "SRAM" in res.stdout and "estimate: Ethos-U cannot run here" in res.stdout
    for args, says in (((str(path), "--npu", "ethos-u99"), "Pick one of: ethos-u55-32"),
                       ((str(models["mlp"] / "model_float16.tflite"), "--npu", "ethos-u55-128"), "is float16"),
                       ((str(models["mlp"] / "model.onnx"), "--micro"), "is not one")):
        res = run_cli("inspect", *args)
        assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("error:")]) == 1


def test_int8_io_is_read_as_int8_needs_a_smaller_arena_and_runs_whole_on_the_npu(models: dict[str, Path],
                                                                                  tmp_path: Path) -> None:
    """--int8-io has no QUANTIZE op and no float tensor: full-integer (it was read as dynamic range before)."""
    from edgefm.formats.tflite_file import tflite_quantization

    root = tmp_path / "artifacts"
    shutil.copytree(models["mlp"], root)
    res = run_cli("export", "--artifacts", str(root), "--format", "tflite", "--quantize", "int8", "--int8-io", "-q")
    assert res.returncode == 0, res.stderr
    path = root / "model_int8io.tflite"
    assert tflite_quantization(path) == "int8" and tflite_quantization(root / "model_dynamic.tflite") == "dynamic"
    # the float input's buffer (784 float32) is gone from the arena
    assert find_arena(path).bytes < find_arena(root / "model_int8.tflite").bytes - 2000
    fit = npu_fit(path, "ethos-u55-128")
    assert fit.cpu_ops == 0 and fit.npu_ops > 0 and not fit.cpu_fallback
