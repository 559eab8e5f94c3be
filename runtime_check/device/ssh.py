"""A real board over SSH: the device bundle copied with scp, the runner built there, outputs pulled back.

Only the system ``ssh``/``scp`` run, always with ``BatchMode=yes`` (no password
prompt can hang verify) and ``StrictHostKeyChecking=yes`` against the user's
known_hosts or ``--known-hosts FILE``: an unknown or changed host key stops verify
with an error that says how to check and add the key; it is never accepted
silently.

Per artifact, ``SshRuntime.activate`` writes the device bundle of
``runtime_check.native.bundle`` (the model, golden inputs and outputs, the runner
source, check.sh) plus the runtime library for the board's architecture (the
installed wheel's for x86_64, the aarch64 wheel's for aarch64), copies it to
``DIR/<artifact>``, builds the runner with the board's C compiler (``--cross``:
ships one built here), runs ``check.sh`` (the bundle's own golden check, a row
metric) and ``runner info``. Each call then copies its inputs up, runs the runner
there, and copies its outputs back; verify judges them here, against TensorFlow.

The runner is built with the flags of ``runtime_check.native.build`` (``-std=c11
-O2 -ffp-contract=off``): the bundle's documented one-liner leaves FMA contraction
on, which on aarch64 gcc (``-ffp-contract=fast`` is GNU C's default) may round the
runner's float32 (de)quantization differently from NumPy.

Errors that make the board unusable, a host key that does not match, no C
compiler on the board, a connection that is refused or lost, raise
``BoardError`` (one paragraph, exit status 1): verify then writes no report.
"""

from __future__ import annotations

import io
import itertools
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import SERVING_SIGNATURE
from edgefm.core.errors import EdgefmError, RuntimeUnavailableError
from edgefm.core.fileio import sha256_file
from edgefm.core.manifest import Artifact, Manifest
from runtime_check.device.targets import SshTarget
from runtime_check.native.build import CFLAGS, LDLIBS, SOURCES, build_runner, find_library
from runtime_check.native.runtime import (
    EXIT_CODES,
    NativeRuntime,
    _fields,
    _runner_message,
)

CONNECT_TIMEOUT_S = 15
#: one remote command (a build, one runner call) may take this long
COMMAND_TIMEOUT_S = 900.0
GOLDEN_SAMPLES = 16


class BoardError(RuntimeUnavailableError):
    """The SSH board cannot be used (host key, compiler, connection): verify stops, no report is written."""


@dataclass
class SshBoard:
    """A board that answered: its architecture, its compiler, the absolute directory edgefm works in."""

    target: SshTarget
    machine: str
    cc: str | None
    directory: str
    artifacts: Path
    data_dir: Path | None
    verify_data: bool
    libraries: dict[str, Any] = field(default_factory=dict)

    # -- the system ssh/scp -------------------------------------------------------------------
    def options(self) -> list[str]:
        return ssh_options(self.target)

    def ssh(self, command: str, *, what: str, timeout: float = COMMAND_TIMEOUT_S,
            data: bytes | None = None) -> subprocess.CompletedProcess[Any]:
        """Run ``command`` in the board's shell; an ssh failure (status 255) is a BoardError."""
        cmd = ["ssh", *self.options(), "-p", str(self.target.port), f"{self.target.user}@{self.target.host}", command]
        return _run(cmd, self.target, what=what, timeout=timeout, connected=True, data=data)

    def scp(self, sources: list[str], dest: str, *, what: str) -> None:
        cmd = ["scp", "-q", "-r", "-p", *self.options(), "-P", str(self.target.port), *sources, dest]
        _run(cmd, self.target, what=what, timeout=COMMAND_TIMEOUT_S, connected=True)

    def remote(self, path: str) -> str:
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        return f"{self.target.user}@{host}:{path}"

    # -- what verify needs ----------------------------------------------------------------------
    def library(self, kind: str) -> Path:
        """The runtime library shipped to the board: for its architecture, the version this machine runs."""
        if kind not in self.libraries:
            if self.machine == "aarch64":
                from runtime_check.device.libraries import fetch_library

                lib = fetch_library(kind)
                self.libraries[kind] = {"path": str(lib.path), "sha256": lib.sha256, "source": lib.wheel,
                                        "version": lib.version}
            else:
                host = find_library(kind)
                self.libraries[kind] = {"path": str(host.path), "sha256": sha256_file(host.path),
                                        "source": "this machine's installed wheel", "version": host.version}
        return Path(self.libraries[kind]["path"])

    def runtime_for(self, path: Path, art: Artifact, name: str) -> NativeRuntime:
        """The native runner of ``path``'s format, placed in artifact ``name``'s directory on the board."""
        from runtime_check.runtimes.registry import FORMAT_OF_SUFFIX, NATIVE, runner_kinds

        suffix = Path(path).suffix.lower()
        kinds = runner_kinds(FORMAT_OF_SUFFIX.get(suffix, ""), NATIVE)
        if not kinds:
            raise RuntimeUnavailableError(f"{path}: the SSH board runs .tflite and .onnx files, not {suffix!r}.")
        cls = kinds[0].runtime_class()
        assert issubclass(cls, NativeRuntime)
        return cls(path, place=SshPlace(self, name))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ssh",
            "spec": self.target.spec,
            "host": self.target.host,
            "port": self.target.port,
            "user": self.target.user,
            "machine": self.machine,
            "compiler": self.cc or "none (--cross: the runner is built here)",
            "directory": self.directory,
            "build": "cross-compiled here (--cross)" if self.target.cross else "on the board",
            "libraries": self.libraries,  # filled as the rows run
            "latency_note": "the board's own times (the runner's warm loop on the board)",
        }

    def versions(self) -> dict[str, str]:
        key = f"device {self.target.label}"
        return {f"{key} board": f"{self.target.user}@{self.target.host}:{self.target.port} {self.machine}, "
                                f"cc {self.cc or '-'}, dir {self.directory}"}


