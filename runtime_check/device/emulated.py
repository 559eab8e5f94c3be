"""The native runners on an emulated Arm64 board: cross-compiled, run under ``qemu-aarch64 -cpu CPU -L PREFIX``.

No VM and no binfmt: qemu user mode is called explicitly, as the launcher of
``NativeRuntime``, so everything else (the .npy protocol, the exit codes, the
timing lines, the checks of inputs and outputs) is the host runner's. Times are
*emulated* (10-30x the board's wall time, ~3 s for ONNX Runtime to open a model),
and the report says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import UsageError
from runtime_check.device.libraries import WHEELS, DeviceLibrary, cache_root, fetch_library
from runtime_check.device.sysroot import CpuDescription, sysroot_for
from runtime_check.device.targets import CPUS, QemuTarget
from runtime_check.device.toolchain import Toolchain, find_toolchain
from runtime_check.native.runtime import DEFAULT_TIMEOUT_S, ChildProcess, NativeRuntime

#: emulation is slow: one runner process may take this long
EMULATED_TIMEOUT_S = 4 * DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class EmulatedBoard:
    """Everything one emulated CPU needs, prepared once per verify: tools, libraries, prefix."""

    target: QemuTarget
    toolchain: Toolchain
    prefix: Path
    cpu: CpuDescription
    libraries: dict[str, DeviceLibrary]
    cache: Path

    @property
    def launcher(self) -> tuple[str, ...]:
        return (self.toolchain.qemu, "-cpu", self.target.cpu, "-L", str(self.prefix))

    def place(self, kind: str) -> ChildProcess:
        """Where a runner of ``kind`` runs on this board: under qemu, built with the cross compiler and the
        board's library of that kind, which the runtime then reports as its versions."""
        return ChildProcess(launcher=self.launcher, library=self.libraries[kind].path, cc=self.toolchain.cc,
                            cache=self.cache / "runners", timeout=EMULATED_TIMEOUT_S, spec=self.target.spec,
                            versions=self.versions())

    def describe(self) -> dict[str, Any]:
        """The report's record of this board."""
        return {
            "kind": "emulated",
            "spec": self.target.spec,
            "emulator": self.toolchain.qemu,
            "emulator_version": self.toolchain.qemu_version,
            "cpu": self.target.cpu,
            "stands_for": CPUS.get(self.target.cpu, "not a named core (--device-any-cpu)"),
            "midr": f"0x{self.cpu.midr:x}",
            "features": list(self.cpu.features),
            "sysroot": str(self.prefix),
            "compiler": self.toolchain.cc_version,
            "libraries": {k: lib.to_dict() for k, lib in self.libraries.items()},
            "latency_note": "emulated times (qemu user mode on this host), not the board's",
        }

    def versions(self) -> dict[str, str]:
        """Flat strings for the report's versions table (and the page)."""
        key = f"device {self.target.label}"
        out = {
            f"{key} emulator": f"{self.toolchain.qemu_version} -cpu {self.target.cpu} -L {self.prefix}",
            f"{key} cpu": f"{self.target.cpu} MIDR 0x{self.cpu.midr:x}: {' '.join(self.cpu.features)}",
        }
        for kind, lib in self.libraries.items():
            out[f"{key} {kind}"] = f"{lib.path.name} {lib.distribution} {lib.version} ({lib.wheel}) sha256 {lib.sha256}"
        return out


@functools.lru_cache(maxsize=8)
def _board(cpu: str, cache: Path | None) -> EmulatedBoard:
    tc = find_toolchain()
    root = Path(cache) if cache is not None else cache_root()
    prefix, desc = sysroot_for(tc, cpu, root)
    libs = {kind: fetch_library(kind, cache=root / "libs") for kind in WHEELS}
    return EmulatedBoard(QemuTarget(cpu), tc, prefix, desc, libs, root)


def prepare_board(target: QemuTarget, *, cache: Path | None = None) -> EmulatedBoard:
    """Find the tools, fetch the libraries, build the prefix (each cached); errors say what to install."""
    return _board(target.cpu, None if cache is None else Path(cache))


def emulated_runtime_for(path: Path, board: EmulatedBoard) -> NativeRuntime:
    """The native runner of ``path``'s format, placed on the emulated board."""
    from runtime_check.runtimes.registry import FORMAT_OF_SUFFIX, NATIVE, runner_kinds

    suffix = Path(path).suffix.lower()
    kinds = runner_kinds(FORMAT_OF_SUFFIX.get(suffix, ""), NATIVE)
    if not kinds:
        raise UsageError(f"{path}: the device runs .tflite and .onnx files ({TFLITE_FORMAT}, {ONNX_FORMAT}), not {suffix!r}.")
    cls = kinds[0].runtime_class()
    assert issubclass(cls, NativeRuntime)
    return cls(path, place=board.place(cls.kind))
