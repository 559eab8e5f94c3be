"""The representative dataset for full-integer quantization.

Drawn without replacement, seeded, from the *training* split (never the test
split that ``edgefm verify`` judges on), scaled exactly as the model's input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgefm.core.contract import INPUT_NAME
from edgefm.data import fashion_mnist as ds

CALIBRATION_SPLIT = "train"
# ONNX Runtime's calibrator takes batches; TFLite's takes one sample per step.
ONNX_CALIBRATION_BATCH = 50


def calibration_samples(n: int, seed: int, data_dir: Path | None = None, *, verify: bool = True) -> np.ndarray:
    """``min(n, len(train))`` float32 images [k, 28, 28] in [0, 1], the same for the same seed."""
    split = ds.load_split(CALIBRATION_SPLIT, data_dir, verify=verify)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(split), size=min(n, len(split)), replace=False)
    return ds.scale_images(split.images[idx])


def tflite_representative_dataset(samples: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """One sample per step, keyed by the serving signature's input name."""
    for x in samples:
        yield {INPUT_NAME: x[None]}


def onnx_calibration_batches(samples: np.ndarray, batch: int = ONNX_CALIBRATION_BATCH) -> list[dict[str, np.ndarray]]:
    return [{INPUT_NAME: samples[i : i + batch]} for i in range(0, len(samples), batch)]
