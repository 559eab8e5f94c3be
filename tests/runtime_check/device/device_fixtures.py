"""Fixtures of the device tests: the tiny model exported as the two int8 artifacts, and the emulated board's tools.

A plain module imported by each device test module (a conftest.py here would replace the
suite's ``conftest`` module that other tests import ``run_cli`` from). The export is done
once per session for all of them (``_EXPORTED``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
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


# -- a real sshd on 127.0.0.1: the "board" is this machine --------------------------------------

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


@dataclass
class Sshd:
    """A throw-away sshd: its port, the known_hosts that holds its host key, the user key it accepts."""

    port: int
    known_hosts: Path
    identity: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def spec(self, board_dir: Path) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}/{board_dir}"  # //abs: an absolute directory

    def stop(self) -> None:
        """Kill the server and every session it forked (they share its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sshd(directory: Path, *, path_env: str | None = None) -> Sshd:
    """sshd -D on a free port of 127.0.0.1 with host and user keys made here; ``path_env``: the sessions' PATH."""
    if not (os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("ssh-keygen")):
        pytest.fail("openssh-server / openssh-client are missing: `make test` installs them (`make device`).")
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "user_key")
    shutil.copyfile(directory / "user_key.pub", directory / "authorized_keys")
    port = _free_port()
    host_pub = " ".join((directory / "host_key.pub").read_text().split()[:2])
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    config = [
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {directory / 'host_key'}", "PidFile none",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        f"Subsystem sftp {SFTP_SERVER}",
    ]
    if path_env is not None:
        config.append(f"SetEnv PATH={path_env}")
    (directory / "sshd_config").write_text("\n".join(config) + "\n")
    # sshd refuses to start without its privilege-separation directory (Debian's service creates it at boot)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = directory / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(directory / "sshd_config")], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited at once: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"sshd did not listen on 127.0.0.1:{port}: {log.read_text()}")
    return Sshd(port, directory / "known_hosts", directory / "user_key", proc, log)
