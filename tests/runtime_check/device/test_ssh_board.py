"""The SSH board end to end, against a real sshd on 127.0.0.1 (the "board" is this machine).

The server, its host key and the user's key are made per module in tmp; the host key
is checked against the known_hosts written here (StrictHostKeyChecking=yes). Then the
three ways a board fails: a host key that does not match, no C compiler on the board
(the session's PATH has none), and a connection lost while the rows run. Each is one
EdgefmError paragraph and no report.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from device_fixtures import Sshd, device_artifacts_fixture, start_sshd  # noqa: F401 - fixtures

from runtime_check.device.ssh import BoardError
from runtime_check.device.targets import DeviceOptions
from runtime_check.verify.check import run_check
from runtime_check.verify.config import CheckConfig

from conftest import invoke_cli


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def _cfg(root: Path, data: Path, server: Sshd, board: Path, **kw: object) -> CheckConfig:
    opts = DeviceOptions(known_hosts=server.known_hosts, identity=server.identity, cross=bool(kw.pop("cross", False)))
    return CheckConfig(artifacts=root, data_dir=data, verify_data=False, devices=(server.spec(board),),
                       device_options=opts, **kw)  # type: ignore[arg-type]


def _verify_cli(root: Path, data: Path, server: Sshd, board: Path, report: Path, known_hosts: Path | None = None):
    return invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(data), "--no-verify", "--no-html",
                      "--report", str(report), "--device", server.spec(board), "--ssh-identity", str(server.identity),
                      "--known-hosts", str(known_hosts or server.known_hosts))


def test_the_ssh_board_end_to_end(device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                  sshd: Sshd, tmp_path: Path) -> None:
    board, report_path = tmp_path / "board", tmp_path / "report.json"
    proc = _verify_cli(device_artifacts, tiny_data_session[0], sshd, board, report_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_path.read_text())
    label = f"ssh-127.0.0.1-{sshd.port}"
    for name in ("tflite_int8", "onnx_int8"):
        row = report["artifacts"][f"{name}@{label}"]
        assert row["passed"], row
        assert row["metrics"]["board_golden_check"]["value"] == "PASS"
        assert row["metrics"]["top1_agreement"]["passed"] and row["metrics"]["device_p50_ms"]["value"] > 0
        bundle = board / name  # what was copied to the board, built there and run
        assert (bundle / "check.sh").is_file() and (bundle / "golden").is_dir() and (bundle / "runner").is_file()
        assert any(bundle.glob("runner_*.c")) and any(bundle.glob("model_int8.*"))
        assert not (bundle / "calls").exists() or not any((bundle / "calls").iterdir())  # scratch cleaned up
    record = report["devices"]["boards"][label]
    assert record["kind"] == "ssh" and record["machine"] and record["build"] == "on the board"
    assert all(len(lib["sha256"]) == 64 for lib in record["libraries"].values())
    assert f"{label}" in proc.stdout  # the table shows the rows


def test_cross_ships_a_runner_built_here(device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                        sshd: Sshd, tmp_path: Path) -> None:
    report = run_check(_cfg(device_artifacts, tiny_data_session[0], sshd, tmp_path / "board", only=("tflite_int8",),
                            cross=True, report=tmp_path / "r.json"))
    assert report.passed, report.summary()
    assert report.devices["boards"][f"ssh-127.0.0.1-{sshd.port}"]["build"].startswith("cross-compiled")
    assert not (tmp_path / "board" / "tflite_int8" / "build.log").exists()  # nothing was compiled on the board


def test_a_wrong_host_key_stops_verify_before_any_report(device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                         sshd: Sshd, tmp_path: Path) -> None:
    from device_fixtures import _keygen

    _keygen(tmp_path / "other")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {' '.join((tmp_path / 'other.pub').read_text().split()[:2])}\n")
    report = tmp_path / "report.json"
    proc = _verify_cli(device_artifacts, tiny_data_session[0], sshd, tmp_path / "board", report, known_hosts=wrong)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "host key" in proc.stderr and "never accepts" in proc.stderr and "ssh-keyscan" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not report.exists()
    assert not (tmp_path / "board").exists()  # nothing was copied


def test_a_board_without_a_compiler_is_named(device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                            tmp_path: Path) -> None:
    """The board's sessions get a PATH with sh, uname and mkdir, and no cc, gcc or clang."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "uname", "mkdir"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    server = start_sshd(tmp_path / "sshd", path_env=str(bin_dir))
    try:
        report = tmp_path / "report.json"
        proc = _verify_cli(device_artifacts, tiny_data_session[0], server, tmp_path / "board", report)
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no C compiler" in proc.stderr and "--cross" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not report.exists()


def test_a_lost_connection_stops_verify_without_a_half_report(
    device_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The server (and its sessions) die once the first call reaches the board: verify raises, writes nothing."""
    server = start_sshd(tmp_path / "sshd")
    board = tmp_path / "board"
    first_call = board / "tflite_int8" / "calls" / "0"

    def kill_when_the_rows_run() -> None:
        deadline = time.monotonic() + 120
        while not first_call.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop()

    killer = threading.Thread(target=kill_when_the_rows_run, daemon=True)
    killer.start()
    report = tmp_path / "report.json"
    try:
        with pytest.raises(BoardError, match="lost the connection") as err:
            run_check(_cfg(device_artifacts, tiny_data_session[0], server, board, report=report))
    finally:
        killer.join(timeout=130)
        server.stop()
    assert "No report was written" in str(err.value) and "\n" not in str(err.value)
    assert not report.exists()
