"""The inputs verify feeds every runtime, as batches: the Fashion-MNIST split (``VerifyInputs``) or any
model's ``--data`` (``SourceInputs``, over ``edgefm.data.sources``), with a record of exactly which ones.

``load_inputs(cfg, manifest)`` takes any config with verify's input options (``InputOptions``: the
fields of ``runtime_check.verify.config.CheckConfig`` it reads), so explain and repair feed the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgefm.core.contract import INPUT_NAME
from edgefm.core.errors import ConfigError, DataError, DatasetError
from edgefm.core.manifest import Manifest
from edgefm.data.fashion_mnist import scale_images
from edgefm.data.sources import InputSource


class InputOptions(Protocol):
    """The options that choose verify's inputs (``CheckConfig`` has them)."""

    @property
    def data(self) -> str | None: ...
    @property
    def data_dir(self) -> Path | None: ...
    @property
    def split(self) -> str: ...
    @property
    def samples(self) -> int | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def value_ranges(self) -> Mapping[str, tuple[float, float]]: ...
    @property
    def labels_data(self) -> Path | None: ...
    @property
    def invariance_samples(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def verify_data(self) -> bool: ...


@dataclass(frozen=True)
class VerifyInputs:
    """The verify inputs, read from the dataset file batch by batch whenever they are fed.

    Streaming: no runtime, and no part of verify, holds all N images at once; each
    pass (``batches``) reads the split's image file again (a 60,000-image pass
    decompresses 26 MB in ~0.15 s) and scales one batch at a time, so verify's
    memory grows with the batch size, not with the number of inputs. What is
    kept whole is small: the labels and every runtime's ``[N, classes]`` outputs.
    """

    split: str
    data_dir: Path
    count: int
    labels: np.ndarray
    info: dict[str, Any]
    #: the first ``invariance_samples`` rows of each input (the batch-1 runs), kept: at most a few dozen
    head: dict[str, np.ndarray]
    input_name: str = INPUT_NAME

    def __len__(self) -> int:
        return self.count

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """float32 [0, 1] batches of the ``count`` images in order (``uint8 / 255``, as ``Split.scaled``)."""
        from edgefm.data import fashion_mnist as ds

        # verified by load_inputs' pass already: the later passes read the same file unchecked
        for batch in ds.stream_images(self.split, self.data_dir, batch_size=batch_size, count=self.count, verify=False):
            yield {self.input_name: scale_images(batch)}

    def images_at(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """The dataset's uint8 pixels of a few images (those the page shows), in one more pass."""
        from edgefm.data import fashion_mnist as ds

        wanted, out, start = sorted(set(indices)), {}, 0
        if not wanted:
            return out
        for batch in ds.stream_images(self.split, self.data_dir, batch_size=1000, count=wanted[-1] + 1, verify=False):
            out.update({i: np.array(batch[i - start]) for i in wanted if start <= i < start + len(batch)})
            start += len(batch)
        return out


@dataclass(frozen=True)
class SourceInputs:
    """Verify inputs of any model (``--data``): an ``edgefm.data.sources.InputSource`` with VerifyInputs' face."""

    source: InputSource
    info: dict[str, Any]
    head: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return self.source.count

    @property
    def labels(self) -> np.ndarray | None:
        return self.source.labels

    def __len__(self) -> int:
        return self.source.count

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        return self.source.batches(batch_size)

    def images_at(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        return {}  # the page shows Fashion-MNIST images only


Inputs = VerifyInputs | SourceInputs


def load_inputs(cfg: InputOptions, manifest: Manifest | None = None) -> Inputs:
    """``--data`` as the model's inputs, or (no ``--data``, edgefm's own model) the Fashion-MNIST split."""
    if cfg.data is None and (manifest is None or manifest.takes_fashion_images()):
        return load_fashion_inputs(cfg)
    assert manifest is not None
    from edgefm.data.sources import open_data

    inputs = manifest.savedmodel()[1].inputs
    classes = next(iter(manifest.class_names().values()), [])
    source = open_data(cfg.data or "synthetic", inputs, samples=cfg.samples, seed=cfg.seed,
                       value_ranges=cfg.value_ranges, preprocessing=manifest.image_preprocessing(),
                       labels_file=cfg.labels_data,
                       class_names=classes)
    n_inv = min(cfg.invariance_samples, source.count)
    head = source.head(n_inv)
    info = {
        **source.info,
        "batch_size": cfg.batch_size,
        "invariance_samples": n_inv,
        "invariance_sha256": _digest(head),
    }
    if source.labels is not None and classes:
        bad = np.flatnonzero((source.labels < 0) | (source.labels >= len(classes)))
        if len(bad):
            raise DataError(f"The labels of {cfg.data} hold class id {int(source.labels[bad[0]])} (row {int(bad[0])}), "
                            f"outside the model's {len(classes)} classes.")
    return SourceInputs(source, info, head)


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def load_fashion_inputs(cfg: InputOptions) -> VerifyInputs:
    """The verify inputs (streamed; see ``VerifyInputs``), their labels, and a record of exactly which ones.

    One pass over the image file here checks it (structure; the official sha256 unless
    ``--no-verify``) and hashes the float32 images the runtimes will see, batch by batch.
    """
    from edgefm.data import fashion_mnist as ds

    data_dir = ds.locate(cfg.data_dir)
    labels = ds.load_labels(cfg.split, data_dir, verify=cfg.verify_data)
    n = len(labels) if cfg.samples is None else cfg.samples
    if n > len(labels):
        raise ConfigError(f"--samples {n}: the {cfg.split} split has only {len(labels)} images; pass at most {len(labels)}.")
    if n == 0:
        raise ConfigError(f"The {cfg.split} split in {data_dir} is empty; there is nothing to verify on.")
    n_inv = min(cfg.invariance_samples, int(n))
    digest, head, seen = hashlib.sha256(), [], 0
    # count=None: the whole file is read (for its sha256), the images past n only counted
    for batch in ds.stream_images(cfg.split, data_dir, batch_size=cfg.batch_size, verify=cfg.verify_data):
        use = scale_images(batch[: max(0, n - seen)])
        digest.update(use.tobytes())  # the same digest as of all n float32 images at once
        if seen < n_inv:
            head.append(use[: n_inv - seen])
        seen += len(batch)
    if seen != len(labels):
        raise DatasetError(
            f"{data_dir}: the {cfg.split} split holds {seen} images but {len(labels)} labels; the files belong to "
            "different releases. Re-install or re-fetch the dataset."
        )
    head_images = np.concatenate(head)
    info = {
        "source": "fashion-mnist",
        "split": cfg.split,
        "data_dir": str(data_dir),
        "checksums_verified": cfg.verify_data,
        "count": int(n),
        "first_index": 0,
        "dtype": "float32",
        "shape": [int(n), *map(int, head_images.shape[1:])],
        "scaling": "uint8 / 255",
        "sha256": digest.hexdigest(),
        "labels_sha256": hashlib.sha256(np.ascontiguousarray(labels[:n]).tobytes()).hexdigest(),
        "batch_size": cfg.batch_size,
        "invariance_samples": n_inv,
        "invariance_sha256": hashlib.sha256(head_images.tobytes()).hexdigest(),
    }
    return VerifyInputs(cfg.split, data_dir, int(n), np.asarray(labels[:n]), info, {INPUT_NAME: head_images})
