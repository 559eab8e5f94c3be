"""Fashion-MNIST: locate, fetch, parse and verify the four IDX files.

Search order: an explicit directory, ``$EDGEFM_DATA_DIR``, Debian's
``dataset-fashion-mnist`` package, then the user cache (where ``fetch`` writes).
Checksums are of the *decompressed* files: Debian recompressed the .gz files, so
the .gz bytes differ from the official release while the content is identical.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import time
import urllib.error
import urllib.parse
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefm.core.errors import DatasetError
from edgefm.core.fileio import atomic_write_bytes, ensure_directory, user_cache_dir
from edgefm.core.progress import NoProgress, Progress, format_seconds

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

SPLITS = ("train", "test")
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
ALL_FILES: tuple[str, ...] = tuple(SHA256)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# Official release (Zalando) first, then the mirror Keras downloads from.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
ENV_DATA_DIR = "EDGEFM_DATA_DIR"
LICENSE = "MIT (Zalando SE)"

_IDX_DTYPES = {0x08: np.uint8}
_HOW_TO_GET = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian), or run "
    "`edgefm data fetch` to download it into the cache, or point --data-dir / "
    f"${ENV_DATA_DIR} at a directory with the four IDX files."
)


def cache_dir() -> Path:
    return user_cache_dir("fashion-mnist")


def candidate_dirs(data_dir: Path | None = None) -> list[tuple[str, Path]]:
    """Where the dataset is looked for, in order, with the reason for each."""
    if data_dir is not None:
        return [("--data-dir", Path(data_dir))]
    out: list[tuple[str, Path]] = []
    if os.environ.get(ENV_DATA_DIR):
        out.append((f"${ENV_DATA_DIR}", Path(os.environ[ENV_DATA_DIR])))
    out.append(("Debian package dataset-fashion-mnist", DEBIAN_DIR))
    out.append(("user cache", cache_dir()))
    return out


def _file_in(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = directory / name
        if p.is_file():
            return p
    return None


def locate(data_dir: Path | None = None) -> Path:
    """Return the first directory that holds all four files (as .gz or plain)."""
    candidates = candidate_dirs(data_dir)
    for _, d in candidates:
        if d.is_dir() and all(_file_in(d, s) for s in ALL_FILES):
            return d
    if data_dir is not None:
        d = Path(data_dir)
        if not d.is_dir():
            raise DatasetError(f"Data directory {d} does not exist. {_HOW_TO_GET}")
        missing = [s for s in ALL_FILES if not _file_in(d, s)]
        raise DatasetError(
            f"Data directory {d} lacks {', '.join(s + '[.gz]' for s in missing)}. {_HOW_TO_GET}"
        )
    looked = "; ".join(f"{why}: {d}" for why, d in candidates)
    raise DatasetError(f"Fashion-MNIST was not found (looked in {looked}). {_HOW_TO_GET}")


#: No Fashion-MNIST file is larger (train images: 47,040,016 bytes decompressed). A file that
#: declares or decompresses to more is refused before it is held in memory: a 3 MiB .gz of
#: zeros behind a valid header would otherwise take gigabytes.
MAX_IDX_BYTES = 64 << 20
#: The official release's .gz sizes; a download that sends more than twice as much is stopped.
GZ_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 26_421_880,
    "train-labels-idx1-ubyte": 29_515,
    "t10k-images-idx3-ubyte": 4_422_102,
    "t10k-labels-idx1-ubyte": 5_148,
}
MIN_DOWNLOAD_CAP = 1 << 20


def _declared_size(head: bytes) -> int | None:
    """Header plus payload bytes an IDX header declares (None if ``head`` is no complete IDX header)."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or not 1 <= head[3] <= 4:
        return None
    header = 4 + 4 * head[3]
    if len(head) < header:
        return None
    return header + math.prod(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(head[3]))


def read_bytes(path: Path) -> bytes:
    """Read a file, decompressing .gz as a stream that stops at the size its header declares.

    At most ``MAX_IDX_BYTES`` (+1, to notice padding) are ever decompressed; a
    truncated or corrupt gzip, or a file larger than any Fashion-MNIST file, is a
    DatasetError.
    """
    path = Path(path)
    try:
        if path.suffix != ".gz":
            if path.stat().st_size > MAX_IDX_BYTES:
                raise DatasetError(_too_large(path, path.stat().st_size))
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) == 4 and head[:2] == b"\0\0" and 1 <= head[3] <= 4:
                head += f.read(4 * head[3])
            declared = _declared_size(head)
            if declared is not None and declared > MAX_IDX_BYTES:
                raise DatasetError(_too_large(path, declared, declared=True))
            limit = (declared if declared is not None else MAX_IDX_BYTES) + 1 - len(head)
            data = head + f.read(max(limit, 0))
            if declared is None and len(data) > MAX_IDX_BYTES:
                raise DatasetError(_too_large(path, len(data)))
            return data
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DatasetError(
            f"Cannot read {path}: {e}. The file is truncated or corrupt; delete it and "
            f"re-install or re-fetch the dataset. {_HOW_TO_GET}"
        ) from e


