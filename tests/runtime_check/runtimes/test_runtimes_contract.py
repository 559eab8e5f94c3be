"""One contract for every runtime (TensorFlow, LiteRT, ONNX Runtime) on a tiny exported model.

Same logical I/O (names, dtypes, shapes), bad feeds rejected by the base class
with a UsageError, batch 1 consistent with batch 37, outputs equal to TF's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.errors import UsageError
from edgefm.core.manifest import Manifest
from export.config import ExportConfig
from runtime_check.runtimes.base import Runtime
from runtime_check.runtimes.litert_runtime import LiteRTRuntime
from runtime_check.runtimes.onnx_runtime import OnnxRuntime
from runtime_check.runtimes.registry import runtime_for
from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

# (id, runtime class, file in the artifacts dir, max |output - TF| allowed)
CASES = [
    ("tensorflow", TensorFlowRuntime, "saved_model", 0.0),
    ("litert-float32", LiteRTRuntime, "model_float32.tflite", 1e-4),
    ("litert-int8-io", LiteRTRuntime, "model_int8io.tflite", 0.1),  # int8 tensors behind float32 I/O
    ("onnxruntime-float32", OnnxRuntime, "model.onnx", 1e-4),
    ("onnxruntime-int8", OnnxRuntime, "model_int8.onnx", 0.1),
]


@pytest.fixture(scope="module")
def models(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.pipeline import export

    root = tmp_path_factory.mktemp("contract") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    cfg = ExportConfig(artifacts=root, quantize="all", int8_io=True, calibration_samples=64,
                       data_dir=tiny_data_session[0], verify_data=False)
    export(Manifest.load(root), cfg)
    return root


@pytest.fixture(scope="module")
def images(tiny_data_session: tuple[Path, dict[str, str]]) -> np.ndarray:
    """37 test images from the calibration's distribution (int8 clips inputs far outside it)."""
    from edgefm.data.fashion_mnist import load_split

    return load_split("test", tiny_data_session[0], verify=False).scaled()[:37]


@pytest.fixture(scope="module")
def tf_outputs(models: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    with TensorFlowRuntime(models / "saved_model") as rt:
        return rt.infer({"images": images})


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request: pytest.FixtureRequest, models: Path):
    _, cls, filename, tol = request.param
    rt = cls(models / filename)
    rt.activate()
    yield rt, tol
    rt.deactivate()


def test_runtime_for_picks_the_class(models: Path) -> None:
    for _, cls, filename, _ in CASES:
        assert type(runtime_for(models / filename)) is cls


def test_same_io_specs(case: tuple[Runtime, float]) -> None:
    rt, _ = case
    assert [(s.name, s.dtype, s.shape) for s in rt.input_specs] == [("images", "float32", [None, 28, 28])]
    outs = {s.name: (s.dtype, s.shape) for s in rt.output_specs}
    assert outs == {"logits": ("float32", [None, 10]), "probabilities": ("float32", [None, 10])}


def test_bad_feeds_rejected_by_the_base_class(case: tuple[Runtime, float], images: np.ndarray) -> None:
    rt, _ = case
    with pytest.raises(UsageError, match=r"inputs \['pixels'\] given, the model takes \['images'\]"):
        rt.infer({"pixels": images})
    with pytest.raises(UsageError, match=r"inputs \['extra', 'images'\] given"):
        rt.infer({"images": images, "extra": images})
    with pytest.raises(UsageError, match="input 'images' is float64, the model takes float32"):
        rt.infer({"images": images.astype(np.float64)})
    with pytest.raises(UsageError, match=r"input 'images' has shape \[37, 28, 27\], the model takes \['N', 28, 28\]"):
        rt.infer({"images": images[:, :, :27]})
    with pytest.raises(UsageError, match=r"has shape \[37, 784\]"):
        rt.infer({"images": images.reshape(37, 784)})


def test_inactive_runtime_is_a_usage_error(models: Path, images: np.ndarray) -> None:
    for _, cls, filename, _ in CASES:
        rt = cls(models / filename)
        with pytest.raises(UsageError, match="is not active; call activate"):
            rt.infer({"images": images})


def test_batch_1_matches_batch_37(case: tuple[Runtime, float], images: np.ndarray) -> None:
    rt, _ = case
    whole = rt.infer({"images": images})
    one_by_one = rt.infer_batched({"images": images}, 1)
    uneven = rt.infer_batched({"images": images}, 10)  # 10, 10, 10, 7: resizes between calls
    for name in ("logits", "probabilities"):
        assert whole[name].shape == (37, 10) and whole[name].dtype == np.float32
        np.testing.assert_allclose(one_by_one[name], whole[name], rtol=0, atol=1e-6)
        np.testing.assert_allclose(uneven[name], whole[name], rtol=0, atol=1e-6)


def test_outputs_match_tensorflow(case: tuple[Runtime, float], images: np.ndarray, tf_outputs: dict[str, np.ndarray]) -> None:
    rt, tol = case
    out = rt.infer({"images": images})
    for name in ("logits", "probabilities"):
        np.testing.assert_allclose(out[name], tf_outputs[name], rtol=0, atol=tol, err_msg=name)
    np.testing.assert_array_equal(out["logits"].argmax(1), tf_outputs["logits"].argmax(1))


def test_int8_io_model_really_stores_int8(models: Path) -> None:
    """The litert-int8-io case exercises the base class's quantize/dequantize path, not float I/O."""
    with LiteRTRuntime(models / "model_int8io.tflite") as rt:
        raw_in, raw_out = rt.raw_specs()
    assert raw_in[0].dtype == "int8" and raw_in[0].scale and raw_in[0].zero_point is not None
    assert {s.dtype for s in raw_out} == {"int8"}


