"""Metadata that travels inside exported model files: labels, input scaling, provenance.

A ``.tflite`` file gets two entries in its flatbuffer ``metadata`` table, each
pointing at a buffer: ``edgefm`` (a UTF-8 JSON object) and ``labels`` (the
content of a labels.txt, one class name per line, index order). An ``.onnx``
file gets the same two keys in its ``metadata_props``.

The TFLite side uses the flatbuffers object API that ``ai_edge_litert`` ships
(``schema_py_generated``), because the old ``tflite-support`` metadata writer
has no wheels for this stack. Nothing here imports TensorFlow, so
``edgefm inspect`` can call :func:`read_metadata` cheaply.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefm.core.errors import ModelFileError
from edgefm.formats.tflite_file import TFLITE_IDENTIFIER

if TYPE_CHECKING:  # pragma: no cover
    import onnx

METADATA_KEY = "edgefm"  # the JSON entry
LABELS_KEY = "labels"  # labels.txt content, one class name per line
# TFLite's schema declares `Buffer.data` with force_align: 16; the Python object
# API does not honour it, so buffers are packed by hand with this alignment.
TFLITE_BUFFER_ALIGNMENT = 16


def labels_text(labels: Sequence[str]) -> str:
    """labels.txt content: one class name per line, in index order."""
    return "".join(f"{label}\n" for label in labels)


def parse_labels_text(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def metadata_entries(meta: Mapping[str, Any]) -> dict[str, bytes]:
    """The named entries written into a model file for the metadata dict ``meta``."""
    entries = {METADATA_KEY: json.dumps(dict(meta), sort_keys=True, ensure_ascii=False).encode("utf-8")}
    if meta.get("labels"):
        entries[LABELS_KEY] = labels_text(meta["labels"]).encode("utf-8")
    return entries


# -- TFLite ------------------------------------------------------------------------------


@functools.cache
def _aligned_buffer_type() -> type:
    """A ``BufferT`` whose ``Pack`` aligns the data vector to 16 bytes, as the schema requires."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    class AlignedBufferT(schema.BufferT):  # type: ignore[misc, name-defined]
        def Pack(self, builder: Any) -> int:
            data_off = None
            if self.data is not None:
                payload = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(payload), TFLITE_BUFFER_ALIGNMENT)
                builder.head -= len(payload)
                builder.Bytes[builder.head : builder.head + len(payload)] = payload
                builder.vectorNumElems = len(payload)
                data_off = builder.EndVector()
            schema.BufferStart(builder)
            if data_off is not None:
                schema.BufferAddData(builder, data_off)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBufferT


def _name(raw: str | bytes | None) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")


