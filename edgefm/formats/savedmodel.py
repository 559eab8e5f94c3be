"""The SavedModel directory format: what makes a directory one, read without running TensorFlow."""

from __future__ import annotations

from pathlib import Path

#: the MetaGraphDef protobuf every SavedModel directory holds
SAVED_MODEL_PB = "saved_model.pb"


def is_savedmodel_dir(path: Path) -> bool:
    """``path`` is a directory with a ``saved_model.pb`` (what TensorFlow's loader needs first)."""
    return (Path(path) / SAVED_MODEL_PB).is_file()
