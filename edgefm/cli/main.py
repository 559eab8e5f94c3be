"""The ``edgefm`` command line: thin click commands over the library.

Each command builds a config, calls one library function and prints its result.
Heavy libraries (TensorFlow, LiteRT, ONNX Runtime) are imported inside the
commands, so ``edgefm --help`` starts fast. Errors are mapped to exit statuses
in one place (``EdgefmGroup.invoke``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgefm.core.contract import DEFAULT_ARTIFACTS
from export.config import DEFAULT_OPSET, ExportFormat, Quantization
from edgefm.train.config import LRSchedule, ModelKind
from edgefm.core.errors import EdgefmError

_ARTIFACTS = click.option(
    "--artifacts",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_ARTIFACTS,
    show_default=True,
    help="Artifacts directory (holds manifest.json).",
)
_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory with the four Fashion-MNIST IDX files (default: $EDGEFM_DATA_DIR, Debian's package, the cache).",
)
_NO_VERIFY = click.option(
    "--no-verify", "no_verify", is_flag=True, help="Accept data whose checksums differ from the official release."
)


class BoundOverride(click.ParamType):
    """``NAME.METRIC=VALUE`` -> ``(NAME, METRIC, VALUE)``; VALUE ``info`` (or ``none``) makes the metric informational."""

    name = "NAME.METRIC=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str, float | None]:
        if isinstance(value, tuple):
            return value
        target, sep, raw = str(value).partition("=")
        name, dot, metric = target.rpartition(".")
        if not sep or not dot or not name or not metric or not raw:
            self.fail(f"expected NAME.METRIC=VALUE (e.g. --bound onnx_int8.cosine=0.998), got {value!r}.", param, ctx)
        if raw.strip().lower() in ("info", "none"):
            return name, metric, None
        try:
            return name, metric, float(raw)
        except ValueError:
            self.fail(f"{value!r}: the bound {raw!r} is not a number (or 'info').", param, ctx)


def _fail(message: str, code: int) -> None:
    # One paragraph on one line: the terminal wraps it, and grep still finds it.
    click.echo("error: " + " ".join(message.split()), err=True)
    sys.exit(code)


class EdgefmGroup(click.Group):
    """Maps library errors to one-paragraph messages and exit statuses; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgefmError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted.", 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except OSError as e:  # an unwrapped file-system failure: name the file, no traceback
            _fail(f"{e.filename or 'a file'}: {e.strerror or e}. Check the path and its permissions.", 1)
        except Exception as e:  # a bug in edgefm or an unwrapped library failure
            if os.environ.get("EDGEFM_DEBUG"):
                raise
            _fail(
                f"unexpected {type(e).__name__}: {e}. This is a bug in edgefm; re-run with "
                "EDGEFM_DEBUG=1 to see the traceback and report it.",
                70,
            )


