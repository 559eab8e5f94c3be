"""int8 ONNX on two x86 kernel paths: this machine's CPU and an emulated AVX2 CPU without VNNI.

ONNX Runtime's MLAS picks its int8 kernels by CPU feature. x86 CPUs without VNNI
multiply uint8 x int8 with VPMADDUBSW, whose int16 pair sums saturate; VNNI CPUs
accumulate in 32 bits. ``qemu-x86_64-static -cpu Haswell`` (qemu's TCG has AVX2,
no AVX-512, no VNNI) runs the native ONNX Runtime runner on the saturating path
wherever the suite runs, so the export recipe is checked on both paths here:
the host's (VNNI on most servers) and Haswell's.

The model is the session's tiny SavedModel exported by the real exporter, on the
synthetic test split; the reference is TensorFlow.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.hostinfo import host_cpu
from edgefm.core.manifest import Manifest
from edgefm.data.fashion_mnist import load_split
from export.config import ExportConfig
from export.to_onnx import OnnxInt8Recipe, convert_onnx, quantize_onnx_int8
from runtime_check.native.build import build_runner
from runtime_check.native.runtime import NativeOnnxRuntime
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime
from runtime_check.verify.compare import compare_outputs
from runtime_check.verify.tolerances import INT8

#: an x86 CPU with AVX2 but no AVX-512 and no VNNI, emulated
HASWELL = ("qemu-x86_64-static", "-cpu", "Haswell")
VNNI = {"avx512vnni", "avxvnni"}

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the x86 kernel paths exist on x86-64 hosts only")


@pytest.fixture(scope="module")
def haswell() -> tuple[str, ...]:
    if shutil.which(HASWELL[0]) is None:
        pytest.fail(f"{HASWELL[0]} is missing: `make test` installs it (Debian package qemu-user-static).")
    return HASWELL


@pytest.fixture(scope="module")
def exported(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SavedModel exported to ONNX (float32 and int8, the shipped recipe), plus an int8 x int8 file."""
    from export.calibration import calibration_samples
    from export.pipeline import export

    root = tmp_path_factory.mktemp("cpu-paths") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    data = tiny_data_session[0]
    export(Manifest.load(root), ExportConfig(artifacts=root, format="onnx", quantize="all", calibration_samples=128,
                                             data_dir=data, verify_data=False))
    calibration = calibration_samples(128, 0, data, verify=False)
    signed = OnnxInt8Recipe(activation_type="QInt8", weight_type="QInt8")  # 8-bit int8 weights: release 1's recipe
    eight_bit = quantize_onnx_int8(convert_onnx(root / "saved_model", 17), calibration, signed)
    (root / "s8s8.onnx").write_bytes(eight_bit.SerializeToString())
    return root


@pytest.fixture(scope="module")
def test_split(tiny_data_session: tuple[Path, dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    split = load_split("test", tiny_data_session[0], verify=False)
    return split.scaled(), split.labels


@pytest.fixture(scope="module")
def reference(exported: Path, test_split: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    with TensorFlowRuntime(exported / "saved_model") as rt:
        return rt.infer({"images": test_split[0]})


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cpu-paths-cache")
    build_runner("onnxruntime", cache=cache)
    return cache


def _run(path: Path, images: np.ndarray, cache: Path, launcher: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict]:
    rt = NativeOnnxRuntime(path, cache=cache, launcher=launcher)
    with rt:
        return rt.infer_batched({"images": images}, 64), rt.cpu


def test_the_emulated_cpu_is_avx2_without_vnni(exported: Path, cache: Path, haswell: tuple[str, ...]) -> None:
    _, cpu = _run(exported / "model.onnx", np.zeros((1, 28, 28), np.float32), cache, haswell)
    assert cpu["machine"] == "x86_64" and "avx2" in cpu["features"], cpu
    assert not VNNI & set(cpu["features"]) and "avx512f" not in cpu["features"], cpu
    assert cpu["int8_kernels"].startswith("x86 AVX2 without VNNI"), cpu


def test_the_runner_sees_the_features_proc_cpuinfo_lists(exported: Path, cache: Path) -> None:
    """On the host, the runner's cpuid and Python's /proc/cpuinfo agree (the report's two sources)."""
    _, cpu = _run(exported / "model.onnx", np.zeros((1, 28, 28), np.float32), cache)
    host = host_cpu()
    assert set(cpu["features"]) <= set(host["features"]), (cpu, host)
    assert cpu["int8_kernels"] == host["int8_kernels"]


def test_int8_onnx_is_bit_identical_on_both_paths_and_matches_tf(
    exported: Path, cache: Path, haswell: tuple[str, ...], test_split: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
) -> None:
    images, labels = test_split
    host, _ = _run(exported / "model_int8.onnx", images, cache)
    emulated, _ = _run(exported / "model_int8.onnx", images, cache, haswell)
    for name in ("logits", "probabilities"):
        np.testing.assert_array_equal(emulated[name], host[name], err_msg=name)
    for outputs in (host, emulated):
        failed = [m.describe() for m in compare_outputs(outputs, reference, labels, INT8) if not m.passed]
        assert not failed, failed


def test_float32_onnx_agrees_on_both_paths(exported: Path, cache: Path, haswell: tuple[str, ...],
                                           test_split: tuple[np.ndarray, np.ndarray]) -> None:
    host, _ = _run(exported / "model.onnx", test_split[0], cache)
    emulated, _ = _run(exported / "model.onnx", test_split[0], cache, haswell)
    np.testing.assert_allclose(emulated["logits"], host["logits"], rtol=0, atol=1e-5)


def test_int8_weights_saturate_on_the_avx2_path(
    exported: Path, cache: Path, haswell: tuple[str, ...], test_split: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
) -> None:
    """Why the recipe uses uint8 weights: 8-bit int8 ones lose accuracy on AVX2 only (the failure of issue 12).

    Against TF, the int8 x int8 file is worse on the emulated AVX2 CPU than the shipped
    uint8 file on the same CPU.
    """
    images = test_split[0]
    err = lambda out: float(np.abs(out["logits"] - reference["logits"]).mean())  # noqa: E731
    signed_avx2, _ = _run(exported / "s8s8.onnx", images, cache, haswell)
    shipped_avx2, _ = _run(exported / "model_int8.onnx", images, cache, haswell)
    assert err(signed_avx2) > 1.5 * err(shipped_avx2), (err(signed_avx2), err(shipped_avx2))
