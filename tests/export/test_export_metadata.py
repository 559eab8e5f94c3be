"""edgefm.formats.metadata: embed and read labels/provenance in .tflite and .onnx files, without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.errors import ModelFileError
from edgefm.formats.metadata import (
    TFLITE_BUFFER_ALIGNMENT,
    embed_onnx_metadata,
    embed_tflite_metadata,
    metadata_entries,
    read_entries,
    read_metadata,
)
from export.config import Quantization

META = {"model": "mlp", "labels": list(CLASS_NAMES), "quantization": "none", "note": "naïve ünïcode"}


@pytest.fixture(scope="module")
def raw_tflite(tiny_artifacts: Path) -> bytes:
    """A float32 .tflite straight from the converter: no edgefm metadata yet."""
    from edgefm.core.quiet import quiet_native_output
    from export.to_tflite import convert_tflite

    with quiet_native_output():
        return convert_tflite(tiny_artifacts / "saved_model", Quantization.NONE)


def _onnx_identity() -> object:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _buffer_offsets(model: bytes) -> list[int]:
    """Absolute offsets of every non-empty buffer's data in a .tflite."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(model, 0)
    out = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if not b.DataIsNone() and b.DataLength() > 0:
            out.append(b._tab.Vector(b._tab.Offset(4)))
    return out


def test_a_file_without_edgefm_metadata_reads_as_empty(raw_tflite: bytes, tmp_path: Path) -> None:
    import onnx

    (tmp_path / "m.tflite").write_bytes(raw_tflite)
    assert read_metadata(tmp_path / "m.tflite") == {}
    assert "min_runtime_version" in read_entries(tmp_path / "m.tflite")
    onnx.save(_onnx_identity(), str(tmp_path / "m.onnx"))
    assert read_metadata(tmp_path / "m.onnx") == {}


def test_tflite_embedding_round_trips_and_keeps_outputs_bit_identical(raw_tflite: bytes, tmp_path: Path) -> None:
    from export.to_tflite import probe_feeds, run_tflite_raw

    out = embed_tflite_metadata(raw_tflite, metadata_entries(META))
    path = tmp_path / "m.tflite"
    path.write_bytes(out)
    assert read_metadata(path) == META
    assert read_entries(path)["labels"].decode() == "".join(f"{c}\n" for c in CLASS_NAMES)
    feeds = probe_feeds(raw_tflite)
    before, after = run_tflite_raw(raw_tflite, feeds), run_tflite_raw(out, feeds)
    assert set(before) == set(after) == {"logits", "probabilities"}
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    # Buffer data stays 16-byte aligned (the schema's force_align), as the converter wrote it.
    assert _buffer_offsets(out) and all(o % TFLITE_BUFFER_ALIGNMENT == 0 for o in _buffer_offsets(out))


def test_embedding_again_replaces_entries_instead_of_adding(raw_tflite: bytes, tmp_path: Path) -> None:
    once = embed_tflite_metadata(raw_tflite, metadata_entries(META))
    twice = embed_tflite_metadata(once, metadata_entries({**META, "quantization": "int8"}))
    path = tmp_path / "m.tflite"
    path.write_bytes(twice)
    names = list(read_entries(path))
    assert names.count("edgefm") == 1 and names.count("labels") == 1
    assert read_metadata(path)["quantization"] == "int8"
    assert abs(len(twice) - len(once)) <= 16  # same payload size, same buffers: no growth


def test_onnx_embedding_round_trips_and_keeps_other_props(tmp_path: Path) -> None:
    import onnx

    model = _onnx_identity()
    prop = model.metadata_props.add()  # type: ignore[attr-defined]
    prop.key, prop.value = "author", "someone"
    embed_onnx_metadata(model, metadata_entries(META))  # type: ignore[arg-type]
    embed_onnx_metadata(model, metadata_entries(META))  # type: ignore[arg-type]  # idempotent
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert read_metadata(tmp_path / "m.onnx") == META
    entries = read_entries(tmp_path / "m.onnx")
    assert sorted(entries) == ["author", "edgefm", "labels"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))


def test_labels_only_file_gives_labels(raw_tflite: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_tflite_metadata(raw_tflite, {"labels": b"cat\ndog\n"}))
    assert read_metadata(path) == {"labels": ["cat", "dog"]}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("foreign.tflite", b"PK\x03\x04 this is a zip file, not a flatbuffer", "is not a TFLite model"),
        ("tiny.tflite", b"\x00\x01", "is not a TFLite model"),
        ("garbage.onnx", b"\xff\xfe\x00garbage" * 10, "is not a valid ONNX protobuf"),
        ("model.pb", b"whatever", "metadata is read from .tflite and .onnx files"),
    ],
)
def test_foreign_files_are_model_file_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        read_metadata(tmp_path / name)


def test_truncated_tflite_is_a_model_file_error(raw_tflite: bytes, tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    path.write_bytes(embed_tflite_metadata(raw_tflite, metadata_entries(META))[:64])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        read_metadata(path)


def test_missing_file_and_bad_json(raw_tflite: bytes, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        read_metadata(tmp_path / "nope.tflite")
    path = tmp_path / "bad.tflite"
    path.write_bytes(embed_tflite_metadata(raw_tflite, {"edgefm": b"{not json"}))
    with pytest.raises(ModelFileError, match="'edgefm' metadata entry is not valid JSON"):
        read_metadata(path)


def test_read_metadata_never_imports_tensorflow(raw_tflite: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_tflite_metadata(raw_tflite, metadata_entries(META)))
    code = (
        "import sys, json; from edgefm.formats.metadata import read_metadata; "
        f"m = read_metadata({str(path)!r}); print(json.dumps(m)); "
        "sys.exit(3 if 'tensorflow' in sys.modules else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["labels"] == list(CLASS_NAMES)
