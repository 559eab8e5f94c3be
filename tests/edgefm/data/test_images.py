"""Image files to 28x28 model inputs: modes, sizes, inversion, aspect and centring, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefm.core.errors import ImageError
from edgefm.data.demo_image import write_demo_image
from edgefm.data.images import border_level, fit, load_image, load_images, prepare


def save(path: Path, array: np.ndarray, mode: str | None = None, **kw: object) -> Path:
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def item_on(bg: int, fg: int, size: tuple[int, int] = (28, 28), box: tuple[int, int, int, int] = (8, 20, 6, 22)) -> np.ndarray:
    """A ``size`` (H, W) uint8 image of value ``bg`` with a ``fg`` rectangle rows box[0]:box[1], cols box[2]:box[3]."""
    a = np.full(size, bg, dtype=np.uint8)
    a[box[0] : box[1], box[2] : box[3]] = fg
    return a


def test_light_item_on_dark_is_kept_as_is(tmp_path: Path) -> None:
    src = item_on(0, 200)
    img = load_image(save(tmp_path / "a.png", src))
    assert not img.inverted and img.background == 0.0
    np.testing.assert_allclose(img.pixels, src / 255.0, atol=1e-6)
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (28, 28)


def test_dark_item_on_light_background_is_inverted(tmp_path: Path) -> None:
    img = load_image(save(tmp_path / "a.png", item_on(255, 0)))
    assert img.inverted and img.background == 1.0
    np.testing.assert_allclose(img.pixels, item_on(0, 255) / 255.0, atol=1e-6)


def test_rgb_is_converted_to_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[8:20, 6:22] = (255, 255, 255)
    rgb[0:2, 0:2] = (255, 0, 0)  # a red corner does not change the border median
    img = load_image(save(tmp_path / "rgb.png", rgb))
    assert not img.inverted and img.mode == "RGB"
    assert img.pixels[10, 10] == pytest.approx(1.0) and img.pixels[25, 25] == 0.0
    assert img.pixels[0, 0] == pytest.approx(76 / 255, abs=1 / 255)  # ITU-R 601 luma of pure red


def test_transparent_background_becomes_the_contrasting_colour(tmp_path: Path) -> None:
    light = np.zeros((28, 28, 4), dtype=np.uint8)
    light[8:20, 6:22] = (255, 255, 255, 255)  # opaque white item, transparent black elsewhere
    dark = np.zeros((28, 28, 4), dtype=np.uint8)
    dark[..., :3] = 255  # transparent *white* elsewhere
    dark[8:20, 6:22] = (0, 0, 0, 255)  # opaque black item
    a = load_image(save(tmp_path / "light.png", light))
    b = load_image(save(tmp_path / "dark.png", dark))
    assert not a.inverted and b.inverted
    expected = item_on(0, 255) / 255.0
    np.testing.assert_allclose(a.pixels, expected, atol=1e-6)
    np.testing.assert_allclose(b.pixels, expected, atol=1e-6)


def test_16_bit_grayscale_is_scaled_by_its_range(tmp_path: Path) -> None:
    a = item_on(0, 0).astype(np.uint16)
    a[8:20, 6:22] = 32768
    img = load_image(save(tmp_path / "g16.png", a))
    assert img.mode.startswith("I")
    assert img.pixels[10, 10] == pytest.approx(32768 / 65535, abs=1e-6)
    assert img.pixels[0, 0] == 0.0


def test_palette_image(tmp_path: Path) -> None:
    p = Image.fromarray((item_on(0, 1)).astype(np.uint8), mode="P")
    p.putpalette([0, 0, 0, 255, 255, 255])
    p.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.mode == "P"
    np.testing.assert_allclose(img.pixels, item_on(0, 255) / 255.0, atol=1e-6)


def test_large_image_is_area_averaged_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = np.zeros((28, 28), dtype=np.uint8)
    src[4:24, 4:24] = rng.integers(0, 256, size=(20, 20))
    big = np.kron(src, np.ones((8, 8), dtype=np.uint8))  # 224x224, each pixel an 8x8 block
    img = load_image(save(tmp_path / "big.png", big))
    assert img.original_size == (224, 224)
    np.testing.assert_allclose(img.pixels, src / 255.0, atol=1e-5)


def test_non_square_keeps_aspect_and_is_centred(tmp_path: Path) -> None:
    # 112 wide x 56 tall, all item (white on a black 0-border one pixel wide): fits as 28x14.
    wide = np.full((56, 112), 255, dtype=np.uint8)
    wide[0, :] = wide[-1, :] = 0
    wide[:, 0] = wide[:, -1] = 0
    img = load_image(save(tmp_path / "wide.png", wide))
    assert img.original_size == (112, 56) and not img.inverted
    rows = np.flatnonzero(img.pixels.max(axis=1) > 0)
    assert rows.min() == 7 and rows.max() == 20  # 14 rows, centred: 7 above, 7 below
    assert np.all(img.pixels[:7] == 0) and np.all(img.pixels[21:] == 0)
    assert img.pixels[14, 14] == pytest.approx(1.0)
    # Tall: the same on columns.
    tall = np.ascontiguousarray(wide.T)
    img = load_image(save(tmp_path / "tall.png", tall))
    cols = np.flatnonzero(img.pixels.max(axis=0) > 0)
    assert cols.min() == 7 and cols.max() == 20


def test_padding_uses_the_background_and_uncentred_odd_sizes(tmp_path: Path) -> None:
    out = fit(np.ones((3, 28), dtype=np.float32), fill=0.25)
    assert np.all(out[:12] == 0.25) and np.all(out[12:15] == 1.0) and np.all(out[15:] == 0.25)


def test_grey_background_is_levelled_to_zero() -> None:
    gray = np.full((28, 28), 0.2, dtype=np.float32)
    gray[10:18, 10:18] = 0.6
    gray[12, 12] = 1.0
    pixels, background, inverted = prepare(gray)
    assert background == pytest.approx(0.2) and not inverted
    assert pixels[0, 0] == 0.0
    assert pixels[10, 10] == pytest.approx(0.5)  # (0.6 - 0.2) / (1 - 0.2)
    assert pixels[12, 12] == pytest.approx(1.0)


def test_light_vs_dark_detection_follows_the_border_not_the_mean() -> None:
    # Mostly bright content on a dark border: not inverted, although the mean is high.
    gray = np.full((28, 28), 0.9, dtype=np.float32)
    gray[0, :] = gray[-1, :] = gray[:, 0] = gray[:, -1] = 0.0
    assert border_level(gray) == 0.0
    assert prepare(gray)[2] is False
    # A light border: inverted.
    assert prepare(1.0 - gray)[2] is True


def test_invert_can_be_forced_either_way(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", item_on(255, 0))
    raw = load_image(path, invert=False)
    assert not raw.inverted
    np.testing.assert_allclose(raw.pixels, item_on(255, 0) / 255.0, atol=1e-6)  # untouched
    dark = save(tmp_path / "b.png", item_on(0, 255))
    forced = load_image(dark, invert=True)
    assert forced.inverted
    np.testing.assert_allclose(forced.pixels, item_on(255, 0) / 255.0, atol=1e-6)


def test_jpeg_and_bmp(tmp_path: Path) -> None:
    src = np.kron(item_on(255, 0), np.ones((10, 10), dtype=np.uint8))  # 280x280, dark on light
    jpg = load_image(save(tmp_path / "a.jpg", src, quality=95))
    bmp = load_image(save(tmp_path / "a.bmp", src))
    expected = item_on(0, 255) / 255.0
    assert jpg.inverted and bmp.inverted and jpg.original_size == (280, 280)
    np.testing.assert_allclose(bmp.pixels, expected, atol=1e-6)
    np.testing.assert_allclose(jpg.pixels, expected, atol=0.1)  # lossy


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = np.zeros((28, 56), dtype=np.uint8)  # stored 56 wide x 28 tall
    a[4:24, 4:52] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img = load_image(save(tmp_path / "rot.png", a, exif=exif.tobytes()))
    cols = np.flatnonzero(img.pixels.max(axis=0) > 0)
    rows = np.flatnonzero(img.pixels.max(axis=1) > 0)
    assert cols.min() >= 7 and cols.max() <= 20  # displayed tall: narrow in x
    assert rows.max() - rows.min() > 20


def test_one_pixel_image_works_and_is_blank(tmp_path: Path) -> None:
    img = load_image(save(tmp_path / "one.png", np.full((1, 1), 100, dtype=np.uint8)))
    assert img.original_size == (1, 1)
    assert img.pixels.shape == (28, 28) and np.all(img.pixels == 0)  # uniform: all background


def test_text_file_named_png(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("not an image\n")
    with pytest.raises(ImageError, match=r"notes\.png is not an image Pillow can read"):
        load_image(p)


def test_missing_directory_truncated_and_empty(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.png does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)
    data = (save(tmp_path / "ok.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png.*truncated"):
        load_image(tmp_path / "cut.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png is not an image"):
        load_image(tmp_path / "empty.png")


def test_load_images_names_every_bad_file(tmp_path: Path) -> None:
    good = save(tmp_path / "good.png", item_on(0, 255))
    (tmp_path / "bad.png").write_text("x")
    with pytest.raises(ImageError, match=r"2 of 3 images.*bad\.png.*nope\.png"):
        load_images([good, tmp_path / "bad.png", tmp_path / "nope.png"])
    assert [p.path.name for p in load_images([good, good])] == ["good.png", "good.png"]


def test_demo_image_round_trips_to_the_test_image(tmp_path: Path, tiny_data: tuple[Path, dict[str, str]]) -> None:
    from edgefm.data import fashion_mnist as ds

    data_dir, _ = tiny_data
    out = tmp_path / "demo" / "sneaker.png"
    index, name = write_demo_image(out, data_dir=data_dir, verify=False)
    split = ds.load_split("test", data_dir, verify=False)
    assert name == "Sneaker" and int(split.labels[index]) == 7
    assert index == int(np.flatnonzero(split.labels == 7)[0])
    with Image.open(out) as im:
        assert im.size == (112, 112) and im.mode == "L"
        assert np.asarray(im)[0, 0] > 200  # dark on light
    img = load_image(out)
    assert img.inverted
    # The same as preparing the 28x28 test image directly (levelling of the synthetic grey background included).
    np.testing.assert_allclose(img.pixels, prepare(split.images[index] / 255.0)[0], atol=1e-6)
    assert not list(out.parent.glob(".*.tmp*"))  # written atomically, nothing left over


@pytest.mark.integration
def test_demo_image_of_the_real_test_split_gives_back_its_pixels(tmp_path: Path, real_data: Path) -> None:
    from edgefm.data import fashion_mnist as ds

    index, name = write_demo_image(tmp_path / "sneaker.png", data_dir=real_data)
    split = ds.load_split("test", real_data)
    assert name == "Sneaker" and index == int(np.flatnonzero(split.labels == 7)[0])
    img = load_image(tmp_path / "sneaker.png")
    assert img.inverted
    np.testing.assert_allclose(img.pixels, split.scaled()[index], atol=1e-6)  # exactly the model's input