# -- the load probe: one child for many files ---------------------------------------------------


@pytest.fixture
def probe_files(models: Path, tmp_path: Path) -> list[Path]:
    """Fresh copies (the probe caches per path): good files of both formats and bad ones of each kind."""
    files = []
    for name in ("model_float32.tflite", "model.onnx", "model_int8io.tflite", "model_int8.onnx"):
        files.append(tmp_path / name)
        shutil.copyfile(models / name, files[-1])
    data = (models / "model_float32.tflite").read_bytes()
    (tmp_path / "truncated.tflite").write_bytes(data[: len(data) * 3 // 4])  # passes the cheap check; LiteRT refuses
    (tmp_path / "empty.onnx").write_bytes(b"")  # fails the cheap check
    return [*files[:2], tmp_path / "truncated.tflite", tmp_path / "empty.onnx", *files[2:]]


def _one_by_one(paths: list[Path]) -> dict[Path, str | None]:
    """What the per-file probe says of each file (copies, so nothing comes from the cache)."""
    from edgefm.core.errors import ModelFileError
    from runtime_check.runtimes.probe import check_structure, probe_in_subprocess

    out: dict[Path, str | None] = {}
    for p in paths:
        try:
            check_structure(p)
            probe_in_subprocess(p)
            out[p] = None
        except ModelFileError as e:
            out[p] = str(e)
    return out


def _messages(results: dict[Path, object]) -> dict[Path, str | None]:
    return {p: None if e is None else str(e) for p, e in results.items()}


def test_one_probe_child_gives_every_file_its_own_verdict(probe_files: list[Path]) -> None:
    from edgefm.core.errors import ModelFileError
    from runtime_check.runtimes import probe

    got = _messages(probe.validate_model_files(probe_files))
    assert got == _one_by_one(probe_files)
    assert [p.name for p, e in got.items() if e is not None] == ["truncated.tflite", "empty.onnx"]
    assert "The runtime cannot load" in str(got[probe_files[2]]) and "is empty (0 bytes)" in str(got[probe_files[3]])
    # afterwards the per-file check answers from the cache, refusals included
    probe.validate_model_file(probe_files[0])
    with pytest.raises(ModelFileError, match=r"The runtime cannot load .*truncated\.tflite"):
        probe.validate_model_file(probe_files[2])
    assert _messages(probe.validate_model_files(probe_files)) == got


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_probe_child_that_dies_or_hangs_is_probed_again_file_by_file(probe_files: list[Path], how: str) -> None:
    import os
    import signal

    from runtime_check.runtimes.probe import ProbeChild, check_structure

    loadable = [p for p in probe_files if p.stat().st_size > 0]  # what passes the cheap check
    for p in loadable:
        check_structure(p)
    child = ProbeChild(timeout=1.0, per_file=0.0)
    # a real child process, really stopped: by SIGKILL before it reads a file, or frozen by SIGSTOP (a hang)
    os.kill(child._proc.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    for p in loadable:
        child.send(p)
    got = _messages(child.finish())
    assert child._proc.returncode == -signal.SIGKILL  # finish() killed the frozen one too
    assert got == _one_by_one(loadable)
    assert [p.name for p, e in got.items() if e is not None] == ["truncated.tflite"]


# -- remembered structure checks ----------------------------------------------------------------


def test_a_passed_onnx_structure_check_is_remembered_by_its_bytes(models: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from edgefm.core.errors import ModelFileError
    from edgefm.core.fileio import sha256_file
    from edgefm.core.verdicts import PassedChecks
    from edgefm.formats.onnx_file import structure_check_key
    from runtime_check.runtimes.probe import check_structure

    passed = PassedChecks(tmp_path / "passed")
    good, other = tmp_path / "model.onnx", tmp_path / "model_int8.onnx"
    shutil.copyfile(models / "model.onnx", good)
    shutil.copyfile(models / "model_int8.onnx", other)
    check_structure(good, passed)
    key = structure_check_key(sha256_file(good))
    assert key is not None and key in passed and [p.name for p in passed.directory.iterdir()] == [key]

    def refuse(*_a: object, **_k: object) -> None:
        raise onnx.checker.ValidationError("planted refusal")

    monkeypatch.setattr(onnx.checker, "check_model", refuse)
    check_structure(good, passed)  # the same bytes: their pass is reused, the checker is not asked
    with pytest.raises(ModelFileError, match="fails the ONNX checker: planted refusal"):
        check_structure(good)  # without the store every check runs
    with pytest.raises(ModelFileError, match="fails the ONNX checker: planted refusal"):
        check_structure(other, passed)  # other bytes are checked, and a refusal is not remembered
    assert structure_check_key(sha256_file(other)) not in passed
    monkeypatch.undo()

    # another onnx version (or protobuf's) makes another key: the pass of an older checker is not reused
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda dist: "0.0.1" if dist == "onnx" else real(dist))
    assert structure_check_key(sha256_file(good)) != key


def test_an_onnx_model_with_external_data_is_checked_every_time(models: Path, tmp_path: Path) -> None:
    import onnx

    from edgefm.core.verdicts import PassedChecks
    from runtime_check.runtimes.probe import check_structure

    model = onnx.load(str(models / "model.onnx"))
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.weights",
                    size_threshold=0)
    passed = PassedChecks(tmp_path / "passed")
    check_structure(path, passed)
    # the verdict also depends on the files beside the model: nothing is remembered
    assert not passed.directory.exists() or not any(passed.directory.iterdir())
