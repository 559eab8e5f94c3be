"""Classification metrics shared by training (the manifest) and verification (the report)."""

from __future__ import annotations

import numpy as np

from edgefm.core.contract import NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``[C, C]`` counts: row = true label, column = predicted class."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes)[: num_classes * num_classes].reshape(
        num_classes, num_classes
    )
