"""export(manifest, cfg): every variant, run in its real runtime, recorded in the manifest.

One exported directory (module-scoped) serves every test here: the tiny untrained
8-unit MLP of ``tiny_artifacts`` (copied first), calibrated on ``tiny_data_session``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.contract import CLASS_NAMES, INPUT_SCALING
from edgefm.core.manifest import Manifest
from edgefm.formats.metadata import read_entries, read_metadata
from export.config import ExportConfig
from export.variants import BY_NAME, VARIANTS, plan

from export_helpers import Exported, copy_artifacts, export_config

# what `edgefm export` writes by default (--int8-io and --keep-float pick other int8 variants)
ALL_NAMES = {"tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8"}
# Per-variant bounds on |logits - TF| for the tiny model (logits span about [-0.6, 0.7]).
MAX_ABS_ERR = {
    "tflite_float32": 1e-4, "onnx_float32": 1e-4, "tflite_float16": 5e-3,
    "tflite_dynamic": 5e-2, "tflite_int8": 5e-2, "onnx_int8": 5e-2,
}


@pytest.fixture(scope="module")
def exported(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
             tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Every variant (format all, quantize all), exported once for this module."""
    from export.pipeline import export

    root = copy_artifacts(tiny_artifacts, tmp_path_factory.mktemp("exported") / "artifacts")
    before = Manifest.load(root)
    manifest = export(before, export_config(root, tiny_data_session[0]))
    return Exported(root, manifest, before)


