"""Latency, throughput, load time, size and peak memory of each artifact in its runtime.

Each model is measured in a fresh child process (``python -m runtime_check.tools.benchmark
--child SPEC.json``), so the peak resident memory of the child is that runtime's
alone, one runtime's threads and caches do not disturb another's timings,
and a runtime that crashes on a file takes down only its child. The TensorFlow
SavedModel is the baseline: every other row shows its p50 speed-up and its size
relative to it. Inputs are real test images when the dataset is found, else seeded
random values in [0, 1].

With ``native=True`` every .tflite/.onnx file is measured a second time in its
native C runner (``runtime_check.native``), named ``NAME@native`` as in
``edgefm verify --native``. Each batch size is one runner process that loads the
model, runs ``warmup`` untimed and ``runs`` timed calls of the C API in a loop and
reports each call's latency by its own clock (``NativeRuntime.time_calls``): the
engine's per-call cost with no process start and no Python, shown beside the
binding's (``engine_p50_ms``/``engine_p99_ms``; ``format_table``'s last table).
A runner that cannot be built here (no C compiler, no runtime library) is a row
marked ``unavailable``, not a failure.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import (
    DEFAULT_ARTIFACTS,
    IMAGE_SHAPE,
    ONNX_FORMAT,
    SAVEDMODEL_FORMAT,
    SAVEDMODEL_KEY,
    TFLITE_FORMAT,
)
from edgefm.core.errors import ConfigError, EdgefmError, RuntimeUnavailableError
from edgefm.core.fileio import human_bytes
from edgefm.core.hostinfo import peak_rss_mb
from edgefm.core.options import parse_int_list
from edgefm.core.progress import NoProgress, Progress
from edgefm.core.tables import fit_line, fit_table
from runtime_check.runtimes.registry import NATIVE_LABEL
from runtime_check.verify.results import artifact_of, is_native_row, row_name

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 32, 256)
DEFAULT_WARMUP = 10
DEFAULT_RUNS = 100
BASELINE = SAVEDMODEL_KEY
CHILD_TIMEOUT_S = 900.0
# Imported before the timed load (the runtimes import them inside ``activate``).
_RUNTIME_MODULES = {SAVEDMODEL_FORMAT: "tensorflow", TFLITE_FORMAT: "ai_edge_litert.interpreter", ONNX_FORMAT: "onnxruntime"}
#: ``Target.runtime`` of a model run by its native C runner (process per call).
NATIVE = "native"


def parse_batch_sizes(text: str, flag: str = "--batch-sizes") -> tuple[int, ...]:
    """``"1,32,256"`` to ``(1, 32, 256)``; anything but positive integers is a ``ConfigError``."""
    return parse_int_list(text, flag, ",".join(map(str, DEFAULT_BATCH_SIZES)))


def _count(value: object, flag: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum > 0 else "a non-negative integer"
        raise ConfigError(f"{flag} must be {what}, got {value!r}.")
    return value


@dataclass(frozen=True)
class BenchmarkConfig:
    """What ``edgefm benchmark`` does. ``model`` set: that model (plus the TF baseline if found)."""

    artifacts: Path = DEFAULT_ARTIFACTS
    model: Path | None = None
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: int | None = None
    warmup: int = DEFAULT_WARMUP
    runs: int = DEFAULT_RUNS
    data_dir: Path | None = None
    baseline: bool = True
    native: bool = False  # also each .tflite/.onnx in its native C runner
    data: str | None = None  # --data FILE: real inputs (.npz/.npy) for a model synthetic inputs cannot size

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        sizes = parse_batch_sizes(self.batch_sizes) if isinstance(self.batch_sizes, str) else tuple(self.batch_sizes)
        if not sizes:
            raise ConfigError("--batch-sizes: give at least one batch size, e.g. 1,32,256.")
        for b in sizes:
            _count(b, "--batch-sizes", 1)
        set_(self, "batch_sizes", sizes)
        if self.threads is not None:
            _count(self.threads, "--threads", 1)
        _count(self.warmup, "--warmup", 0)
        _count(self.runs, "--runs", 1)
        set_(self, "artifacts", Path(self.artifacts))
        for attr in ("model", "data_dir"):
            if getattr(self, attr) is not None:
                set_(self, attr, Path(getattr(self, attr)))


@dataclass
class LatencyStats:
    """Timings of ``runs`` infer calls at one batch size, after warm-up."""

    batch_size: int
    runs: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # images per second, from the mean
    speedup_vs_tf: float | None = None  # TF p50 / this p50 at the same batch size
    # Native runners only: p50/p99 as the runner computed them from its own clock around each call
    # (a warm loop in one process: no process start-up, no Python)
    engine_p50_ms: float | None = None
    engine_p99_ms: float | None = None


@dataclass
class BenchmarkResult:
    """One model in its runtime. ``error`` set: it could not be measured (the rest is empty)."""

    name: str
    path: Path
    format: str
    quantization: str
    bytes: int
    runtime: str = ""
    load_ms: float | None = None
    peak_rss_mb: float | None = None
    latency: list[LatencyStats] = field(default_factory=list)
    size_vs_tf: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    unavailable: bool = False  # the runtime cannot run on this machine (``error`` says why)

    def at(self, batch_size: int) -> LatencyStats | None:
        return next((s for s in self.latency if s.batch_size == batch_size), None)


@dataclass
class BenchmarkReport:
    results: list[BenchmarkResult]
    batch_sizes: tuple[int, ...]
    warmup: int
    runs: int
    threads: int | None
    inputs: str  # where the input images came from
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> BenchmarkResult | None:
        return next((r for r in self.results if r.format == SAVEDMODEL_FORMAT and r.error is None), None)

    @property
    def failures(self) -> list[BenchmarkResult]:
        """Models that could not be measured although their runtime is available."""
        return [r for r in self.results if r.error is not None and not r.unavailable]

    @property
    def unavailable(self) -> list[BenchmarkResult]:
        return [r for r in self.results if r.error is not None and r.unavailable]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["results"]:
            r["path"] = str(r["path"])
        return d

    def raise_for_failures(self) -> None:
        """Raise one ``EdgefmError`` naming every model that could not be measured."""
        bad = self.failures
        if bad:
            raise EdgefmError(
                f"{len(bad)} of {len(self.results)} models could not be benchmarked: "
                + " ".join(f"{r.name} ({r.path}): {r.error}" for r in bad)
            )


# -- what to measure ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    format: str
    quantization: str
    runtime: str = ""  # "" the format's Python binding; NATIVE its C runner


def targets(config: BenchmarkConfig) -> tuple[list[Target], list[str]]:
    """The models to measure (TF baseline first) and notes for the user."""
    from edgefm.core.errors import ManifestError
    from edgefm.core.manifest import Manifest

    root = config.artifacts
    notes: list[str] = []
    if config.model is None:
        manifest = Manifest.load(root)  # no manifest without --model: a clear ManifestError
    else:
        try:
            manifest = Manifest.load(root)
        except ManifestError:
            manifest = None
            notes.append(f"no manifest in {root}: no TensorFlow baseline to compare with (pass --artifacts).")
    out: list[Target] = []
    if manifest is not None and config.baseline:
        try:
            name, a = manifest.savedmodel(root)
        except ManifestError:
            notes.append(f"the manifest in {root} has no {BASELINE} artifact: no TensorFlow baseline.")
        else:
            out.append(Target(name, root / a.path, a.format, a.quantization))
    if config.model is not None:
        model = config.model
        if not any(t.path.resolve() == model.resolve() for t in out):
            fmt = SAVEDMODEL_FORMAT if model.is_dir() else model.suffix.lower().lstrip(".")
            out.append(Target(model.name, model, fmt, _embedded_quantization(model)))
        if config.native:  # --model F --native: the file in its C runner too (it was silently dropped)
            if model.is_dir():
                notes.append(f"--native: {model} is a SavedModel; the native runners take .tflite and .onnx files.")
            else:
                out.append(Target(row_name(model.name, NATIVE_LABEL), model, model.suffix.lower().lstrip("."),
                                  _embedded_quantization(model), NATIVE))
        return out, notes
    assert manifest is not None
    deployable = manifest.deployable()
    if not deployable:
        notes.append(f"no exported models in {root}: run `edgefm export --artifacts {root}` to add them.")
    out += [Target(name, root / a.path, a.format, a.quantization) for name, a in deployable.items()]
    if config.native:
        out += [
            Target(row_name(name, NATIVE_LABEL), root / a.path, a.format, a.quantization, NATIVE)
            for name, a in deployable.items()
        ]
    return out, notes


def _embedded_quantization(model: Path) -> str:
    """The quantization ``edgefm export`` embedded in the file's metadata; ``unknown`` for a foreign or broken file.

    A broken file is not an error here: its child process reports it with the file's name.
    """
    from edgefm.formats.metadata import read_metadata

    if model.is_dir():
        return "none" if (model / "saved_model.pb").is_file() else "unknown"
    try:
        return str(read_metadata(model).get("quantization") or "unknown")
    except (EdgefmError, OSError):
        return "unknown"


def benchmark_inputs(n: int, data_dir: Path | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` float32 [28, 28] images: the first test images (cycled) if found, else seeded random."""
    from edgefm.data import fashion_mnist as ds

    try:
        split = ds.load_split("test", data_dir)
        idx = np.arange(n) % len(split)
        return split.scaled()[idx], (f"Fashion-MNIST test split ({ds.locate(data_dir)}) for one 28x28 image per row, "
                                     "seeded synthetic inputs of its own signature for any other model")
    except EdgefmError:
        rng = np.random.default_rng(seed)
        return rng.random((n, *IMAGE_SHAPE), dtype=np.float32), f"random uniform [0, 1], seed {seed}"