def ssh_options(target: SshTarget) -> list[str]:
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    if target.known_hosts is not None:
        opts += ["-o", f"UserKnownHostsFile={Path(target.known_hosts).resolve()}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if target.identity is not None:
        opts += ["-i", str(Path(target.identity).resolve()), "-o", "IdentitiesOnly=yes"]
    return opts


def _run(cmd: list[str], target: SshTarget, *, what: str, timeout: float, connected: bool,
         data: bytes | None = None) -> subprocess.CompletedProcess[Any]:
    """Run ssh or scp; with ``data``, it is ssh's stdin and stdout stays bytes (a tar stream)."""
    try:
        if data is None:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        else:
            proc = subprocess.run(cmd, capture_output=True, input=data, timeout=timeout)
            proc.stderr = proc.stderr.decode(errors="replace")
    except FileNotFoundError as e:
        raise BoardError(f"--device {target.spec}: {cmd[0]} is not installed here; the SSH board needs the system "
                         "OpenSSH client (`apt-get install openssh-client`).") from e
    except subprocess.TimeoutExpired as e:
        raise BoardError(f"--device {target.spec}: {what} did not finish within {timeout:g} s; the board or the "
                         "connection hangs. Check the board and run verify again. No report was written.") from e
    if proc.returncode == 255 or (cmd[0] == "scp" and proc.returncode != 0):
        raise _ssh_error(target, proc.stderr, what, connected)
    return proc


def _ssh_error(target: SshTarget, stderr: str, what: str, connected: bool) -> BoardError:
    text = " ".join(stderr.split())
    where = f"{target.host} port {target.port}"
    known = f"--known-hosts {target.known_hosts}" if target.known_hosts else "your ~/.ssh/known_hosts"
    if "host key" in text.lower() or "HOST IDENTIFICATION HAS CHANGED" in text:
        return BoardError(
            f"--device {target.spec}: the board's SSH host key is not the one {known} holds for {where} (ssh: "
            f"{text[:300]}). edgefm checks host keys and never accepts an unknown or changed one: if the board was "
            f"re-installed, check the new key's fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) "
            f"and add it (ssh-keyscan -p {target.port} {target.host}), or pass the right file with --known-hosts. "
            "No report was written."
        )
    if "Permission denied" in text:
        return BoardError(
            f"--device {target.spec}: the board refused the login of {target.user} (ssh: {text[:300]}). edgefm logs in "
            "without prompting (BatchMode): install your public key on the board (ssh-copy-id) or pass the key with "
            "--ssh-identity. No report was written."
        )
    lost = connected and what not in ("connecting",)
    return BoardError(
        f"--device {target.spec}: {'lost the connection to' if lost else 'cannot connect to'} the board while "
        f"{what} (ssh: {text[:300] or 'no message'}). Check that the board is on and reachable ({where}) and run "
        "verify again. No report was written."
    )


_PROBE = (
    'set -e; uname -m; for c in "${CC:-}" cc gcc clang; do if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then '
    'command -v "$c"; break; fi; done; echo "--"; mkdir -p {dir} && cd {dir} && pwd'
)


def connect_board(target: SshTarget, *, artifacts: Path, data_dir: Path | None, verify_data: bool) -> SshBoard:
    """Log in once: the board's architecture, its C compiler (unless --cross) and the working directory."""
    directory = target.directory if target.directory.startswith("/") else f"$HOME/{target.directory}"
    quoted = directory if directory.startswith("$HOME/") else shlex.quote(directory)
    if directory.startswith("$HOME/"):
        quoted = '"$HOME"/' + shlex.quote(directory.removeprefix("$HOME/"))
    cmd = ["ssh", *ssh_options(target), "-p", str(target.port), f"{target.user}@{target.host}", _PROBE.replace("{dir}", quoted)]
    proc = _run(cmd, target, what="connecting", timeout=60, connected=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or "--" not in lines:
        raise BoardError(
            f"--device {target.spec}: the board did not answer edgefm's probe (exit status {proc.returncode}: "
            f"{' '.join(proc.stderr.split())[:300]}). It needs a POSIX sh, uname and a writable {target.directory}. "
            "No report was written."
        )
    sep = lines.index("--")
    machine, found, workdir = lines[0].strip(), lines[1:sep], lines[sep + 1 :]
    cc = found[0].strip() if found else None
    if cc is None and not target.cross:
        raise BoardError(
            f"--device {target.spec}: the board ({machine}) has no C compiler (looked for $CC, cc, gcc, clang on the "
            "PATH of a non-interactive login). edgefm builds its runner there: install one on the board (e.g. "
            "`sudo apt-get install gcc`), or build it here and ship it with --cross. No report was written."
        )
    if target.cross and machine not in ("aarch64", "x86_64"):
        raise BoardError(f"--device {target.spec}: --cross builds for aarch64 and x86_64 boards; this one is {machine}.")
    return SshBoard(target, machine, cc, workdir[0].strip() if workdir else directory, Path(artifacts), data_dir, verify_data)


class SshPlace:
    """The place of one artifact's native runner on the SSH board (``runtime_check.native.runtime.Place``): its
    bundle's directory there; every call copies its .npy files up and back."""

    def __init__(self, board: SshBoard, artifact_name: str) -> None:
        self.board = board
        self.artifact_name = artifact_name
        self.spec = board.target.spec
        self.timeout = COMMAND_TIMEOUT_S
        self.rdir = f"{board.directory}/{artifact_name}"
        #: the bundle's golden check on the board, as (result, what it ran): verify makes it a row metric
        self.golden: tuple[str, str] | None = None
        self._calls = itertools.count()
        self._lib_remote = ""

    def load(self, rt: NativeRuntime) -> str:
        """Copy the bundle, build the runner (or ship the cross-built one), run check.sh and ``runner info``."""
        from runtime_check.native.bundle import write_bundle

        b = self.board
        lib = b.library(rt.kind)
        with tempfile.TemporaryDirectory(prefix="edgefm-ssh-") as tmp:
            stage = Path(tmp) / self.artifact_name
            write_bundle(b.artifacts, Manifest.load(b.artifacts), self.artifact_name, stage, golden_samples=GOLDEN_SAMPLES,
                         data_dir=b.data_dir, verify_data=b.verify_data)
            (stage / "lib").mkdir()
            shutil.copyfile(lib, stage / "lib" / lib.name)
            if b.target.cross:
                if b.machine == "aarch64":
                    from runtime_check.device.toolchain import find_toolchain

                    runner = build_runner(rt.kind, lib=lib, cc=find_toolchain().cc)
                else:
                    runner = build_runner(rt.kind)
                shutil.copyfile(runner.executable, stage / "runner")
                (stage / "runner").chmod(0o755)
            q = shlex.quote
            upload = f".{self.artifact_name}.{uuid.uuid4().hex[:12]}"
            b.scp([str(stage)], b.remote(f"{b.directory}/{upload}"), what=f"copying the bundle of {self.artifact_name}")
        self._lib_remote = f"lib/{lib.name}"
        info = " ".join(q(a) for a in self._argv(rt, "info", []))
        build = "" if b.target.cross else (
            f"{q(b.cc or 'cc')} {' '.join(CFLAGS)} -o runner {SOURCES[rt.kind]} {' '.join(LDLIBS)} >build.log 2>&1; "
            'rc=$?; if [ $rc != 0 ]; then echo "edgefm-build-failed $rc"; cat build.log >&2; exit 0; fi; ')
        # one login: put the bundle in place, build the runner, the bundle's golden check, then `runner info`
        proc = b.ssh(
            f"cd {q(b.directory)} && rm -rf {q(self.artifact_name)} && mv {q(upload)} {q(self.artifact_name)} && "
            f"cd {q(self.artifact_name)} && mkdir calls && {build}"
            f"./check.sh {q(self._lib_remote)} >check.log 2>&1; echo \"edgefm-check $?\"; {info}",
            what=f"building and checking {self.artifact_name}")
        lines = proc.stdout.splitlines()
        if failed := [ln for ln in lines if ln.startswith("edgefm-build-failed")]:
            raise BoardError(
                f"--device {b.target.spec}: {b.cc} on the board could not build the runner (exit status "
                f"{failed[0].split()[-1]}: {' '.join(proc.stderr.split())[-400:]}). Install a complete C toolchain "
                "with the C library headers there (e.g. `sudo apt-get install gcc libc6-dev`), or ship a runner built "
                "here with --cross. No report was written."
            )
        status = next((ln.split()[-1] for ln in lines if ln.startswith("edgefm-check ")), "missing")
        self.golden = (
            "PASS" if status == "0" else f"FAIL (exit status {status})",
            f"the bundle's check.sh on the board ({GOLDEN_SAMPLES} golden images against this machine's binding)"
            + ("" if status == "0" else "; its log is check.log in the board's bundle directory"),
        )
        self._raise_for_status(proc, "info")
        return proc.stdout

    def _argv(self, rt: NativeRuntime, mode: str, args: list[str]) -> list[str]:
        return ["./runner", mode, "--lib", self._lib_remote, "--model", Path(rt.path).name,
                "--signature", SERVING_SIGNATURE, *args]

    def _raise_for_status(self, proc: subprocess.CompletedProcess[Any], mode: str) -> None:
        if proc.returncode != 0:
            error, failed = EXIT_CODES.get(proc.returncode, (EdgefmError, "failed"))
            raise error(f"The runner on the board {failed} ({mode} {self.artifact_name}, exit status {proc.returncode}): "
                        f"{_runner_message(proc.stderr)}")

    def run(self, rt: NativeRuntime, feeds: Any, flags: list[str]) -> tuple[str, dict[str, np.ndarray]]:
        """One call, one login: the inputs go up as a tar stream on stdin, the outputs come back as one on stdout."""
        call = f"calls/{next(self._calls)}"
        args: list[str] = []
        up = io.BytesIO()
        with tarfile.open(fileobj=up, mode="w") as tar:
            for i, (name, arr) in enumerate(feeds.items()):
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(arr))
                info = tarfile.TarInfo(f"input_{i}.npy")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
                args += ["--input", f"{name}={call}/input_{i}.npy"]
        args += ["--output-dir", f"{call}/out", *flags]
        q = shlex.quote
        run = " ".join(q(a) for a in self._argv(rt, "run", args))
        proc = self.board.ssh(
            f"cd {q(self.rdir)} && mkdir -p {call}/out && tar -C {call} -xf - && "
            f"{{ {run} >{call}/stdout 2>{call}/stderr; echo $? >{call}/status; }}; tar -C {call} -cf - status stdout stderr out",
            what=f"running {self.artifact_name} on the board", data=up.getvalue())
        try:
            with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r") as tar:
                got = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        except (tarfile.TarError, OSError) as e:
            raise BoardError(
                f"--device {self.board.target.spec}: the board's answer for {self.artifact_name} is not the tar stream "
                f"edgefm expects ({e}; ssh said: {' '.join(proc.stderr.split())[-300:]}). Does the board have tar? "
                "No report was written."
            ) from e
        status = int(got.get("status", b"-1").strip() or -1)
        stdout, stderr = got.get("stdout", b"").decode(errors="replace"), got.get("stderr", b"").decode(errors="replace")
        self._raise_for_status(subprocess.CompletedProcess([], status, stdout, stderr), "run")
        files = {row[0]: f"out/{Path(row[1]).name}" for row in _fields(stdout, "output")}
        missing = [s for s in rt.raw_output_names() if files.get(s) not in got]
        if missing:
            raise EdgefmError(f"The runner on the board wrote no output {', '.join(missing)} for {rt.path}.")
        try:
            return stdout, {s: np.load(io.BytesIO(got[files[s]]), allow_pickle=False) for s in rt.raw_output_names()}
        except (OSError, ValueError) as e:
            raise EdgefmError(f"The board's output for {rt.path} is unreadable ({e}).") from e

    def unload(self, rt: NativeRuntime) -> None:
        try:
            self.board.ssh(f"rm -rf {shlex.quote(self.rdir + '/calls')}", what="cleaning up", timeout=60)
        except BoardError:
            pass  # a board that went away keeps its scratch files

    def versions(self, rt: NativeRuntime) -> dict[str, str]:
        return self.board.versions()


