"""The SavedModel directory format: what makes a directory one, read without running TensorFlow."""

from __future__ import annotations

from pathlib import Path

#: the MetaGraphDef protobuf every SavedModel directory holds
SAVED_MODEL_PB = "saved_model.pb"


def is_savedmodel_dir(path: Path) -> bool:
    """``path`` is a directory with a ``saved_model.pb`` (what TensorFlow's loader needs first)."""
    return (Path(path) / SAVED_MODEL_PB).is_file()


def require_savedmodel_dir(path: Path) -> None:
    """``path`` exists and is a SavedModel directory, else a ModelFileError saying what to pass."""
    from edgefm.core.errors import ModelFileError

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model {path} does not exist. Check the path, or run `edgefm train`.")
    if not is_savedmodel_dir(path):
        raise ModelFileError(
            f"{path} is not a SavedModel directory (no {SAVED_MODEL_PB}). Pass the directory "
            "that `edgefm train` wrote (artifacts/saved_model)."
        )


def read_signatures(path: Path) -> dict[str, dict[str, dict[str, dict[str, object]]]]:
    """The signatures of the SavedModel at ``path``, read from ``saved_model.pb`` without running anything.

    Loading a SavedModel runs its code (resource initializers, the functions it calls):
    one whose initializer writes a file writes it when loaded. ``edgefm inspect``
    only parses the MetaGraphDef protobuf: ``{key: {"inputs": {name: {"dtype",
    "shape"}}, "outputs": {...}}}``, shapes with ``None`` for unknown dimensions.
    A file that does not parse is a ModelFileError.
    """
    from google.protobuf.message import DecodeError

    # The protobuf classes ship inside TensorFlow; importing them imports TensorFlow's
    # package, but nothing of the SavedModel is loaded or executed.
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    from edgefm.core.errors import ModelFileError

    pb = Path(path) / SAVED_MODEL_PB
    try:
        model = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    except (OSError, DecodeError) as e:
        raise ModelFileError(f"{pb} is not a readable SavedModel protobuf ({e}). Re-create it with `edgefm train`.") from e
    if not model.meta_graphs:
        raise ModelFileError(f"{pb} holds no MetaGraphDef. Re-create it with `edgefm train`.")

    def spec(info: object) -> dict[str, object]:
        dtype = types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower()  # type: ignore[attr-defined]
        dtype = {"float": "float32", "double": "float64", "half": "float16"}.get(dtype, dtype)
        shape = info.tensor_shape  # type: ignore[attr-defined]
        dims = None if shape.unknown_rank else [None if d.size < 0 else int(d.size) for d in shape.dim]
        return {"dtype": dtype, "shape": dims}

    out: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for key, sig in model.meta_graphs[0].signature_def.items():
        if key.startswith("__"):  # TensorFlow's internal __saved_model_init_op
            continue
        out[key] = {
            "inputs": {name: spec(t) for name, t in sorted(sig.inputs.items())},
            "outputs": {name: spec(t) for name, t in sorted(sig.outputs.items())},
        }
    return out
