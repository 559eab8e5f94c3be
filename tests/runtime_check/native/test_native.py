"""The Python-free runners: build, bit-exact parity with the Python bindings, error paths, bundle.

Models are converted here from the session's tiny SavedModel: float32 and int8
.tflite (float I/O and int8 I/O) and an opset-17 .onnx. The runners are real C
programs built with the system compiler and run with an empty environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.errors import ManifestError, ModelFileError, RuntimeUnavailableError, UsageError
from edgefm.core.manifest import Artifact, Manifest
from runtime_check.native.build import build_runner, find_library
from runtime_check.native.bundle import write_bundle
from runtime_check.native.runtime import (
    NativeLiteRTRuntime,
    NativeOnnxRuntime,
    Server,
    native_runtime_for,
    run_process,
)
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.registry import runtime_for
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

MODELS = ("float32.tflite", "int8.tflite", "int8io.tflite", "float32.onnx")


def _convert(saved_model: Path, root: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    def tflite(name: str, int8: bool = False, int8_io: bool = False) -> None:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
        if int8:
            rng = np.random.default_rng(0)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ({"images": rng.random((1, 28, 28), dtype=np.float32)} for _ in range(32))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
        (root / name).write_bytes(conv.convert())

    tflite("float32.tflite")
    tflite("int8.tflite", int8=True)
    tflite("int8io.tflite", int8=True, int8_io=True)
    loaded = tf.saved_model.load(str(saved_model))  # kept alive: the signature reads its variables
    signature = loaded.signatures["serving_default"]
    spec = [tf.TensorSpec([None, 28, 28], tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return signature(images=images)

    model, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=17)
    (root / "float32.onnx").write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def models(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts dir (copy of the session's) with the four converted models and a manifest naming them."""
    root = tmp_path_factory.mktemp("native") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    _convert(root / "saved_model", root)
    manifest = Manifest.load(root)
    for file in MODELS:
        stem, fmt = file.split(".")
        with runtime_for(root / file) as rt:
            ins, outs = rt.raw_specs() if isinstance(rt, LiteRTRuntime) else (rt.input_specs, rt.output_specs)
        quant = "none" if stem == "float32" else "int8"
        manifest.artifacts[f"{fmt}_{stem}"] = Artifact.describe(
            root, root / file, format=fmt, quantization=quant, inputs=ins, outputs=outs
        )
    manifest.save(root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native-cache")


@pytest.fixture(scope="module")
def runners(cache: Path) -> dict[str, object]:
    return {kind: build_runner(kind, cache=cache) for kind in ("litert", "onnxruntime")}


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def _native(path: Path, cache: Path) -> NativeLiteRTRuntime | NativeOnnxRuntime:
    cls = NativeLiteRTRuntime if path.suffix == ".tflite" else NativeOnnxRuntime
    return cls(path, cache=cache)


# -- build ---------------------------------------------------------------------------------------


def test_build_is_cached_atomic_and_fast(tmp_path: Path) -> None:
    first = build_runner("litert", cache=tmp_path)
    second = build_runner("litert", cache=tmp_path)
    print(f"\nlitert runner: build {first.build_seconds:.3f} s, cache hit {second.build_seconds * 1e3:.2f} ms")
    assert not first.cached and second.cached
    assert second.executable == first.executable and os.access(first.executable, os.X_OK)
    assert second.build_seconds < 0.2 and first.build_seconds > second.build_seconds
    assert first.build_seconds < 30
    # atomic: nothing but the finished executable is left in the cache
    assert [p.name for p in tmp_path.iterdir()] == [first.executable.name]


def test_build_without_compiler_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"No C compiler found .*apt-get install gcc"):
        build_runner("onnxruntime", cc="edgefm-no-such-compiler", cache=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kind", "hint"), [("litert", "pip install ai-edge-litert"), ("onnxruntime", "pip install onnxruntime")]
)
def test_build_without_library_names_what_to_install(tmp_path: Path, kind: str, hint: str) -> None:
    with pytest.raises(RuntimeUnavailableError, match=f"does not exist.*{hint}"):
        build_runner(kind, lib=tmp_path / "missing.so", cache=tmp_path)


