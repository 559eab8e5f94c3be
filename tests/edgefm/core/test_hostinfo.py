"""The CPU record of a report: model, the features kernels are chosen by, the int8 path they imply."""

from __future__ import annotations

from pathlib import Path

from edgefm.core.hostinfo import host_cpu, int8_kernel_path, parse_cpuinfo

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2

processor\t: 1
model name\t: another core, never read
flags\t\t: avx512_vnni
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b
"""


def test_x86_cpuinfo_without_vnni_takes_the_saturating_path() -> None:
    cpu = parse_cpuinfo(X86, "x86_64")
    assert cpu["model"] == "AMD EPYC 7B13 64-Core Processor"
    assert cpu["features"] == ["sse4.1", "avx", "avx2", "fma", "f16c"]  # first processor only
    assert int8_kernel_path("x86_64", cpu["features"]).startswith("x86 AVX2 without VNNI")


def test_vnni_and_amx_are_named_first() -> None:
    assert int8_kernel_path("x86_64", ["avx2", "avx512bw", "avx512vnni"]).startswith("x86 AVX-512 VNNI")
    assert int8_kernel_path("x86_64", ["avx2", "avxvnni"]).startswith("x86 AVX-VNNI")
    assert int8_kernel_path("x86_64", ["avx2", "avx512bw"]).startswith("x86 AVX-512 without VNNI")
    assert int8_kernel_path("x86_64", ["avx512vnni", "amx-int8"]) == "x86 AMX"


def test_arm_cpuinfo_names_dotprod_and_the_core() -> None:
    cpu = parse_cpuinfo(ARM, "aarch64")
    assert cpu["features"] == ["neon", "fp16", "dotprod"]
    assert cpu["model"] == "implementer 0x41 part 0xd0b"
    assert int8_kernel_path("aarch64", cpu["features"]) == "Arm dotprod (SDOT/UDOT)"
    assert int8_kernel_path("aarch64", [*cpu["features"], "i8mm"]).startswith("Arm i8mm")


def test_host_cpu_of_this_machine_and_of_a_missing_file(tmp_path: Path) -> None:
    here = host_cpu()
    assert here["machine"] and isinstance(here["features"], list) and here["int8_kernels"]
    gone = host_cpu(tmp_path / "no-cpuinfo")
    assert gone["features"] == [] and gone["machine"] == here["machine"]
