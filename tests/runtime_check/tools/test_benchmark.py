"""`edgefm benchmark`: result structure, per-process measurement, ratios to TF, bad options.

Timings are asserted to be positive and finite, never against thresholds.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from edgefm.core.errors import ConfigError, EdgefmError, ManifestError
from edgefm.core.manifest import Manifest
from runtime_check.tools.benchmark import (
    BenchmarkConfig,
    BenchmarkReport,
    benchmark,
    format_table,
    latency_stats,
    native_vs_binding,
    parse_batch_sizes,
)

from conftest import invoke_cli


@pytest.fixture(scope="module")
def exported(exported_float32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its float32 .tflite and .onnx (no calibration needed; the run's export, copied)."""
    root = tmp_path_factory.mktemp("bench") / "artifacts"
    shutil.copytree(exported_float32, root)
    return root


@pytest.fixture(scope="module")
def report(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BenchmarkReport:
    no_data = tmp_path_factory.mktemp("no-data")  # forces the seeded random inputs
    cfg = BenchmarkConfig(artifacts=exported, batch_sizes=(1, 4), warmup=1, runs=3, threads=1, data_dir=no_data)
    return benchmark(cfg)


def _positive_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def test_report_structure_and_numbers(report: BenchmarkReport, exported: Path) -> None:
    assert [r.name for r in report.results] == ["savedmodel", "tflite_float32", "onnx_float32"]
    assert [r.runtime for r in report.results] == ["tensorflow", "litert", "onnxruntime"]
    assert report.failures == [] and report.baseline is report.results[0]
    assert report.batch_sizes == (1, 4) and report.runs == 3 and "random" in report.inputs
    manifest = Manifest.load(exported)
    for r in report.results:
        assert r.bytes == manifest.artifacts[r.name].bytes
        assert _positive_finite(r.load_ms) and _positive_finite(r.peak_rss_mb)
        assert [s.batch_size for s in r.latency] == [1, 4]
        for s in r.latency:
            assert s.runs == 3
            assert all(_positive_finite(v) for v in (s.mean_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.throughput))
            assert s.p50_ms <= s.p90_ms <= s.p99_ms
            assert s.throughput == pytest.approx(s.batch_size / (s.mean_ms / 1e3))
            assert _positive_finite(s.speedup_vs_tf)
        assert r.size_vs_tf == pytest.approx(r.bytes / report.results[0].bytes)
    assert report.results[0].size_vs_tf == 1.0
    assert all(s.speedup_vs_tf == 1.0 for s in report.results[0].latency)
    tf, litert = report.results[0], report.results[1]
    assert litert.at(4).speedup_vs_tf == pytest.approx(tf.at(4).p50_ms / litert.at(4).p50_ms)
    # Each runtime in its own process: TensorFlow's memory does not show up in LiteRT's peak.
    assert tf.peak_rss_mb > litert.peak_rss_mb


def test_table_and_json(report: BenchmarkReport) -> None:
    text = format_table(report)
    assert "size vs TF" in text and "speed-up vs TF" in text and "peak RSS MB" in text
    rows = [ln for ln in text.splitlines() if ln.strip().startswith(("1  ", "4  "))]
    assert len(rows) == 6 and all(ln.rstrip().endswith("x") for ln in rows)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["results"][1]["latency"][0]["batch_size"] == 1 and d["results"][1]["path"].endswith(".tflite")


def test_cli_table_fits_columns(exported: Path, tmp_path: Path) -> None:
    """$COLUMNS reaches `edgefm benchmark`'s tables: at 60 columns a block per model and per batch size."""
    res = invoke_cli("benchmark", "--artifacts", str(exported), "--batch-sizes", "1", "--warmup", "0", "--runs", "1",
                     "--data-dir", str(tmp_path), "--quiet", env={"COLUMNS": "60"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(map(len, lines)) <= 60, res.stdout
    for name, runtime in (("savedmodel", "tensorflow"), ("tflite_float32", "litert"), ("onnx_float32", "onnxruntime")):
        assert f"{name}  {runtime}" in lines and f"{name}  batch 1" in lines, res.stdout
    assert res.stdout.count("speed-up vs TF ") == 3 and res.stdout.count("peak RSS MB ") == 3


def test_latency_stats() -> None:
    s = latency_stats(8, [0.001] * 98 + [0.002, 0.010])
    assert s.p50_ms == pytest.approx(1.0) and s.p99_ms > s.p90_ms and s.mean_ms == pytest.approx(1.1)
    assert s.throughput == pytest.approx(8 / 0.0011)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0,x", r"'0' is not a positive integer"), ("1,,4", r"'\(empty\)'"), ("-1", r"'-1'"), ("1.5", r"'1\.5'")],
)
def test_bad_batch_sizes(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--batch-sizes: " + message):
        parse_batch_sizes(text)


def test_config_validation() -> None:
    assert parse_batch_sizes(" 1, 32,1 ,256") == (1, 32, 256)
    assert BenchmarkConfig(batch_sizes="2,8").batch_sizes == (2, 8)
    with pytest.raises(ConfigError, match="--runs must be a positive integer, got 0"):
        BenchmarkConfig(runs=0)
    with pytest.raises(ConfigError, match="--warmup must be a non-negative integer"):
        BenchmarkConfig(warmup=-1)
    with pytest.raises(ConfigError, match="--threads must be a positive integer"):
        BenchmarkConfig(threads=0)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        benchmark(BenchmarkConfig(artifacts=tmp_path / "none", runs=1))


def test_a_corrupt_model_is_a_failure_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 128)
    report = benchmark(BenchmarkConfig(artifacts=tmp_path / "none", model=bad, batch_sizes=(1,), runs=1, warmup=0))
    (r,) = report.results
    assert r.name == "bad.tflite" and "not a TFLite model" in (r.error or "")
    assert any("no TensorFlow baseline" in n for n in report.notes)
    with pytest.raises(EdgefmError, match=r"1 of 1 models could not be benchmarked: bad\.tflite"):
        report.raise_for_failures()


# -- the command line ------------------------------------------------------------------------


def test_cli_model_with_baseline_json(exported: Path, tmp_path: Path) -> None:
    proc = invoke_cli(
        "benchmark", "--artifacts", str(exported), "--model", str(exported / "model.onnx"),
        "--batch-sizes", "2", "--runs", "2", "--warmup", "0", "--data-dir", str(tmp_path), "--json",
    )
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert [r["name"] for r in d["results"]] == ["savedmodel", "model.onnx"]
    onnx = d["results"][1]
    assert onnx["runtime"] == "onnxruntime" and onnx["size_vs_tf"] > 0
    assert onnx["latency"][0]["batch_size"] == 2 and onnx["latency"][0]["speedup_vs_tf"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "0,x"], "--batch-sizes: '0' is not a positive integer"),
        (["--runs", "0"], "--runs must be a positive integer, got 0"),
        (["--threads", "0"], "--threads must be a positive integer"),
        (["--runs", "many"], "'many' is not a valid integer"),
    ],
)
def test_cli_bad_values_exit_2(args: list[str], message: str) -> None:
    proc = invoke_cli("benchmark", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_corrupt_model_exits_1_after_the_table(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 64)
    proc = invoke_cli("benchmark", "--artifacts", str(tmp_path / "none"), "--model", str(bad), "--runs", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAILED bad.onnx" in proc.stdout and "could not be benchmarked" in proc.stderr


# -- native runners ------------------------------------------------------------------------------


def test_native_rows_time_the_c_runners(exported: Path, tmp_path: Path) -> None:
    """NAME@native rows: a warm loop inside the C runner, timed by its own clock; no peak RSS of the Python waiter."""
    cfg = BenchmarkConfig(artifacts=exported, batch_sizes=(1, 4), warmup=0, runs=2, data_dir=tmp_path,
                          baseline=False, native=True)
    report = benchmark(cfg)
    assert [r.name for r in report.results] == [
        "tflite_float32", "onnx_float32", "tflite_float32@native", "onnx_float32@native"
    ]
    assert report.failures == [] and report.unavailable == []
    litert, ort = report.results[2], report.results[3]
    assert (litert.runtime, ort.runtime) == ("native-litert", "native-onnxruntime")
    for r in (litert, ort):
        assert r.peak_rss_mb is None and _positive_finite(r.load_ms)
        assert r.bytes == report.results[0 if r is litert else 1].bytes
        for s in r.latency:
            # every figure is the runner's: its p50/p99 and the percentiles of its per-call latencies agree
            assert s.runs == 2 and _positive_finite(s.engine_p50_ms) and _positive_finite(s.engine_p99_ms)
            assert s.engine_p50_ms == pytest.approx(s.p50_ms, abs=2e-6) and s.engine_p99_ms == pytest.approx(s.p99_ms, abs=2e-6)
    assert all(s.engine_p50_ms is None for r in report.results[:2] for s in r.latency)
    text = format_table(report)
    assert "tflite_float32@native  native-litert" in text
    assert "native C API (a warm loop in the runner) beside the Python binding, per call:" in text
    rows = native_vs_binding(report)
    assert [(r["name"], r["batch_size"]) for r in rows] == [
        ("tflite_float32", 1), ("tflite_float32", 4), ("onnx_float32", 1), ("onnx_float32", 4)]
    for row in rows:
        assert row["native_vs_binding_p50"] == pytest.approx(row["native_p50_ms"] / row["binding_p50_ms"])


def test_native_without_a_compiler_is_unavailable_not_failed(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))  # the children inherit it
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached runner to fall back on
    cfg = BenchmarkConfig(artifacts=exported, batch_sizes=(1,), warmup=0, runs=1, data_dir=tmp_path,
                          baseline=False, native=True)
    report = benchmark(cfg)
    assert report.failures == []
    assert [r.name for r in report.unavailable] == ["tflite_float32@native", "onnx_float32@native"]
    for r in report.unavailable:
        assert r.unavailable and r.latency == [] and "No C compiler found" in (r.error or "")
    assert all(r.error is None and r.latency for r in report.results[:2])
    text = format_table(report)
    assert "UNAVAILABLE tflite_float32@native" in text and "FAILED" not in text
    report.raise_for_failures()  # an unavailable runtime is not a failure