def _too_large(path: Path, size: int, *, declared: bool = False) -> str:
    what = "declares" if declared else "holds"
    return (
        f"{path} {what} {size:,} bytes of IDX data, more than any Fashion-MNIST file ({MAX_IDX_BYTES:,} bytes at "
        f"most); it is not the dataset and was not loaded. {_HOW_TO_GET}"
    )


def parse_idx(data: bytes, source: str | Path = "<bytes>") -> np.ndarray:
    """Parse an IDX file (uint8 payload) into an array, checking magic, dims and size."""
    if len(data) < 4:
        raise DatasetError(f"{source} is too short to be an IDX file ({len(data)} bytes). {_HOW_TO_GET}")
    zero, dtype_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise DatasetError(
            f"{source} has a wrong magic number 0x{data[:4].hex()} (expected 0x0000080N, "
            f"an unsigned-byte IDX file). It is not a Fashion-MNIST IDX file. {_HOW_TO_GET}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source} is truncated inside its header. {_HOW_TO_GET}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)  # Python ints: np.prod in int64 wraps for 4 dims of 65536 and more
    payload = len(data) - header
    if payload != expected:
        raise DatasetError(
            f"{source} declares shape {dims} ({expected} bytes of data) but holds {payload}: "
            f"it is truncated or padded. {_HOW_TO_GET}"
        )
    try:
        return np.frombuffer(data, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims)
    except ValueError as e:  # e.g. (0, 0, 2**31, 2**31): no data, yet a shape NumPy cannot describe
        raise DatasetError(f"{source} declares shape {dims}, which NumPy cannot hold ({e}). {_HOW_TO_GET}") from e


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # uint8 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def scaled(self) -> np.ndarray:
        """Images as float32 in [0, 1], the models' input."""
        return scale_images(self.images)


def scale_images(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def _load_file(directory: Path, stem: str, verify: bool, expected: dict[str, str]) -> np.ndarray:
    path = _file_in(directory, stem)
    if path is None:
        raise DatasetError(f"{directory / (stem + '.gz')} is missing. {_HOW_TO_GET}")
    data = read_bytes(path)
    if verify:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected[stem]:
            raise DatasetError(
                f"Checksum mismatch for {path}: the decompressed content has sha256 {digest}, "
                f"expected {expected[stem]}. The file is corrupt or not the official Fashion-MNIST "
                "release: re-install or re-fetch it, or pass --no-verify to use different data on purpose."
            )
    return parse_idx(data, path)


def load_split(
    split: str,
    data_dir: Path | None = None,
    *,
    verify: bool = True,
    checksums: dict[str, str] | None = None,
) -> Split:
    """Load ``train`` or ``test`` as uint8 arrays, verified against the official sha256."""
    if split not in FILES:
        raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    directory = locate(data_dir)
    img_stem, lbl_stem = FILES[split]
    expected = checksums or SHA256
    images = _load_file(directory, img_stem, verify, expected)
    labels = _load_file(directory, lbl_stem, verify, expected)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{directory / img_stem}: images have shape {images.shape}, expected [N, 28, 28]. {_HOW_TO_GET}"
        )
    if labels.ndim != 1:
        raise DatasetError(f"{directory / lbl_stem}: labels have shape {labels.shape}, expected [N]. {_HOW_TO_GET}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{directory}: {img_stem} holds {images.shape[0]} images but {lbl_stem} holds "
            f"{labels.shape[0]} labels; the files belong to different releases. {_HOW_TO_GET}"
        )
    if labels.size and int(labels.max()) > 9:
        raise DatasetError(f"{directory / lbl_stem}: label {int(labels.max())} is outside 0-9. {_HOW_TO_GET}")
    return Split(images=images, labels=labels)


def load_labels(split: str, data_dir: Path | None = None, *, verify: bool = True) -> np.ndarray:
    """The uint8 labels of ``split`` alone (small: 60 KB for the train split), checked like ``load_split``'s."""
    if split not in FILES:
        raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    directory = locate(data_dir)
    stem = FILES[split][1]
    labels = _load_file(directory, stem, verify, SHA256)
    if labels.ndim != 1:
        raise DatasetError(f"{directory / stem}: labels have shape {labels.shape}, expected [N]. {_HOW_TO_GET}")
    if labels.size and int(labels.max()) > 9:
        raise DatasetError(f"{directory / stem}: label {int(labels.max())} is outside 0-9. {_HOW_TO_GET}")
    return labels


def stream_images(
    split: str, data_dir: Path | None = None, *, batch_size: int, count: int | None = None, verify: bool = True
) -> Iterator[np.ndarray]:
    """The first ``count`` images of ``split`` (default all) as uint8 ``[<= batch_size, 28, 28]`` batches.

    Read from the (gzip) file as they are consumed, so memory holds one batch, not
    the split. The header is checked first (magic, shape, against the file's
    size when uncompressed); a file that ends early is a DatasetError. With
    ``verify`` the whole file is read and its decompressed sha256 checked after
    the last batch: a mismatch raises DatasetError there (consume the stream to
    the end before trusting what it gave).
    """
    if split not in FILES:
        raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    directory = locate(data_dir)
    stem = FILES[split][0]
    path = _file_in(directory, stem)
    if path is None:
        raise DatasetError(f"{directory / (stem + '.gz')} is missing. {_HOW_TO_GET}")
    digest = hashlib.sha256()
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            header = f.read(16)
            digest.update(header)
            if len(header) < 16 or header[:4] != b"\x00\x00\x08\x03":
                raise DatasetError(
                    f"{path} has no IDX image header (0x00000803 and three dimensions). It is not a Fashion-MNIST "
                    f"image file. {_HOW_TO_GET}"
                )
            n, rows, cols = (int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
            if (rows, cols) != (28, 28):
                raise DatasetError(f"{path}: images have shape {(n, rows, cols)}, expected [N, 28, 28]. {_HOW_TO_GET}")
            wanted = n if count is None else min(count, n)
            size = rows * cols
            done = 0
            while done < wanted:
                take = min(batch_size, wanted - done)
                data = f.read(take * size)
                digest.update(data)
                if len(data) != take * size:
                    raise DatasetError(
                        f"{path} declares shape {(n, rows, cols)} ({n * size} bytes of data) but ends after "
                        f"{done + len(data) // size} images: it is truncated. {_HOW_TO_GET}"
                    )
                yield np.frombuffer(data, np.uint8).reshape(take, rows, cols)
                done += take
            if verify:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DatasetError(
            f"Cannot read {path}: {e}. The file is truncated or corrupt; delete it and re-install or re-fetch the "
            f"dataset. {_HOW_TO_GET}"
        ) from e
    if verify and digest.hexdigest() != SHA256[stem]:
        raise DatasetError(
            f"Checksum mismatch for {path}: the decompressed content has sha256 {digest.hexdigest()}, expected "
            f"{SHA256[stem]}. The file is corrupt or not the official Fashion-MNIST release: re-install or re-fetch "
            "it, or pass --no-verify to use different data on purpose."
        )


@dataclass(frozen=True)
class FileStatus:
    stem: str
    path: Path | None
    ok: bool
    detail: str
    count: int | None = None


def verify_dir(
    data_dir: Path | None = None, *, checksums: dict[str, str] | None = None
) -> tuple[Path, list[FileStatus]]:
    """Check every file (structure and checksum); return per-file results, never raise on content."""
    directory = locate(data_dir)
    expected = checksums or SHA256
    out = []
    for stem in ALL_FILES:
        try:
            arr = _load_file(directory, stem, True, expected)
            out.append(FileStatus(stem, _file_in(directory, stem), True, "sha256 ok", int(arr.shape[0])))
        except DatasetError as e:
            out.append(FileStatus(stem, _file_in(directory, stem), False, str(e)))
    return directory, out


# -- download -----------------------------------------------------------------

class DownloadTooLarge(OSError):
    """A server sent (or announced) more bytes than the file can have; the partial file is deleted."""


def download_cap(stem: str) -> int:
    """Bytes a download of ``stem``.gz may bring at most: twice the official size (a server that streams
    without end, or a bigger file, must not fill the disk)."""
    return max(2 * GZ_SIZES.get(stem, MAX_IDX_BYTES), MIN_DOWNLOAD_CAP)


def _download(url: str, dest: Path, progress: Progress, what: str, timeout: float, cap: int = MAX_IDX_BYTES) -> int:
    """Download ``url`` to ``dest`` resuming from ``dest.part`` with an HTTP Range request; at most ``cap`` bytes.

    Reports the bytes as the step ``what`` (its total once the server says it) and returns how
    many bytes this call received.
    """
    # Imported here, not with the module: urllib.request brings http.client, ssl and email (15 ms,
    # measured with -X importtime), which every command that only reads the dataset would pay.
    import urllib.request

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "edgefm"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if total is not None and total > cap:
            part.unlink(missing_ok=True)
            raise DownloadTooLarge(f"the server announces {total:,} bytes, more than the {cap:,} this file can have")
        progress.start(what, total)  # units: bytes
        with open(part, "ab" if have else "wb") as f:
            done = have
            progress.advance(done, _megabytes(done, total))
            while chunk := resp.read(1 << 16):
                if done + len(chunk) > cap:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise DownloadTooLarge(f"the server sent more than the {cap:,} bytes this file can have")
                f.write(chunk)
                done += len(chunk)
                progress.advance(done, _megabytes(done, total))
    progress.finish()
    if total is not None and part.stat().st_size != total:
        raise OSError(f"incomplete download ({part.stat().st_size} of {total} bytes)")
    os.replace(part, dest)
    return done - have


def _megabytes(done: int, total: int | None) -> str:
    return f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total is not None else f"{done / 1e6:.1f} MB"


def fetch(
    dest: Path | None = None,
    *,
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download the four .gz files into ``dest`` (default: the cache) and verify them.

    Each file is tried on every mirror, ``retries`` times each with exponential
    backoff; a partial download is resumed. A file that is already present and
    verifies is not downloaded again. Files that fail their checksum are deleted.
    ``progress`` hears each download as a step counted in bytes, and a note per file
    (downloaded, already here, or a failed attempt and what happens next).
    """
    progress = progress or NoProgress()
    dest = ensure_directory(Path(dest) if dest is not None else cache_dir())
    expected = checksums or SHA256
    for number, stem in enumerate(ALL_FILES, 1):
        target = dest / (stem + ".gz")
        what = f"downloading {stem}.gz ({number}/{len(ALL_FILES)})"
        if target.exists():
            try:
                _load_file(dest, stem, True, expected)
                progress.note(f"{stem}.gz: already in {dest} and verified")
                continue
            except DatasetError:
                target.unlink()
        errors: list[str] = []
        for m, base in enumerate(mirrors, 1):
            url = base.rstrip("/") + "/" + stem + ".gz"
            move_on = "trying the next mirror" if m < len(mirrors) else "no mirror left"
            for attempt in range(retries):
                started = time.monotonic()
                try:
                    received = _download(url, target, progress, what, timeout, download_cap(stem))
                    progress.note(f"{stem}.gz: {received / 1e6:.1f} MB from {urllib.parse.urlsplit(url).netloc} "
                                  f"in {format_seconds(time.monotonic() - started)}")
                    break
                except DownloadTooLarge as e:
                    errors.append(f"{url}: {e}")
                    progress.finish()
                    progress.note(f"{url}: {e}; {move_on}")
                    break  # the same server would send the same again
                except (urllib.error.URLError, OSError, TimeoutError) as e:
                    errors.append(f"{url}: {e}")
                    progress.finish()
                    if isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500 and e.code != 429:
                        progress.note(f"{url}: {e}; {move_on}")
                        break  # not found / forbidden: retrying will not help
                    if attempt + 1 < retries:
                        wait = backoff * 2**attempt
                        progress.note(f"{url}: {e}; attempt {attempt + 2} of {retries} in {format_seconds(wait)}")
                        time.sleep(wait)
                    else:
                        progress.note(f"{url}: {e}; {move_on}")
            if target.exists():
                break
        if not target.exists():
            raise DatasetError(
                f"Could not download {stem}.gz into {dest}: {'; '.join(errors[-3:])}. Check the "
                "network (or use `apt-get install dataset-fashion-mnist`), then run `edgefm data fetch` "
                "again; partial downloads are resumed."
            )
        try:
            _load_file(dest, stem, True, expected)
        except DatasetError:
            target.unlink(missing_ok=True)
            raise
    return dest


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    """Write a uint8 array as an IDX file (for tests and for exporting subsets)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.tobytes()
    atomic_write_bytes(Path(path), gzip.compress(data, mtime=0) if compress else data)


# -- tf.data --------------------------------------------------------------------


def train_dataset(split: Split, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled (per sample, re-shuffled each epoch), batched float32 [0,1] pipeline."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((split.scaled(), split.labels.astype(np.int32)))
    ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_dataset(split: Split, batch_size: int = 1000) -> tf.data.Dataset:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((split.scaled(), split.labels.astype(np.int32)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def describe(data_dir: Path | None = None) -> dict[str, Any]:
    directory = locate(data_dir)
    return {
        "directory": str(directory),
        "files": {s: str(_file_in(directory, s)) for s in ALL_FILES},
        "splits": {
            split: int(parse_idx(read_bytes(_file_in(directory, FILES[split][1])), FILES[split][1]).shape[0])
            for split in SPLITS
        },
        "license": LICENSE,
    }
