"""``.npy`` and ``.npz`` files read in bounded memory: the one reader of arrays a user hands edgefm.

``numpy.load`` allocates what an array's header says before it reads a byte: a
190-byte ``.npy`` whose header claims 10^11 rows was a MemoryError (exit 70), and an
``.npz`` member inflates to its full size even when ``--samples 10`` needs ten rows
(a 1.2 MB archive of zeros cost 1.8 GB RSS). Here the header is checked against the
bytes the file (or the zip member) really holds, only the rows asked for are read,
and what is read must fit in the memory the machine has free; anything else is a
``DataError`` that names the file. Pickled (object) arrays are never loaded.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from edgefm.core.errors import DataError

_CHUNK = 1 << 20


def load_npy(path: Path, where: str, max_rows: int | None = None) -> np.ndarray:
    """The array in ``.npy`` file ``path`` (its first ``max_rows`` rows if given); ``where`` names it in messages."""
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            return _read(f, size, where, max_rows)
    except OSError as e:
        raise DataError(f"{where} is not a readable .npy file ({e}).") from e


def npz_names(path: Path, where: str) -> list[str]:
    """The array names in ``.npz`` file ``path``."""
    try:
        with zipfile.ZipFile(path) as z:
            return [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        raise DataError(f"{where} is not a readable .npz file ({e}).") from e


def load_npz(path: Path, names: list[str], where: str, max_rows: int | None = None) -> dict[str, np.ndarray]:
    """Arrays ``names`` of ``.npz`` file ``path`` (each its first ``max_rows`` rows if given)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in names:
                info = z.getinfo(f"{name}.npy")
                with z.open(info) as f:
                    out[name] = _read(f, info.file_size, f"{where}: array {name!r}", max_rows)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as e:
        raise DataError(f"{where}: an array cannot be read ({e}).") from e
    return out


def _read(f: IO[bytes], size: int, where: str, max_rows: int | None) -> np.ndarray:
    """One array from ``f`` (``size`` bytes in all, header included), checked before anything is allocated."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version} is not read here; save it with numpy.save")
    except ValueError as e:
        raise DataError(f"{where} is not a readable .npy array ({e}).") from e
    if dtype.hasobject or dtype.fields is not None:
        raise DataError(f"{where} holds {dtype} values (objects or records); edgefm reads plain numeric arrays only.")
    header = f.tell()
    total = math.prod(shape) * dtype.itemsize
    if total > size - header:
        raise DataError(f"{where}: its header says {dtype} {list(shape)} ({total:,} bytes), but the file holds "
                        f"{max(size - header, 0):,} bytes of data. The file is damaged or not what it claims; "
                        "save the array again with numpy.save.")
    rows = shape[0] if shape else 1
    if max_rows is not None and shape and max_rows < rows and not fortran:
        shape = (max_rows, *shape[1:])  # C order: the first rows are the first bytes
    need = math.prod(shape) * dtype.itemsize
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > free // 2:
        raise DataError(f"{where}: {dtype} {list(shape)} is {need:,} bytes, more than half the memory this machine has "
                        f"free ({free:,} bytes). Pass fewer rows (--samples) or a smaller file.")
    buf = bytearray(need)
    view = memoryview(buf)
    got = 0
    while got < need:
        n = f.readinto(view[got:got + _CHUNK])  # type: ignore[attr-defined]
        if not n:
            raise DataError(f"{where}: the file ends after {got:,} of the {need:,} bytes its header promises.")
        got += n
    array = np.frombuffer(buf, dtype=dtype)
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
