"""One small error hierarchy. Every user-facing failure is an ``EdgefmError``.

Each error carries a one-paragraph message naming the file or option and what to
do. The CLI maps ``exit_code`` to the process exit status in one place; library
code never raises click exceptions.
"""

from __future__ import annotations

from pathlib import Path


class EdgefmError(Exception):
    """Base class: a failure the user can act on (exit status 1)."""

    exit_code = 1


class UsageError(EdgefmError):
    """A bad option value or combination (exit status 2, like click's usage errors)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config value out of range; the message names the CLI flag."""


class DatasetError(EdgefmError):
    """Dataset missing, truncated, malformed, or failing its checksum."""


class DataError(UsageError):
    """``--data`` that does not fit the model: a missing input, a wrong dtype or shape, mismatched labels (exit 2)."""


class ManifestError(EdgefmError):
    """Artifacts directory without a usable manifest.json."""


class ModelFileError(EdgefmError):
    """A model file that is missing, truncated, corrupt or of a foreign format."""


class ExportError(EdgefmError):
    """A converter failed."""


class ParityError(EdgefmError):
    """An exported model does not match the TensorFlow reference."""


class InconclusiveError(EdgefmError):
    """Verify found no failure, but its rows cannot show some bound either way (exit status 3).

    Not 1: the export is not blamed; not 0: nothing was shown. 3 is unused by edgefm and click
    (0 pass, 1 failure, 2 usage, 70 bug, 75 cluster, 130 interrupted, 141 closed pipe); docs/verdict.md.
    """

    exit_code = 3


class RuntimeUnavailableError(EdgefmError):
    """A runtime (library, compiler, shared object) is not installed."""


class OutputError(EdgefmError, OSError):
    """A file or directory edgefm must write cannot be (missing parent, not a directory, permission, full disk).

    Also an ``OSError`` with the cause's errno and strerror, so code that already
    handles write failures keeps handling them.
    """

    def __init__(self, path: Path | str, cause: OSError) -> None:
        OSError.__init__(self, cause.errno, cause.strerror or str(cause), str(path))
        self.message = (
            f"Cannot write {path}: {cause.strerror or cause}. Check that {Path(path).parent} is a writable "
            "directory with free space, or pass another path."
        )

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_failure(cls, path: Path | str, e: BaseException) -> OutputError:
        """A write error of a library that names no file (TensorFlow's OpError for a full disk) as one naming ``path``."""
        import errno

        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        code = errno.ENOSPC if "No space left" in text else getattr(e, "errno", None) or errno.EIO
        return cls(path, OSError(code, text))


class ImageError(EdgefmError):
    """An image file that cannot be read or used."""


class Interrupted(EdgefmError):
    """Stopped by SIGINT/SIGTERM; the message says what was kept (exit status 130, like a shell)."""

    exit_code = 130


class TrainingInterrupted(Interrupted):
    """Training stopped by SIGINT/SIGTERM after saving the last complete epoch."""