# -- the parent ---------------------------------------------------------------------------


def benchmark(config: BenchmarkConfig, progress: Progress | None = None) -> BenchmarkReport:
    """Measure each target in its own child process; fill in the ratios to the TF baseline.

    ``progress`` hears one unit per model (each takes seconds: a fresh process, warm-up, timed runs).
    """
    from edgefm.core.fileio import tree_bytes

    progress = progress or NoProgress()
    todo, notes = targets(config)
    inputs, source = benchmark_inputs(max(config.batch_sizes), config.data_dir)
    results: list[BenchmarkResult] = []
    with tempfile.TemporaryDirectory(prefix="edgefm-bench-") as tmp:
        inputs_path = Path(tmp) / "inputs.npy"
        np.save(inputs_path, inputs)
        progress.start("benchmarking", total=len(todo))
        for i, t in enumerate(todo):
            progress.advance(i, t.name)
            result = BenchmarkResult(
                name=t.name,
                path=t.path,
                format=t.format,
                quantization=t.quantization,
                bytes=tree_bytes(t.path) if t.path.exists() else 0,
                runtime=t.runtime,
            )
            spec = {
                "path": str(t.path),
                "native": t.runtime == NATIVE,
                "data": None if config.data is None else str(Path(config.data).resolve()),
                "inputs": str(inputs_path),
                "batch_sizes": list(config.batch_sizes),
                "threads": config.threads,
                "warmup": config.warmup,
                "runs": config.runs,
                "out": str(Path(tmp) / f"result-{i}.json"),
            }
            _run_child(spec, result)
            results.append(result)
            first = result.latency[0] if result.latency else None
            progress.note(f"{t.name}: " + (f"error ({result.error.splitlines()[0][:80]})" if result.error else
                                           f"batch {first.batch_size} p50 {first.p50_ms:.3f} ms" if first else "done"))
        progress.finish()
    report = BenchmarkReport(
        results=results,
        batch_sizes=config.batch_sizes,
        warmup=config.warmup,
        runs=config.runs,
        threads=config.threads,
        inputs=source,
        notes=notes,
    )
    _fill_ratios(report)
    return report


