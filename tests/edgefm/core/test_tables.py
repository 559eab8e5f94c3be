"""The one width-aware table layout (``edgefm.core.tables``) and the tables built on it.

``verify``'s table has its own width tests (tests/runtime_check/verify/test_check.py);
here the helper itself, ``export``'s summary and ``benchmark``'s tables, from data
objects built in the test (pure text: no runtime is involved).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefm.core.manifest import Artifact, Manifest
from edgefm.core.tables import EMPTY, fit_table
from export.summary import summary_table
from runtime_check.tools.benchmark import BenchmarkReport, BenchmarkResult, format_table, latency_stats

WIDTHS = (60, 80, 160)


def _fits(text: str, width: int) -> None:
    long = [ln for ln in text.splitlines() if len(ln) > width]
    assert not long, f"{len(long)} lines longer than {width}:\n" + "\n".join(long)


def test_rows_when_they_fit_blocks_when_they_do_not() -> None:
    header = ("name", "value", "note")
    rows = [("a", "1", "short"), ("bb", "22", EMPTY)]
    assert fit_table(header, rows, None) == fit_table(header, rows, 80) == [
        "name  value  note", "----  -----  -----", "a     1      short", "bb    22     -"]
    assert fit_table(header, rows, 80, right={1})[2] == "a         1  short"
    blocks = fit_table(header, rows, 14)
    assert blocks == ["a", "   value 1", "   note short", "bb", "   value 22"]  # '-' left out, items never split
    assert fit_table(header, rows, 12)[2:4] == ["   note", "   short"]  # an item longer than a line is wrapped


def _row_blocks(text: str, titles: list[str]) -> dict[str, str]:
    """The text of each block, from its title line to the next title (titles are unique lines)."""
    lines = text.splitlines()
    starts = [lines.index(t) for t in titles]
    ends = [*starts[1:], len(lines)]
    return {t: "\n".join(lines[s:e]) for t, s, e in zip(titles, starts, ends)}


def _manifest() -> Manifest:
    m = Manifest(model="mlp", labels=[str(i) for i in range(10)])
    sizes = {"tflite_float32": 66_224, "tflite_float16": 34_912, "tflite_dynamic": 19_472, "tflite_int8": 20_048,
             "tflite_int8_io": 20_032, "onnx_float32": 66_227, "onnx_int8": 26_107}
    for i, (name, size) in enumerate(sizes.items()):
        fmt = name.split("_")[0]
        quant = {"float32": "none", "io": "int8"}.get(name.rsplit("_", 1)[1], name.rsplit("_", 1)[1])
        path = f"model_{name.split('_', 1)[1].replace('_io', 'io').replace('_', '')}.{fmt}"
        m.artifacts[name] = Artifact(path=path, format=fmt, quantization=quant, sha256="0" * 64, bytes=size,
                                     inputs=[], outputs=[], extra={"seconds": 0.5 + i})
    return m


@pytest.mark.parametrize("width", WIDTHS)
def test_export_summary_fits_and_keeps_every_value(width: int) -> None:
    manifest = _manifest()
    names = list(manifest.artifacts)
    wide = summary_table(manifest, names)
    rows = [ln.split() for ln in wide.splitlines()[2:]]
    assert len(rows) == len(names) and max(map(len, wide.splitlines())) > 60  # the 60-column case is a real squeeze
    text = summary_table(manifest, names, width=width)
    _fits(text, width)
    if max(map(len, wide.splitlines())) <= width:
        assert text == wide
        return
    blocks = _row_blocks(text, names)
    for name in names:
        a = manifest.artifacts[name]
        for item in (f"file {a.path}", f"quantization {a.quantization}", f"x tflite_float32 {a.bytes / 66_224:.2f}",
                     f"seconds {a.extra['seconds']:.2f}"):
            assert item in blocks[name], (item, blocks[name])


def _report() -> BenchmarkReport:
    results = []
    for name, runtime, quant, size in [
        ("savedmodel", "tensorflow", "none", 87_487), ("tflite_float32", "litert", "none", 66_224),
        ("onnx_int8", "onnxruntime", "int8", 26_107), ("tflite_float32@native", "native-litert", "none", 66_224),
        ("onnx_int8@native", "native-onnxruntime", "int8", 26_107),
    ]:
        r = BenchmarkResult(name=name, path=Path(f"artifacts/{name}"), format="x", quantization=quant, bytes=size,
                            runtime=runtime, load_ms=12.5, peak_rss_mb=None if "@" in name else 95.0,
                            size_vs_tf=size / 87_487)
        for bs, base in ((1, 0.01), (256, 0.2)):
            s = latency_stats(bs, [base * (1 + k / 100) / 1e3 for k in range(20)])
            s.speedup_vs_tf = 1.0 if name == "savedmodel" else 3.5
            r.latency.append(s)
        results.append(r)
    gone = BenchmarkResult(name="tflite_int8@native", path=Path("artifacts/model_int8.tflite"), format="tflite",
                           quantization="int8", bytes=20_048, error="No C compiler found (set CC)", unavailable=True)
    return BenchmarkReport(results=[*results, gone], batch_sizes=(1, 256), warmup=10, runs=20, threads=None,
                           inputs="10,000 test images of Fashion-MNIST (/usr/share/datasets/fashion-mnist)")


@pytest.mark.parametrize("width", WIDTHS)
def test_benchmark_tables_fit_and_keep_every_value(width: int) -> None:
    report = _report()
    wide = format_table(report)
    assert max(map(len, wide.splitlines())) > 80
    text = format_table(report, width=width)
    _fits(text, width)
    flat = " ".join(text.split())  # wrapped sentences rejoined
    assert "UNAVAILABLE tflite_int8@native" in flat and "No C compiler found (set CC)" in flat
    assert "native C API (a warm loop in the runner) beside the Python binding, per call:" in flat
    ok = [r for r in report.results if r.error is None]
    if max(map(len, wide.splitlines())) <= width:
        assert text == wide
        return
    for r in ok:  # the per-model table: every figure under its model
        assert any(ln.startswith(r.name) for ln in text.splitlines())
        for s in r.latency:  # the per-batch table: a block "NAME  batch N" holding every figure of that batch
            block = text.split(f"\n{r.name}  batch {s.batch_size}\n", 1)[1].split("\n\n")[0].split("\nbatch")[0]
            for item in (f"mean ms {s.mean_ms:.3f}", f"p50 ms {s.p50_ms:.3f}", f"p90 ms {s.p90_ms:.3f}",
                         f"p99 ms {s.p99_ms:.3f}", f"images/s {s.throughput:,.0f}",
                         f"speed-up vs TF {s.speedup_vs_tf:.2f}x"):
                assert item in block, (item, block)
    for r in ok:
        assert f"size vs TF {r.size_vs_tf:.2f}x" in text and f"runtime {r.runtime}" not in text  # runtime is in the title
    assert len(re.findall(r"(?<!/)binding p50 ", text)) == 4 and text.count("native/binding p50 ") == 4  # 2 models x 2 batch sizes
