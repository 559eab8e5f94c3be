"""The verify section of the benchmark suite: cold vs warm verify, the load probe, and how cost grows with N.

Every figure comes from real processes on the artifacts of the suite's own end-to-end run:

- **warm vs cold**: ``edgefm verify`` (all six artifacts, the 10,000 test images,
  defaults) run as a CLI process with ``--recompute-reference`` (cold: TensorFlow
  is imported and run) and without it (warm: the reference comes from
  ``reference-outputs.npz``), alternated, the median wall time of each;
- **the probe**: the load probe's child processes for the six artifacts, one child
  per artifact (``probe_in_subprocess``, what verify did before) vs one child for
  all (``probe_many_in_subprocess``), alternated in this process after the
  structure checks (which both ways share);
- **cost growth**: verify seconds and peak RSS (the report's own VmHWM) at 1,000,
  10,000 and 60,000 inputs of the train split (``--split train``), cold and warm.

Reports go to a directory of their own, so the accuracy section's report is not touched.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefm.core.errors import EdgefmError

#: inputs of the cost-growth table (the train split); ``None`` is the whole split (60,000)
GROWTH_SIZES: tuple[int | None, ...] = (1_000, 10_000, None)
TRAIN_SIZE = 60_000
TIMEOUT_S = 900.0


def _verify(artifacts: Path, reports: Path, tag: str, *args: str, data_dir: Path | None) -> dict[str, Any]:
    """One ``edgefm verify`` CLI process: its wall seconds and what its report says."""
    report = reports / f"{tag}.json"
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    cmd = [sys.executable, "-m", "edgefm.cli", "verify", "--artifacts", str(artifacts), "--report", str(report), "-q",
           *args, *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise EdgefmError(f"`edgefm verify {' '.join(args)}` did not finish within {TIMEOUT_S:.0f} s.") from e
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not report.is_file():
        tail = " / ".join(ln for ln in proc.stderr.strip().splitlines()[-3:] if ln.strip())
        raise EdgefmError(f"`edgefm verify {' '.join(args)}` exited with status {proc.returncode}: {tail or 'no message'}")
    r = json.loads(report.read_text(encoding="utf-8"))
    return {
        "seconds": seconds,
        "reference": r["reference"]["cache"]["status"],
        "count": r["inputs"]["count"],
        "split": r["inputs"]["split"],
        "peak_rss_mb": r.get("resources", {}).get("peak_rss_mb"),
        "timings": r["timings"],
        "passed": r["passed"],
    }


def warm_vs_cold(artifacts: Path, reports: Path, *, reps: int, data_dir: Path | None) -> dict[str, Any]:
    """Cold (``--recompute-reference``) and warm ``edgefm verify`` alternated ``reps`` times; medians and ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    for i in range(reps):
        runs["cold"].append(_verify(artifacts, reports, f"cold-{i}", "--recompute-reference", data_dir=data_dir))
        runs["warm"].append(_verify(artifacts, reports, f"warm-{i}", data_dir=data_dir))
    if any(r["reference"] != "computed" for r in runs["cold"]) or any(r["reference"] != "reused" for r in runs["warm"]):
        raise EdgefmError(f"verify did not compute/reuse its reference as asked: {runs}")
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    return {"runs": runs, "median_seconds": median, "warm_vs_cold": median["warm"] / median["cold"],
            "count": runs["warm"][0]["count"]}


