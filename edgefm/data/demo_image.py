"""Write a real Fashion-MNIST test image as a PNG that looks like a photo of a product.

``python -m edgefm.data.demo_image OUT.png [--index I]``: the test-split image (default:
the first Sneaker) upscaled 4x to 112x112 and inverted to dark-on-light, so that
``edgefm predict`` exercises its light-background detection. Each source pixel
becomes a 4x4 block (nearest neighbour), so predict's area-averaging shrink and
inversion give back the original 28x28 image exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.errors import EdgefmError, UsageError

DEFAULT_CLASS = "Sneaker"
DEFAULT_SCALE = 4


def default_index(labels: np.ndarray, class_name: str = DEFAULT_CLASS) -> int:
    """Index of the first test image of ``class_name``."""
    hits = np.flatnonzero(labels == CLASS_NAMES.index(class_name))
    if hits.size == 0:
        raise UsageError(f"The test split holds no {class_name}; pass --index.")
    return int(hits[0])


def write_demo_image(
    out: Path,
    index: int | None = None,
    *,
    scale: int = DEFAULT_SCALE,
    data_dir: Path | None = None,
    verify: bool = True,
) -> tuple[int, str]:
    """Write test image ``index`` to ``out`` (atomically); return (index, true class name)."""
    from PIL import Image

    from edgefm.core.fileio import atomic_output_path
    from edgefm.data import fashion_mnist as ds

    if scale < 1:
        raise UsageError(f"--scale must be a positive integer, got {scale}.")
    split = ds.load_split("test", data_dir, verify=verify)
    if index is None:
        index = default_index(split.labels)
    if not 0 <= index < len(split):
        raise UsageError(f"--index {index} is outside the test split (0..{len(split) - 1}).")
    light = 255 - split.images[index]  # dark item on a light background, like a product photo
    big = np.kron(light, np.ones((scale, scale), dtype=np.uint8))
    with atomic_output_path(Path(out)) as tmp:
        Image.fromarray(big, mode="L").save(tmp, format="PNG")
    return index, CLASS_NAMES[int(split.labels[index])]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--index", type=int, default=None, help="Test-split index (default: the first Sneaker).")
@click.option("--scale", type=click.IntRange(1, 64), default=DEFAULT_SCALE, show_default=True,
              help="Upscaling factor (4 gives 112x112).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Directory with the Fashion-MNIST IDX files.")
def main(out: Path, index: int | None, scale: int, data_dir: Path | None) -> None:
    """Write a real test image as a dark-on-light PNG for `edgefm predict`."""
    try:
        idx, name = write_demo_image(out, index, scale=scale, data_dir=data_dir)
    except EdgefmError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    click.echo(f"wrote {out}: test image #{idx} ({name}), {28 * scale}x{28 * scale}, dark on light")


if __name__ == "__main__":  # pragma: no cover
    main()
