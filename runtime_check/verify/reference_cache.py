"""TensorFlow's reference outputs, kept beside the manifest and reused while what made them is unchanged.

The reference of ``edgefm verify`` (the SavedModel's serving signature run by
TensorFlow on the verify inputs) is a function of a few things only: the
SavedModel's content, the inputs, the batch-invariance inputs, the batch size of
the large-batch run, the signature and TensorFlow's version. ``ReferenceKey``
names them. The first verify stores the outputs as ``ARTIFACTS/reference-outputs.npz``
(plain arrays: no pickles, loaded with ``allow_pickle=False``) and, written after
it, ``ARTIFACTS/reference-outputs.json``: the key, the output names and the
.npz's own sha256. A later verify whose key is equal reuses the arrays once
their sha256 checks out, and never imports TensorFlow; so the TensorFlow version
of the key is read from the installed package's metadata, not from ``tf.__version__``.

Nothing here raises on a bad cache: ``load`` returns ``(None, note)`` for a
missing, corrupt, foreign or stale one (the caller runs TensorFlow again and
puts the note in the report), and ``save`` returns a note instead of failing
when the directory cannot be written. Both files are written atomically, so a
reader sees the old pair, the new pair, or a new .npz whose sha256 does not
match the old .json (a note, then a recompute): never a half-written file.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import OutputError
from edgefm.core.fileio import atomic_write_bytes, atomic_write_json
from edgefm.core.manifest import utc_now

CACHE_NAME = "reference-outputs.npz"
KEY_NAME = "reference-outputs.json"
#: 1: outputs and batch-1 outputs by index, names and sha256 in the .json
CACHE_SCHEMA_VERSION = 1
#: distributions that install TensorFlow, in the order asked (the first one installed gives the version)
TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tf-nightly", "tensorflow-intel", "tensorflow-macos")


def tensorflow_version() -> str | None:
    """TensorFlow's version from package metadata (``importlib.metadata``): no ``import tensorflow``."""
    from importlib import metadata

    for dist in TENSORFLOW_DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class ReferenceKey:
    """Everything the reference outputs depend on; equal keys give equal outputs."""

    savedmodel_sha256: str
    signature: str
    inputs_sha256: str
    count: int
    invariance_sha256: str
    invariance_samples: int
    batch_size: int
    tensorflow: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: dict[str, Any]) -> list[str]:
        """The fields whose values differ from ``other`` (a key read back from JSON)."""
        mine = self.to_dict()
        return [k for k in mine if other.get(k) != mine[k]]


@dataclass
class Reference:
    """The reference run's outputs: all inputs at ``batch_size``, the invariance subset one by one."""

    outputs: dict[str, np.ndarray]
    batch1: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)  # of the TensorFlow run that made them
    computed: str = ""  # UTC time of that run


def cache_paths(root: Path) -> tuple[Path, Path]:
    return Path(root) / CACHE_NAME, Path(root) / KEY_NAME


_FIELD_WORDS = {
    "savedmodel_sha256": "the SavedModel changed",
    "signature": "another signature",
    "inputs_sha256": "other inputs",
    "count": "another number of inputs",
    "invariance_sha256": "other batch-invariance inputs",
    "invariance_samples": "another number of batch-invariance inputs",
    "batch_size": "another --batch-size",
    "tensorflow": "another TensorFlow version",
}


