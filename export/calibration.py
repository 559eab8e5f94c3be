"""The representative dataset for full-integer quantization, for any model.

For the model ``edgefm train`` writes, drawn without replacement, seeded, from the
*training* split (never the test split that ``edgefm verify`` judges on), scaled
exactly as the model's input. For any other model, the first
``--calibration-samples`` rows of ``--data`` (an .npz, .npy, a directory of images;
``edgefm.data.sources``), or seeded random inputs when no data is given (recorded
in the manifest: int8 calibrated on random data is rarely accurate).

Calibration is an ``InputSource``: the converters read it row by row (TFLite) or in
batches (ONNX Runtime), so memory holds one batch, never the whole set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgefm.core.contract import IMAGE_SHAPE, INPUT_NAME
from edgefm.core.manifest import TensorSpec
from edgefm.data import fashion_mnist as ds
from edgefm.data.sources import ArraySource, InputSource

CALIBRATION_SPLIT = "train"
# ONNX Runtime's calibrator takes batches; TFLite's takes one sample per step.
ONNX_CALIBRATION_BATCH = 50
#: the input the Fashion-MNIST calibration draw feeds
FASHION_INPUT = TensorSpec(INPUT_NAME, "float32", [None, *IMAGE_SHAPE])


def calibration_samples(n: int, seed: int, data_dir: Path | None = None, *, verify: bool = True) -> np.ndarray:
    """``min(n, len(train))`` float32 images [k, 28, 28] in [0, 1], the same for the same seed."""
    split = ds.load_split(CALIBRATION_SPLIT, data_dir, verify=verify)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(split), size=min(n, len(split)), replace=False)
    return ds.scale_images(split.images[idx])


def fashion_calibration(n: int, seed: int, data_dir: Path | None = None, *, verify: bool = True) -> InputSource:
    """``calibration_samples`` as the source the converters read."""
    images = calibration_samples(n, seed, data_dir, verify=verify)
    return ArraySource(specs=[FASHION_INPUT], count=len(images), kind="fashion-mnist",
                       path=f"{CALIBRATION_SPLIT} split, seed {seed}", arrays={INPUT_NAME: images})


def as_source(calibration: InputSource | np.ndarray) -> InputSource:
    """An array of Fashion-MNIST images (older callers, tests) as a source; a source as it is."""
    if isinstance(calibration, np.ndarray):
        return ArraySource(specs=[FASHION_INPUT], count=len(calibration), kind="array", arrays={INPUT_NAME: calibration})
    return calibration


def tflite_representative_dataset(samples: InputSource | np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """One sample per step, keyed by the serving signature's input names."""
    yield from as_source(samples).batches(1)


def onnx_calibration_batches(samples: InputSource | np.ndarray, batch: int = ONNX_CALIBRATION_BATCH) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``batch`` rows (``batch`` 1 for a model whose batch dimension is fixed)."""
    yield from as_source(samples).batches(batch)
