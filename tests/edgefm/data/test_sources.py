"""``--data`` for any model: .npz, .npy, a directory of images, synthetic; checked against the signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefm.core.errors import ConfigError, DataError
from edgefm.core.manifest import Preprocessing, TensorSpec
from edgefm.data.sources import open_data, parse_preprocess, parse_value_ranges, preprocessing_for

TWO = [TensorSpec("a", "float32", [None, 4]), TensorSpec("b", "int32", [None, 2])]
IMAGE = TensorSpec("image", "float32", [None, 8, 6, 3])


def test_npz_rows_in_order_in_any_batch_size(tmp_path: Path) -> None:
    a, b = np.arange(40, dtype=np.float32).reshape(10, 4), np.arange(20, dtype=np.int32).reshape(10, 2)
    np.savez(tmp_path / "d.npz", a=a, b=b, labels=np.arange(10))
    src = open_data(tmp_path / "d.npz", TWO)
    assert src.count == 10 and np.array_equal(src.labels, np.arange(10))
    got = [batch for batch in src.batches(3)]
    assert [len(g["a"]) for g in got] == [3, 3, 3, 1]
    assert np.array_equal(np.concatenate([g["b"] for g in got]), b)
    assert src.info["sha256"] == open_data(tmp_path / "d.npz", TWO).info["sha256"]
    assert open_data(tmp_path / "d.npz", TWO, samples=4).count == 4


def test_npy_is_memory_mapped_and_for_one_input(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((5, 4), np.float32))
    src = open_data(tmp_path / "x.npy", TWO[:1])
    assert isinstance(src.arrays["a"], np.memmap) and src.count == 5
    with pytest.raises(DataError, match="an .npy holds one array, but the model has 2 inputs"):
        open_data(tmp_path / "x.npy", TWO)


@pytest.mark.parametrize(("arrays", "words"), [
    ({"a": np.zeros((3, 4), np.float32)}, "has no array named 'b'"),
    ({"a": np.zeros((3, 5), np.float32), "b": np.zeros((3, 2), np.int32)}, "array 'a' has shape [3, 5]"),
    ({"a": np.zeros((3, 4), np.float64), "b": np.zeros((3, 2), np.int32)}, "array 'a' is float64"),
    ({"a": np.zeros((3, 4), np.float32), "b": np.zeros((2, 2), np.int32)}, "different row counts"),
])
def test_arrays_that_do_not_fit_are_named(tmp_path: Path, arrays: dict, words: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as e:
        open_data(tmp_path / "bad.npz", TWO)
    assert words in str(e.value)


def test_labels_must_match_the_rows(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", a=np.zeros((4, 4), np.float32), b=np.zeros((4, 2), np.int32))
    np.save(tmp_path / "few.npy", np.zeros(3, np.int64))
    np.save(tmp_path / "float.npy", np.zeros(4, np.float32))
    with pytest.raises(DataError, match="has 3 labels for 4 rows"):
        open_data(tmp_path / "d.npz", TWO, labels_file=tmp_path / "few.npy")
    with pytest.raises(DataError, match="one integer class id per row"):
        open_data(tmp_path / "d.npz", TWO, labels_file=tmp_path / "float.npy")


def test_synthetic_is_seeded_per_row_and_honours_ranges_and_dtypes() -> None:
    specs = [TensorSpec("x", "float32", [None, 3]), TensorSpec("m", "bool", [None, 2]), TensorSpec("u", "uint8", [None, 2])]
    src = open_data("synthetic", specs, samples=7, seed=5, value_ranges={"x": (-2.0, -1.0)})
    whole = src.rows(0, 7)
    parts = list(src.batches(2))
    assert np.array_equal(np.concatenate([p["x"] for p in parts]), whole["x"])  # any batch size, same numbers
    assert whole["x"].min() >= -2 and whole["x"].max() <= -1 and whole["m"].dtype == bool and whole["u"].dtype == np.uint8
    assert not np.array_equal(whole["x"], open_data("synthetic", specs, samples=7, seed=6).rows(0, 7)["x"])
    assert src.labels is None and "no labels" in src.info["notes"][0]
    with pytest.raises(ConfigError, match="--value-range names 'y'"):
        open_data("synthetic", specs, value_ranges={"y": (0, 1)})
    with pytest.raises(DataError, match="dynamic shape"):
        open_data("synthetic", [TensorSpec("f", "float32", [None, None, 3])])


def test_a_directory_of_images_with_class_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    src = open_data(tmp_path, [IMAGE], class_names=["cat", "dog"])
    batch = src.rows(0, 4)["image"]
    assert batch.shape == (4, 8, 6, 3) and batch.dtype == np.float32 and 0 <= batch.min() and batch.max() <= 1
    assert src.labels.tolist() == [0, 0, 1, 1]
    prep = Preprocessing(size=(8, 6), channels=3, layout="NCHW", mean=(0.5,), std=(0.25,))
    nchw = open_data(tmp_path, [TensorSpec("image", "float32", [None, 3, 8, 6])], preprocessing={"image": prep})
    assert nchw.rows(0, 1)["image"].shape == (1, 3, 8, 6) and nchw.rows(0, 1)["image"].min() < 0
    with pytest.raises(DataError, match="one image input"):
        open_data(tmp_path, TWO)


def test_preprocess_option_completes_from_the_input_shape() -> None:
    given = parse_preprocess(["scale=1", "mean=0.5,0.5,0.5", "std=0.25"])
    prep = preprocessing_for(IMAGE, given)
    assert prep is not None and prep.size == (8, 6) and prep.scale == 1.0 and prep.mean == (0.5, 0.5, 0.5)
    assert parse_preprocess(["scale=1/255"])["scale"] == pytest.approx(1 / 255)
    with pytest.raises(ConfigError, match="unknown key 'sise'"):
        parse_preprocess(["sise=3"])
    with pytest.raises(ConfigError, match="size"):
        preprocessing_for(TensorSpec("image", "float32", [None, None, None, 3]), {"scale": 1.0})
    assert parse_value_ranges(["x=-1,1"]) == {"x": (-1.0, 1.0)}
    with pytest.raises(ConfigError, match="LO <= HI"):
        parse_value_ranges(["x=1,-1"])