def load(root: Path, key: ReferenceKey) -> tuple[Reference | None, str]:
    """The cached reference if its key equals ``key`` and its sha256 checks out; else ``(None, why not)``."""
    npz_path, key_path = cache_paths(root)
    if not key_path.is_file() and not npz_path.is_file():
        return None, ""  # the first verify of these artifacts: nothing to say
    if key.tensorflow is None:
        return None, "TensorFlow's version is unknown (no package metadata), so a cached reference cannot be matched"
    try:
        meta = json.loads(key_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("schema_version") != CACHE_SCHEMA_VERSION:
            return None, f"{key_path.name} is not a reference cache of schema {CACHE_SCHEMA_VERSION}; recomputed"
        stale = key.differences(meta.get("key") or {})
        if stale:
            why = ", ".join(dict.fromkeys(_FIELD_WORDS.get(k, k) for k in stale))
            return None, f"the cached reference was made for {why}; recomputed"
        data = npz_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None, f"{npz_path.name} does not match the sha256 in {key_path.name} (corrupt or replaced); recomputed"
        names = [str(n) for n in meta["outputs"]]
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            outputs = {n: np.asarray(npz[f"out_{i}"]) for i, n in enumerate(names)}
            batch1 = {n: np.asarray(npz[f"b1_{i}"]) for i, n in enumerate(names)}
        for n in names:
            if outputs[n].shape[:1] != (key.count,) or batch1[n].shape[:1] != (key.invariance_samples,):
                return None, f"{npz_path.name} holds arrays of the wrong length; recomputed"
        return Reference(outputs, batch1, {k: float(v) for k, v in dict(meta.get("timings") or {}).items()},
                         str(meta.get("computed", ""))), ""
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as e:
        # ValueError also covers json.JSONDecodeError and np.load refusing an object array
        return None, f"the cached reference cannot be read ({type(e).__name__}: {e}); recomputed"


def save(root: Path, key: ReferenceKey, ref: Reference) -> str:
    """Write the cache (the .npz first, then the .json naming its sha256); a failure is a note, not an error."""
    if key.tensorflow is None:
        return "TensorFlow's version is unknown (no package metadata): the reference is not cached"
    npz_path, key_path = cache_paths(root)
    names = list(ref.outputs)
    arrays = {f"out_{i}": np.ascontiguousarray(ref.outputs[n]) for i, n in enumerate(names)}
    arrays.update({f"b1_{i}": np.ascontiguousarray(ref.batch1[n]) for i, n in enumerate(names)})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    meta = {
        "schema_version": CACHE_SCHEMA_VERSION,
        "what": "TensorFlow's reference outputs for `edgefm verify`; delete both files to forget them",
        "key": key.to_dict(),
        "outputs": names,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "timings": {k: round(v, 4) for k, v in ref.timings.items()},
        "computed": ref.computed or utc_now(),
    }
    try:
        atomic_write_bytes(npz_path, data)
        atomic_write_json(key_path, meta)
    except (OSError, OutputError) as e:
        return f"the reference could not be cached in {npz_path.parent} ({e})"
    return ""


# -- reference outputs as a file of their own (--save-outputs / --load-outputs) ----------------------

#: the fields of the key that name the inputs: a saved reference is only judged against the same inputs
INPUT_FIELDS = ("inputs_sha256", "count", "invariance_sha256", "invariance_samples")
META_KEY = "__edgefm_reference__"


def save_outputs(path: Path, key: ReferenceKey, ref: Reference) -> None:
    """One self-describing .npz: the outputs, the batch-1 outputs and (as a JSON string array) their key.

    What a device run needs: ``verify --load-outputs FILE`` judges artifacts against it
    later, on another machine, without TensorFlow.
    """
    names = list(ref.outputs)
    arrays: dict[str, np.ndarray] = {f"out_{i}": np.ascontiguousarray(ref.outputs[n]) for i, n in enumerate(names)}
    arrays.update({f"b1_{i}": np.ascontiguousarray(ref.batch1[n]) for i, n in enumerate(names)})
    meta = {"schema_version": CACHE_SCHEMA_VERSION, "key": key.to_dict(), "outputs": names, "computed": ref.computed}
    arrays[META_KEY] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_outputs(path: Path, key: ReferenceKey, output_names: Sequence[str] = ()) -> tuple[Reference, dict[str, Any]]:
    """The reference ``save_outputs`` wrote, if it was made by the same SavedModel and signature on the same
    inputs, and holds every output (``output_names``, the SavedModel's) for every row; else a DataError.

    A file saved from another SavedModel once passed with a progress line that ``-q`` hid, and one that
    held only some outputs left the others unjudged: what the file says of itself is checked here, once.
    """
    from edgefm.core.errors import DataError
    from edgefm.data.arrays import load_npz, npz_names

    path = Path(path)
    where = f"--load-outputs {path}"
    try:
        meta = json.loads(str(load_npz(path, [META_KEY], where)[META_KEY]))
        names = [str(n) for n in meta["outputs"]]
        stored = set(npz_names(path, where))
        missing = [f"{p}_{i}" for i in range(len(names)) for p in ("out", "b1") if f"{p}_{i}" not in stored]
        if missing:
            raise KeyError(f"no array {missing[0]!r}")
        arrays = load_npz(path, [f"{p}_{i}" for i in range(len(names)) for p in ("out", "b1")], where)
        outputs = {n: arrays[f"out_{i}"] for i, n in enumerate(names)}
        batch1 = {n: arrays[f"b1_{i}"] for i, n in enumerate(names)}
    except DataError as e:
        raise DataError(f"{where} is not a reference saved by `edgefm verify --save-outputs` ({e}).") from e
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{where} is not a reference saved by `edgefm verify --save-outputs` "
                        f"({type(e).__name__}: {e}).") from e
    saved = dict(meta.get("key") or {})
    want = key.to_dict()
    if saved.get("savedmodel_sha256") != want["savedmodel_sha256"] or saved.get("signature") != want["signature"]:
        raise DataError(f"{where} holds the outputs of another model: SavedModel sha256 "
                        f"{str(saved.get('savedmodel_sha256'))[:12]}…, signature {saved.get('signature')!r}; this "
                        f"verify's reference is {want['savedmodel_sha256'][:12]}…, signature {want['signature']!r}. "
                        "Save the outputs again from this SavedModel (`edgefm verify --save-outputs`).")
    stale = [k for k in INPUT_FIELDS if saved.get(k) != want[k]]
    if stale:
        why = ", ".join(dict.fromkeys(_FIELD_WORDS.get(k, k) for k in stale))
        raise DataError(f"{where} was saved for {why} than these; pass the same --data, --samples and "
                        "--batch-size as when it was saved.")
    absent = [n for n in output_names if n not in outputs]
    if absent or not outputs:
        raise DataError(f"{where} lacks the reference outputs {', '.join(map(repr, absent)) or '(all of them)'}; "
                        "every output would not be judged. Save the outputs again (`edgefm verify --save-outputs`).")
    rows = {n: (a.shape[0] if a.ndim else None) for n, a in outputs.items()}
    wrong = {n: r for n, r in rows.items() if r != want["count"]}
    if wrong:
        raise DataError(f"{where} holds {', '.join(f'{n}: {r} rows' for n, r in wrong.items())} for the "
                        f"{want['count']} inputs of this verify; the file is damaged. Save the outputs again.")
    return Reference(outputs, batch1, {}, str(meta.get("computed", ""))), saved