def _run_child(spec: dict[str, Any], result: BenchmarkResult) -> None:
    """Run one measurement in a child process and copy its numbers (or its error) into ``result``."""
    spec_path = Path(spec["out"]).with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", __name__, "--child", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        result.error = f"the measurement did not finish within {CHILD_TIMEOUT_S:.0f} s; lower --runs or --batch-sizes."
        return
    out = Path(spec["out"])
    data = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    if proc.returncode < 0:
        result.error = f"the runtime crashed (killed by {signal.Signals(-proc.returncode).name})."
    elif data is None or "error" in (data or {}):
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        result.error = (data or {}).get("error") or (lines[-1] if lines else f"exit status {proc.returncode}")
        result.unavailable = bool((data or {}).get("unavailable", False))
    else:
        result.runtime = data["runtime"]
        result.load_ms = data["load_ms"]
        result.peak_rss_mb = data["peak_rss_mb"]
        result.versions = data["versions"]
        result.latency = [LatencyStats(**s) for s in data["latency"]]


def _fill_ratios(report: BenchmarkReport) -> None:
    base = report.baseline
    if base is None:
        return
    for r in report.results:
        if r.error is not None:
            continue
        r.size_vs_tf = r.bytes / base.bytes if base.bytes else None
        for s in r.latency:
            b = base.at(s.batch_size)
            s.speedup_vs_tf = b.p50_ms / s.p50_ms if b is not None and s.p50_ms > 0 else None


# -- the child -----------------------------------------------------------------------------