@click.group(cls=EdgefmGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edgefm")
def cli() -> None:
    """Train a Fashion-MNIST classifier in TensorFlow, export it to TFLite and ONNX,
    and prove that the exported files give TensorFlow's predictions.

    \b
    Typical run:
      edgefm train
      edgefm export --format all --quantize all
      edgefm verify
    """


# -- data -----------------------------------------------------------------------


@cli.group()
def data() -> None:
    """Where the dataset is; fetch it; verify its checksums."""


@data.command("info")
@_DATA_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def data_info(data_dir: Path | None, as_json: bool) -> None:
    """Print where the dataset is and the split sizes.

    Example: edgefm data info
    """
    from edgefm.data import fashion_mnist as ds

    info = ds.describe(data_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"directory: {info['directory']}")
    for split, n in info["splits"].items():
        click.echo(f"{split:5s}: {n:,} images")
    click.echo(f"license: {info['license']}")


@data.command("verify")
@_DATA_DIR
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status.")
def data_verify(data_dir: Path | None, quiet: bool) -> None:
    """Check the four files' structure and sha256 (of the decompressed content).

    Exit status 0 when all match the official release, 1 otherwise.
    Example: edgefm data verify --data-dir ./fashion-mnist
    """
    from edgefm.data import fashion_mnist as ds
    from edgefm.core.errors import DatasetError

    directory, statuses = ds.verify_dir(data_dir)
    if not quiet:
        click.echo(f"directory: {directory}")
        for s in statuses:
            click.echo(f"  {'ok  ' if s.ok else 'FAIL'} {s.stem:26s} {s.detail if s.ok else ''}"
                       + (f" ({s.count:,} records)" if s.count is not None else ""))
    bad = [s for s in statuses if not s.ok]
    if bad:
        raise DatasetError(" ".join(s.detail for s in bad))


@data.command("fetch")
@click.option("--dest", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to download (default: the user cache, ~/.cache/edgefm/fashion-mnist).")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="Base URL to download from (repeatable; default: the official release, then the Keras mirror).")
@click.option("--retries", type=click.IntRange(1, 20), default=3, show_default=True)
def data_fetch(dest: Path | None, mirrors: tuple[str, ...], retries: int) -> None:
    """Download the official release files, resume partial downloads, verify them.

    Example: edgefm data fetch
    """
    from edgefm.data import fashion_mnist as ds

    out = ds.fetch(dest, mirrors=mirrors or ds.MIRRORS, retries=retries)
    click.echo(f"Fashion-MNIST verified in {out}")


# -- train --
@cli.command("train")
@click.option("--model", type=click.Choice(ModelKind.choices()), default=ModelKind.MLP.value, show_default=True,
              help="mlp: the reference 784-20-10 network; cnn: a tiny convnet (~90% accuracy).")
@click.option("--epochs", type=int, default=None, help="Epochs in total [default: mlp 5, cnn 10].")
@click.option("--batch-size", type=int, default=None, help="Batch size [default: 64].")
@click.option("--learning-rate", type=float, default=None, help="SGD learning rate [default: 0.1].")
@click.option("--lr-schedule", type=click.Choice(LRSchedule.choices()), default=None,
              help="Learning-rate schedule per epoch [default: mlp constant, cnn cosine].")
@click.option("--hidden-units", type=int, default=None, help="Width of the hidden dense layer [default: mlp 20, cnn 32].")
@click.option("--threads", type=int, default=None,
              help="TensorFlow threads [default: mlp 1 (faster for its tiny ops), cnn all cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and metrics.")
@_DATA_DIR
@_NO_VERIFY
@_ARTIFACTS
@click.option("--eager", is_flag=True, help="Run the same train step eagerly (debugging; much slower).")
@click.option("--jit/--no-jit", default=None,
              help="Compile the training loop with XLA [default: on for mlp (0.11 vs 0.15 s/epoch, same "
                   "weights), off for cnn (XLA's CPU convolutions are ~30x slower)].")
@click.option("--resume", is_flag=True, help="Continue from the last completed epoch's checkpoint up to --epochs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def train_cmd(model: str, epochs: int | None, batch_size: int | None, learning_rate: float | None,
              lr_schedule: str | None, hidden_units: int | None, threads: int | None, seed: int, data_dir: Path | None, no_verify: bool, artifacts: Path,
              eager: bool, jit: bool | None, resume: bool, quiet: bool) -> None:
    """Train the classifier on Fashion-MNIST and write the SavedModel.

    Graph mode (tf.function) with GradientTape; evaluates on the test split and writes
    ARTIFACTS/saved_model, manifest.json, training_curves.png and per-epoch checkpoints.

    \b
    Examples:
      edgefm train
      edgefm train --model cnn --artifacts artifacts-cnn
      edgefm train --epochs 10 --resume
    """
    from edgefm.train.config import TrainConfig
    from edgefm.train.trainer import train

    cfg = TrainConfig(
        model=ModelKind.parse(model, "--model"), epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, lr_schedule=lr_schedule, hidden_units=hidden_units, threads=threads, seed=seed, data_dir=data_dir,
        artifacts=artifacts, eager=eager, jit=jit, resume=resume, quiet=quiet, verify_data=not no_verify,
    )
    result = train(cfg)
    t = result.manifest.training
    click.echo(f"test accuracy {100 * t['test_accuracy']:.2f}%  test loss {t['test_loss']:.4f}  "
               f"-> {artifacts / 'manifest.json'}")


# -- end train --


# -- export --
@cli.command("export")
@_ARTIFACTS
@click.option("--format", "fmt", type=click.Choice(ExportFormat.choices()), default=ExportFormat.ALL.value,
              show_default=True, help="Which converters to run.")
@click.option("--quantize", type=click.Choice(Quantization.choices()), default=Quantization.ALL.value,
              show_default=True,
              help="none: float32; float16: float16 weights; dynamic: int8 weights; int8: full-integer, "
                   "calibrated on training images; all: every one. ONNX has none and int8 only.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True, help="ONNX opset (13-18).")
@click.option("--calibration-samples", type=int, default=500, show_default=True,
              help="Training images for int8 calibration (seeded draw).")
@click.option("--int8-io", is_flag=True,
              help="int8 TFLite takes and returns int8 tensors (integer-only accelerators); default float I/O.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the calibration draw.")
@_DATA_DIR
@_NO_VERIFY
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also write a deployable bundle here: model, labels, golden I/O from the test split, "
                   "the C runner source and check.sh, to re-run the parity check on the device.")
@click.option("--bundle-artifact", default=None, metavar="NAME",
              help="Artifact to bundle [default: tflite_float32, else the first exported .tflite].")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the summary table.")
def export_cmd(artifacts: Path, fmt: str, quantize: str, opset: int, calibration_samples: int, int8_io: bool,
               seed: int, data_dir: Path | None, no_verify: bool, bundle: Path | None, bundle_artifact: str | None,
               quiet: bool) -> None:
    """Convert ARTIFACTS/saved_model to TFLite and ONNX, with labels and provenance embedded.

    Writes model_float32/float16/dynamic/int8.tflite, model.onnx and model_int8.onnx
    (as requested) and records each in manifest.json. Files and manifest are written
    only after every conversion succeeded. With no options every variant is exported.

    \b
    Examples:
      edgefm export
      edgefm export --format tflite --quantize int8 --int8-io
      edgefm export --format onnx --quantize none --opset 13
      edgefm export --bundle device-check/
    """
    from export.config import ExportConfig
    from export.pipeline import run_export

    cfg = ExportConfig(
        artifacts=artifacts, format=ExportFormat.parse(fmt, "--format"),
        quantize=Quantization.parse(quantize, "--quantize"), opset=opset,
        calibration_samples=calibration_samples, int8_io=int8_io, seed=seed, data_dir=data_dir,
        verify_data=not no_verify, quiet=quiet,
    )
    result = run_export(cfg)
    if not quiet:
        click.echo(result.table)
        if result.skipped:
            click.echo(f"(no variant for {', '.join(result.skipped)}: ONNX export supports none and int8)")
        click.echo(f"-> {result.manifest_path}")
    if bundle is not None:
        from runtime_check.native.bundle import default_bundle_artifact, write_bundle

        name = bundle_artifact or default_bundle_artifact(result.manifest)
        dest = write_bundle(artifacts, result.manifest, name, bundle, data_dir=data_dir, verify_data=not no_verify)
        click.echo(f"bundle: {dest} ({name}; on the device: ./check.sh /path/to/libLiteRt.so)")
# -- end export --


# -- verify --
@cli.command("verify")
@_ARTIFACTS
@click.option("--samples", type=int, default=None, metavar="N",
              help="Verify on the first N test images (default: the whole test split, 10,000).")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Inputs per runtime call.")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Check only this artifact (manifest name; repeatable or comma-separated).")
@click.option("--atol", "atol", multiple=True, metavar="NAME=VALUE",
              help="Bound on the max abs logit error of artifact NAME (repeatable), e.g. tflite_float16=0.05.")
@click.option("--min-top1", "min_top1", multiple=True, metavar="NAME=VALUE",
              help="Minimum top-1 agreement with TF of artifact NAME, a fraction (repeatable), e.g. tflite_int8=0.95.")
@click.option("--bound", "bounds", multiple=True, type=BoundOverride(),
              help="Bound of any metric of artifact NAME (repeatable), e.g. onnx_int8.cosine=0.998 or "
                   "tflite_int8.mean_abs_error=0.3; VALUE 'info' reports the metric without judging it.")
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the JSON report (default: ARTIFACTS/verify-report.json).")
@click.option("--html", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the self-contained HTML page (default: the JSON report's path with .html, "
                   "i.e. ARTIFACTS/verify-report.html).")
@click.option("--no-html", "no_html", is_flag=True, help="Do not write the HTML page.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option("--native", is_flag=True, help="Also run each artifact in the native C runner (needs a C compiler).")
@_DATA_DIR
@_NO_VERIFY
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status (and the error on failure).")
def verify_cmd(artifacts: Path, samples: int | None, batch_size: int, only: tuple[str, ...], atol: tuple[str, ...],
               min_top1: tuple[str, ...], bounds: tuple[tuple[str, str, float | None], ...], report: Path | None, html: Path | None, no_html: bool, as_json: bool,
               native: bool, data_dir: Path | None, no_verify: bool, quiet: bool) -> None:
    """Check every exported model against TensorFlow in its own runtime.

    Runs the SavedModel in TensorFlow (the reference) and every .tflite/.onnx
    artifact of the manifest in LiteRT / ONNX Runtime on the held-out test split,
    then checks per artifact: checksum, NaN/Inf, max and mean abs logit error,
    cosine (mean per sample), top-1 agreement, accuracy drop, batch-1 invariance
    and that probabilities sum to 1, each against a per-variant bound. Writes
    verify-report.json and verify-report.html (one self-contained page: the
    table, logit-error histograms, confusion matrices, the images where an
    artifact disagrees with TF, training curves, sizes and latencies).
    Exit status 0 when every check passes, 1 otherwise.

    \b
    Examples:
      edgefm verify
      edgefm verify --only tflite_int8 --min-top1 tflite_int8=0.95
      edgefm verify --samples 1000 --atol tflite_float16=0.05 --json
      edgefm verify --bound onnx_int8.cosine=0.998 --bound onnx_int8.mean_abs_error=0.3
      edgefm verify --html /tmp/parity.html
    """
    from runtime_check.verify.config import CheckConfig
    from edgefm.core.options import parse_name_values
    from edgefm.core.errors import ParityError, UsageError
    from edgefm.core.manifest import Manifest
    from runtime_check.verify.check import check
    from runtime_check.verify.report import REPORT_NAME, default_html_path

    if html is not None and no_html:
        raise UsageError("--html and --no-html contradict each other; pass one of them.")
    if not no_html and html is None:
        html = default_html_path(report or artifacts / REPORT_NAME)

    cfg = CheckConfig(
        artifacts=artifacts, samples=samples, batch_size=batch_size,
        only=tuple(n.strip() for group in only for n in group.split(",") if n.strip()),
        atol=parse_name_values(atol, "--atol"), min_top1=parse_name_values(min_top1, "--min-top1"),
        bounds=_group_bounds(bounds),
        report=report, html=html, native=native, data_dir=data_dir, verify_data=not no_verify, quiet=quiet,
    )
    progress = None if quiet else (lambda msg: click.echo(msg, err=True))
    result = check(Manifest.load(cfg.artifacts), cfg, progress=progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        click.echo(result.table())
    if not result.passed:
        raise ParityError(result.summary())


def _group_bounds(bounds: tuple[tuple[str, str, float | None], ...]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name, metric, value in bounds:
        out.setdefault(name, {})[metric] = value
    return out
# -- end verify --


# -- predict --
@cli.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="SavedModel directory, .tflite or .onnx (default: the artifacts' float32 .tflite).")
@_ARTIFACTS
@click.option("--top-k", type=int, default=1, show_default=True, help="How many classes to show per image.")
@click.option("--invert/--no-invert", default=None,
              help="Force inverting the image (or not). Default: invert when the background is light.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image (JSON lines).")
def predict_cmd(images: tuple[Path, ...], model: Path | None, artifacts: Path, top_k: int,
                invert: bool | None, as_json: bool) -> None:
    """Classify image files (PNG, JPEG, BMP; any size) with any artifact.

    Images are made 28x28 grayscale (aspect kept, centred) and, when their background
    is light, inverted: Fashion-MNIST items are light on black.

    \b
    Examples:
      edgefm predict shoe.png
      edgefm predict a.png b.jpg --model artifacts/model.onnx --top-k 3 --json
    """
    from runtime_check.tools.predict import PredictConfig, predict

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
# -- end predict --


# -- benchmark --
@cli.command("benchmark")
@_ARTIFACTS
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Benchmark only this SavedModel/.tflite/.onnx (with the artifacts' SavedModel as the baseline).")
@click.option("--batch-sizes", default="1,32,256", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", type=int, default=None, help="Threads per runtime (default: the runtime's own choice).")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed calls per batch size.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed calls per batch size.")
@_DATA_DIR
@click.option("--native", is_flag=True,
              help="Also time each .tflite/.onnx in its native C runner (one process per call).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def benchmark_cmd(artifacts: Path, model: Path | None, batch_sizes: str, threads: int | None, warmup: int,
                  runs: int, data_dir: Path | None, native: bool, as_json: bool) -> None:
    """Latency (mean, p50/p90/p99), throughput, load time, size and peak memory per runtime.

    Each model runs in a fresh process; the TensorFlow SavedModel is the baseline, and
    every row shows its speed-up (p50) and size relative to it.

    \b
    Examples:
      edgefm benchmark
      edgefm benchmark --batch-sizes 1,64 --threads 1 --runs 200 --json
    """
    from runtime_check.tools.benchmark import BenchmarkConfig, benchmark, format_table

    config = BenchmarkConfig(artifacts=artifacts, model=model, batch_sizes=batch_sizes, threads=threads,
                             warmup=warmup, runs=runs, data_dir=data_dir, native=native)
    report = benchmark(config)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_table(report))
    report.raise_for_failures()
# -- end benchmark --


# -- inspect --
@cli.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
# -- end inspect --


def main() -> None:
    cli(prog_name="edgefm")


if __name__ == "__main__":  # pragma: no cover
    main()
