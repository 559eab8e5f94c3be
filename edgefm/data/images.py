"""Image files to model inputs: 28x28 float32 in [0, 1], light item on dark background.

Pure Pillow and NumPy, so ``edgefm predict`` on a .tflite or .onnx never imports
TensorFlow. The steps, in order:

1. decode any image Pillow reads (PNG, JPEG, BMP, ...) of at most ``MAX_DECODED_PIXELS``,
   shrink one larger than ``REDUCE_ABOVE`` per side in its own mode first, apply the EXIF
   orientation;
2. to one grayscale channel in [0, 1], whatever the mode: 16-bit and 32-bit
   integers are scaled by their range, palette and CMYK go through RGB, and
   transparent pixels are composited onto the colour the file stores under them
   when it stands out from the drawing, else onto the colour that contrasts with
   the opaque ones (black under a light item, white under a dark one);
3. the background level is the median of the border pixels. Fashion-MNIST items
   are light on black, so a light background (> 0.5) means "invert"
   (``invert=None``); ``True``/``False`` force it;
4. when the background is dark after that, its level is mapped to 0 (Fashion-MNIST
   backgrounds are exactly black) and the rest stretched linearly to keep 1 at 1;
5. resized so that the longer side is 28 (area averaging when shrinking, bilinear
   when enlarging), aspect ratio kept, centred on a 28x28 canvas of background.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefm.core.contract import IMAGE_SHAPE
from edgefm.core.errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: background level above which an image is taken to be dark-on-light and inverted
LIGHT_BACKGROUND = 0.5
#: largest image decoded, in pixels: Pillow's decompression-bomb bound (``Image.MAX_IMAGE_PIXELS``,
#: 89,478,485), checked from the header before decoding. A 0.4 MB PNG of 9400x9400 pixels
#: decodes to 88 Mpx, so the bound is on pixels, never on the file size.
MAX_DECODED_PIXELS = 89_478_485
#: longer side above which the decoded image is first shrunk by an integer factor in its own
#: mode (uint8, Pillow's ``reduce``, a box filter) before any float32 copy is made: memory
#: then stays ~1 byte per decoded pixel instead of several float32 copies of the full size
REDUCE_ABOVE = 2048
_SUPPORTED = "PNG, JPEG, BMP (and other formats Pillow reads)"


@dataclass(frozen=True)
class PreparedImage:
    """One image ready for a model, and what was done to it."""

    path: Path
    pixels: np.ndarray  # float32 [28, 28] in [0, 1]
    original_size: tuple[int, int]  # (width, height) as stored in the file
    mode: str  # Pillow mode of the file (L, RGB, RGBA, P, I;16, ...)
    background: float  # border median of the grayscale image, before inversion, in [0, 1]
    inverted: bool


def read_grayscale(path: Path) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Decode ``path`` into a float32 [H, W] array in [0, 1]; also the file's mode and (width, height).

    Raises ``ImageError`` (naming the file) for a missing, unreadable, truncated or
    non-image file.
    """
    return _decode(path, (IMAGE_SHAPE[1] * 8, IMAGE_SHAPE[0] * 8), _to_gray)


def read_pixels(path: Path, size: tuple[int, int], channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``path`` decoded and resized to ``size`` (height, width): uint8 ``[H, W, channels]`` (1 gray, 3 RGB),
    and the file's own (width, height).

    The input of any image model (``edgefm.core.manifest.Preprocessing`` turns it into
    the model's tensor). Same errors as ``read_grayscale``.
    """
    from PIL import Image

    def convert(img: Image.Image) -> np.ndarray:
        img = img.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(img, np.uint8)
        return a[..., None] if a.ndim == 2 else a

    pixels, _, original = _decode(path, (size[1] * 2, size[0] * 2), convert)
    return pixels, original


def require_image_files(paths: Sequence[Path]) -> None:
    """Each path exists and is a file (the first checks of ``_decode``, before any model is loaded)."""
    for path in map(Path, paths):
        if not path.exists():
            raise ImageError(f"Image {path} does not exist. Check the path.")
        if not path.is_file():
            raise ImageError(f"{path} is not a file. Pass image files ({_SUPPORTED}).")


def _decode(path: Path, draft: tuple[int, int], convert: Callable[[Any], np.ndarray]) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Open, bound, decode and orient an image, then ``convert`` it; every failure an ``ImageError`` naming it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    require_image_files([path])
    try:
        with warnings.catch_warnings():
            # A huge image is an error here, not a warning on stderr.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_DECODED_PIXELS  # the bound above, whatever another module set
            with Image.open(path) as img:
                mode, size = img.mode, img.size
                if img.format == "JPEG":
                    # Let the decoder downscale by 1/2..1/8 when the image is far larger than needed.
                    img.draft(img.mode, draft)
                img.load()
                if max(img.size) > REDUCE_ABOVE:
                    img = img.reduce(-(-max(img.size) // REDUCE_ABOVE))
                try:
                    img = ImageOps.exif_transpose(img)
                except Exception:  # noqa: BLE001 - a malformed EXIF block: use the pixels as stored
                    pass
                pixels = convert(img)
    except UnidentifiedImageError as e:
        raise ImageError(
            f"{path} is not an image Pillow can read. edgefm takes {_SUPPORTED}."
        ) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(
            f"{path} has more than the {MAX_DECODED_PIXELS:,} pixels edgefm decodes (Pillow's decompression-bomb "
            f"bound: {e}); it is shrunk anyway. Downscale it first."
        ) from e
    except (OSError, ValueError, SyntaxError) as e:  # truncated data, bad headers, permission
        raise ImageError(f"Cannot read image {path}: {e}. The file is unreadable, truncated or corrupt.") from e
    if pixels.size == 0:
        raise ImageError(f"Image {path} has no pixels ({size[0]}x{size[1]}).")
    return pixels, mode, (int(size[0]), int(size[1]))


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any Pillow image to float32 [H, W] in [0, 1] (see the module docstring, step 2)."""
    mode = img.mode
    if mode.startswith("I;16"):
        return np.asarray(img, dtype=np.float32) / np.float32(65535.0)
    if mode == "I":  # 32-bit ints: 16-bit PNGs on some Pillow versions, else 8-bit values
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a / top, 0, 1).astype(np.float32)
    if mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32))
        return np.clip(a / 255.0 if a.max(initial=0) > 1 else a, 0, 1).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        gray = np.asarray(rgba.convert("L"), dtype=np.float32) / np.float32(255.0)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / np.float32(255.0)
        opaque = alpha > 0.5
        fill = _matte(gray, opaque)
        return (gray * alpha + np.float32(fill) * (1 - alpha)).astype(np.float32)
    return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)


