"""One writer at a time per artifacts directory: an advisory lock on the directory itself.

Two ``edgefm export`` runs on one directory (two terminals, ``make -j``, two CI jobs)
each read ``manifest.json`` and wrote their own copy, so the last writer's manifest
lost the other's artifacts; ``train`` racing ``export`` left a manifest of the old
model beside a new SavedModel. Every command that writes an artifacts directory
takes this lock and reads the manifest inside it.

``fcntl.flock`` locks belong to the open file: the kernel drops them when the
holder exits, however it dies, so a stale lock of a dead process is taken over
without any clean-up. The lock is taken on the directory's own file descriptor
(Linux allows flock on directories), so no lock file is added to the artifacts
and nothing in them changes by locking. (flock is per host: on a network file
system shared by several machines, run one writer at a time.)
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from edgefm.core.errors import ConfigError, EdgefmError, ManifestError, OutputError

#: seconds a second writer waits for the first, unless EDGEFM_LOCK_TIMEOUT says otherwise
DEFAULT_TIMEOUT_S = 600.0
POLL_S = 0.2


class LockTimeout(EdgefmError):
    """Another edgefm command kept the artifacts directory locked for longer than we wait."""


def lock_timeout() -> float:
    """``EDGEFM_LOCK_TIMEOUT`` in seconds (default ``DEFAULT_TIMEOUT_S``); anything but a finite number >= 0 is a ConfigError."""
    raw = os.environ.get("EDGEFM_LOCK_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"EDGEFM_LOCK_TIMEOUT={raw!r}: give the seconds to wait for another edgefm command's lock "
                          f"as a number >= 0 (default {DEFAULT_TIMEOUT_S:g}), or unset it.")
    return seconds


@contextlib.contextmanager
def artifacts_lock(
    root: Path, command: str, *, timeout: float | None = None, notify: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the exclusive lock of ``root`` for the body; wait for another holder up to ``timeout`` seconds."""
    root = Path(root)
    if timeout is None:
        timeout = lock_timeout()
    if not root.is_dir():
        raise ManifestError(
            f"Artifacts directory {root} does not exist. Run `edgefm train --artifacts {root}` first, or pass "
            "--artifacts with the directory that holds manifest.json."
        )
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise OutputError(root, e) from e
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{root} is locked by another edgefm command that writes it (train, export or verify); "
                        f"{command} waited {timeout:g} s (EDGEFM_LOCK_TIMEOUT). Wait for that command to finish, or "
                        "use another --artifacts directory. The kernel releases the lock of a process that died, "
                        "so a lock that stays is held by a live process."
                    ) from None
                if not told and notify is not None:
                    notify(f"{command}: waiting for another edgefm command that is writing {root} ...")
                    told = True
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock
