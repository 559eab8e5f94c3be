"""``edgefm data``: where the dataset is, fetch it, verify its checksums."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefm.cli.options import DATA_DIR


@click.group("data")
def data() -> None:
    """Where the dataset is; fetch it; verify its checksums."""


@data.command("info")
@DATA_DIR
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
@DATA_DIR
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status.")
def data_verify(data_dir: Path | None, quiet: bool) -> None:
    """Check the four files' structure and sha256 (of the decompressed content).

    Exit status 0 when all match the official release, 1 otherwise.
    Example: edgefm data verify --data-dir ./fashion-mnist
    """
    from edgefm.core.errors import DatasetError
    from edgefm.data import fashion_mnist as ds

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
