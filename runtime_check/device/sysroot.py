"""The ``-L`` prefix of the emulated board: the aarch64 C library and a /proc/cpuinfo of the emulated CPU.

Why a cpuinfo: Debian bookworm's qemu 7.2 shows the guest the *host's* x86
/proc/cpuinfo, and LiteRT and ONNX Runtime (their cpuinfo library) then SIGSEGV
while loading any model; a cpuinfo that does not match ``-cpu`` gives SIGILL
(issue 17's prototype). qemu 7.2 fakes /proc/cpuinfo only for sparc, hppa, m68k
and riscv guests (linux-user/syscall.c, ``fakes[]`` in do_guest_openat; aarch64
was added in qemu 8.2), and every other guest path goes through ``path()``, which
prefers PREFIX/<path> when that file exists (util/path.c). So PREFIX/proc/cpuinfo
*is* what the guest reads: checked here with an aarch64 program that prints the
first line of /proc/cpuinfo under ``qemu-aarch64-static -L``, which printed the
prefix's file (qemu 7.2.22, Debian 1:7.2+dfsg-7+deb12u18).

The cpuinfo is written from what the emulated CPU itself reports: ``cpuprobe.c``
(cross-compiled, run under ``qemu -cpu CPU``) prints MIDR_EL1 and the HWCAP
feature names, in the format of Linux's arch/arm64/kernel/cpuinfo.c, one
``processor`` block per host CPU (sysconf and /sys under qemu are the host's).

The prefix is ``$XDG_CACHE_HOME/edgefm/device/sysroot/<cpu>-<hash>/``: ``lib`` and
``usr/lib`` are symlinks to Debian's /usr/aarch64-linux-gnu/lib, ``proc/cpuinfo`` a
file; it appears whole (built in a temporary directory, then renamed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgefm.core.errors import RuntimeUnavailableError
from runtime_check.device.toolchain import Toolchain

PROBE_SOURCE = Path(__file__).resolve().parent / "cpuprobe.c"


@dataclass(frozen=True)
class CpuDescription:
    """What the emulated CPU reports: MIDR_EL1 and the HWCAP feature names."""

    cpu: str
    midr: int
    features: tuple[str, ...]

    def cpuinfo(self, processors: int) -> str:
        m = self.midr
        block = (
            "BogoMIPS\t: 50.00\n"
            f"Features\t: {' '.join(self.features)}\n"
            f"CPU implementer\t: 0x{(m >> 24) & 0xFF:02x}\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: 0x{(m >> 20) & 0xF:x}\n"
            f"CPU part\t: 0x{(m >> 4) & 0xFFF:03x}\n"
            f"CPU revision\t: {m & 0xF}\n\n"
        )
        return "".join(f"processor\t: {i}\n{block}" for i in range(processors))


def _host_processors() -> int:
    """How many CPUs the guest sees in /sys (qemu user mode passes the host's through)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        return max(int(part.split("-")[-1]) for part in text.split(",")) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def _build_probe(tc: Toolchain, cache: Path) -> Path:
    key = hashlib.sha256(PROBE_SOURCE.read_bytes() + tc.cc_version.encode()).hexdigest()[:16]
    exe = cache / f"cpuprobe-{key}"
    if exe.is_file():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cpuprobe.", dir=cache)
    os.close(fd)
    try:
        proc = subprocess.run([tc.cc, "-O2", "-o", tmp, str(PROBE_SOURCE)], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeUnavailableError(
                f"{tc.cc} could not compile {PROBE_SOURCE.name}: {proc.stderr.strip()[-400:]}. Install the aarch64 "
                "cross toolchain: `apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross`."
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, exe)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return exe


def describe_cpu(tc: Toolchain, cpu: str, cache: Path) -> CpuDescription:
    """Run the probe on the emulated ``cpu``; a CPU qemu does not know is a RuntimeUnavailableError."""
    probe = _build_probe(tc, cache)
    try:
        proc = subprocess.run([tc.qemu, "-cpu", cpu, "-L", str(tc.sysroot), str(probe)], capture_output=True,
                              text=True, timeout=60, env={}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeUnavailableError(f"{tc.qemu} did not run the CPU probe ({e}).") from e
    fields = dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)
    if proc.returncode != 0 or "midr" not in fields:
        raise RuntimeUnavailableError(
            f"{tc.qemu} -cpu {cpu} did not run an aarch64 program (exit status {proc.returncode}: "
            f"{(proc.stderr.strip() or proc.stdout.strip())[-300:]}). `{tc.qemu} -cpu help` lists the CPUs it emulates."
        )
    return CpuDescription(cpu, int(fields["midr"], 16), tuple(fields.get("features", "").split()))


def sysroot_for(tc: Toolchain, cpu: str, cache: Path) -> tuple[Path, CpuDescription]:
    """The ``-L`` prefix for ``cpu`` (built once per cpuinfo) and the CPU's description."""
    desc = describe_cpu(tc, cpu, cache)
    text = desc.cpuinfo(_host_processors())
    key = hashlib.sha256(f"{tc.sysroot}\0{text}".encode()).hexdigest()[:12]
    prefix = cache / "sysroot" / f"{cpu}-{key}"
    if (prefix / "proc" / "cpuinfo").is_file():
        return prefix, desc
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=prefix.parent))
    try:
        (staging / "proc").mkdir()
        (staging / "proc" / "cpuinfo").write_text(text, encoding="ascii")
        (staging / "usr").mkdir()
        os.symlink(tc.sysroot / "lib", staging / "lib")
        os.symlink(tc.sysroot / "lib", staging / "usr" / "lib")
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, prefix)
        except OSError:
            if not (prefix / "proc" / "cpuinfo").is_file():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix, desc