def embed_tflite_metadata(model: bytes, entries: Mapping[str, bytes]) -> bytes:
    """Return ``model`` with ``entries`` in its metadata table (same-named entries replaced).

    Everything else (tensors, operators, signature defs, existing metadata such as
    ``min_runtime_version``) is carried over unchanged by the object API.
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    if model[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"Not a TFLite flatbuffer (identifier {model[4:8]!r}, expected {TFLITE_IDENTIFIER!r}).")
    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffers = list(obj.buffers or [])
    if any(b.offset > 1 for b in buffers):
        # Models over 2 GB keep weights after the flatbuffer; repacking would drop them.
        raise ModelFileError("This TFLite model stores its weights outside the flatbuffer (> 2 GB); edgefm cannot add metadata to it.")
    metadata = list(obj.metadata or [])
    by_name = {_name(m.name): m for m in metadata}
    for name, data in entries.items():
        payload = np.frombuffer(bytes(data), dtype=np.uint8)
        if name in by_name:  # overwrite in place: repeated embedding does not grow the file
            buffers[by_name[name].buffer] = schema.BufferT(data=payload)
        else:
            buffers.append(schema.BufferT(data=payload))
            metadata.append(schema.MetadataT(name=name, buffer=len(buffers) - 1))
    obj.buffers, obj.metadata = buffers, metadata

    aligned = _aligned_buffer_type()
    for b in buffers:
        b.__class__ = aligned  # same fields; only Pack differs
    builder = flatbuffers.Builder(len(model) + sum(len(v) for v in entries.values()) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _tflite_entries(data: bytes, source: Path) -> dict[str, bytes]:
    from ai_edge_litert import schema_py_generated as schema

    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(
            f"{source} is not a TFLite model (flatbuffer identifier {data[4:8]!r}, expected "
            f"{TFLITE_IDENTIFIER!r}). Pass a .tflite file written by `edgefm export`."
        )
    try:
        model = schema.Model.GetRootAs(data, 0)
        out: dict[str, bytes] = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            buf = model.Buffers(entry.Buffer())
            if buf is None:
                continue
            if buf.Offset() > 1:  # large-model layout: data lives after the flatbuffer
                out[name] = bytes(data[buf.Offset() : buf.Offset() + buf.Size()])
            elif not buf.DataIsNone():
                out[name] = buf.DataAsNumpy().tobytes()
            else:
                out[name] = b""
        return out
    except Exception as e:  # flatbuffers raises IndexError/struct.error/... on corrupt data
        raise ModelFileError(
            f"{source} is truncated or corrupt: its metadata table cannot be read ({type(e).__name__}: {e}). "
            "Re-export it with `edgefm export`."
        ) from e


# -- ONNX --------------------------------------------------------------------------------


def embed_onnx_metadata(model: onnx.ModelProto, entries: Mapping[str, bytes]) -> onnx.ModelProto:
    """Set ``entries`` as ``metadata_props`` of ``model`` (in place; same keys replaced)."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    for key, value in [*kept, *((k, v.decode("utf-8")) for k, v in entries.items())]:
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def _onnx_entries(path: Path) -> dict[str, bytes]:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelFileError(f"{path} is not a valid ONNX protobuf ({e}). Re-export it with `edgefm export`.") from e
    # proto2 strings are not checked for UTF-8 when parsed: a corrupt one arrives as bytes.
    return {_name(p.key): p.value if isinstance(p.value, bytes) else p.value.encode("utf-8") for p in model.metadata_props}


# -- reading -----------------------------------------------------------------------------


def read_entries(path: Path) -> dict[str, bytes]:
    """Every named metadata entry of a ``.tflite`` (metadata table) or ``.onnx`` (metadata_props)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist or is not a file. Check the path, or run `edgefm export`.")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _tflite_entries(path.read_bytes(), path)
    if suffix == ".onnx":
        return _onnx_entries(path)
    raise ModelFileError(f"{path}: metadata is read from .tflite and .onnx files, not {suffix or 'files without an extension'!r}.")


def read_metadata(path: Path) -> dict[str, Any]:
    """edgefm's metadata embedded in a ``.tflite`` or ``.onnx`` file; ``{}`` when it has none.

    Keys (when written by ``edgefm export``): ``model``, ``labels`` (list), ``input_scaling``,
    ``input_name``, ``output_names``, ``source_savedmodel_sha256``, ``edgefm_version``,
    ``format``, ``quantization``, ``variant``, ``int8_io``. A file that carries only a
    ``labels`` entry gives ``{"labels": [...]}``.
    """
    path = Path(path)
    entries = read_entries(path)
    meta: dict[str, Any] = {}
    if METADATA_KEY in entries:
        try:
            loaded = json.loads(entries[METADATA_KEY].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deep
            raise ModelFileError(
                f"{path}: its {METADATA_KEY!r} metadata entry is not valid JSON ({e}). Re-export it with `edgefm export`."
            ) from e
        if not isinstance(loaded, dict):
            raise ModelFileError(f"{path}: its {METADATA_KEY!r} metadata entry is not a JSON object.")
        meta.update(loaded)
    if "labels" not in meta and LABELS_KEY in entries:
        meta["labels"] = parse_labels_text(entries[LABELS_KEY].decode("utf-8", "replace"))
    return meta


def embedded_class_names(path: Path) -> list[list[str]]:
    """Every list of class names ``path`` carries (its ``edgefm`` JSON's ``labels`` and its labels.txt entry),
    for comparing with the reference's: a file can carry the two apart."""
    entries = read_entries(Path(path))
    found = []
    if METADATA_KEY in entries:
        try:
            loaded = json.loads(entries[METADATA_KEY].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            loaded = None
        if isinstance(loaded, dict) and isinstance(loaded.get("labels"), list):
            found.append([str(x) for x in loaded["labels"]])
    if LABELS_KEY in entries:
        found.append(parse_labels_text(entries[LABELS_KEY].decode("utf-8", "replace")))
    return found
