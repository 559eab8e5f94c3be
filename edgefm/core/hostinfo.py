"""What CPU ran a check: model and the instruction-set features runtimes pick kernels by.

ONNX Runtime's MLAS and LiteRT's XNNPACK choose their int8 and float kernels at
run time from the CPU's features, and the choice changes results: on x86, MLAS
multiplies uint8 x int8 with VPMADDUBSW (16-bit saturating pair sums) unless the
CPU has VNNI (VPDPBUSD accumulates in 32 bits), so the same int8 .onnx file gives
different logits on an AVX2-only EPYC than on a VNNI one. Two verify reports from
two machines are told apart by this record.

Read from ``/proc/cpuinfo`` (Linux); elsewhere only ``platform`` is known. Under
qemu user-mode emulation the guest sees the *host's* /proc/cpuinfo, so an emulated
run records the emulated CPU itself (see ``runtime_check.native``).
"""

from __future__ import annotations

import contextlib
import platform
import sys
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

#: /proc/cpuinfo flag -> the name reports use, for the features kernels are chosen by
X86_FEATURES: dict[str, str] = {
    "sse4_1": "sse4.1",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512_vnni": "avx512vnni",
    "avx_vnni": "avxvnni",
    "avx512_bf16": "avx512bf16",
    "avx512_fp16": "avx512fp16",
    "amx_tile": "amx",
    "amx_int8": "amx-int8",
}
ARM_FEATURES: dict[str, str] = {
    "asimd": "neon",
    "asimdhp": "fp16",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
}


def int8_kernel_path(machine: str, features: list[str]) -> str:
    """Which int8 matrix-product path MLAS takes on these features (its dispatch order, by feature)."""
    f = set(features)
    if machine in ("x86_64", "AMD64", "i686"):
        if "amx-int8" in f:
            return "x86 AMX"
        if "avx512vnni" in f:
            return "x86 AVX-512 VNNI (32-bit accumulation)"
        if "avxvnni" in f:
            return "x86 AVX-VNNI (32-bit accumulation)"
        if "avx512bw" in f:
            return "x86 AVX-512 without VNNI (VPMADDUBSW, 16-bit saturating pairs)"
        if "avx2" in f:
            return "x86 AVX2 without VNNI (VPMADDUBSW, 16-bit saturating pairs)"
        return "x86 SSE"
    if machine in ("aarch64", "arm64"):
        if "i8mm" in f:
            return "Arm i8mm (SMMLA/UMMLA)"
        if "dotprod" in f:
            return "Arm dotprod (SDOT/UDOT)"
        return "Arm NEON"
    return "unknown"


def parse_cpuinfo(text: str, machine: str) -> dict[str, Any]:
    """Model name and the known features from the text of /proc/cpuinfo (first processor)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: cores of one package share features
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    table = ARM_FEATURES if machine in ("aarch64", "arm64") else X86_FEATURES
    features = [name for flag, name in table.items() if flag in flags]
    model = fields.get("model name") or fields.get("cpu model") or ""
    if not model and "cpu part" in fields:
        model = f"implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
    return {"model": model or "unknown", "features": features}


def host_cpu(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """``{"machine", "model", "features", "int8_kernels"}`` of the machine this process runs on."""
    machine = platform.machine()
    try:
        parsed = parse_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"), machine)
    except OSError:
        parsed = {"model": platform.processor() or "unknown", "features": []}
    return {"machine": machine, **parsed, "int8_kernels": int8_kernel_path(machine, parsed["features"])}

def peak_rss_mb() -> float:
    """Peak resident set size of this process's own address space, in MiB.

    On Linux this is ``VmHWM`` from /proc/self/status, not ``ru_maxrss``: Linux
    carries the parent's peak into a child's ``ru_maxrss`` across fork and exec,
    so a child started from a process that holds TensorFlow would report
    TensorFlow's memory (measured: every child showed the parent's 630 MB).
    Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    import resource

    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
