"""Property-based tests (hypothesis) of the pure functions bad input reaches first.

- ``edgefm.data.fashion_mnist.parse_idx``: round-trips any uint8 array of 1-4 dimensions; any
  bytes give an array or a ``DatasetError``, never another exception.
- ``edgefm.data.images``: any size and Pillow mode gives a 28x28 float32 image in
  [0, 1] (or an ``ImageError``); inverting the input and the flag is symmetric.
- ``runtime_check.verify.compare``: ``max_abs_error >= mean_abs_error >= 0``, both
  symmetric; identical inputs give zero error, 100% agreement and cosine 1.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from edgefm.core.errors import DatasetError, ImageError
from edgefm.data.fashion_mnist import parse_idx, write_idx
from edgefm.data.images import LIGHT_BACKGROUND, border_level, load_image, prepare
from runtime_check.verify import compare as C
from runtime_check.verify.tolerances import Tolerance

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def idx_bytes(arr: np.ndarray) -> bytes:
    """An uncompressed IDX file for a uint8 array (what ``write_idx(compress=False)`` writes)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


# -- IDX ----------------------------------------------------------------------------------------


@PROPERTY
@given(arrays(np.uint8, array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)))
def test_parse_idx_round_trips_any_uint8_array(arr: np.ndarray) -> None:
    out = parse_idx(idx_bytes(arr))
    assert out.dtype == np.uint8 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_parse_idx_round_trips_through_write_idx(tmp_path: Path) -> None:
    from edgefm.data.fashion_mnist import read_bytes

    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    for compress, name in ((True, "a.gz"), (False, "a")):
        write_idx(tmp_path / name, arr, compress=compress)
        np.testing.assert_array_equal(parse_idx(read_bytes(tmp_path / name)), arr)


@PROPERTY
@given(st.binary(max_size=64))
def test_parse_idx_any_bytes_give_an_array_or_a_dataset_error(data: bytes) -> None:
    try:
        out = parse_idx(data, "fuzz.idx")
    except DatasetError as e:
        assert "fuzz.idx" in str(e)
    else:
        assert out.dtype == np.uint8 and out.size == len(data) - 4 - 4 * out.ndim


@PROPERTY
@given(st.integers(1, 4), st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4), st.binary(max_size=16))
def test_parse_idx_any_declared_shape_with_any_body(ndim: int, dims: list[int], body: bytes) -> None:
    """Well-formed headers that declare any dimensions (up to 2**32-1 each) over a short body."""
    data = bytes([0, 0, 8, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims[:ndim]) + body
    try:
        out = parse_idx(data)
    except DatasetError as e:
        assert "truncated or padded" in str(e) or "which NumPy cannot hold" in str(e)
    else:
        assert out.shape == tuple(dims[:ndim]) and out.size == len(body)


def test_parse_idx_huge_declared_shape_that_wraps_int64_is_a_dataset_error() -> None:
    """65536**4 == 2**64: the int64 product wrapped to 0 and an empty body passed the size check."""
    data = bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4
    with pytest.raises(DatasetError, match=r"declares shape \(65536, 65536, 65536, 65536\)"):
        parse_idx(data)


def test_parse_idx_empty_body_with_a_shape_numpy_cannot_hold_is_a_dataset_error() -> None:
    """Zero elements (a zero dimension) beside dimensions whose product overflows: reshape raised ValueError."""
    data = bytes([0, 0, 8, 4]) + b"".join(d.to_bytes(4, "big") for d in (0, 0, 0xB6000000, 0xB40B40B5))
    with pytest.raises(DatasetError, match=r"declares shape \(0, 0, 3053453312, 3020636341\), which NumPy cannot hold"):
        parse_idx(data)


# -- images -------------------------------------------------------------------------------------

# (mode, dtype the pixels are drawn in, value range, file format that stores the mode)
IMAGE_MODES = {
    "1": (np.uint8, (0, 1), "PNG"),
    "L": (np.uint8, (0, 255), "PNG"),
    "LA": (np.uint8, (0, 255), "PNG"),
    "P": (np.uint8, (0, 255), "PNG"),
    "RGB": (np.uint8, (0, 255), "PNG"),
    "RGBA": (np.uint8, (0, 255), "PNG"),
    "CMYK": (np.uint8, (0, 255), "TIFF"),
    "I;16": (np.uint16, (0, 65535), "PNG"),
    "I": (np.int32, (-(2**31), 2**31 - 1), "TIFF"),
    "F": (np.float32, (-(2.0**100), 2.0**100), "TIFF"),
}
_CHANNELS = {"LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}


@st.composite
def image_files(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int]]:
    """An encoded image of any mode in IMAGE_MODES, 1-64 pixels a side."""
    from PIL import Image

    mode = draw(st.sampled_from(sorted(IMAGE_MODES)))
    dtype, (lo, hi), fmt = IMAGE_MODES[mode]
    h, w = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = _CHANNELS.get(mode, 1)
    shape = (h, w, channels) if channels > 1 else (h, w)
    if np.dtype(dtype).kind == "f":
        elements = st.floats(lo, hi, width=32) | st.sampled_from([np.nan, np.inf, -np.inf])
    else:
        elements = st.integers(lo, hi)
    arr = draw(arrays(dtype, shape, elements=elements, fill=st.just(np.asarray(lo, dtype).item())))
    if mode == "1":
        img = Image.fromarray((arr * 255).astype(np.uint8), "L").convert("1")
    elif mode in ("LA", "RGB", "RGBA", "CMYK"):
        img = Image.frombytes(mode, (w, h), arr.tobytes())
    elif mode == "P":
        img = Image.fromarray(arr, "L").convert("P")
    else:
        img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), mode, (w, h)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(image_files(), st.sampled_from([None, True, False]))
