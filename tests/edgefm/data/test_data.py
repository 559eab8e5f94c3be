"""The dataset layer on tiny synthetic IDX files (and corrupted ones)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.errors import DatasetError
from edgefm.data import fashion_mnist as ds

from conftest import make_idx_dir


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def test_parse_idx_roundtrip() -> None:
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(ds.parse_idx(_idx(arr)), arr)
    np.testing.assert_array_equal(ds.parse_idx(_idx(np.array([3, 1, 4], np.uint8))), [3, 1, 4])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "wrong magic number 0x00000d03"),
        (b"\x12\x34\x08\x01" + b"\x00" * 4, "wrong magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + b"\x01" * 4, r"declares shape \(5,\) \(5 bytes of data\) but holds 4"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02" + b"\x01" * 3, "truncated or padded"),
    ],
)
def test_parse_idx_rejects_malformed_files(data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        ds.parse_idx(data, "f.idx")


def test_load_split_with_synthetic_checksums(tiny_data) -> None:
    d, sums = tiny_data
    split = ds.load_split("train", d, checksums=sums)
    assert split.images.shape == (256, 28, 28) and split.images.dtype == np.uint8
    assert split.labels.shape == (256,) and set(split.labels.tolist()) == set(range(10))
    x = split.scaled()
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1 and x.max() == pytest.approx(230 / 255)
    assert len(ds.load_split("test", d, checksums=sums)) == 128


def test_official_checksums_reject_other_data_unless_no_verify(tiny_data) -> None:
    d, _ = tiny_data
    with pytest.raises(DatasetError, match="Checksum mismatch .*--no-verify"):
        ds.load_split("train", d)
    assert len(ds.load_split("train", d, verify=False)) == 256


def test_one_changed_byte_fails_the_checksum(tiny_data) -> None:
    d, sums = tiny_data
    path = d / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] ^= 1
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError, match=r"Checksum mismatch for .*t10k-images-idx3-ubyte\.gz"):
        ds.load_split("test", d, checksums=sums)


def test_checksum_is_of_decompressed_content_not_gz_bytes(tiny_data) -> None:
    d, sums = tiny_data
    path = d / "train-labels-idx1-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))  # recompressed, like Debian's
    assert len(ds.load_split("train", d, checksums=sums)) == 256


def test_uncompressed_files_are_accepted(tiny_data) -> None:
    d, sums = tiny_data
    for stem in ds.ALL_FILES:
        gz = d / (stem + ".gz")
        (d / stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(ds.load_split("test", d, checksums=sums)) == 128


def test_truncated_gzip_names_the_file(tiny_data) -> None:
    d, sums = tiny_data
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"Cannot read .*train-images-idx3-ubyte\.gz.*truncated or corrupt"):
        ds.load_split("train", d, checksums=sums)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, n_train=20, n_test=10)
    ds.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DatasetError, match="holds 20 images but train-labels-idx1-ubyte holds 19 labels"):
        ds.load_split("train", tmp_path, verify=False)


def test_labels_outside_0_9_are_rejected(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, n_train=20, n_test=10)
    ds.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(DatasetError, match="label 12 is outside 0-9"):
        ds.load_split("test", tmp_path, verify=False)


def test_wrong_image_shape_is_rejected(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, n_train=20, n_test=10)
    ds.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"shape \(10, 32, 32\), expected \[N, 28, 28\]"):
        ds.load_split("test", tmp_path, verify=False)


def test_missing_directory_and_missing_file_messages(tmp_path: Path, tiny_data) -> None:
    with pytest.raises(DatasetError, match=r"Data directory .*nope does not exist.*apt-get install dataset-fashion-mnist"):
        ds.locate(tmp_path / "nope")
    d, _ = tiny_data
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\].*edgefm data fetch"):
        ds.locate(d)


def test_search_order_env_then_debian_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, deb_dir, cache_root = tmp_path / "env", tmp_path / "deb", tmp_path / "xdg"
    make_idx_dir(deb_dir, 10, 10)
    make_idx_dir(cache_root / "edgefm" / "fashion-mnist", 10, 10)
    monkeypatch.setattr(ds, "DEBIAN_DIR", deb_dir)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_root))
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(env_dir))
    assert ds.locate() == deb_dir  # $EDGEFM_DATA_DIR is empty: skipped
    make_idx_dir(env_dir, 10, 10)
    assert ds.locate() == env_dir
    monkeypatch.delenv(ds.ENV_DATA_DIR)
    shutil.rmtree(deb_dir)
    assert ds.locate() == cache_root / "edgefm" / "fashion-mnist"
    shutil.rmtree(cache_root)
    with pytest.raises(DatasetError, match="Fashion-MNIST was not found .*Debian package.*user cache"):
        ds.locate()


def test_explicit_data_dir_wins(tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch) -> None:
    d, _ = tiny_data
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(tmp_path / "elsewhere"))
    assert ds.locate(d) == d


def test_verify_dir_reports_each_file(tiny_data) -> None:
    d, sums = tiny_data
    _, statuses = ds.verify_dir(d, checksums=sums)
    assert [s.ok for s in statuses] == [True] * 4 and statuses[0].count == 256
    _, statuses = ds.verify_dir(d)  # official sums: all differ
    assert not any(s.ok for s in statuses) and "Checksum mismatch" in statuses[0].detail


def test_write_idx_is_deterministic(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    ds.write_idx(tmp_path / "a.gz", arr)
    ds.write_idx(tmp_path / "b.gz", arr)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert hashlib.sha256(gzip.decompress((tmp_path / "a.gz").read_bytes())).hexdigest() == hashlib.sha256(_idx(arr)).hexdigest()


def test_tf_data_pipelines(tiny_data) -> None:
    import tensorflow as tf

    d, sums = tiny_data
    split = ds.load_split("train", d, checksums=sums)
    batches = list(ds.train_dataset(split, batch_size=100, seed=1))
    assert [b[0].shape[0] for b in batches] == [100, 100, 56]
    x, y = batches[0]
    assert x.dtype == tf.float32 and y.dtype == tf.int32 and float(tf.reduce_max(x)) <= 1.0
    first_epoch = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(first_epoch.tolist()) == sorted(split.labels.tolist())  # a permutation of the split
    assert not np.array_equal(first_epoch, split.labels)  # shuffled
    ev = list(ds.eval_dataset(split, batch_size=200))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in ev]), split.labels)  # in order


def test_describe_counts_the_splits(tiny_data) -> None:
    d, _ = tiny_data
    info = ds.describe(d)
    assert info["splits"] == {"train": 256, "test": 128} and info["license"].startswith("MIT")


@pytest.mark.integration
def test_real_dataset_verifies_and_has_official_sizes(real_data: Path) -> None:
    _, statuses = ds.verify_dir(real_data)
    assert all(s.ok for s in statuses), [s.detail for s in statuses if not s.ok]
    train, test = ds.load_split("train", real_data), ds.load_split("test", real_data)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert np.bincount(test.labels).tolist() == [1000] * 10
