"""The NPU fit report: what Arm's Vela compiler puts on an Ethos-U NPU, and what falls back to the CPU.

Vela (``ethos-u-vela``) compiles an int8 .tflite for one Ethos-U configuration
and writes, into its ``--output-dir``: ``<name>_vela.tflite``,
``<name>_summary_<system config>.csv`` (one row: SRAM and flash used in KiB,
``inference_time`` in seconds, cycle counts) and with ``--verbose-performance``
``<name>_per-layer.csv`` (one row per operator Vela schedules: its original TFLite
operator, Target NPU or CPU, cycles, MACs). Why an operator stays on the CPU is
only printed, as ``Warning (supported operators) operator: OP, ofm: 'T'`` followed
by ``Reason: ...`` lines on stdout.

Ethos-U cannot execute here (no FVP, not in qemu): the time is Vela's estimate,
and no parity claim is made for the NPU. Vela runs as a child process in a private
temporary directory, deleted afterwards.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgefm.core.errors import ModelFileError, RuntimeUnavailableError, UsageError

ESTIMATE_NOTE = "estimate: Ethos-U cannot run here"
VELA_TIMEOUT_S = 600.0
_CPU_REASON = re.compile(r"Warning \(supported operators\) operator: (\w+), ofm: '([^']*)'\n((?:.+\n?)+?)(?:\n|$)")


@dataclass(frozen=True)
class NpuFit:
    """Vela's compilation of one int8 .tflite for one Ethos-U configuration."""

    path: str
    config: str
    system_config: str
    vela_version: str
    #: every operator Vela scheduled (after its own lowering: a SOFTMAX becomes ~30 NPU ops), by target
    npu_ops: int
    cpu_ops: int
    #: original TFLite operator type -> {"NPU": n, "CPU": n}
    by_type: dict[str, dict[str, int]]
    #: the operators left on the CPU and Vela's reason
    cpu_fallback: list[dict[str, str]] = field(default_factory=list)
    sram_kib: float = 0.0
    flash_kib: float = 0.0
    #: a system configuration with DRAM (the Ethos-U85 default) keeps the weights there instead of flash
    dram_kib: float = 0.0
    inference_seconds: float = 0.0
    cycles: int = 0
    macs: int = 0

    def describe(self) -> list[str]:
        total = self.npu_ops + self.cpu_ops or 1
        lines = [
            f"{Path(self.path).name} on {self.config} ({self.system_config}, Vela {self.vela_version}):",
            f"  NPU {self.npu_ops} / CPU {self.cpu_ops} operators ({100 * self.npu_ops / total:.0f}% on the NPU); "
            + ", ".join(f"{t} {'/'.join(f'{k} {v}' for k, v in where.items())}" for t, where in self.by_type.items()),
            f"  SRAM {self.sram_kib:.2f} KiB, flash {self.flash_kib:.2f} KiB"
            + (f", DRAM {self.dram_kib:.2f} KiB" if self.dram_kib else ""),
            f"  inference {self.inference_seconds * 1e3:.3f} ms, {self.cycles:,} cycles ({ESTIMATE_NOTE})",
        ]
        for fb in self.cpu_fallback:
            lines.append(f"  CPU: {fb['op']} ({fb['tensor']}): {fb['reason']}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": ESTIMATE_NOTE}


def vela_configs() -> list[str]:
    """The Ethos-U configurations the installed Vela knows (its ``--accelerator-config`` choices)."""
    try:
        from ethosu.vela.architecture_features import Accelerator
    except ImportError as e:
        raise RuntimeUnavailableError(
            "Arm Vela is not installed: run `make micro`, or `pip install ethos-u-vela==5.2.0`.") from e
    return list(Accelerator.member_list())


