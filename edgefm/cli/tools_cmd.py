"""``edgefm predict``, ``benchmark`` and ``inspect``: run models, judge nothing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefm.cli.options import ARTIFACTS, DATA_DIR, IMPORT, IntList


@click.command("predict")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="SavedModel directory, .tflite or .onnx (default: the artifacts' float32 .tflite).")
@ARTIFACTS
@IMPORT
@click.option("--top-k", type=int, default=1, show_default=True, help="How many classes to show per image.")
@click.option("--invert/--no-invert", default=None,
              help="Force inverting the image (or not). Default: invert when the background is light.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy",
              help="Run any model on arrays instead of images: one per input (repeatable); prints its outputs.")
@click.option("--save-outputs", "save_outputs", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.npz", help="With --input: write every output to FILE.npz (named like the outputs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image (JSON lines).")
def predict_cmd(images: tuple[Path, ...], model: Path | None, artifacts: Path, top_k: int,
                invert: bool | None, inputs: tuple[str, ...], save_outputs: Path | None, as_json: bool) -> None:
    """Classify image files (PNG, JPEG, BMP; any size) with any artifact.

    The SavedModel this command uses is loaded by TensorFlow, and loading runs its code: only use
    SavedModels you trust (`edgefm inspect` reads one without running it).

    For edgefm's own networks images are made 28x28 grayscale (aspect kept, centred)
    and, when their background is light, inverted: Fashion-MNIST items are light on
    black. Any other image classifier gets the preprocessing its manifest or file
    records (`export --preprocess`), else the one its input shape implies (RGB or
    gray at its size, scaled to [0, 1]). `--input NAME=FILE.npy` runs any model on
    arrays and prints (or, with --save-outputs, saves) its outputs.

    \b
    Examples:
      edgefm predict shoe.png
      edgefm predict a.png b.jpg --model artifacts/model.onnx --top-k 3 --json
      edgefm predict --model my-artifacts/model.onnx --input a=a.npy --input b=b.npy --save-outputs out.npz
    """
    from runtime_check.tools.predict import PredictConfig, predict

    if inputs:
        _predict_arrays(images, model, artifacts, inputs, save_outputs, as_json)
        return
    if save_outputs is not None:
        from edgefm.core.errors import UsageError

        raise UsageError("--save-outputs saves the outputs of a run on arrays: pass --input NAME=FILE.npy too.")

    result = predict(PredictConfig(images=images, model=model, artifacts=artifacts, top_k=top_k, invert=invert))
    if as_json:
        for p in result.predictions:
            click.echo(json.dumps({**p.to_dict(), "model": str(result.model), "runtime": result.runtime}))
        return
    click.echo(f"model: {result.model} ({result.runtime}; class names from {result.labels_source})")
    for p in result.predictions:
        note = "  (light background: inverted)" if p.inverted else ""
        if len(p.top) == 1:
            click.echo(f"{p.image}: {p.best.name} {p.best.probability:.1%}{note}")
            continue
        click.echo(f"{p.image}:{note}")
        for c in p.top:
            click.echo(f"  {c.name:12s} {c.probability:7.1%}")


def _predict_arrays(images: tuple[Path, ...], model: Path | None, artifacts: Path, inputs: tuple[str, ...],
                    save_outputs: Path | None, as_json: bool) -> None:
    from edgefm.core.errors import UsageError
    from edgefm.core.fileio import atomic_write_bytes
    from runtime_check.tools.predict import resolve_model, run_arrays

    if images:
        raise UsageError("--input runs one model on arrays: pass no IMAGE arguments with it.")
    model, _ = resolve_model(model, artifacts)  # no --model: the artifacts' float32 .tflite, as for images
    named = {}
    for item in inputs:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise UsageError(f"--input {item!r}: expected NAME=FILE.npy.")
        named[name] = Path(path)
    outputs = run_arrays(model, named)
    if save_outputs is not None:
        import io

        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, **outputs)
        atomic_write_bytes(save_outputs, buf.getvalue())
    if as_json:
        click.echo(json.dumps({k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": v.tolist()}
                               for k, v in outputs.items()}))
        return
    for k, v in outputs.items():
        flat = v.reshape(-1)
        shown = ", ".join(f"{x:.4g}" if v.dtype.kind == "f" else str(x) for x in flat[:6]) + (", …" if flat.size > 6 else "")
        click.echo(f"{k}: {v.dtype} {list(v.shape)} [{shown}]")
    if save_outputs is not None:
        click.echo(f"-> {save_outputs}")


@click.command("benchmark")
@ARTIFACTS
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Benchmark only this SavedModel/.tflite/.onnx (with the artifacts' SavedModel as the baseline).")
@click.option("--batch-sizes", type=IntList(), default="1,32,256", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", type=int, default=None, help="Threads per runtime (default: the runtime's own choice).")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed calls per batch size.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed calls per batch size.")
@DATA_DIR
@click.option("--native", is_flag=True,
              help="Also time each .tflite/.onnx in its native C runner: a warm loop of C API calls inside the "
                   "runner (its own clock, no process start), shown beside the Python binding's p50/p99.")
@click.option("--data", default=None, metavar="FILE",
              help="Time on these inputs (.npz with one array per input, or .npy for one input), repeated to each "
                   "batch size: for a model whose dynamic dimensions synthetic inputs cannot size.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (the table or JSON is still printed).")
def benchmark_cmd(artifacts: Path, model: Path | None, batch_sizes: tuple[int, ...], threads: int | None, warmup: int,
                  runs: int, data_dir: Path | None, native: bool, data: str | None, as_json: bool, quiet: bool) -> None:
    """Latency (mean, p50/p90/p99), throughput, load time, size and peak memory per runtime.

    The SavedModel this command uses is loaded by TensorFlow, and loading runs its code: only use
    SavedModels you trust (`edgefm inspect` reads one without running it).

    Each model runs in a fresh process; the TensorFlow SavedModel is the baseline, and
    every row shows its speed-up (p50) and size relative to it.

    \b
    Examples:
      edgefm benchmark
      edgefm benchmark --batch-sizes 1,64 --threads 1 --runs 200 --json
    """
    from edgefm.cli.console import echo_json, output_width, progress_for
    from runtime_check.tools.benchmark import BenchmarkConfig, benchmark, format_table

    config = BenchmarkConfig(artifacts=artifacts, model=model, batch_sizes=batch_sizes, threads=threads,
                             warmup=warmup, runs=runs, data_dir=data_dir, native=native, data=data)
    with progress_for(quiet) as progress:
        report = benchmark(config, progress)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(format_table(report, width=output_width()))
    report.raise_for_failures()


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@IMPORT
def inspect_cmd(path: Path, as_json: bool) -> None:
    """Format, size, sha256, inputs/outputs, operators and embedded metadata of an artifact.

    PATH is a SavedModel directory, a .tflite or a .onnx file.

    \b
    Examples:
      edgefm inspect artifacts/model_int8.tflite
      edgefm inspect artifacts/model.onnx --json
    """
    from runtime_check.tools.inspect_model import format_report, inspect_model

    report = inspect_model(path)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
