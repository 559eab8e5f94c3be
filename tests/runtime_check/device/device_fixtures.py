"""Fixtures of the device tests: the tiny model exported as the two int8 artifacts, and the emulated board's tools.

A plain module imported by each device test module (a conftest.py here would replace the
suite's ``conftest`` module that other tests import ``run_cli`` from). The export is done
once per session for all of them (``_EXPORTED``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefm.core.errors import RuntimeUnavailableError
from edgefm.core.manifest import Manifest

_EXPORTED: dict[Path, Path] = {}


@pytest.fixture(scope="session", name="device_artifacts")
def device_artifacts_fixture(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny SavedModel exported by the real exporter: tflite_int8 and onnx_int8 (copy before mutating)."""
    from export.config import ExportConfig
    from export.pipeline import export

    if tiny_artifacts in _EXPORTED:
        return _EXPORTED[tiny_artifacts]
    root = tmp_path_factory.mktemp("device") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    export(Manifest.load(root), ExportConfig(artifacts=root, format="all", quantize="int8", calibration_samples=128,
                                             data_dir=tiny_data_session[0], verify_data=False))
    assert sorted(Manifest.load(root).deployable()) == ["onnx_int8", "tflite_int8"]
    _EXPORTED[tiny_artifacts] = root
    return root


@pytest.fixture(scope="session", name="toolchain")
def toolchain_fixture():
    """The cross compiler, the aarch64 C library and qemu: `make test` installs them (`make device`)."""
    from runtime_check.device.toolchain import find_toolchain

    try:
        return find_toolchain()
    except RuntimeUnavailableError as e:
        pytest.fail(f"the emulated board's packages are missing: {e}")
