"""Checks that passed, remembered across processes: ``PassedChecks``.

Some checks of a file cost far more than reading it: the ONNX structure check
imports ``onnx``, which imports ``ml_dtypes``: 0.45 s of onnx's 0.5 s import on
this 2-core machine (measured with ``-X importtime``; perf puts it in NumPy's
``PyUFunc_AddLoop`` as ml_dtypes registers its ufunc loops), a quarter of a warm
``edgefm verify`` (2.0 s before it stopped importing onnx). Such a check's verdict is a
function of the file's bytes and the versions of what checks it, so the caller
names those in a key (a sha256 hex digest) and a later process that finds the key
skips the check: same bytes, same checker, same verdict.

Only passes are remembered (a file that fails is checked, and fails, every
time). The store is one empty file per key in a directory (a ``stat`` to look
up, creating an empty file to add: no file to parse, nothing to lock, and two
processes adding the same key do not collide). It is an optimisation and never
an error: a store that cannot be read or written behaves as an empty one. It asks
no more trust than the cache beside it: whoever can write it can already replace
the native runners in ``$XDG_CACHE_HOME/edgefm/native``, which ``verify --native`` runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgefm.core.fileio import user_cache_dir

#: the per-user store's directory under ``user_cache_dir``
CACHE_NAME = "passed-checks"
#: a key is a sha256 hex digest: a plain file name, never a path
_KEY = re.compile(r"[0-9a-f]{64}")


class PassedChecks:
    """The keys of checks that passed, one empty file each in ``directory`` (created on the first ``add``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a sha256 hex digest: {key!r}")
        return self.directory / key

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            return self._path(key).is_file()
        except OSError:
            return False

    def add(self, key: str) -> None:
        """Remember ``key``; a store that cannot be written is left as it is (the check then runs again)."""
        path = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        except OSError:
            pass


def user_passed_checks() -> PassedChecks:
    """The store of this user (``$XDG_CACHE_HOME/edgefm/passed-checks``), beside edgefm's other caches."""
    return PassedChecks(user_cache_dir(CACHE_NAME))