@pytest.fixture(scope="module")
def exported_int8_io(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                     tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Only the full-integer TFLite model, with int8 input and output tensors."""
    from export.pipeline import export

    root = copy_artifacts(tiny_artifacts, tmp_path_factory.mktemp("exported_int8_io") / "artifacts")
    before = Manifest.load(root)
    cfg = export_config(root, tiny_data_session[0], format="tflite", quantize="int8", int8_io=True)
    return Exported(root, export(before, cfg), before)


@pytest.fixture(scope="module")
def test_images(tiny_data_session: tuple[Path, dict[str, str]]) -> np.ndarray:
    from edgefm.data import fashion_mnist as ds

    return ds.load_split("test", tiny_data_session[0], verify=False).scaled()


@pytest.fixture(scope="module")
def reference_logits(tiny_artifacts: Path, test_images: np.ndarray) -> np.ndarray:
    from runtime_check.runtimes.tensorflow_runtime import TensorFlowRuntime

    with TensorFlowRuntime(tiny_artifacts / "saved_model") as rt:
        return rt.infer({"images": test_images})["logits"]


# -- manifest ------------------------------------------------------------------------------


def test_every_variant_is_recorded_and_saved(exported: Exported) -> None:
    assert set(exported.manifest.deployable()) == ALL_NAMES
    on_disk = Manifest.load(exported.root)  # export() saved what it returned
    assert on_disk.to_dict() == exported.manifest.to_dict()
    assert "savedmodel" in on_disk.artifacts and on_disk.artifacts["savedmodel"] == exported.before.artifacts["savedmodel"]
    assert exported.before.deployable() == {}  # the manifest passed in was not modified


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_manifest_entry_describes_the_file(exported: Exported, name: str) -> None:
    a = exported.manifest.artifacts[name]
    variant = BY_NAME[name]
    path = exported.root / a.path
    assert a.path == variant.filename and not Path(a.path).is_absolute()
    assert a.format == variant.format.value and a.quantization == variant.quantization.value
    data = path.read_bytes()
    assert a.sha256 == hashlib.sha256(data).hexdigest() and a.bytes == len(data)
    assert dt.datetime.fromisoformat(a.created).tzinfo is not None
    assert a.tools["tensorflow"] and a.tools["edgefm"]
    expected_tools = {"tflite": {"ai-edge-litert"}, "onnx": {"tf2onnx", "onnx", "onnxruntime"}}[a.format]
    assert expected_tools <= set(a.tools)
    assert a.extra["seconds"] > 0
    assert a.extra["source_savedmodel_sha256"] == exported.before.artifacts["savedmodel"].sha256
    if a.format == "onnx":
        assert a.extra["opset"] == ExportConfig().opset
    if variant.needs_calibration:
        assert a.extra["calibration_samples"] == 64 and a.extra["calibration_seed"] == 0


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_specs_keep_names_dtypes_and_dynamic_batch(exported: Exported, name: str) -> None:
    a = exported.manifest.artifacts[name]
    assert [(s.name, s.dtype, s.shape) for s in a.inputs] == [("images", "float32", [None, 28, 28])]
    assert [(s.name, s.dtype, s.shape) for s in a.outputs] == [
        ("logits", "float32", [None, 10]), ("probabilities", "float32", [None, 10])
    ]
    assert all(s.scale is None and s.zero_point is None for s in a.inputs + a.outputs)


def test_int8_io_records_raw_int8_tensors_with_scale(exported_int8_io: Exported, test_images: np.ndarray,
                                                     reference_logits: np.ndarray) -> None:
    from runtime_check.runtimes.litert_runtime import LiteRTRuntime

    a = exported_int8_io.manifest.artifacts["tflite_int8_io"]
    assert set(exported_int8_io.manifest.deployable()) == {"tflite_int8_io"} and a.path == "model_int8io.tflite"
    assert a.extra["int8_io"] is True
    (inp,) = a.inputs
    assert (inp.name, inp.dtype, inp.shape) == ("images", "int8", [None, 28, 28])
    # Calibrated on images in [0, 0.91]: zero maps to -128, the scale is at most 1/255.
    assert 0 < inp.scale <= 1 / 255 + 1e-9 and inp.zero_point == -128
    assert [o.name for o in a.outputs] == ["logits", "probabilities"]
    assert all(o.dtype == "int8" and o.scale and o.scale > 0 and o.zero_point is not None for o in a.outputs)
    with LiteRTRuntime(exported_int8_io.root / a.path) as rt:
        raw_in, _ = rt.raw_specs()
        assert raw_in[0].dtype == "int8" and raw_in[0].scale == pytest.approx(inp.scale)
        logits = rt.infer({"images": test_images})["logits"]
    assert np.mean(logits.argmax(1) == reference_logits.argmax(1)) >= 0.95
    assert read_metadata(exported_int8_io.root / a.path)["int8_io"] is True


def test_int8_io_and_float_io_int8_coexist(exported_int8_io: Exported, tiny_data_session: tuple[Path, dict[str, str]],
                                           tmp_path: Path) -> None:
    """Two distinct files, two manifest names: exporting one never replaces the other, and each says which it is."""
    from export.pipeline import export

    root = copy_artifacts(exported_int8_io.root, tmp_path / "artifacts")
    int8io_bytes = (root / "model_int8io.tflite").read_bytes()
    manifest = export(Manifest.load(root), export_config(root, tiny_data_session[0], format="tflite", quantize="int8"))
    assert {"tflite_int8", "tflite_int8_io"} <= set(manifest.deployable())
    assert (manifest.artifacts["tflite_int8"].path, manifest.artifacts["tflite_int8_io"].path) == (
        "model_int8.tflite", "model_int8io.tflite")
    assert (root / "model_int8io.tflite").read_bytes() == int8io_bytes
    assert manifest.artifacts["tflite_int8"].inputs[0].dtype == "float32"
    assert read_metadata(root / "model_int8.tflite")["variant"] == "tflite_int8"
    assert read_metadata(root / "model_int8io.tflite")["variant"] == "tflite_int8_io"


# -- runtimes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_variant_runs_in_its_runtime_close_to_tensorflow(exported: Exported, name: str, test_images: np.ndarray,
                                                         reference_logits: np.ndarray) -> None:
    from runtime_check.runtimes.registry import runtime_for

    a = exported.manifest.artifacts[name]
    with runtime_for(exported.root / a.path) as rt:
        out = rt.infer({"images": test_images})
    assert out["logits"].shape == reference_logits.shape
    assert np.all(np.isfinite(out["logits"])) and np.all(np.isfinite(out["probabilities"]))
    assert np.max(np.abs(out["logits"] - reference_logits)) <= MAX_ABS_ERR[name]
    agreement = np.mean(out["logits"].argmax(1) == reference_logits.argmax(1))
    assert agreement == 1.0 if a.quantization == "none" else agreement >= 0.95
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=0.02)


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_batch_1_and_37_give_the_same_per_sample_outputs(exported: Exported, name: str,
                                                         test_images: np.ndarray) -> None:
    from runtime_check.runtimes.registry import runtime_for

    x = test_images[:37]
    with runtime_for(exported.root / exported.manifest.artifacts[name].path) as rt:
        batched = rt.infer({"images": x})["logits"]
        single = np.concatenate([rt.infer({"images": x[i : i + 1]})["logits"] for i in range(len(x))])
    np.testing.assert_allclose(single, batched, atol=1e-6, rtol=0)


# -- metadata travels with the file ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_metadata_round_trip(exported: Exported, name: str) -> None:
    a = exported.manifest.artifacts[name]
    meta = read_metadata(exported.root / a.path)
    assert meta["labels"] == list(CLASS_NAMES) == exported.manifest.labels
    assert meta["model"] == exported.manifest.model == "mlp"
    assert meta["input_scaling"] == INPUT_SCALING
    assert meta["source_savedmodel_sha256"] == exported.manifest.artifacts["savedmodel"].sha256
    assert meta["quantization"] == a.quantization and meta["format"] == a.format and meta["variant"] == name
    assert meta["edgefm_version"] and meta["input_name"] == "images"
    assert meta["output_names"] == ["logits", "probabilities"]
    entries = read_entries(exported.root / a.path)
    assert entries["labels"].decode().splitlines() == list(CLASS_NAMES)  # a plain labels.txt beside the JSON
    assert json.loads(entries["edgefm"]) == meta


def test_tflite_keeps_the_converters_own_metadata(exported: Exported) -> None:
    entries = read_entries(exported.root / "model_float32.tflite")
    assert "min_runtime_version" in entries  # written by the converter, carried through the repack


def test_onnx_batch_dimension_is_named(exported: Exported) -> None:
    import onnx

    model = onnx.load(str(exported.root / "model.onnx"))
    dims = [v.type.tensor_type.shape.dim[0].dim_param for v in [*model.graph.input, *model.graph.output]]
    assert dims == ["batch", "batch", "batch"]
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17


# -- sizes and the summary -----------------------------------------------------------------------


def test_quantized_files_are_smaller(exported: Exported) -> None:
    size = {k: a.bytes for k, a in exported.manifest.artifacts.items()}
    assert size["tflite_float16"] < 0.6 * size["tflite_float32"]
    assert size["tflite_int8"] < 0.5 * size["tflite_float32"]
    assert size["tflite_dynamic"] < 0.5 * size["tflite_float32"]
    assert size["onnx_int8"] < 0.6 * size["onnx_float32"]


def test_summary_table_has_a_row_per_variant_with_size_ratios(exported: Exported) -> None:
    from export.summary import summary_table

    names = [v.name for v in VARIANTS if v.name in ALL_NAMES]
    table = summary_table(exported.manifest, names)
    lines = table.splitlines()
    assert "x tflite_float32" in lines[0] and len(lines) == 2 + len(names)
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == set(names)
    f32 = exported.manifest.artifacts["tflite_float32"].bytes
    for name in names:
        ratio = float(rows[name][-2])
        assert ratio == pytest.approx(exported.manifest.artifacts[name].bytes / f32, abs=0.006)
    assert rows["tflite_float32"][-2] == "1.00"


# -- planning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, quantize, expected",
    [
        ("all", "all", sorted(ALL_NAMES)),
        ("tflite", "all", ["tflite_dynamic", "tflite_float16", "tflite_float32", "tflite_int8"]),
        ("onnx", "all", ["onnx_float32", "onnx_int8"]),
        ("all", "none", ["onnx_float32", "tflite_float32"]),
        ("all", "float16", ["tflite_float16"]),
        ("onnx", "int8", ["onnx_int8"]),
    ],
)
def test_plan(fmt: str, quantize: str, expected: list[str]) -> None:
    assert sorted(v.name for v in plan(ExportConfig(format=fmt, quantize=quantize))) == expected  # type: ignore[arg-type]


def test_plan_int8_io_picks_its_own_variant() -> None:
    names = [v.name for v in plan(ExportConfig(int8_io=True))]
    assert "tflite_int8_io" in names and "tflite_int8" not in names and "onnx_int8" in names
    assert BY_NAME["tflite_int8_io"].filename != BY_NAME["tflite_int8"].filename


def test_keep_float_plans_the_mixed_int8_variants_instead_of_the_plain_ones() -> None:
    names = {v.name for v in plan(ExportConfig(keep_float=("fc2", " fc2 ", "")))}
    assert names == (ALL_NAMES - {"tflite_int8", "onnx_int8"}) | {"tflite_int8_mixed", "onnx_int8_mixed"}
    assert ExportConfig(keep_float=("fc2", " fc2 ", "")).keep_float == ("fc2",)
    assert {v.name for v in plan(ExportConfig(quantize="int8", format="onnx", keep_float=("a",)))} == {"onnx_int8_mixed"}
