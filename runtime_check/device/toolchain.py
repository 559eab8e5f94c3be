"""The host tools of the emulated board: the aarch64 cross compiler, its C library, and qemu user mode.

Each is looked for once; whatever is missing is named in one RuntimeUnavailableError
with the Debian packages that provide it (``make device`` installs them).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgefm.core.errors import RuntimeUnavailableError

CROSS_CC = "aarch64-linux-gnu-gcc"
#: Debian's cross C library (libc6-dev-arm64-cross, libstdc++6-arm64-cross): the guest's /lib
CROSS_SYSROOT = Path("/usr/aarch64-linux-gnu")
QEMU = ("qemu-aarch64-static", "qemu-aarch64")
#: what provides each piece on Debian/Ubuntu
PACKAGES = {
    "cross compiler": "gcc-aarch64-linux-gnu",
    "aarch64 C library": "libc6-dev-arm64-cross libstdc++6-arm64-cross",
    "emulator": "qemu-user-static",
}


@dataclass(frozen=True)
class Toolchain:
    cc: str
    cc_version: str
    sysroot: Path
    qemu: str
    qemu_version: str


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _cross_cc() -> str | None:
    env = os.environ.get("EDGEFM_AARCH64_CC")
    return shutil.which(env) if env else shutil.which(CROSS_CC)


def _qemu() -> str | None:
    for name in QEMU:
        if found := shutil.which(name):
            return found
    return None


@functools.lru_cache(maxsize=1)
def find_toolchain() -> Toolchain:
    """The cross compiler, the aarch64 sysroot and qemu, or one error naming every missing piece."""
    cc, qemu = _cross_cc(), _qemu()
    missing = []
    if cc is None:
        missing.append(("cross compiler", CROSS_CC))
    if not (CROSS_SYSROOT / "lib" / "ld-linux-aarch64.so.1").is_file() or not (CROSS_SYSROOT / "lib" / "libstdc++.so.6").exists():
        missing.append(("aarch64 C library", str(CROSS_SYSROOT / "lib")))
    if qemu is None:
        missing.append(("emulator", " or ".join(QEMU)))
    if missing:
        packages = " ".join(dict.fromkeys(PACKAGES[what] for what, _ in missing))
        raise RuntimeUnavailableError(
            "The emulated Arm64 board (--device qemu-aarch64) needs what this machine lacks: "
            + "; ".join(f"the {what} ({where})" for what, where in missing)
            + f". Install it with `make device` or `apt-get install {packages}` (Debian/Ubuntu); the rest of "
            "verify runs without it."
        )
    assert cc is not None and qemu is not None
    return Toolchain(cc, _first_line([cc, "--version"]), CROSS_SYSROOT, qemu, _first_line([qemu, "--version"]))
