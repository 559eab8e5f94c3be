"""TensorFlow Lite Micro on this host: ``edgefm verify --micro`` beside the LiteRT rows.

One real CLI process verifies the int8 and float32 ``.tflite`` files with ``--micro`` (rows
``NAME@tflm``: TFLM on the host, batch 1, at the exact arena found by bisection). Per file: the
arena (and TFLM's head/tail split), the bisection's loads and seconds, TFLM's host seconds per row
beside LiteRT's (the binding row of the same run), and the rounding audit's share of int8 outputs
identical to LiteRT's reference kernels. Host latency, labelled so: a Cortex-M is another machine.
Without tflite-micro installed (``make micro``) the section says so and is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefm.core.errors import EdgefmError
from runtime_check.verify.results import artifact_of

#: the variants TFLM has kernels for among the demo's files
ONLY = ("tflite_int8", "tflite_float32")
TIMEOUT_S = 900.0


def micro_section(artifacts: Path, tmp: Path, *, samples: int | None, data_dir: Path | None) -> dict[str, Any]:
    """``verify --micro`` of ``ONLY`` on ``samples`` test images (None: all), timed as one CLI process."""
    from runtime_check.micro.arena import require_tflm

    try:
        version = require_tflm()
    except EdgefmError as e:
        return {"skipped": str(e)}
    report = tmp / "micro-report.json"
    cmd = [sys.executable, "-m", "edgefm.cli", "verify", "--artifacts", str(artifacts), "--micro", "--no-html",
           "--report", str(report), "-q", *[a for n in ONLY for a in ("--only", n)]]
    cmd += ["--samples", str(samples)] if samples else []
    cmd += ["--data-dir", str(data_dir)] if data_dir is not None else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    if not report.exists():
        raise RuntimeError(f"verify --micro wrote no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(report.read_text(encoding="utf-8"))
    arts, count = data["artifacts"], int(data["inputs"]["count"])
    rows = []
    for name, extras in ((n, a["micro"]) for n, a in arts.items() if a.get("micro")):  # artifacts.NAME@tflm.micro
        binding = arts.get(artifact_of(name), {})
        litert = binding.get("timings", {}).get("infer")
        audit = extras.get("rounding_audit") or {}
        rows.append({
            "name": name,
            "passed": bool(arts[name]["passed"]),
            "arena": extras.get("arena"),
            "tflm_seconds_per_row": (extras.get("host_latency") or {}).get("seconds_per_row"),
            "litert_seconds_per_row": litert / count if litert else None,
            "identical_to_reference_kernels": _identical_share(audit),
        })
    return {"tflite_micro": version, "samples": count, "seconds": seconds,
            "exit": proc.returncode, "rows": rows}


def _identical_share(audit: dict[str, Any]) -> float | None:
    """The share of the audit's output values where TFLM equals LiteRT's reference kernels (0 steps apart)."""
    from runtime_check.micro.rounding import REFERENCE, TFLM

    pair = (audit.get("outputs") or {}).get(f"{TFLM} vs {REFERENCE}") or {}
    counts: dict[int, int] = {}
    for out in (pair.get("outputs") or {}).values():
        for step, n in (out.get("step_histogram") or {}).items():
            counts[int(step)] = counts.get(int(step), 0) + int(n)
    total = sum(counts.values())
    return counts.get(0, 0) / total if total else None


def markdown(section: dict[str, Any]) -> str:
    if "skipped" in section:
        return f"Skipped: {section['skipped']}"
    lines = [
        f"`edgefm verify --micro` (tflite-micro {section['tflite_micro']}, {section['samples']:,} test images, one CLI "
        f"process: {section['seconds']:.1f} s, exit {section['exit']}). Host latency: TFLM on this x86 host, batch 1; a "
        "Cortex-M is another machine. The arena is the smallest TFLM accepts (16-byte steps), an upper bound for a "
        "32-bit Cortex-M.",
        "",
        "| row | verify | arena B (head / tail) | arena search: loads, s | TFLM µs/row (host) | LiteRT µs/row (batch) | "
        "int8 outputs identical to LiteRT's reference kernels |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in section["rows"]:
        a = r["arena"] or {}
        split = f" ({a['head']:,} / {a['tail']:,})" if a.get("head") is not None and a.get("tail") is not None else ""
        us = lambda s: "-" if s is None else f"{s * 1e6:,.1f}"  # noqa: E731
        same = r["identical_to_reference_kernels"]
        lines.append(f"| {r['name']} | {'PASS' if r['passed'] else 'FAIL'} | {a.get('bytes', 0):,}{split} | "
                     f"{a.get('attempts', '-')}, {a.get('seconds', 0.0):.2f} | {us(r['tflm_seconds_per_row'])} | "
                     f"{us(r['litert_seconds_per_row'])} | {'-' if same is None else f'{100 * same:.2f}%'} |")
    return "\n".join(lines)