def test_any_image_becomes_a_28x28_float32_in_unit_range(tmp_path: Path, case: tuple[bytes, str, tuple[int, int]], invert: bool | None) -> None:
    data, mode, size = case
    path = tmp_path / f"img-{mode.replace(';', '')}.bin"
    path.write_bytes(data)
    img = load_image(path, invert)
    assert img.pixels.shape == (28, 28) and img.pixels.dtype == np.float32
    assert np.all(np.isfinite(img.pixels)) and img.pixels.min() >= 0.0 and img.pixels.max() <= 1.0
    assert img.original_size == size
    if invert is not None:
        assert img.inverted is invert


@PROPERTY
@given(arrays(np.float32, st.tuples(st.integers(1, 60), st.integers(1, 60)), elements=st.floats(0, 1, width=32)))
def test_prepare_any_grayscale_gives_28x28_in_unit_range(gray: np.ndarray) -> None:
    for invert in (None, True, False):
        pixels, background, inverted = prepare(gray, invert)
        assert pixels.shape == (28, 28) and pixels.dtype == np.float32
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
        assert 0.0 <= background <= 1.0
        assert inverted is (background > LIGHT_BACKGROUND if invert is None else invert)


@PROPERTY
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.floats(0, 1, width=32)))
def test_inversion_is_symmetric(gray: np.ndarray) -> None:
    """Inverting a picture and the flag gives the same model input; auto-detection picks the light-on-dark one."""
    negative = (np.float32(1.0) - gray).astype(np.float32)
    forced, _, inv = prepare(gray, invert=True)
    plain, _, not_inv = prepare(negative, invert=False)
    assert inv and not not_inv
    np.testing.assert_allclose(forced, plain, atol=1e-5)

    assume(abs(border_level(gray) - LIGHT_BACKGROUND) > 1e-3)  # exactly 0.5 is a tie either way
    auto_a, _, inv_a = prepare(gray, invert=None)
    auto_b, _, inv_b = prepare(negative, invert=None)
    assert inv_a != inv_b  # exactly one of the two is dark-on-light
    np.testing.assert_allclose(auto_a, auto_b, atol=1e-5)


def test_uniform_and_one_pixel_images_are_blank() -> None:
    for gray in (np.full((1, 1), 0.3, np.float32), np.full((5, 9), 0.8, np.float32)):
        pixels, _, _ = prepare(gray)
        assert pixels.shape == (28, 28) and not pixels.any()


def test_non_image_bytes_are_an_image_error(tmp_path: Path) -> None:
    p = tmp_path / "noise.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(ImageError, match=r"noise\.png"):
        load_image(p)


# -- comparison ---------------------------------------------------------------------------------

_values = st.floats(-(2.0**100), 2.0**100, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def logit_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n, c = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    a = draw(arrays(np.float32, (n, c), elements=_values))
    r = draw(arrays(np.float32, (n, c), elements=_values))
    return a, r


@PROPERTY
@given(logit_pairs())
def test_error_metrics_order_and_symmetry(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, r = pair
    mx, mean = C.max_abs_error(a, r), C.mean_abs_error(a, r)
    assert mx >= mean >= 0.0
    assert mx == C.max_abs_error(r, a) and mean == C.mean_abs_error(r, a)
    cos = C.cosine_similarity(a, r)
    assert -1.0 <= cos <= 1.0 and cos == pytest.approx(C.cosine_similarity(r, a), abs=1e-12)
    agree = C.top1_agreement(a, r)
    assert 0.0 <= agree <= 1.0 and agree == C.top1_agreement(r, a)


@PROPERTY
@given(logit_pairs())
def test_identical_outputs_have_no_error(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, _ = pair
    assert C.max_abs_error(a, a.copy()) == 0.0 and C.mean_abs_error(a, a.copy()) == 0.0
    assert C.top1_agreement(a, a.copy()) == 1.0
    assert C.cosine_similarity(a, a.copy()) == pytest.approx(1.0, abs=1e-9)
    exact = C.compare_exact({"logits": a}, {"logits": a.copy()})
    assert exact.passed and exact.value == 0.0


@PROPERTY
@given(logit_pairs())
def test_identical_outputs_pass_every_bound(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, _ = pair
    exp = np.exp(a.astype(np.float64) - a.max(axis=1, keepdims=True))
    outputs = {"logits": a, "probabilities": (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)}
    labels = np.argmax(a, axis=1)
    tight = Tolerance(max_abs=0.0, mean_abs=0.0, min_cosine=1.0 - 1e-9, min_top1=1.0, max_accuracy_drop=0.0,
                      probability_sum=1e-5, batch_invariance=0.0)
    metrics = C.compare_outputs(outputs, {k: v.copy() for k, v in outputs.items()}, labels, tight, batch1=outputs)
    assert all(m.passed for m in metrics), [m.describe() for m in metrics if not m.passed]
    assert C.accuracy(a, labels) == 1.0
