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
import textwrap
from pathlib import Path
from typing import Any

import click

from edgefm.config import (
    DEFAULT_ARTIFACTS,
    DEFAULT_OPSET,
    ExportFormat,
    ModelKind,
    Quantization,
)
from edgefm.errors import EdgefmError

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


def _fail(message: str, code: int) -> None:
    click.echo("error: " + textwrap.fill(message, width=100, subsequent_indent="       "), err=True)
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
    from edgefm import data as ds

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
    from edgefm import data as ds
    from edgefm.errors import DatasetError

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
    from edgefm import data as ds

    out = ds.fetch(dest, mirrors=mirrors or ds.MIRRORS, retries=retries)
    click.echo(f"Fashion-MNIST verified in {out}")


# -- train (STUB: replace this whole section) --
@cli.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def train_cmd() -> None:
    """Train the classifier on Fashion-MNIST and write the SavedModel."""
    _fail("`edgefm train` is not built yet.", 2)
# -- end train --


# -- export (STUB: replace this whole section) --
@cli.command("export", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def export_cmd() -> None:
    """Convert the SavedModel to TFLite and ONNX."""
    _fail("`edgefm export` is not built yet.", 2)
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
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the JSON report (default: ARTIFACTS/verify-report.json).")
@click.option("--html", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the table as an HTML page here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option("--native", is_flag=True, help="Also run each artifact in the native C runner (needs a C compiler).")
@_DATA_DIR
@_NO_VERIFY
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status (and the error on failure).")
def verify_cmd(artifacts: Path, samples: int | None, batch_size: int, only: tuple[str, ...], atol: tuple[str, ...],
               min_top1: tuple[str, ...], report: Path | None, html: Path | None, as_json: bool, native: bool,
               data_dir: Path | None, no_verify: bool, quiet: bool) -> None:
    """Check every exported model against TensorFlow in its own runtime.

    Runs the SavedModel in TensorFlow (the reference) and every .tflite/.onnx
    artifact of the manifest in LiteRT / ONNX Runtime on the held-out test split,
    then checks per artifact: checksum, NaN/Inf, max and mean abs logit error,
    cosine (mean per sample), top-1 agreement, accuracy drop, batch-1 invariance
    and that probabilities sum to 1, each against a per-variant bound. Writes
    verify-report.json. Exit status 0 when every check passes, 1 otherwise.

    \b
    Examples:
      edgefm verify
      edgefm verify --only tflite_int8 --min-top1 tflite_int8=0.95
      edgefm verify --samples 1000 --atol tflite_float16=0.05 --json
    """
    from edgefm.config import CheckConfig, parse_name_values
    from edgefm.errors import ParityError
    from edgefm.manifest import Manifest
    from runtime_check.check import check

    cfg = CheckConfig(
        artifacts=artifacts, samples=samples, batch_size=batch_size,
        only=tuple(n.strip() for group in only for n in group.split(",") if n.strip()),
        atol=parse_name_values(atol, "--atol"), min_top1=parse_name_values(min_top1, "--min-top1"),
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
# -- end verify --


# -- predict (STUB: replace this whole section) --
@cli.command("predict", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def predict_cmd() -> None:
    """Classify image files with any artifact."""
    _fail("`edgefm predict` is not built yet.", 2)
# -- end predict --


# -- benchmark (STUB: replace this whole section) --
@cli.command("benchmark", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def benchmark_cmd() -> None:
    """Latency, throughput, size and memory per runtime."""
    _fail("`edgefm benchmark` is not built yet.", 2)
# -- end benchmark --


# -- inspect (STUB: replace this whole section) --
@cli.command("inspect", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def inspect_cmd() -> None:
    """Inputs, outputs, operators and metadata of an artifact."""
    _fail("`edgefm inspect` is not built yet.", 2)
# -- end inspect --


def main() -> None:
    cli(prog_name="edgefm")


if __name__ == "__main__":  # pragma: no cover
    main()
