"""The explain section: ``--explain`` of one artifact of the suite's MLP, seconds and peak memory by input count.

Each row is a child process (``python -m benchmarks.explain_speed ROOT NAME ROWS``) that does what
``verify --explain NAME`` does after verify, on the first ROWS test images: import, freeze
TensorFlow's serving graph, tap the artifact, compare every tensor batch by batch. Its wall seconds
(imports included: what a user waits) and its peak RSS (VmHWM) are reported. Tensors are reduced to
statistics per batch, so memory must not grow with the number of inputs: the 10,000-input peak is
held against the 1,000-input one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefm.core.errors import EdgefmError

#: the artifact explained (the hardest case: quantized tensors are dequantized and counted in steps)
ARTIFACT = "tflite_int8"
ROWS: tuple[int, ...] = (1_000, 10_000)
TIMEOUT_S = 600.0


def _child(artifacts: Path, rows: int, data_dir: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.explain_speed", str(artifacts), ARTIFACT, str(rows)]
    if data_dir is not None:
        cmd.append(str(data_dir))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " / ".join(ln for ln in proc.stderr.strip().splitlines()[-3:] if ln.strip())
        raise EdgefmError(f"explain of {ARTIFACT} on {rows} inputs exited with status {proc.returncode}: {tail}")
    return {"rows": rows, "seconds": seconds, **json.loads(proc.stdout.strip().splitlines()[-1])}


def explain_section(artifacts: Path, *, data_dir: Path | None) -> dict[str, Any]:
    rows = [_child(artifacts, n, data_dir) for n in ROWS]
    first, last = rows[0], rows[-1]
    return {"artifact": ARTIFACT, "rows": rows, "seconds_1k": first["seconds"],
            "rss_ratio": last["peak_rss_mb"] / first["peak_rss_mb"]}


def markdown(section: dict[str, Any]) -> str:
    lines = [f"`verify --explain {section['artifact']}` (the MLP) in a fresh process: imports, TensorFlow's graph "
             "frozen, every tensor compared batch by batch.", "",
             "| inputs | wall s (process) | explain s | peak RSS MB | tensors | flagged |", "|---|---|---|---|---|---|"]
    for r in section["rows"]:
        lines.append(f"| {r['rows']:,} | {r['seconds']:.2f} | {r['explain_seconds']:.2f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['tensors']} | {r['flagged']} |")
    lines.append(f"\nPeak RSS at {section['rows'][-1]['rows']:,} inputs: {section['rss_ratio']:.2f}× that at "
                 f"{section['rows'][0]['rows']:,}.")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """The child: explain ``NAME`` of ``ROOT`` on ``ROWS`` test images; one JSON line on stdout."""
    from edgefm.core.hostinfo import peak_rss_mb
    from edgefm.core.manifest import Manifest
    from edgefm.data.inputs import load_inputs
    from runtime_check.explain.explain import explain
    from runtime_check.verify.config import CheckConfig

    root, name, rows = Path(argv[0]), argv[1], int(argv[2])
    data_dir = Path(argv[3]) if len(argv) > 3 else None
    manifest = Manifest.load(root)
    data = load_inputs(CheckConfig(artifacts=root, samples=rows, data_dir=data_dir), manifest)
    t0 = time.perf_counter()
    ex = explain(root, manifest, [name], data, rows=rows, batch=250)[name]
    if ex.error:
        raise SystemExit(ex.error)
    print(json.dumps({"explain_seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
                      "tensors": len(ex.tensors), "flagged": sum(not t.passed for t in ex.tensors)}))


if __name__ == "__main__":
    main(sys.argv[1:])
