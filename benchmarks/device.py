"""The device rows: ``edgefm verify --device qemu-aarch64:cortex-a72`` beside the host rows.

One real CLI process verifies every artifact on the emulated Arm64 board (cross-compiled
runners under qemu user mode, aarch64 libraries from the same versions' wheels). Per
artifact: the host row's and the device row's top-1 agreement and max |Δ logit| against
TensorFlow, the share of output values identical to the x86 binding's, and the device's
batch-1 p50/p99 from the runner's warm loop — *emulated* times, held beside the host's
native C API p50 of the inference section (the same runner and loop on x86). Without the
cross packages the section says what is missing and is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefm.core.errors import EdgefmError
from runtime_check.verify.results import artifact_of, row_name

CPU = "cortex-a72"
TIMEOUT_S = 900.0


def device_section(artifacts: Path, tmp: Path, *, samples: int | None, data_dir: Path | None,
                   inference: dict[str, Any] | None = None, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every artifact (or those in ``only``) on the emulated board, on ``samples`` images (None: all)."""
    from runtime_check.device.toolchain import find_toolchain

    try:
        find_toolchain()
    except EdgefmError as e:
        return {"skipped": str(e)}
    report = tmp / "device-report.json"
    cmd = [sys.executable, "-m", "edgefm.cli", "verify", "--artifacts", str(artifacts), "--device", f"qemu-aarch64:{CPU}",
           "--no-html", "--report", str(report), "-q"]
    cmd += ["--samples", str(samples)] if samples else []
    cmd += ["--only", ",".join(only)] if only else []
    cmd += ["--data-dir", str(data_dir)] if data_dir is not None else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not report.is_file():
        tail = " / ".join(ln for ln in proc.stderr.strip().splitlines()[-3:] if ln.strip())
        raise EdgefmError(f"`edgefm verify --device qemu-aarch64:{CPU}` exited with status {proc.returncode}: {tail}")
    data = json.loads(report.read_text())
    arts = data["artifacts"]
    # the inference section names its native rows NAME@native
    host_native = {artifact_of(str(r["name"])): r["latency"].get("1", {}).get("p50_ms")
                   for r in (inference or {}).get("rows", []) if str(r.get("runtime", "")).startswith("native-")}
    rows = []
    label = f"aarch64-{CPU}"
    for name, host in arts.items():
        if artifact_of(name) != name or row_name(name, label) not in arts:
            continue
        dev = arts[row_name(name, label)]
        m = dev["metrics"]

        def value(metrics: dict[str, Any], key: str) -> Any:
            return metrics.get(key, {}).get("value")

        p50 = value(m, "device_p50_ms")
        native = host_native.get(name)
        rows.append({
            "name": name,
            "passed": bool(dev["passed"]),
            "host_passed": bool(host["passed"]),
            "host_top1": value(host["metrics"], "top1_agreement"),
            "device_top1": value(m, "top1_agreement"),
            "host_max_abs_error": value(host["metrics"], "max_abs_error"),
            "device_max_abs_error": value(m, "max_abs_error"),
            "x86_exact_match": value(m, "x86_exact_match"),
            "device_p50_ms": p50,
            "device_p99_ms": value(m, "device_p99_ms"),
            "host_native_p50_ms": native,
            "emulated_vs_host": p50 / native if p50 and native else None,
            "error": dev.get("error"),
        })
    board = data.get("devices", {}).get("boards", {}).get(f"aarch64-{CPU}", {})
    return {
        "command": " ".join(["edgefm", *cmd[3:]]).replace(str(artifacts), "TMP").replace(str(report), "REPORT"),
        "cpu": CPU,
        "emulator": board.get("emulator_version"),
        "samples": data["inputs"]["count"],
        "only": list(only),
        "seconds": seconds,
        "exit_status": proc.returncode,
        "rows": rows,
    }


def markdown(section: dict[str, Any]) -> str:
    lines = [
        f"`{section['command']}` ({section['emulator']}, {section['samples']:,} images, {section['seconds']:.1f} s). "
        "Parity is against TensorFlow with the host rows' bounds; the device p50/p99 are the runner's warm loop on "
        "one image, **emulated** times (qemu user mode on this host), not the board's, beside the host's native "
        "C API p50 (the same runner and loop on x86).",
        "",
        "| model | host / device | top-1 host | top-1 device | max \\|Δ\\| host | max \\|Δ\\| device | identical to x86 "
        "| device p50 ms (emulated) | device p99 ms | host native p50 ms | emulated / host |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(v: Any) -> str:
        return "—" if v is None else f"{100 * v:.2f}%"

    def g(v: Any, fmt: str = ".3g") -> str:
        return "—" if v is None else format(v, fmt)

    for r in section["rows"]:
        verdict = f"{'PASS' if r['host_passed'] else 'FAIL'} / {'PASS' if r['passed'] else 'FAIL'}"
        lines.append(
            f"| {r['name']} | {verdict} | {pct(r['host_top1'])} | {pct(r['device_top1'])} | {g(r['host_max_abs_error'])} "
            f"| {g(r['device_max_abs_error'])} | {pct(r['x86_exact_match'])} | {g(r['device_p50_ms'], '.4f')} "
            f"| {g(r['device_p99_ms'], '.4f')} | {g(r['host_native_p50_ms'], '.4f')} | {g(r['emulated_vs_host'], '.1f')}"
            f"{'×' if r['emulated_vs_host'] else ''} |"
        )
    return "\n".join(lines)