def check_npu_request(path: Path, config: str) -> None:
    """UsageError (exit 2) for a configuration Vela does not know or a file Vela cannot compile."""
    from edgefm.formats.tflite_file import tflite_quantization

    known = vela_configs()
    if config not in known:
        raise UsageError(f"--npu {config!r} is not an Ethos-U configuration Vela knows. Pick one of: "
                         f"{', '.join(known)} (the number is the MACs per cycle).")
    path = Path(path)
    if path.suffix.lower() != ".tflite":
        raise UsageError(f"--npu compiles .tflite files with Arm's Vela; {path} is not one. Export the int8 "
                         "TFLite variant with `edgefm export --format tflite --quantize int8`.")
    if not path.is_file():
        raise ModelFileError(f"Model {path} does not exist. Check the path, or run `edgefm export`.")
    from runtime_check.runtimes.probe import check_structure

    check_structure(path)
    kind = tflite_quantization(path)
    if kind != "int8":
        raise UsageError(f"--npu needs a full-integer (int8) .tflite: Ethos-U runs int8/int16 only, and {path} is "
                         f"{kind}. Export one with `edgefm export --format tflite --quantize int8`.")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _vela_message(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Traceback", "  File"))]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " / ".join((errors or lines)[-3:])[:600] or "no message"


def npu_fit(path: Path, config: str = "ethos-u55-128") -> NpuFit:
    """Compile ``path`` with Vela for ``config`` and report placement, memory and the estimated time."""
    from importlib import metadata

    path = Path(path)
    check_npu_request(path, config)
    with tempfile.TemporaryDirectory(prefix="edgefm-vela-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
               str(path.resolve()), "--accelerator-config", config, "--output-dir", str(out),
               "--verbose-performance"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=VELA_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise ModelFileError(f"Vela did not compile {path} for {config} within {VELA_TIMEOUT_S:g} s.") from e
        summaries = sorted(out.glob(f"{path.stem}_summary_*.csv"))
        layers = out / f"{path.stem}_per-layer.csv"
        if proc.returncode != 0 or not summaries or not layers.is_file():
            raise ModelFileError(
                f"Vela could not compile {path} for {config} (exit status {proc.returncode}): "
                f"{_vela_message(proc.stdout + proc.stderr)}. The model does not fit this NPU as it is: try a "
                "larger configuration, or a smaller model.")
        summary = _read_csv(summaries[0])[0]
        rows = _read_csv(layers)
    by_type: dict[str, dict[str, int]] = {}
    for row in rows:
        where = by_type.setdefault(row["Original Operator"], {})
        where[row["Target"]] = where.get(row["Target"], 0) + 1
    fallback = [{"op": op, "tensor": tensor, "reason": " ".join(ln.strip() for ln in reason.splitlines())
                 .removeprefix("Reason: ")}
                for op, tensor, reason in _CPU_REASON.findall(proc.stdout + "\n")]
    flash = sum(float(summary.get(k) or 0) for k in ("on_chip_flash_memory_used", "off_chip_flash_memory_used"))
    return NpuFit(
        path=str(path), config=config, system_config=summary.get("system_config", ""),
        vela_version=metadata.version("ethos-u-vela"),
        npu_ops=sum(r["Target"] == "NPU" for r in rows), cpu_ops=sum(r["Target"] == "CPU" for r in rows),
        by_type=by_type, cpu_fallback=fallback,
        sram_kib=float(summary.get("sram_memory_used") or 0), flash_kib=flash,
        dram_kib=float(summary.get("dram_memory_used") or 0),
        inference_seconds=float(summary.get("inference_time") or 0), cycles=int(float(summary.get("cycles_total") or 0)),
        macs=int(float(summary.get("nn_macs") or 0)),
    )


def npu_reports(paths: dict[str, Path], config: str) -> dict[str, dict[str, Any]]:
    """``npu_fit`` of each int8 .tflite of ``paths`` (name -> file); a file Vela cannot compile: its error."""
    from edgefm.core.errors import EdgefmError

    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        try:
            out[name] = npu_fit(path, config).to_dict()
        except EdgefmError as e:
            out[name] = {"error": str(e), "config": config, "note": ESTIMATE_NOTE}
    return out


def npu_lines(reports: dict[str, dict[str, Any]]) -> list[str]:
    """The fit reports as text lines (under verify's table)."""
    lines = []
    for name, d in reports.items():
        if "error" in d:
            lines.append(f"{name}: {d['error']}")
            continue
        fit = NpuFit(**{k: v for k, v in d.items() if k != "note"})
        lines += [f"{name}: {line.strip()}" for line in fit.describe()]
    return lines
