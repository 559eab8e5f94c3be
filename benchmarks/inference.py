"""The inference, size and accuracy sections of the benchmark suite, for one artifacts directory.

Inference reuses ``runtime_check.tools.benchmark`` (each model in a fresh child
process, the TF SavedModel as the baseline) and adds every .tflite/.onnx file in
its native C runner (a warm loop of C API calls timed by the runner itself). Size is every artifact's bytes relative to the float32
TFLite file. Accuracy is read from the ``verify-report.json`` that ``edgefm
verify`` wrote for the same artifacts, so the suite runs TensorFlow on the test
split once. Each function returns plain JSON-ready data; ``*_markdown`` renders it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgefm.core.errors import EdgefmError
from runtime_check.verify.results import artifact_of, is_native_row

#: The batch sizes the suite reports: one image, and a batch of 256.
BATCH_SIZES: tuple[int, ...] = (1, 256)
#: Every size is given relative to this artifact.
SIZE_BASELINE = "tflite_float32"
NATIVE_LABEL = "native C API (warm loop)"
#: ``BenchmarkResult.runtime`` -> what the tables call it
RUNTIME_LABELS = {"tensorflow": "TF SavedModel", "litert": "LiteRT", "onnxruntime": "ONNX Runtime"}


def inference_section(
    artifacts: Path, *, runs: int, warmup: int, data_dir: Path | None, native: bool = True
) -> dict[str, Any]:
    """Latency p50/p99 and throughput at batch 1 and 256 of every artifact in every runtime."""
    from runtime_check.tools.benchmark import NATIVE, BenchmarkConfig, benchmark

    config = BenchmarkConfig(
        artifacts=artifacts, batch_sizes=BATCH_SIZES, warmup=warmup, runs=runs, data_dir=data_dir, native=native
    )
    report = benchmark(config)
    rows = []
    for r in report.results:
        is_native = r.runtime == NATIVE or r.runtime.startswith("native-")
        status = "ok" if r.error is None else ("unavailable" if r.unavailable else "failed")
        rows.append({
            "name": r.name,
            "runtime": r.runtime,
            "label": NATIVE_LABEL if is_native else RUNTIME_LABELS.get(r.runtime, r.runtime),
            "format": r.format,
            "quantization": r.quantization,
            "status": status,
            "error": r.error,
            "load_ms": r.load_ms,
            "peak_rss_mb": r.peak_rss_mb,
            "latency": {
                str(s.batch_size): {
                    "p50_ms": s.p50_ms,
                    "p90_ms": s.p90_ms,
                    "p99_ms": s.p99_ms,
                    "mean_ms": s.mean_ms,
                    "throughput": s.throughput,
                    "speedup_vs_tf": s.speedup_vs_tf,
                    "engine_p50_ms": s.engine_p50_ms,
                    "engine_p99_ms": s.engine_p99_ms,
                }
                for s in r.latency
            },
        })
    return {
        "batch_sizes": list(BATCH_SIZES),
        "runs": runs,
        "warmup": warmup,
        "inputs": report.inputs,
        "baseline": report.baseline.name if report.baseline else None,
        "rows": rows,
        "notes": report.notes,
    }


def size_section(artifacts: Path) -> dict[str, Any]:
    """Bytes of every artifact of the manifest, and the ratio to the float32 TFLite file."""
    from edgefm.core.manifest import Manifest

    manifest = Manifest.load(artifacts)
    if SIZE_BASELINE not in manifest.artifacts:
        raise EdgefmError(f"the manifest in {artifacts} has no {SIZE_BASELINE}; `edgefm export` did not write it.")
    base = manifest.artifacts[SIZE_BASELINE].bytes
    rows = [
        {"name": n, "format": a.format, "quantization": a.quantization, "bytes": a.bytes, "vs_float32_tflite": a.bytes / base}
        for n, a in manifest.artifacts.items()
    ]
    return {"baseline": SIZE_BASELINE, "baseline_bytes": base, "rows": rows}


def accuracy_section(report_path: Path) -> dict[str, Any]:
    """Test accuracy of every artifact and its change vs TF, from ``edgefm verify``'s JSON report."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        ref = report["reference"]
        ref_acc = float(ref["accuracy"])
        rows = [{
            "name": ref.get("name", "savedmodel"), "runtime": ref.get("runtime", "tensorflow"),
            "accuracy": ref_acc, "change_vs_tf": 0.0, "top1_agreement": 1.0, "passed": True,
        }]
        for name, a in report["artifacts"].items():
            metrics = a["metrics"]
            acc = metrics.get("accuracy", {}).get("value")
            rows.append({
                "name": name,
                "runtime": a["runtime"],
                "accuracy": acc,
                "change_vs_tf": None if acc is None else acc - ref_acc,
                "top1_agreement": metrics.get("top1_agreement", {}).get("value"),
                "passed": bool(a["passed"]),
                "error": a.get("error"),
            })
        return {
            "report": str(report_path),
            "samples": int(report["inputs"]["count"]),
            "split": report["inputs"].get("split", "test"),
            "verify_passed": bool(report["passed"]),
            "rows": rows,
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgefmError(f"cannot read the accuracy from {report_path} ({e!r}); `edgefm verify` wrote no usable report.") from e


# -- Markdown -------------------------------------------------------------------------------


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def _ratio(x: float | None) -> str:
    """Enough digits for a ratio far below 1 (0.07×) without noise on large ones (54.9×)."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.1f}×" if x >= 1 else f"{x:.2g}×"


def _ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def inference_markdown(section: dict[str, Any]) -> str:
    bs = section["batch_sizes"]
    head = ["model", "runtime", "quant"]
    for b in bs:
        head += [f"b{b} p50 ms", f"b{b} p99 ms", f"b{b} img/s", f"b{b} p50 vs TF"]
    head += ["load ms", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for r in section["rows"]:
        cells = [r["name"], r["label"], r["quantization"]]
        if r["status"] != "ok":
            cells += [f"{r['status']} (below)"] + ["-"] * (len(head) - 4)
        else:
            for b in bs:
                s = r["latency"].get(str(b), {})
                cells += [_ms(s.get("p50_ms")), _ms(s.get("p99_ms")), _f(s.get("throughput"), ",.0f"),
                          _ratio(s.get("speedup_vs_tf"))]
            cells += [_f(r["load_ms"], ".1f"), _f(r["peak_rss_mb"], ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"Inputs: {section['inputs']}; {section['warmup']} warm-up and {section['runs']} timed calls per batch size, "
        "each runtime in a fresh process; throughput from the mean latency.",
        *section.get("notes", []),
    ]
    reasons: dict[str, list[str]] = {}  # one note per distinct reason, naming its rows
    for r in section["rows"]:
        if r["status"] != "ok":
            reasons.setdefault(f"{r['status']}: {' '.join((r['error'] or 'no message').split())}", []).append(r["name"])
    notes += [f"{', '.join(names)} {reason}" for reason, names in reasons.items()]
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    native = native_markdown(section)
    return text + ("\n\n" + native if native else "")


def native_pairs(section: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(binding row, its ``@native`` row) for every artifact whose native row was measured."""
    rows = {r["name"]: r for r in section["rows"] if r.get("status") == "ok"}
    return [(rows[artifact_of(n)], r) for n, r in rows.items() if is_native_row(n) and artifact_of(n) in rows]


def native_vs_binding_p50(section: dict[str, Any], name: str, batch: int = 1) -> float | None:
    """Native p50 / Python binding p50 of ``name`` at ``batch``; None if either was not measured."""
    for binding, native in native_pairs(section):
        if binding["name"] == name:
            b, n = binding["latency"].get(str(batch), {}), native["latency"].get(str(batch), {})
            if b.get("p50_ms") and n.get("p50_ms") is not None:
                return n["p50_ms"] / b["p50_ms"]
    return None


def native_markdown(section: dict[str, Any]) -> str:
    pairs = native_pairs(section)
    if not pairs:
        return ""
    bs = section["batch_sizes"]
    head = ["model"] + [f"b{b} {w}" for b in bs for w in ("binding p50 ms", "native p50 ms", "native p99 ms", "native / binding")]
    lines = [
        f"{NATIVE_LABEL}: each native row is one C runner process per batch size that loads the model and times "
        f"{section['warmup']} warm-up and {section['runs']} calls of the C API in a loop by its own clock (no process "
        "start, no Python, no .npy files); its peak RSS is not measured. Beside the Python binding, per call:",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for binding, native in pairs:
        cells = [binding["name"]]
        for b in bs:
            bl, nl = binding["latency"].get(str(b), {}), native["latency"].get(str(b), {})
            ratio = nl["p50_ms"] / bl["p50_ms"] if bl.get("p50_ms") and nl.get("p50_ms") is not None else None
            cells += [_ms(bl.get("p50_ms")), _ms(nl.get("p50_ms")), _ms(nl.get("p99_ms")), _ratio(ratio)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def size_markdown(section: dict[str, Any]) -> str:
    lines = ["| artifact | format | quant | bytes | vs float32 TFLite |", "|---|---|---|---:|---:|"]
    for r in section["rows"]:
        lines.append(
            f"| {r['name']} | {r['format']} | {r['quantization']} | {r['bytes']:,} | {r['vs_float32_tflite']:.2f}× |"
        )
    return "\n".join(lines)


def accuracy_markdown(section: dict[str, Any]) -> str:
    lines = [
        f"{section['samples']:,} images of the {section['split']} split; `edgefm verify`: "
        f"{'PASS' if section['verify_passed'] else 'FAIL'}",
        "",
        "| artifact | runtime | accuracy | change vs TF | top-1 agreement with TF | verify |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in section["rows"]:
        change = r["change_vs_tf"]
        lines.append(
            f"| {r['name']} | {r['runtime']} | {_f(None if r['accuracy'] is None else 100 * r['accuracy'], '.2f')}% | "
            f"{_f(None if change is None else 100 * change, '+.2f')} pts | "
            f"{_f(None if r['top1_agreement'] is None else 100 * r['top1_agreement'], '.2f')}% | "
            f"{'PASS' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)
