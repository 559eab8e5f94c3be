"""Atomic writes, confined reads and content hashes.

Nothing edgefm writes is ever half-written: every file goes to a temporary file in
the destination directory and is renamed over the target (rename is atomic on
POSIX within one filesystem). Directories (SavedModels) are staged the same way.

Only regular files (or new paths) are replaced that way. A special file given as
an output (``/dev/stdout``, a FIFO) is written directly, never renamed over; a
device node is never replaced (as root, a rename over ``/dev/null`` would break it
for every process); a symlink is written through to its target only when that
target lies in the link's own directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgefm.core.errors import ConfigError, OutputError

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publishable(tmp: str | Path) -> None:
    """mkstemp creates 0600 files; give the result the mode a plain open() would."""
    os.chmod(tmp, 0o666 & ~_umask())


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """This module's own file-system calls: an OSError becomes an OutputError naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(path, e) from e


def ensure_directory(path: Path) -> Path:
    """``mkdir -p path``; an OutputError (naming it) if it cannot be made."""
    path = Path(path)
    with _writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def output_target(path: Path) -> tuple[Path, bool]:
    """Where a write to ``path`` goes: ``(target, direct)``.

    ``direct`` is True for special files (character devices, FIFOs, sockets: written
    in place, e.g. ``--report /dev/stdout``). A symlink is followed when its target is
    in the link's directory; one that points elsewhere is refused (OutputError), so
    a link planted in an artifacts directory cannot redirect a write to another file.
    """
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode  # follows links: /dev/stdout -> /proc/self/fd/1 -> a pipe
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OutputError(path, e) from e
    if mode is not None and stat.S_ISBLK(mode):
        raise OutputError(path, OSError(1, "it is a block device; pass a file path"))
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return path, True  # a character device, FIFO or socket: written in place
    if path.is_symlink():
        resolved = path.resolve()
        if resolved.parent != path.parent.resolve():
            raise OutputError(path, OSError(1, f"it is a symbolic link to {resolved}, outside its directory; "
                                               "edgefm does not write through it"))
        return resolved, False
    return path, False


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path, direct = output_target(Path(path))
    if direct:  # /dev/stdout, /dev/null, a FIFO: write the stream, never replace the node
        with _writing(path), open(path, "wb") as f:
            f.write(data)
        return
    tmp = _stage(path, data)
    try:
        with _writing(path):
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _staged_now(tmp: Path) -> None:
    """``tmp`` is removed if the signal watcher ends the process (``edgefm.core.interrupts``); once renamed
    into place the name is gone, and removing it then does nothing."""
    from edgefm.core.interrupts import _leftovers

    _leftovers[str(tmp)] = None


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """For the block, ``$TMPDIR`` (and Python's ``tempfile``) is a new directory only this user can open; it is
    removed at the end, and by the signal watcher if it ends the process.

    Libraries and children write at fixed names in ``$TMPDIR``: ONNX Runtime 1.32 writes its telemetry
    session file ``$TMPDIR/.ses`` when it is imported (``ort.disable_telemetry_events()`` does not stop
    it), following a symbolic link planted there (measured: it overwrote the link's target). Every
    process edgefm starts (the probe, the native runners, workers, qemu) inherits the directory.
    """
    from edgefm.core.interrupts import at_forced_end

    outer = tempfile.gettempdir()
    private = tempfile.mkdtemp(prefix="edgefm-")
    cancel = at_forced_end(lambda: shutil.rmtree(private, ignore_errors=True))
    old_env, old_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    _OUTER_TMP.append(outer)
    os.environ["TMPDIR"], tempfile.tempdir = private, private
    try:
        yield Path(private)
    finally:
        _OUTER_TMP.pop()
        tempfile.tempdir = old_tempdir
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env
        shutil.rmtree(private, ignore_errors=True)
        cancel()


#: the temporary directory outside ``private_tempdir`` (what must outlive the command, such as worker logs)
_OUTER_TMP: list[str] = []


def outer_tempdir() -> str:
    """The shared temporary directory, outside the command's private one: for what must outlive the command."""
    return _OUTER_TMP[0] if _OUTER_TMP else tempfile.gettempdir()