@pytest.mark.parametrize("kind", ["litert", "onnxruntime"])
def test_runner_and_library_do_not_link_python(runners: dict, kind: str) -> None:
    runner = runners[kind]
    for binary in (runner.executable, runner.library.path):
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        assert "libpython" not in ldd, ldd
    needed = subprocess.run(["readelf", "-d", str(runner.executable)], capture_output=True, text=True, check=True).stdout
    assert "libdl" in needed or "libc.so" in needed
    assert b"Py_Initialize" not in runner.executable.read_bytes()


# -- parity ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", MODELS)
def test_native_matches_python_binding_bit_for_bit(models: Path, cache: Path, file: str) -> None:
    x = _images(150)
    with _native(models / file, cache) as native, runtime_for(models / file) as binding:
        assert native.input_specs == binding.input_specs
        assert [s.name for s in native.output_specs] == ["logits", "probabilities"]
        batched = native.infer_batched({"images": x}, 64)
        expected = binding.infer_batched({"images": x}, 64)
        single = native.infer({"images": x[:1]})
        timing = native.last_timing
    for name in ("logits", "probabilities"):
        assert batched[name].dtype == np.float32 and batched[name].shape == (150, 10)
        assert np.abs(batched[name] - expected[name]).max() == 0.0, name
        assert np.array_equal(single[name], batched[name][:1])
    assert timing is not None and timing.batches == 1 and timing.run_ms > 0


@pytest.mark.parametrize("file", ["float32.tflite", "float32.onnx"])
def test_native_float32_matches_tensorflow(models: Path, cache: Path, file: str) -> None:
    x = _images(64, seed=3)
    with _native(models / file, cache) as native, TensorFlowRuntime(models / "saved_model") as tf_rt:
        got, ref = native.infer({"images": x}), tf_rt.infer({"images": x})
    for name in ("logits", "probabilities"):
        assert np.abs(got[name] - ref[name]).max() <= 1e-5


