"""Whether an artifacts directory already holds a finished run: a new run must not replace it silently."""

from __future__ import annotations

from pathlib import Path

from edgefm.core.contract import MANIFEST_NAME
from edgefm.core.errors import EdgefmError, UsageError
from edgefm.core.manifest import Manifest


def finished_run(root: Path) -> str | None:
    """A one-line description of the finished run in ``root`` (its manifest), or ``None`` when there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        training = Manifest.load(root).training
    except EdgefmError:  # unreadable: still someone's file, so still not to be replaced without a word
        return f"{path} (unreadable)"
    acc = training.get("test_accuracy")
    epochs = len(training.get("history", []))
    model = training.get("model") or "a model"
    what = f"{model} trained for {epochs} epoch{'' if epochs == 1 else 's'}" if epochs else "a trained model"
    return f"{path}: {what}" + (f", test accuracy {100 * acc:.2f}%" if isinstance(acc, (int, float)) else "")


def refuse_finished_run(root: Path, *, force: bool, resume: bool) -> None:
    """A ``UsageError`` when a new (not ``--resume``d) run would replace a finished one without ``--force``."""
    if force or resume:
        return
    found = finished_run(root)
    if found is not None:
        raise UsageError(
            f"{Path(root)} already holds a finished run ({found}); a new `edgefm train` would replace its "
            f"SavedModel, checkpoints and manifest (and every export it records). Pass --force to replace it, "
            f"--artifacts NEW_DIR to keep both, or --resume to continue it."
        )