def probe_speed(artifacts: Path, *, reps: int) -> dict[str, Any]:
    """The probe's child processes for every deployable artifact: one per artifact vs one for all; medians."""
    from edgefm.core.manifest import Manifest
    from runtime_check.runtimes.probe import check_structure, probe_in_subprocess, probe_many_in_subprocess

    paths = [artifacts / a.path for a in Manifest.load(artifacts).deployable().values()]
    for p in paths:  # shared by both ways, and not what is compared
        check_structure(p)
    times: dict[str, list[float]] = {"per artifact": [], "one child": []}
    for _ in range(reps):
        t0 = time.perf_counter()
        for p in paths:
            probe_in_subprocess(p)
        times["per artifact"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        results = probe_many_in_subprocess(paths)
        times["one child"].append(time.perf_counter() - t0)
        bad = {str(p): str(e) for p, e in results.items() if e is not None}
        if bad or len(results) != len(paths):
            raise EdgefmError(f"the one-child probe refused good files: {bad}")
    median = {k: statistics.median(v) for k, v in times.items()}
    return {"files": [p.name for p in paths], "seconds": times, "median_seconds": median,
            "one_vs_per_artifact": median["one child"] / median["per artifact"]}


def growth(artifacts: Path, reports: Path, *, data_dir: Path | None) -> dict[str, Any]:
    """Cold then warm verify at each of ``GROWTH_SIZES`` train images: seconds and peak RSS."""
    rows = []
    for n in GROWTH_SIZES:
        size = ["--samples", str(n)] if n is not None else []
        count = n or TRAIN_SIZE
        cold = _verify(artifacts, reports, f"growth-{count}-cold", "--split", "train", *size, "--recompute-reference",
                       data_dir=data_dir)
        warm = _verify(artifacts, reports, f"growth-{count}-warm", "--split", "train", *size, data_dir=data_dir)
        rows.append({"inputs": cold["count"], "cold": cold, "warm": warm})
    by_n = {r["inputs"]: r for r in rows}
    ratios = {}
    if 10_000 in by_n and TRAIN_SIZE in by_n:
        for mode in ("cold", "warm"):
            a, b = by_n[10_000][mode]["peak_rss_mb"], by_n[TRAIN_SIZE][mode]["peak_rss_mb"]
            ratios[mode] = b / a if a and b else None
    values = [v for v in ratios.values() if v is not None]
    return {"split": "train", "rows": rows, "rss_60k_vs_10k": ratios, "rss_ratio_worst": max(values) if values else None}


#: the extra runtime versions of the "older runtimes" row: one per format, both with cp311 x86-64 wheels
EXTRA_RUNTIMES: tuple[str, ...] = ("tflite-runtime==2.14.0", "onnxruntime==1.20.1")


def extra_runtimes(artifacts: Path, work: Path, *, data_dir: Path | None) -> dict[str, Any]:
    """A warm verify plain, then with ``EXTRA_RUNTIMES`` uncached (a fresh cache, pip's own cache off), then cached.

    The dynamic-range file does not load in tflite-runtime 2.14 (exit 1, a row that did not run): the
    wall time and the report are what count here, not the verdict.
    """
    import os
    import shutil

    cache = work / "runtime-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    out: dict[str, Any] = {"versions": list(EXTRA_RUNTIMES)}
    runs = (("plain", (), {}), ("uncached", EXTRA_RUNTIMES, {"PIP_NO_CACHE_DIR": "1"}), ("cached", EXTRA_RUNTIMES, {}))
    for tag, versions, env in runs:
        report = work / f"runtimes-{tag}.json"
        cmd = [sys.executable, "-m", "edgefm.cli", "verify", "--artifacts", str(artifacts), "--report", str(report),
               "--no-html", "-q", *extra, *(a for v in versions for a in ("--runtime", v))]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env={**os.environ, "XDG_CACHE_HOME": str(cache), **env})
        seconds = time.perf_counter() - t0
        if proc.returncode not in (0, 1) or not report.is_file():
            raise EdgefmError(f"`edgefm verify` with {', '.join(versions) or 'no extra runtime'} exited with status "
                              f"{proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or 'no message'}")
        r = json.loads(report.read_text(encoding="utf-8"))
        rows = {k: a["passed"] for k, a in r["artifacts"].items()}
        envs = r.get("devices", {}).get("runtimes", {})
        out[tag] = {"seconds": seconds, "rows": len(rows), "failed_rows": sorted(k for k, ok in rows.items() if not ok),
                    "build_seconds": {k: e.get("build_seconds") for k, e in envs.items()},
                    "cached": {k: e.get("cached") for k, e in envs.items()}}
    return out


