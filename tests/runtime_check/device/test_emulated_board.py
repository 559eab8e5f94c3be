"""The device in the loop on an emulated Arm64 board: real cross-compiled runners under real qemu user mode.

The tiny model's two int8 artifacts run through ``edgefm verify --device
qemu-aarch64:CPU`` on the synthetic test split (128 images): the device rows are
judged against TensorFlow with the host rows' bounds; qemu 7.2's ``-cpu max``
(allowed only with --device-any-cpu) computes wrong int8 results in LiteRT, and
verify must fail naming that row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from device_fixtures import device_artifacts_fixture, toolchain_fixture  # noqa: F401 - fixtures

from edgefm.core.errors import ConfigError
from edgefm.core.fileio import sha256_file
from runtime_check.device.libraries import _load_record
from runtime_check.device.targets import DEFAULT_CPU, DeviceOptions, QemuTarget, parse_target
from runtime_check.verify.check import run_check
from runtime_check.verify.config import CheckConfig

from conftest import invoke_cli, run_cli

ROWS = ("tflite_int8", "onnx_int8")


def _cfg(root: Path, data: Path, *devices: str, **kw: object) -> CheckConfig:
    return CheckConfig(artifacts=root, data_dir=data, verify_data=False, devices=devices, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def a72_report(device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], toolchain, tmp_path_factory):
    report_path = tmp_path_factory.mktemp("a72") / "report.json"
    return run_check(_cfg(device_artifacts, tiny_data_session[0], "qemu-aarch64:cortex-a72", report=report_path))


def test_emulated_rows_pass_against_tf_with_the_host_bounds(a72_report) -> None:
    report = a72_report
    assert report.passed, report.summary()
    for name in ROWS:
        host, dev = report.result(name), report.result(f"{name}@aarch64-cortex-a72")
        assert dev.error is None and dev.runtime.endswith("@qemu-aarch64:cortex-a72"), dev
        host_metrics = {m.name: m for m in host.metrics}
        for m in dev.metrics:  # the same bound as the host row for every judged metric
            if not m.informational and m.name in host_metrics:
                assert (m.op, m.bound) == (host_metrics[m.name].op, host_metrics[m.name].bound), m.name
        assert dev.metric("top1_agreement").passed and dev.metric("cosine").passed
        assert dev.metric("device_p50_ms").value > 0
        assert "emulated" in dev.metric("device_p50_ms").detail


def test_the_report_records_the_emulator_the_cpu_and_the_libraries(a72_report, toolchain) -> None:
    board = a72_report.devices["boards"]["aarch64-cortex-a72"]
    assert board["emulator_version"] == toolchain.qemu_version and "qemu" in board["emulator_version"]
    assert board["cpu"] == "cortex-a72" and board["midr"] == "0x410fd083"  # Arm, part 0xd08 = Cortex-A72
    assert "emulated" in board["latency_note"]
    for kind, lib in board["libraries"].items():
        assert sha256_file(Path(lib["path"])) == lib["sha256"], kind
        assert lib["wheel"].endswith("aarch64.whl") and lib["version"]
    on_disk = json.loads(Path(a72_report.path).read_text())
    assert on_disk["devices"]["boards"]["aarch64-cortex-a72"]["libraries"] == board["libraries"]
    assert any(k.startswith("device aarch64-cortex-a72") for k in on_disk["versions"])
    # the kernel-path ledger: x86 vs the board, and the host's other kernel path, per artifact
    ledger = on_disk["devices"]["ledger"]
    for name, other in (("tflite_int8", "LiteRT XNNPACK vs reference kernels"),
                        ("onnx_int8", "ONNX Runtime graph optimisation all vs off")):
        for entry in (ledger[name]["x86 vs aarch64-cortex-a72"], ledger[name][other]):
            assert 0 <= entry["exact_match_rate"] <= 1 and entry["max_abs_diff"] >= 0, entry
            hist = entry["outputs"]["probabilities"]["step_histogram"]  # int8 softmax: a grid of 1/256
            assert sum(hist.values()) == 128 * 10 and entry["flagged"] == (entry["over_one_step"] > 0)


def test_the_ledger_counts_quantization_steps_and_flags_more_than_one() -> None:
    import numpy as np

    from runtime_check.device.ledger import compare_paths

    step = 0.25
    a = {"logits": (np.arange(40, dtype=np.float32).reshape(4, 10) - 20) * step}
    b = {"logits": a["logits"].copy()}
    b["logits"][0, :3] += step  # three values one step off
    b["logits"][1, 0] -= 3 * step  # one three steps off
    entry = compare_paths(a, b, int8=True)
    assert entry["outputs"]["logits"]["step"] == step
    assert entry["outputs"]["logits"]["step_histogram"] == {"0": 36, "1": 3, "3": 1}
    assert entry["over_one_step"] == 1 and entry["flagged"]
    assert entry["exact_match_rate"] == 36 / 40 and entry["max_abs_diff"] == 3 * step
    assert not compare_paths(a, a, int8=True)["flagged"]


def test_the_guest_reads_a_cpuinfo_of_the_emulated_cpu(a72_report) -> None:
    board = a72_report.devices["boards"]["aarch64-cortex-a72"]
    cpuinfo = (Path(board["sysroot"]) / "proc" / "cpuinfo").read_text()
    assert "CPU part\t: 0xd08" in cpuinfo and "CPU implementer\t: 0x41" in cpuinfo
    assert "vendor_id" not in cpuinfo and "flags" not in cpuinfo  # not the x86 host's


def test_a_planted_device_fault_fails_verify_naming_the_row(
    device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], toolchain, tmp_path: Path
) -> None:
    """qemu 7.2 -cpu max (i8mm/SVE kernels) gives wrong int8 LiteRT results without any error: verify exits 1."""
    report = tmp_path / "max.json"
    proc = invoke_cli("verify", "--artifacts", str(device_artifacts), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                      "--device", "qemu-aarch64:max", "--device-any-cpu", "--report", str(report), "--no-html")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tflite_int8@aarch64-max" in proc.stderr, proc.stderr
    data = json.loads(report.read_text())
    assert not data["artifacts"]["tflite_int8@aarch64-max"]["passed"]
    assert data["artifacts"]["tflite_int8"]["passed"]  # the host row of the same file passes


def test_cpu_max_and_unknown_cpus_are_refused_without_the_override() -> None:
    with pytest.raises(ConfigError, match="--device-any-cpu"):
        parse_target("qemu-aarch64:max")
    with pytest.raises(ConfigError, match="cortex-a53"):
        parse_target("qemu-aarch64:cortex-a99")
    assert parse_target("qemu-aarch64") == QemuTarget(DEFAULT_CPU)
    assert DeviceOptions(any_cpu=True).parse("qemu-aarch64:max") == QemuTarget("max")
    with pytest.raises(ConfigError, match="ssh://USER@HOST"):
        parse_target("raspberrypi")


def test_without_the_cross_packages_the_device_rows_say_what_to_install(
    device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """EDGEFM_AARCH64_CC names a compiler that is not there: the host rows still run and pass."""
    report = tmp_path / "missing.json"
    # a fresh process: this one may have built (and keeps) the cross runners already
    proc = run_cli("verify", "--artifacts", str(device_artifacts), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                   "--device", "qemu-aarch64:cortex-a53", "--report", str(report), "--no-html",
                   env={"EDGEFM_AARCH64_CC": "no-such-aarch64-gcc"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    for name in ROWS:
        assert data["artifacts"][name]["passed"]
        error = data["artifacts"][f"{name}@aarch64-cortex-a53"]["error"]
        assert "gcc-aarch64-linux-gnu" in error and "make device" in error, error
    assert "Traceback" not in proc.stderr


def test_a_cached_library_whose_bytes_changed_is_not_reused(a72_report, tmp_path: Path) -> None:
    lib = a72_report.devices["boards"]["aarch64-cortex-a72"]["libraries"]["litert"]
    copy = tmp_path / Path(lib["path"]).parent.name
    shutil.copytree(Path(lib["path"]).parent, copy)
    assert _load_record(copy, "litert") is not None
    with open(copy / Path(lib["path"]).name, "r+b") as f:  # flip 16 bytes in the middle
        f.seek(lib["bytes"] // 2)
        flipped = bytes(b ^ 0xFF for b in f.read(16))
        f.seek(lib["bytes"] // 2)
        f.write(flipped)
    assert _load_record(copy, "litert") is None  # fetch_library downloads it again
