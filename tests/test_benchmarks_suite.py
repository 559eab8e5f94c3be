"""The benchmark suite (`make bench`): one real quick run, checked for completeness and consistency.

Timings are asserted to be positive and finite, and every ratio to equal the
division of the figures it is made of; never against speed thresholds.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import TARGETS, check_targets, target_line
from benchmarks.train_speed import MATMUL_WAYS

from conftest import REPO

BINDING_ROWS = ["savedmodel", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8"]


# 1800 s: under pytest-xdist the --quick run shares the cores with another worker (measured: past 900 s at
# load 11-15 on 2 shared cores; 460 s serially at load 3-12).
def run_suite(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL,
    )


def positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench") / "results"
    # the MobileNetV2 rows take minutes (a Keras fit and six conversions of ~150 layers): tests/test_any_model.py
    # runs the same bring/export/verify path; its Markdown is checked below from a section of known values
    return run_suite("--quick", "--skip-any-model", "--out", str(out)), out


@pytest.fixture(scope="module")
def result(quick: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    proc, out = quick
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "bench.json").read_text(encoding="utf-8"))


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_files_and_printed_markdown(quick: tuple[subprocess.CompletedProcess[str], Path], result: dict[str, Any]) -> None:
    proc, out = quick
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert proc.stdout == md
    assert not list(out.glob(".*.tmp"))  # written atomically: no leftovers
    for header in (
        "| stage (defaults, real CLI process) | seconds |",
        "| training (784-20-10 MLP, batch 64) | median s/epoch | edgefm graph is … faster |",
        "| model | runtime | quant | b1 p50 ms | b1 p99 ms | b1 img/s | b1 p50 vs TF | b256 p50 ms |",
        "| artifact | format | quant | bytes | vs float32 TFLite |",
        "| artifact | runtime | accuracy | change vs TF | top-1 agreement with TF | verify |",
    ):
        assert header in md
    targets = [ln for ln in md.splitlines() if ln.startswith(("- PASS ", "- FAIL "))]
    distributed = 0 if result["distributed"].get("skipped") else 1  # its weight check is a PASS/FAIL line too
    assert len(targets) == len(TARGETS) + distributed
    assert "native C API (warm loop)" in md and "Traceback" not in proc.stderr
    m = result["machine"]
    assert m["cpu"] in md and f"{m['cores']} cores" in md and f"TensorFlow {m['tensorflow']}" in md
    assert m["cores"] == os.cpu_count() and m["litert"] == metadata.version("ai-edge-litert")
    assert m["onnxruntime"] == metadata.version("onnxruntime") and positive(m["ram_gib"])


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_every_section_is_there_and_nothing_crashed(result: dict[str, Any]) -> None:
    for key in ("machine", "options", "end_to_end", "training", "inference", "size", "accuracy", "verify", "device",
                "micro", "explain", "targets"):
        assert key in result and "error" not in result[key], key
    assert result["crashed"] == [] and result["options"]["quick"] is True
    assert positive(result["total_seconds"])


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_device_rows_beside_the_host_rows(result: dict[str, Any]) -> None:
    """`make test` installs the cross packages (`make device`), so the emulated board runs here."""
    dev = result["device"]
    assert "skipped" not in dev, dev
    names = [r["name"] for r in dev["rows"]]
    assert names == ["tflite_int8", "onnx_int8"] and dev["samples"] == 500  # --quick: the int8 pair
    for r in dev["rows"]:
        assert r["passed"] and r["host_passed"] and r["error"] is None, r
        assert 0.97 <= r["device_top1"] <= 1 and positive(r["device_p50_ms"]) and r["device_p99_ms"] >= r["device_p50_ms"]
    assert any(r["emulated_vs_host"] for r in dev["rows"])  # beside the host's native p50


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_micro_rows_with_their_arena(result: dict[str, Any]) -> None:
    """`make test` installs tflite-micro (`make micro`): the int8 and float32 files run in TFLM on this host."""
    micro = result["micro"]
    assert "skipped" not in micro, micro
    assert micro["exit"] == 0 and micro["samples"] == 500
    assert sorted(r["name"] for r in micro["rows"]) == ["tflite_float32@tflm", "tflite_int8@tflm"]
    for r in micro["rows"]:
        assert r["passed"] and r["arena"]["bytes"] > 0 and r["arena"]["bytes"] % 16 == 0, r
        assert r["arena"]["attempts"] > 1 and positive(r["arena"]["seconds"]) and positive(r["tflm_seconds_per_row"])
    int8 = next(r for r in micro["rows"] if r["name"] == "tflite_int8@tflm")
    assert 0.9 <= int8["identical_to_reference_kernels"] <= 1  # TFLM rounds twice: a few values one step apart


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_end_to_end(result: dict[str, Any]) -> None:
    e2e = result["end_to_end"]
    stages = e2e["stage_seconds"]
    assert list(stages) == ["train", "export", "verify"] and all(positive(s) for s in stages.values())
    assert e2e["total_seconds"] >= sum(stages.values()) and e2e["verify_exit_status"] == 0


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_training_ratios_are_the_medians_divided(result: dict[str, Any]) -> None:
    t = result["training"]
    med = t["median_epoch_seconds"]
    for name, epochs in t["epochs"].items():
        assert epochs and all(positive(s) for s in epochs)
        assert med[name] == pytest.approx(statistics.median(epochs), rel=1e-12)
    assert t["speedup_vs_keras_fit"] == pytest.approx(med["keras fit (numpy)"] / med["edgefm graph"], rel=1e-12)
    assert t["speedup_vs_eager"] == pytest.approx(med["edgefm --eager"] / med["edgefm graph"], rel=1e-12)
    assert 0 < t["keras_test_accuracy"] <= 1
    mm = t["matmul"]  # the MLP's GFLOP/s beside the same matmuls alone, each way measured
    assert mm["achieved_gflops"] == pytest.approx(mm["flops_per_epoch"] / med["edgefm graph"] / 1e9, rel=1e-12)
    assert list(mm["seconds"]) == [name for name, _, _ in MATMUL_WAYS] and all(positive(s) for s in mm["seconds"].values())
    assert mm["limit_gflops"] == max(mm["gflops"].values()) == mm["gflops"][mm["best"]]
    assert mm["achieved_vs_limit"] == pytest.approx(mm["achieved_gflops"] / mm["limit_gflops"], rel=1e-12)
    cnn = t["cnn"]  # today's CNN per seed between two runs of the baseline CNN, one epoch each in --quick
    before, after = cnn["baselines"]
    assert [r["seed"] for r in cnn["runs"]] == [0] and before["epochs"] == after["epochs"] == cnn["runs"][0]["epochs"] == 1
    assert before["batch_size"] == 64 and cnn["parameters"] == cnn["runs"][0]["parameters"] < 100_000
    baseline_seconds = (before["train_seconds"] + after["train_seconds"]) / 2
    assert cnn["time_vs_baseline"] == pytest.approx(cnn["runs"][0]["train_seconds"] / baseline_seconds)


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_two_workers_are_held_to_one_process_after_one_epoch(result: dict[str, Any]) -> None:
    """The PASS/FAIL line bounds one epoch (rounding only); the longer run's difference is reported beside it."""
    d = result["distributed"]
    assert d["same_model_epochs"] == 1 and d["same_model_weight_difference"] <= d["weight_bound"] == 1e-5
    assert list(d["max_weight_difference_vs_workers_2"]) == ["1 process (defaults, XLA)", "1 process, no XLA"]
    assert all(positive(r["median_s"]) and 0 < r["test_accuracy"] <= 1 for r in d["rows"].values())


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_inference_rows_and_speedups(result: dict[str, Any]) -> None:
    inf = result["inference"]
    rows = {r["name"]: r for r in inf["rows"]}
    assert [n for n in rows if "@" not in n] == BINDING_ROWS
    native = [n for n in rows if n.endswith("@native")]
    assert native == [n + "@native" for n in BINDING_ROWS[1:]]
    assert inf["batch_sizes"] == [1, 256]
    tf = rows["savedmodel"]
    for name, r in rows.items():
        if name in native and r["status"] == "unavailable":  # no C compiler: said so, not measured
            assert r["error"] and r["latency"] == {}
            continue
        assert r["status"] == "ok", (name, r["error"])
        assert positive(r["load_ms"])
        assert (r["peak_rss_mb"] is None) if name in native else positive(r["peak_rss_mb"])
        assert (r["label"] == "native C API (warm loop)") == (name in native)
        for b in ("1", "256"):
            s = r["latency"][b]
            assert all(positive(s[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput"))
            assert s["p50_ms"] <= s["p99_ms"]
            assert s["throughput"] == pytest.approx(int(b) / (s["mean_ms"] / 1e3), rel=1e-9)
            assert s["speedup_vs_tf"] == pytest.approx(tf["latency"][b]["p50_ms"] / s["p50_ms"], rel=1e-9)
            assert (s["engine_p50_ms"] is not None) == (name in native)
            if name in native:  # the runner's own percentiles of its warm loop are the row's figures
                assert s["engine_p50_ms"] == pytest.approx(s["p50_ms"], abs=2e-6)
                assert s["engine_p99_ms"] == pytest.approx(s["p99_ms"], abs=2e-6)
    assert {rows[n]["label"] for n in BINDING_ROWS} == {"TF SavedModel", "LiteRT", "ONNX Runtime"}


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_verify_section_cold_warm_probe_and_growth(result: dict[str, Any]) -> None:
    v = result["verify"]
    wc = v["warm_vs_cold"]
    assert [r["reference"] for r in wc["runs"]["cold"]] == ["computed"] and [r["reference"] for r in wc["runs"]["warm"]] == ["reused"]
    assert all(r["passed"] and r["count"] == 10_000 and positive(r["seconds"]) for rs in wc["runs"].values() for r in rs)
    med = wc["median_seconds"]
    assert wc["warm_vs_cold"] == pytest.approx(med["warm"] / med["cold"], rel=1e-12)
    probe = v["probe"]
    assert len(probe["files"]) == 6 and len(probe["seconds"]["one child"]) == 3
    assert probe["one_vs_per_artifact"] == pytest.approx(
        probe["median_seconds"]["one child"] / probe["median_seconds"]["per artifact"], rel=1e-12)
    rows = {r["inputs"]: r for r in v["growth"]["rows"]}
    assert list(rows) == [1_000, 10_000, 60_000]
    for r in rows.values():
        assert r["cold"]["reference"] == "computed" and r["warm"]["reference"] == "reused"
        assert r["cold"]["split"] == "train" and all(positive(r[m]["peak_rss_mb"]) for m in ("cold", "warm"))
    ratios = v["growth"]["rss_60k_vs_10k"]
    for mode in ("cold", "warm"):
        assert ratios[mode] == pytest.approx(rows[60_000][mode]["peak_rss_mb"] / rows[10_000][mode]["peak_rss_mb"])
    assert v["growth"]["rss_ratio_worst"] == max(ratios.values())


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_size_is_relative_to_float32_tflite(result: dict[str, Any]) -> None:
    size = result["size"]
    rows = {r["name"]: r for r in size["rows"]}
    assert list(rows) == BINDING_ROWS and size["baseline"] == "tflite_float32"
    assert size["baseline_bytes"] == rows["tflite_float32"]["bytes"]
    for r in rows.values():
        assert positive(r["bytes"]) and r["vs_float32_tflite"] == pytest.approx(r["bytes"] / size["baseline_bytes"])
    assert rows["tflite_int8"]["bytes"] < rows["tflite_float16"]["bytes"] < rows["tflite_float32"]["bytes"]


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_accuracy_and_its_change_vs_tf(result: dict[str, Any]) -> None:
    acc = result["accuracy"]
    rows = {r["name"]: r for r in acc["rows"]}
    assert list(rows) == BINDING_ROWS and acc["samples"] == 10_000 and acc["verify_passed"] is True
    ref = rows["savedmodel"]["accuracy"]
    assert 0.5 < ref <= 1
    for r in rows.values():
        assert 0 < r["accuracy"] <= 1 and 0 < r["top1_agreement"] <= 1 and r["passed"]
        assert r["change_vs_tf"] == pytest.approx(r["accuracy"] - ref, abs=1e-12)


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_explain_section_reduces_tensors_batch_by_batch(result: dict[str, Any]) -> None:
    e = result["explain"]
    assert [r["rows"] for r in e["rows"]] == [1_000, 10_000]
    for r in e["rows"]:  # the trained MLP's healthy int8 file: every tensor compared, none flagged
        assert r["tensors"] >= 4 and r["flagged"] == 0 and r["seconds"] > r["explain_seconds"] > 0
    assert 0.5 < e["rss_ratio"] < 2.0, e  # memory does not grow tenfold with the inputs


@pytest.mark.integration
@pytest.mark.slow  # the suite's --quick run: minutes
def test_targets_are_computed_from_the_figures(result: dict[str, Any]) -> None:
    t = {x["name"]: x for x in result["targets"]}
    assert len(t) == len(TARGETS)
    inf = {r["name"]: r for r in result["inference"]["rows"]}
    size = {r["name"]: r for r in result["size"]["rows"]}
    cnn = result["training"]["cnn"]
    expected = [
        result["training"]["speedup_vs_keras_fit"],
        inf["tflite_float32"]["latency"]["1"]["speedup_vs_tf"],
        size["tflite_int8"]["vs_float32_tflite"],
        size["tflite_float16"]["vs_float32_tflite"],
        result["verify"]["warm_vs_cold"]["warm_vs_cold"],
        result["verify"]["probe"]["one_vs_per_artifact"],
        result["verify"]["growth"]["rss_ratio_worst"],
        *(inf[n + "@native"]["latency"]["1"]["p50_ms"] / inf[n]["latency"]["1"]["p50_ms"]
          for n in ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8")),
        result["explain"]["rows"][0]["seconds"],
        result["explain"]["rows"][-1]["peak_rss_mb"] / result["explain"]["rows"][0]["peak_rss_mb"],
        100 * min(r["test_accuracy"] for r in cnn["runs"]),
        max(r["parameters"] for r in cnn["runs"]),
        statistics.mean(r["train_seconds"] for r in cnn["runs"]) / statistics.mean(b["train_seconds"] for b in cnn["baselines"]),
    ]
    assert len(expected) == len(TARGETS)
    for target, value in zip(TARGETS, expected):
        got = t[target.name]
        assert got["value"] == pytest.approx(value)
        ok = value >= target.bound if target.op == ">=" else value <= target.bound
        assert got["status"] == ("PASS" if ok else "FAIL")


# -- without the real run -------------------------------------------------------------------------


def test_check_targets_pass_fail_skip_and_goal() -> None:
    sections = {
        "training": {"speedup_vs_keras_fit": 12.0},
        "inference": {"rows": [{"name": "tflite_float32", "latency": {"1": {"speedup_vs_tf": 9.9}}}]},
        "size": {"rows": [{"name": "tflite_int8", "vs_float32_tflite": 0.35}]},  # no float16 row
    }
    t = check_targets(sections)
    assert [x["status"] for x in t] == ["PASS", "FAIL", "PASS", "SKIP"] + ["SKIP"] * (len(TARGETS) - 4)  # no verify section
    assert target_line(t[0]).startswith("PASS edgefm graph (MLP) 12.0× faster") and "(target ≥ 12×)" in target_line(t[0])
    assert target_line(t[1]) == "FAIL LiteRT float32 batch-1 p50 9.9× lower than the TF SavedModel's (target ≥ 10×)"
    assert target_line(t[3]).startswith("SKIP float16 TFLite size vs float32: not measured")


def test_unavailable_native_rows_are_said_once_below_the_table() -> None:
    from benchmarks.inference import inference_markdown

    ok = {"name": "tflite_float32", "label": "LiteRT", "quantization": "none", "status": "ok", "error": None,
          "load_ms": 1.0, "peak_rss_mb": 50.0,
          "latency": {"1": {"p50_ms": 0.01, "p99_ms": 0.02, "throughput": 9e4, "speedup_vs_tf": 40.0, "engine_p50_ms": None}}}
    gone = [{"name": n, "label": "native C API (warm loop)", "quantization": "none", "status": "unavailable",
             "error": "No C compiler found\n(looked for cc).", "load_ms": None, "peak_rss_mb": None, "latency": {}}
            for n in ("tflite_float32@native", "onnx_float32@native")]
    section = {"batch_sizes": [1], "inputs": "random", "warmup": 0, "runs": 1, "rows": [ok, *gone], "notes": []}
    md = inference_markdown(section)
    assert "| tflite_float32 | LiteRT | none | 0.010 | 0.020 | 90,000 | 40.0× | 1.0 | 50 |" in md
    assert md.count("unavailable (below)") == 2 and md.count("No C compiler found") == 1
    assert "- tflite_float32@native, onnx_float32@native unavailable: No C compiler found (looked for cc)." in md


def test_accuracy_from_an_unusable_report_names_the_file(tmp_path: Path) -> None:
    from benchmarks.inference import accuracy_section
    from edgefm.core.errors import EdgefmError

    bad = tmp_path / "verify-report.json"
    bad.write_text('{"reference": {}}', encoding="utf-8")
    with pytest.raises(EdgefmError, match=r"cannot read the accuracy from .*verify-report\.json \(KeyError"):
        accuracy_section(bad)


def test_a_crashed_stage_exits_1_and_still_writes_the_report(tmp_path: Path) -> None:
    empty = tmp_path / "no-dataset"
    empty.mkdir()
    out = tmp_path / "results"
    proc = run_suite("--quick", "--skip-train-speed", "--skip-any-model", "--data-dir", str(empty), "--out", str(out),
                     "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "end_to_end: CRASHED: `edgefm train --artifacts" in proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert printed["crashed"] == ["end_to_end"] and "exited with status" in printed["end_to_end"]["error"]
    assert printed["inference"] == {"skipped": "the end-to-end run produced no artifacts"}
    assert printed["training"] == {"skipped": "--skip-train-speed"}
    assert printed["any_model"] == {"skipped": "--skip-any-model"}
    assert {x["status"] for x in printed["targets"]} == {"SKIP"}
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert "CRASHED: `edgefm train" in md and "Crashed stages: end_to_end" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "pyproject.toml"], "--out pyproject.toml is a file"),
        (["--data-dir", "no/such/dir"], "--data-dir no/such/dir is not a directory"),
        (["--quick", "--runs", "3"], "unrecognized arguments: --runs 3"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    proc = run_suite(*args, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_any_model_markdown_names_every_variant_and_cost() -> None:
    from benchmarks.any_model import ARCHITECTURE, markdown

    row = {"name": "tflite_int8", "bytes": 2048, "passed": False, "error": None, "top1_agreement": 0.95, "cosine": 0.999,
           "max_rel_error": 0.01, "snr_db": 30.0, "accuracy": 0.8, "accuracy_drop": 0.02, "failed": ["top1_agreement"]}
    size = {"size": 32, "parameters": 1000, "fit_seconds": 1.0, "export_seconds": 2.5, "verify_seconds": 0.5,
            "reference_accuracy": 0.82, "inputs": 10, "failed_to_convert": {"onnx_int8": "no"}, "rows": [row]}
    text = markdown({"architecture": ARCHITECTURE, "sizes": [size], "train_images": 8, "test_images": 10, "epochs": 1})
    assert "| 32x32x3 | 1,000 | 1.0 | 2.5 | 0.5 | 82.00% |" in text
    assert "| tflite_int8 | 2.0 | 95.00% | 0.999000 | 0.01 | 30.0 dB | 80.00% | FAIL: top1_agreement |" in text
    assert "onnx_int8 did not convert: no" in text