def test_int8_io_runner_quantizes_like_python(models: Path, cache: Path, runners: dict, tmp_path: Path) -> None:
    """Raw int8 outputs from the C runner dequantize to exactly what the Python runtime returns."""
    path = models / "int8io.tflite"
    with NativeLiteRTRuntime(path, cache=cache) as native:
        raw_in, raw_out = native.raw_specs()
    with LiteRTRuntime(path) as binding:
        assert (raw_in, raw_out) == binding.raw_specs()
        x = _images(20, seed=5)
        expected = binding.infer({"images": x})
    np.save(tmp_path / "x.npy", x)
    cmd = runners["litert"].command("run", path, "--input", f"images={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path), "--raw")
    run_process(cmd, timeout=60, what="running", subject=path)
    for spec in raw_out:
        q = np.load(tmp_path / f"{spec.name}.npy")
        assert q.dtype == np.int8
        assert np.array_equal((q.astype(np.float32) - spec.zero_point) * np.float32(spec.scale), expected[spec.name])


# -- the binary without Python ----------------------------------------------------------------------


def _env_i(runner: object, mode: str, model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["env", "-i", *runner.command(mode, model, *args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("kind", "file"), [("litert", "int8io.tflite"), ("onnxruntime", "float32.onnx")])
def test_runner_under_env_i_writes_every_output(models: Path, runners: dict, tmp_path: Path, kind: str, file: str) -> None:
    np.save(tmp_path / "x.npy", _images(10))
    out = tmp_path / "out"
    out.mkdir()
    proc = _env_i(runners[kind], "run", models / file, "--input", f"images={tmp_path / 'x.npy'}", "--output-dir", str(out),
                  "--batch-size", "4", "--repeat", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["logits.npy", "probabilities.npy"]
    assert np.load(out / "probabilities.npy").shape == (10, 10)
    assert np.allclose(np.load(out / "probabilities.npy").sum(axis=1), 1.0, atol=0.02)
    timing = next(ln for ln in proc.stdout.splitlines() if ln.startswith("timing"))
    assert "batches=3" in timing and "runs=2" in timing
    info = _env_i(runners[kind], "info", models / file)
    assert info.returncode == 0 and "input\timages\t" in info.stdout and "output\tlogits\t" in info.stdout


@pytest.mark.parametrize("file", ["int8io.tflite", "float32.tflite", "float32.onnx"])
def test_warm_loop_reports_per_call_latencies_and_keeps_the_outputs_exact(
    models: Path, runners: dict, cache: Path, tmp_path: Path, file: str
) -> None:
    from runtime_check.native.runtime import parse_timing

    x = _images(3)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    out.mkdir()
    kind = "litert" if file.endswith(".tflite") else "onnxruntime"
    proc = _env_i(runners[kind], "run", models / file, "--input", f"images={tmp_path / 'x.npy'}", "--output-dir", str(out),
                  "--warmup", "3", "--runs", "25")
    assert proc.returncode == 0, proc.stderr
    timing_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("timing\t"))
    assert "\truns=25\twarmup=3\tcalls=25\tp50_ms=" in timing_line and "\tp99_ms=" in timing_line
    t = parse_timing(proc.stdout)
    assert t is not None and t.warmup == 3 and len(t.latencies_ms) == 25 and all(v > 0 for v in t.latencies_ms)
    for q, got in ((50, t.p50_ms), (90, t.p90_ms), (99, t.p99_ms)):  # NumPy's percentile of the same calls
        assert got == pytest.approx(float(np.percentile(t.latencies_ms, q)), abs=2e-6)
    with runtime_for(models / file) as binding:  # the loop's outputs are the binding's, bit for bit
        expected = binding.infer({"images": x})
    for name in ("logits", "probabilities"):
        assert np.array_equal(np.load(out / f"{name}.npy"), expected[name]), name
    with _native(models / file, cache) as native:
        timed = native.time_calls({"images": x[:1]}, warmup=2, runs=7)
    assert len(timed.latencies_ms) == 7 and timed.p50_ms is not None and timed.open_ms > 0
    bad = _env_i(runners[kind], "run", models / file, "--input", f"images={tmp_path / 'x.npy'}", "--output-dir", str(out),
                 "--runs", "0")
    assert bad.returncode == 2 and "--runs: '0' must be at least 1" in bad.stderr


def test_running_runner_maps_the_runtime_and_no_python(models: Path, runners: dict, tmp_path: Path) -> None:
    """/proc/PID/maps of a runner in the middle of its work: libLiteRt.so is there, no Python is."""
    np.save(tmp_path / "x.npy", _images(256))
    cmd = runners["litert"].command("run", models / "float32.tflite", "--input", f"images={tmp_path / 'x.npy'}",
                                    "--output-dir", str(tmp_path), "--repeat", "10000000")
    proc = subprocess.Popen(cmd, env={}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        maps = ""
        deadline = time.monotonic() + 30
        while "libLiteRt.so" not in maps and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
    finally:
        proc.kill()
        proc.wait()
    assert "libLiteRt.so" in maps
    assert not re.search(r"libpython|\.cpython-", maps)
    assert environ == b""


# -- error paths --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(models: Path) -> Path:
    root = models / "bad"
    root.mkdir(exist_ok=True)
    data = (models / "float32.tflite").read_bytes()
    (root / "truncated.tflite").write_bytes(data[: len(data) * 3 // 4])
    (root / "crash.tflite").write_bytes(data[:3000])  # LiteRT 2.3 reads past its end: SIGBUS
    junk = bytearray(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    junk[4:8] = b"TFL3"
    (root / "junk.tflite").write_bytes(bytes(junk))
    onnx_bytes = (models / "float32.onnx").read_bytes()
    (root / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    np.save(root / "wrong_shape.npy", np.zeros((2, 27, 28), np.float32))
    np.save(root / "wrong_dtype.npy", np.zeros((2, 28, 28), np.int64))
    np.save(root / "ok.npy", _images(2))
    return root


@pytest.mark.parametrize(
    ("kind", "model", "inp", "status", "message"),
    [
        ("litert", "missing.tflite", "ok.npy", 4, r"cannot open the model .*missing\.tflite: No such file"),
        ("litert", "bad/junk.tflite", "ok.npy", 4, r"LiteRT cannot load the model .*junk\.tflite"),
        ("litert", "bad/truncated.tflite", "ok.npy", 4, r"LiteRT cannot load the model .*truncated\.tflite"),
        ("litert", "float32.tflite", "wrong_shape.npy", 6, r"shape mismatch: 'images' .* has shape \[2,27,28\], the model takes \[N,28,28\]"),
        ("litert", "float32.tflite", "wrong_dtype.npy", 6, r"'images' .* is int64, the model takes float32"),
        ("litert", "float32.tflite", "missing.npy", 5, r"cannot open .*missing\.npy"),
        ("onnxruntime", "missing.onnx", "ok.npy", 4, r"cannot open the model .*missing\.onnx"),
        ("onnxruntime", "bad/truncated.onnx", "ok.npy", 4, r"ONNX Runtime cannot load the model .*Protobuf parsing failed"),
        ("onnxruntime", "float32.onnx", "wrong_shape.npy", 6, r"shape mismatch: 'images'"),
    ],
)
def test_runner_errors_have_distinct_status_and_message(
    models: Path, bad_files: Path, runners: dict, tmp_path: Path, kind: str, model: str, inp: str, status: int, message: str
) -> None:
    proc = _env_i(runners[kind], "run", models / model, "--input", f"images={bad_files / inp}", "--output-dir", str(tmp_path))
    assert proc.returncode == status, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_runner_crash_says_so_and_dies_by_the_signal(bad_files: Path, runners: dict) -> None:
    proc = _env_i(runners["litert"], "info", bad_files / "crash.tflite")
    assert proc.returncode == -signal.SIGBUS or proc.returncode == 128 + signal.SIGBUS, proc.returncode
    assert "error: the runtime crashed (SIGBUS) while loading the model" in proc.stderr


def test_runner_usage_and_library_errors(models: Path, runners: dict) -> None:
    runner = runners["litert"]
    proc = subprocess.run(["env", "-i", str(runner.executable), "run", "--model", str(models / "float32.tflite")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no runtime library given: pass --lib /path/to/libLiteRt.so" in proc.stderr
    proc = subprocess.run(["env", "-i", str(runner.executable), "info", "--model", str(models / "float32.tflite"),
                           "--lib", "/nonexistent/libLiteRt.so"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "cannot load the LiteRT library /nonexistent/libLiteRt.so" in proc.stderr
    assert "pip install ai-edge-litert" in proc.stderr
    ort_as_litert = subprocess.run(["env", "-i", str(runners["onnxruntime"].executable), "info", "--model",
                                    str(models / "float32.onnx"), "--lib", str(runner.library.path)],
                                   capture_output=True, text=True, timeout=60)
    assert ort_as_litert.returncode == 3 and "has no symbol OrtGetApiBase" in ort_as_litert.stderr


def test_runtime_crash_is_reported_with_the_signal_name(bad_files: Path, runners: dict) -> None:
    with pytest.raises(ModelFileError, match=r"crashed loading m\.tflite \(killed by SIGSEGV\)"):
        run_process(["/bin/sh", "-c", "kill -SEGV $$"], timeout=30, what="loading", subject=Path("m.tflite"))
    cmd = runners["litert"].command("info", bad_files / "crash.tflite")
    with pytest.raises(ModelFileError, match=r"crashed loading .*crash\.tflite \(killed by SIGBUS\).*corrupt or truncated"):
        run_process(cmd, timeout=60, what="loading", subject=bad_files / "crash.tflite")


@pytest.mark.parametrize("file", ["float32.onnx", "int8io.tflite"])
def test_one_runner_process_serves_every_call_until_deactivated(models: Path, cache: Path, file: str) -> None:
    """The model is loaded once per runtime: every call goes to the same process, which ends at deactivate."""
    x = _images(40)
    native = _native(models / file, cache)
    with native, runtime_for(models / file) as binding:
        server = native.place.servers[id(native)]  # type: ignore[attr-defined]
        pid = server.proc.pid
        parts = [native.infer({"images": x[i : i + 8]}) for i in range(0, 40, 8)]
        ones = native.infer_batched({"images": x[:5]}, 1)
        assert native.place.servers[id(native)].proc.pid == pid  # type: ignore[attr-defined]
        expected = binding.infer({"images": x})
    assert server.proc.poll() is not None, "the runner outlived its runtime"
    for name, want in expected.items():
        assert np.abs(np.concatenate([p[name] for p in parts]) - want).max() == 0.0, name
        assert np.array_equal(ones[name], want[:5]), name


def test_runner_dying_between_calls_is_an_error_naming_the_signal(models: Path, cache: Path) -> None:
    native = _native(models / "float32.onnx", cache)
    with native:
        native.infer({"images": _images(2)})
        server = native.place.servers[id(native)]  # type: ignore[attr-defined]
        os.kill(server.proc.pid, signal.SIGSEGV)
        server.proc.wait()
        with pytest.raises(ModelFileError, match=r"crashed running .*float32\.onnx \(killed by SIGSEGV\)"):
            native.infer({"images": _images(2)})


def test_a_runner_error_keeps_the_process_serving(models: Path, cache: Path) -> None:
    """An input that does not fit is the runner's exit status 6 as UsageError; the next call still runs."""
    with _native(models / "float32.onnx", cache) as native:
        with pytest.raises(UsageError, match="does not fit the model"):  # past infer's own check of the feeds
            native.place.run(native, {"images": np.zeros((2, 5), np.float32)}, [])
        assert native.infer({"images": _images(3)})["logits"].shape == (3, 10)


def test_sigterm_of_the_parent_ends_the_runner(models: Path, cache: Path) -> None:
    """The runner reads its requests from the parent: when the parent dies, end of input ends the runner."""
    import sys

    code = ("import sys, time; from pathlib import Path; from runtime_check.native.runtime import NativeOnnxRuntime\n"
            f"rt = NativeOnnxRuntime(Path({str(models / 'float32.onnx')!r}), cache=Path({str(cache)!r})).activate()\n"
            "print(rt.place.servers[id(rt)].proc.pid, flush=True); time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[3])
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)

        def alive() -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has ended
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and alive():
            time.sleep(0.1)
        assert not alive(), "the runner outlived its parent"
    finally:
        parent.kill()


def test_hanging_server_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    server = Server(["/bin/sleep", "30"], timeout=0.5, subject=Path("m.onnx"))
    with pytest.raises(ModelFileError, match=r"did not finish loading m\.onnx within 0\.5 s"):
        server.ready()
    assert server.proc.poll() is not None and time.perf_counter() - t0 < 10


def test_hanging_runner_is_stopped_by_the_timeout() -> None:
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"did not finish running m\.onnx within 0\.5 s"):
        run_process(["/bin/sleep", "30"], timeout=0.5, what="running", subject=Path("m.onnx"))
    assert time.perf_counter() - t0 < 10


def test_native_runtime_validates_before_the_runner(models: Path, bad_files: Path, cache: Path) -> None:
    with pytest.raises(ModelFileError, match=r"truncated\.tflite"):
        NativeLiteRTRuntime(bad_files / "truncated.tflite", cache=cache).activate()
    with pytest.raises(ModelFileError, match=r"truncated\.onnx"):
        NativeOnnxRuntime(bad_files / "truncated.onnx", cache=cache).activate()
    with NativeLiteRTRuntime(models / "float32.tflite", cache=cache) as rt, pytest.raises(UsageError, match="has shape"):
        rt.infer({"images": np.zeros((2, 27, 28), np.float32)})


def test_native_runtime_for_picks_by_suffix(models: Path, tmp_path: Path) -> None:
    assert isinstance(native_runtime_for(models / "float32.tflite"), NativeLiteRTRuntime)
    assert native_runtime_for(models / "float32.onnx").name == "native-onnxruntime"
    with pytest.raises(ModelFileError, match="does not exist"):
        native_runtime_for(tmp_path / "nothing.pb")
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"run \.tflite .* and \.onnx"):
        native_runtime_for(tmp_path / "model.pb")


def test_find_library_finds_the_wheels() -> None:
    lit, ort = find_library("litert"), find_library("onnxruntime")
    assert lit.path.name == "libLiteRt.so" and lit.path.is_file()
    assert ort.path.name.startswith("libonnxruntime.so.") and not ort.path.is_symlink()


# -- bundle -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("artifact", ["tflite_int8io", "onnx_float32"])
def test_bundle_checks_on_the_device_without_python(
    models: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path, artifact: str
) -> None:
    data_dir, _ = tiny_data_session
    manifest = Manifest.load(models)
    dest = write_bundle(models, manifest, artifact, tmp_path / "bundle", golden_samples=8, data_dir=data_dir, verify_data=False)
    meta = json.loads((dest / "manifest.json").read_text())
    art = manifest.artifacts[artifact]
    assert meta["model"]["sha256"] == art.sha256 and (dest / meta["model"]["file"]).read_bytes() == (models / art.path).read_bytes()
    assert (dest / "labels.txt").read_text().splitlines() == manifest.labels
    assert meta["golden"]["samples"] == 8 and set(meta["golden"]["outputs"]) == {"logits", "probabilities"}
    assert meta["runner"]["build"].startswith("cc -O2 -o runner runner_") and meta["runner"]["build"].endswith(".c -ldl")
    assert (dest / "runner_common.h").is_file() and "./check.sh" in (dest / "README.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staged, then renamed

    lib = find_library("litert" if artifact.startswith("tflite") else "onnxruntime").path
    t0 = time.perf_counter()
    ok = subprocess.run(["env", "-i", "/bin/sh", str(dest / "check.sh"), str(lib)], capture_output=True, text=True, timeout=120)
    print(f"\n{artifact} bundle check (build + run): {time.perf_counter() - t0:.2f} s")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "check: PASS" in ok.stdout and ok.stdout.count("PASS\t") == 2
    assert "top1_agreement=8/8" in ok.stdout
    assert "INFO: " not in ok.stderr and "registry.cc" not in ok.stderr  # the runtime's log lines: only with --verbose
    loud = subprocess.run(["env", "-i", "/bin/sh", str(dest / "check.sh"), "--verbose", str(lib)], capture_output=True,
                          text=True, timeout=120)
    untimed = lambda out: [ln for ln in out.splitlines() if not ln.startswith("timing")]  # noqa: E731
    assert loud.returncode == 0 and untimed(loud.stdout) == untimed(ok.stdout), loud.stderr
    if artifact.startswith("tflite"):  # LiteRT logs; ONNX Runtime does not at its default level
        assert "INFO: " in loud.stderr

    golden = dest / meta["golden"]["outputs"]["logits"]["file"]
    logits = np.load(golden)
    logits[3, 2] += 0.5
    np.save(golden, logits)
    bad = subprocess.run(["env", "-i", "/bin/sh", str(dest / "check.sh"), str(lib)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 9, bad.stdout + bad.stderr
    assert re.search(r"FAIL\tlogits\tmax_abs_diff=0\.[45]\d*\t", bad.stdout) and "PASS\tprobabilities" in bad.stdout
    assert "check: FAIL" in bad.stdout


def test_bundle_check_needs_the_library_path(models: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    data_dir, _ = tiny_data_session
    dest = write_bundle(models, Manifest.load(models), "tflite_float32", tmp_path / "b", golden_samples=2, data_dir=data_dir,
                        verify_data=False)
    proc = subprocess.run(["env", "-i", "/bin/sh", str(dest / "check.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage:" in proc.stderr and "EDGEFM_LITERT_LIB" in proc.stderr
    (dest / "float32.tflite").write_bytes((dest / "float32.tflite").read_bytes()[:-1] + b"\0")
    lib = find_library("litert").path
    proc = subprocess.run(["env", "-i", "/bin/sh", str(dest / "check.sh"), str(lib)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9 and "differs from the exported one" in proc.stderr


def test_bundle_rejects_a_savedmodel_and_a_changed_model(models: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(models)
    with pytest.raises(UsageError, match=r"'savedmodel' is a savedmodel; a bundle holds a \.tflite or \.onnx"):
        write_bundle(models, manifest, "savedmodel", tmp_path / "b")
    manifest.artifacts["tflite_float32"].sha256 = "0" * 64
    with pytest.raises(ManifestError, match="changed since it was exported"):
        write_bundle(models, manifest, "tflite_float32", tmp_path / "b")
    assert not (tmp_path / "b").exists()