#: the stored colour of transparent pixels is used as the background only if it differs this much from the item
MATTE_CONTRAST = 0.25


def _matte(gray: np.ndarray, opaque: np.ndarray) -> float:
    """The level transparent pixels are composited onto.

    The colour the file stores under its transparent pixels, when they share one
    and it stands out from the drawing (a palette PNG's transparent white entry:
    the author's background). Otherwise, as when editors store (0, 0, 0, 0) under
    a dark drawing, the level that contrasts with what is drawn. (The contrast rule
    alone read a dark sneaker on a transparent white palette entry as a light item,
    black-on-black, because the sneaker's inside is light.)
    """
    item = float(np.median(gray[opaque])) if opaque.any() else 0.0
    under = gray[~opaque]
    if under.size and float(under.max() - under.min()) <= 1 / 255 and abs(float(under.mean()) - item) >= MATTE_CONTRAST:
        return float(under.mean())
    return 0.0 if opaque.any() and item > LIGHT_BACKGROUND else 1.0


def border_level(gray: np.ndarray) -> float:
    """Median of the outermost rows and columns: the background level."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border))


def prepare(gray: np.ndarray, invert: bool | None = None) -> tuple[np.ndarray, float, bool]:
    """Grayscale [H, W] in [0, 1] to the model's [28, 28]; returns (pixels, background, inverted).

    ``invert=None`` inverts when the background is light (see ``LIGHT_BACKGROUND``).
    """
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ImageError(f"Expected a non-empty 2-D grayscale array, got shape {list(a.shape)}.")
    background = border_level(a)
    inverted = background > LIGHT_BACKGROUND if invert is None else bool(invert)
    bg = background
    if inverted:
        a = 1.0 - a
        bg = 1.0 - bg
    if bg <= LIGHT_BACKGROUND and bg > 0:
        # Background to 0, as in Fashion-MNIST; 1 stays 1. (A uniform image becomes all 0.)
        a = np.clip((a - bg) / (1.0 - bg), 0.0, 1.0)
        bg = 0.0
    pixels = fit(a, fill=bg)
    return pixels, background, inverted


def fit(a: np.ndarray, fill: float = 0.0, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Resize ``a`` to fit ``shape`` keeping its aspect ratio, centred on a canvas of ``fill``."""
    from PIL import Image

    h, w = a.shape
    th, tw = shape
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    if (nh, nw) != (h, w):
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
        a = np.asarray(img.resize((nw, nh), resample), dtype=np.float32)
    out = np.full(shape, fill, dtype=np.float32)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top : top + nh, left : left + nw] = a
    return np.clip(out, 0.0, 1.0)


def load_image(path: Path, invert: bool | None = None) -> PreparedImage:
    """Read and prepare one image file for the classifier."""
    gray, mode, size = read_grayscale(path)
    pixels, background, inverted = prepare(gray, invert)
    return PreparedImage(
        path=Path(path),
        pixels=pixels,
        original_size=size,
        mode=mode,
        background=background,
        inverted=inverted,
    )


def load_images(paths: Sequence[Path], invert: bool | None = None) -> list[PreparedImage]:
    """Prepare every image; if any fail, raise one ``ImageError`` that names each bad file."""
    prepared: list[PreparedImage] = []
    problems: list[str] = []
    for p in paths:
        try:
            prepared.append(load_image(Path(p), invert))
        except ImageError as e:
            problems.append(str(e))
    if problems:
        if len(problems) == 1:
            raise ImageError(problems[0])
        raise ImageError(f"{len(problems)} of {len(paths)} images cannot be used: " + " ".join(problems))
    return prepared