def verify_section(artifacts: Path, work: Path, *, reps: int, data_dir: Path | None,
                   extra_versions: bool = True) -> dict[str, Any]:
    """``extra_versions=False`` (``--quick``, the suite's own test): no older-runtime row, whose uncached half
    installs two runtimes from PyPI (~35 s; tests/runtime_check/versions runs that path)."""
    reports = work / "verify-runs"
    reports.mkdir(parents=True, exist_ok=True)
    return {
        "warm_vs_cold": warm_vs_cold(artifacts, reports, reps=reps, data_dir=data_dir),
        "probe": probe_speed(artifacts, reps=max(reps, 3)),
        "growth": growth(artifacts, reports, data_dir=data_dir),
        "extra_runtimes": extra_runtimes(artifacts, reports, data_dir=data_dir) if extra_versions else None,
    }


# -- Markdown ---------------------------------------------------------------------------------


def markdown(section: dict[str, Any]) -> str:
    wc, probe, grow = section["warm_vs_cold"], section["probe"], section["growth"]
    med = wc["median_seconds"]
    lines = [
        f"`edgefm verify` (every artifact, {wc['count']:,} test images, defaults, a CLI process each; medians of "
        f"{len(wc['runs']['cold'])} alternated runs):",
        "",
        "| verify | reference | median seconds | each run, seconds | peak RSS MB |",
        "|---|---|---:|---|---:|",
    ]
    for mode, label in (("cold", "cold (`--recompute-reference`)"), ("warm", "warm")):
        runs = wc["runs"][mode]
        each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(f"| {label} | {runs[-1]['reference']} | {med[mode]:.2f} | {each} | "
                     f"{max(r['peak_rss_mb'] for r in runs):.0f} |")
    lines += [
        "",
        f"- warm / cold wall time: **{wc['warm_vs_cold']:.2f}×**.",
        f"- The load probe for {len(probe['files'])} artifacts (child processes only, after the structure checks; "
        f"medians of {len(probe['seconds']['one child'])}): one child per artifact "
        f"{probe['median_seconds']['per artifact']:.2f} s, one child for all {probe['median_seconds']['one child']:.2f} s: "
        f"**{probe['one_vs_per_artifact']:.2f}×**.",
        "",
        "Cost growth with the number of inputs (`edgefm verify --split train [--samples N]`, every artifact):",
        "",
        "| inputs | cold s | cold peak RSS MB | warm s | warm peak RSS MB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in grow["rows"]:
        lines.append(f"| {r['inputs']:,} | {r['cold']['seconds']:.2f} | {r['cold']['peak_rss_mb']:.0f} | "
                     f"{r['warm']['seconds']:.2f} | {r['warm']['peak_rss_mb']:.0f} |")
    if (ex := section.get("extra_runtimes")) is not None:
        lines += ["", f"Older runtimes as rows (`--runtime {' --runtime '.join(ex['versions'])}`, warm reference):", "",
                  "| verify | seconds | rows | rows that did not pass | environment build s |", "|---|---:|---:|---|---|"]
        for tag in ("plain", "uncached", "cached"):
            r = ex[tag]
            builds = ", ".join(f"{k} {v:.1f}" for k, v in r["build_seconds"].items() if v is not None) or "-"
            lines.append(f"| {tag} | {r['seconds']:.2f} | {r['rows']} | {', '.join(r['failed_rows']) or '-'} | "
                         f"{builds if tag == 'uncached' else '-'} |")
    ratios = grow["rss_60k_vs_10k"]
    if ratios:
        lines += ["", "- peak RSS at 60,000 / at 10,000 inputs: " + ", ".join(
            f"{mode} {v:.2f}×" for mode, v in ratios.items() if v is not None) + "."]
    return "\n".join(lines)
