"""``edgefm data``: where the dataset is, fetch it, verify its checksums."""

from __future__ import annotations

from pathlib import Path

import click

from edgefm.cli.console import echo_json
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
        echo_json(info)
        return
    click.echo(f"directory: {info['directory']}")
    for split, n in info["splits"].items():
        click.echo(f"{split:5s}: {n:,} images")
    click.echo(f"license: {info['license']}")


@data.command("verify")
@DATA_DIR
@click.option("--json", "as_json", is_flag=True, help="Print each file's result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status.")
def data_verify(data_dir: Path | None, as_json: bool, quiet: bool) -> None:
    """Check the four files' structure and sha256 (of the decompressed content).

    Exit status 0 when all match the official release, 1 otherwise.
    Example: edgefm data verify --data-dir ./fashion-mnist
    """
    from edgefm.core.errors import DatasetError
    from edgefm.data import fashion_mnist as ds

    directory, statuses = ds.verify_dir(data_dir)
    if as_json:
        echo_json({"directory": str(directory), "ok": all(s.ok for s in statuses),
                   "files": [{"file": s.stem, "path": None if s.path is None else str(s.path), "ok": s.ok,
                              "detail": s.detail, "records": s.count} for s in statuses]})
    elif not quiet:
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
@click.option("--json", "as_json", is_flag=True, help="Print where the verified files are as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress (the result line or JSON is still printed).")
def data_fetch(dest: Path | None, mirrors: tuple[str, ...], retries: int, as_json: bool, quiet: bool) -> None:
    """Download the official release files, resume partial downloads, verify them.

    Progress on stderr: a live bar per file on a terminal, timestamped lines otherwise.

    Example: edgefm data fetch
    """
    from edgefm.cli.console import progress_for
    from edgefm.data import fashion_mnist as ds

    with progress_for(quiet) as progress:
        out = ds.fetch(dest, mirrors=mirrors or ds.MIRRORS, retries=retries, progress=progress)
    if as_json:
        echo_json({"directory": str(out), "verified": True, "files": sorted(p.name for p in Path(out).glob("*.gz"))})
    else:
        click.echo(f"Fashion-MNIST verified in {out}")