def latency_stats(batch_size: int, seconds: Sequence[float]) -> LatencyStats:
    """Mean and percentiles (ms) and throughput (images/s) of per-call wall times."""
    t = np.asarray(seconds, dtype=np.float64)
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    mean = float(t.mean())
    return LatencyStats(
        batch_size=batch_size,
        runs=int(t.size),
        mean_ms=mean * 1e3,
        p50_ms=float(p50) * 1e3,
        p90_ms=float(p90) * 1e3,
        p99_ms=float(p99) * 1e3,
        throughput=batch_size / mean if mean > 0 else math.inf,
    )




def _feeds(images: np.ndarray, runtime: Any, batch: int, data: str | None = None) -> dict[str, np.ndarray]:
    """Fashion-MNIST images for a model that takes one 28x28 image per row; else seeded synthetic inputs
    of the model's own names, dtypes and shapes (``edgefm.data.sources``): any model can be timed.
    With ``data`` (``--data FILE``) its first rows, repeated to ``batch`` rows if it has fewer."""
    from edgefm.core.errors import ModelFileError
    from edgefm.data.sources import open_data
    from runtime_check.tools.predict import model_feeds

    if data is not None:
        source = open_data(data, runtime.input_specs)
        head = source.head(min(batch, source.count))
        return {k: np.ascontiguousarray(np.take(v, np.arange(batch) % len(v), axis=0)) for k, v in head.items()}
    try:
        return model_feeds(images, runtime)
    except ModelFileError:
        specs = runtime.input_specs
        fixed = specs[0].shape[0] if specs else None
        return open_data("synthetic", specs, samples=fixed or batch).head(fixed or batch)


def measure(
    path: Path,
    inputs: np.ndarray,
    batch_sizes: Sequence[int],
    *,
    threads: int | None,
    warmup: int,
    runs: int,
    native: bool = False,
    data: str | None = None,
) -> dict[str, Any]:
    """Load ``path`` in its runtime and time ``infer`` per batch size. Meant for a fresh process.

    ``native``: run it in its C runner instead of the Python binding, each batch
    size as one warm loop of ``runs`` calls inside the runner (``time_calls``); load
    is the runner's own model load. Peak RSS is then ``None``: this process only
    waits for the runner processes, and their ``ru_maxrss`` would carry this
    process's peak across fork and exec.
    """
    from runtime_check.runtimes.registry import runtime_for

    path = Path(path)
    if native:
        from runtime_check.native.runtime import native_runtime_for

        runtime = native_runtime_for(path, threads=threads)
    else:
        runtime = runtime_for(path, threads=threads)
    if not native:
        # Import the runtime's library first, so "load" times loading the model, not importing TF.
        with contextlib.suppress(ImportError):
            importlib.import_module(_RUNTIME_MODULES.get(runtime.format, "numpy"))
    latency: list[LatencyStats] = []
    native_load_ms: float | None = None
    with runtime:
        for bs in batch_sizes:
            feeds = _feeds(np.ascontiguousarray(inputs[:bs]), runtime, bs, data)
            if native:
                timing = runtime.time_calls(feeds, warmup=warmup, runs=runs)  # type: ignore[attr-defined]
                stats = latency_stats(bs, [ms / 1e3 for ms in timing.latencies_ms])
                stats.engine_p50_ms, stats.engine_p99_ms = timing.p50_ms, timing.p99_ms
                latency.append(stats)
                native_load_ms = timing.open_ms if native_load_ms is None else native_load_ms
                continue
            for _ in range(warmup):
                runtime.infer(feeds)
            times, engine = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                runtime.infer(feeds)
                times.append(time.perf_counter() - t0)
                if runtime.last_engine_seconds is not None:  # the native runners time the run themselves
                    engine.append(runtime.last_engine_seconds * 1e3)
            stats = latency_stats(bs, times)
            if engine:
                stats.engine_p50_ms = float(np.percentile(engine, 50))
            latency.append(stats)
        load_ms = native_load_ms if native_load_ms is not None else (runtime.load_seconds or 0.0) * 1e3
        versions = runtime.versions()
    return {
        "runtime": runtime.name,
        "load_ms": load_ms,
        "peak_rss_mb": None if native else peak_rss_mb(),
        "versions": versions,
        "latency": [asdict(s) for s in latency],
    }


def _child_main(spec_path: str) -> int:
    from edgefm.core.fileio import atomic_write_json

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out = Path(spec["out"])
    try:
        inputs = np.load(spec["inputs"], allow_pickle=False)
        result = measure(
            Path(spec["path"]),
            inputs,
            spec["batch_sizes"],
            threads=spec["threads"],
            warmup=spec["warmup"],
            runs=spec["runs"],
            native=bool(spec.get("native", False)),
            data=spec.get("data"),
        )
    except EdgefmError as e:
        atomic_write_json(out, {"error": str(e), "unavailable": isinstance(e, RuntimeUnavailableError)})
        return 1
    atomic_write_json(out, result)
    return 0