def _stage(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``, flushed to disk, with a plain file's mode.

    The first half of every atomic write (the rename is the second). On a failure
    the temporary file is removed and the OutputError names ``path``.
    """
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        _staged_now(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            _publishable(tmp)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    return tmp


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """How edgefm writes JSON files: indented, keys in insertion order, a final newline."""
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


@contextlib.contextmanager
def atomic_output_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    For writers that insist on a file name (converters, ``PIL.Image.save``).
    """
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    _staged_now(tmp_path)
    try:
        with _writing(path):  # the writer's own OSError (a full disk) names the file too
            yield tmp_path
        with _writing(path):
            _publishable(tmp_path)
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``path`` whole."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _staged_now(staging)
    try:
        yield staging
        with _writing(path):
            os.chmod(staging, 0o777 & ~_umask())
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(staging, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class StagedFiles:
    """Several files committed together: every one is written beside its target first, then all renamed.

    A full disk (or any write error) strikes while staging, when nothing is replaced
    yet: the temporary files go and every target is as it was. Renames allocate no
    data, so once staged the switch does not fail for want of space.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def add(self, path: Path, data: bytes) -> None:
        path = Path(path)
        self._staged.append((_stage(path, data), path))

    def commit(self) -> None:
        for tmp, path in self._staged:
            with _writing(path):
                os.replace(tmp, path)
        self._staged = []

    def discard(self) -> None:
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._staged = []


def outputs_are_not_inputs(outputs: Mapping[str, Path | None], inputs: Mapping[Path, str], command: str) -> None:
    """A ConfigError if an output option names one of the command's inputs (a file, or a file inside an input
    directory): writing there would destroy it. The one rule for every output option of every command.

    ``outputs`` maps each output option (``--report``) to its path (None: not given); ``inputs``
    maps each input file or directory to what it is (``"artifact 'tflite_int8'"``). Paths are
    compared resolved, so a symbolic link or ``..`` does not hide an input.
    """
    resolved = {Path(p).resolve(): what for p, what in inputs.items()}
    for flag, out in outputs.items():
        if out is None:
            continue
        target = Path(out).resolve()
        what = resolved.get(target) or next(
            (f"a file of {w}" for p, w in resolved.items() if target.is_relative_to(p) and p.is_dir()), None)
        if what:
            raise ConfigError(f"{flag} {out} is {what}, an input of this {command}; writing there would destroy it. "
                              f"Pass {flag} with another path.")


def confined(root: Path, relative: str | Path, what: str) -> Path:
    """``root / relative``, resolved (symlinks too), if it stays inside ``root``; else a ManifestError.

    Paths recorded in a manifest are relative to its directory: an absolute path,
    ``..`` or a symlink out of the directory must not make edgefm read (hash, run,
    embed) a file elsewhere.
    """
    from edgefm.core.errors import ManifestError

    base = Path(root).resolve()
    rel = Path(relative)
    target = (base / rel).resolve()
    if rel.is_absolute() or not target.is_relative_to(base) or target == base:
        raise ManifestError(
            f"{what} {str(relative)!r} points outside the artifacts directory {root} (resolved: {target}). "
            "Paths in manifest.json are relative to its directory; re-create it with `edgefm train` and `edgefm export`."
        )
    return target


def user_cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/edgefm/NAME`` (default ``~/.cache/edgefm/NAME``): what edgefm keeps per user."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgefm" / name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(path: Path) -> list[Path]:
    """Every file under directory ``path``, sorted, through symbolic links to directories as TensorFlow reads them.

    ``Path.rglob`` does not descend into a linked directory, so a SavedModel whose
    ``variables/`` was a link hashed the same whatever the weights behind it were, and a
    warm verify reused a stale reference. A directory reached twice (a link cycle) is read once.
    """
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    for here, dirs, names in os.walk(path, followlinks=True):
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        files.extend(p for p in (Path(here) / n for n in names) if p.is_file())
    return sorted(files)


def sha256_tree(path: Path) -> str:
    """sha256 over a directory: relative paths and contents, in sorted order."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in tree_files(path):
        h.update(p.relative_to(path).as_posix().encode() + b"\0")
        h.update(sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def tree_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in tree_files(path))


def human_bytes(n: int) -> str:
    """A size for people, in binary units: ``832 B``, ``64.7 KiB``, ``1.2 MiB``."""
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"