# -- text -------------------------------------------------------------------------------


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def format_table(report: BenchmarkReport, width: int | None = None) -> str:
    """Two tables: per model (size, load, memory) and per batch size (latency, speed-up vs TF).

    With ``width`` (the terminal's) a table whose rows do not fit becomes one block per row
    (``edgefm.core.tables.fit_table``); without it, one row per model or batch size.
    """
    ok = [r for r in report.results if r.error is None]
    lines = [
        *fit_line(f"inputs: {report.inputs}; warm-up {report.warmup}, {report.runs} timed runs per batch size"
                  + (f", threads={report.threads}" if report.threads else ""), width),
        "",
        *fit_table(
            ("model", "runtime", "quant", "size", "size vs TF", "load ms", "peak RSS MB"),
            [(r.name, r.runtime, r.quantization, human_bytes(r.bytes), _ratio(r.size_vs_tf), _num(r.load_ms),
              _num(r.peak_rss_mb)) for r in ok],
            width, right={3, 4, 5, 6}, key=2,
        ),
        "",
    ]
    per_batch = [(bs, r, s) for bs in report.batch_sizes for r in ok if (s := r.at(bs)) is not None]
    lines += fit_table(
        ("batch", "model", "mean ms", "p50 ms", "p90 ms", "p99 ms", "images/s", "speed-up vs TF"),
        [(str(bs), r.name, f"{s.mean_ms:.3f}", f"{s.p50_ms:.3f}", f"{s.p90_ms:.3f}", f"{s.p99_ms:.3f}",
          f"{s.throughput:,.0f}", _ratio(s.speedup_vs_tf)) for bs, r, s in per_batch],
        width, right={0, 2, 3, 4, 5, 6, 7}, key=2, titles=[f"{r.name}  batch {bs}" for bs, r, _ in per_batch],
    )
    lines += native_vs_binding_lines(report, width)
    for r in report.unavailable:
        lines += ["", *fit_line(f"UNAVAILABLE {r.name} ({r.path}): {r.error}", width)]
    for r in report.failures:
        lines += ["", *fit_line(f"FAILED {r.name} ({r.path}): {r.error}", width)]
    for n in report.notes:
        lines += fit_line(f"note: {n}", width)
    return "\n".join(lines)


def native_vs_binding(report: BenchmarkReport) -> list[dict[str, Any]]:
    """Per measured ``NAME@native`` row and batch size: its p50/p99 beside the Python binding's, and their ratio."""
    by_name = {r.name: r for r in report.results if r.error is None}
    out = []
    for r in report.results:
        binding = by_name.get(artifact_of(r.name)) if is_native_row(r.name) else None
        if r.error is not None or binding is None:
            continue
        for s in r.latency:
            b = binding.at(s.batch_size)
            if b is None:
                continue
            out.append({
                "name": binding.name, "batch_size": s.batch_size,
                "binding_p50_ms": b.p50_ms, "binding_p99_ms": b.p99_ms,
                "native_p50_ms": s.p50_ms, "native_p99_ms": s.p99_ms,
                "native_vs_binding_p50": s.p50_ms / b.p50_ms if b.p50_ms > 0 else None,
            })
    return out


def native_vs_binding_lines(report: BenchmarkReport, width: int | None = None) -> list[str]:
    rows = native_vs_binding(report)
    if not rows:
        return []
    return [
        "", *fit_line("native C API (a warm loop in the runner) beside the Python binding, per call:", width),
        *fit_table(
            ("batch", "model", "binding p50", "binding p99", "native p50", "native p99", "native/binding p50"),
            [(str(r["batch_size"]), r["name"], f"{r['binding_p50_ms']:.4f}", f"{r['binding_p99_ms']:.4f}",
              f"{r['native_p50_ms']:.4f}", f"{r['native_p99_ms']:.4f}", _ratio(r["native_vs_binding_p50"]))
             for r in rows],
            width, right={0, 2, 3, 4, 5, 6}, key=2, titles=[f"{r['name']}  batch {r['batch_size']}" for r in rows],
        ),
    ]


if __name__ == "__main__":  # pragma: no cover - the child entry point
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2]))
    sys.exit("usage: python -m runtime_check.tools.benchmark --child SPEC.json (used by `edgefm benchmark`)")
