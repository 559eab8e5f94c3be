"""`edgefm verify` / ``check()`` on a tiny exported set: good files, mutants, bad options.

The set is built once per module: the session's tiny SavedModel (untrained 8-unit
MLP) copied, exported by the real exporter to every variant, and verified on the
synthetic IDX test split (128 images). Mutants are real files: an ONNX model with
one weight tensor scaled by 1.02 and a TFLite model of another seed, each with its
manifest entry updated so the checksum still matches.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.errors import ConfigError, ManifestError, RuntimeUnavailableError, UsageError
from edgefm.core.manifest import Artifact, Manifest
from export.config import ExportConfig
from runtime_check.verify.check import check
from runtime_check.verify.config import CheckConfig
from runtime_check.verify.report import REPORT_NAME
from runtime_check.verify.text import render_table

from conftest import invoke_cli

VARIANTS = ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8")


def _export_all(root: Path, data_dir: Path, **kw: object) -> Manifest:
    from export.pipeline import export

    cfg = ExportConfig(artifacts=root, data_dir=data_dir, verify_data=False, calibration_samples=128, **kw)
    return export(Manifest.load(root), cfg)


@pytest.fixture(scope="module")
def exported(exported_all: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_artifacts exported to every variant (the run's export, copied)."""
    root = tmp_path_factory.mktemp("verify") / "artifacts"
    shutil.copytree(exported_all, root)
    assert set(VARIANTS) <= set(Manifest.load(root).deployable())
    return root


@pytest.fixture(scope="module")
def other_seed_tflite(tmp_path_factory: pytest.TempPathFactory, tiny_data_session: tuple[Path, dict[str, str]]) -> Path:
    """A float32 .tflite of another training run (an 8-unit MLP with another seed)."""
    from edgefm.core.contract import CLASS_NAMES
    from edgefm.train.model import MLP, write_savedmodel

    root = tmp_path_factory.mktemp("seed1")
    manifest = Manifest(model="mlp", labels=list(CLASS_NAMES))
    manifest.artifacts["savedmodel"] = write_savedmodel(MLP(hidden_units=8, seed=1), root)
    manifest.save(root)
    _export_all(root, tiny_data_session[0], format="tflite", quantize="none")
    return root / "model_float32.tflite"


@pytest.fixture
def cfg_for(tiny_data_session: tuple[Path, dict[str, str]]):
    def make(root: Path, **kw: object) -> CheckConfig:
        return CheckConfig(artifacts=root, data_dir=tiny_data_session[0], verify_data=False, **kw)

    return make


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "artifacts"
    shutil.copytree(src, dst)
    return dst


def _redescribe(root: Path, name: str) -> None:
    """Update one manifest entry's sha256 and size to the file now on disk (checksum matches again)."""
    manifest = Manifest.load(root)
    old = manifest.artifacts[name]
    new = Artifact.describe(root, root / old.path, format=old.format, quantization=old.quantization,
                            inputs=old.inputs, outputs=old.outputs, created=old.created, tools=old.tools, extra=old.extra)
    manifest.artifacts[name] = new
    manifest.save(root)


def _scale_one_onnx_weight(path: Path, factor: float = 1.02) -> str:
    """Multiply the largest float initializer of an ONNX model by ``factor``; return its name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = max((i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT),
               key=lambda i: int(np.prod(i.dims)))
    arr = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((arr * np.float32(factor)).astype(np.float32), init.name))
    onnx.save(model, str(path))
    return init.name


def _no_traceback(res: object) -> None:
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout  # type: ignore[attr-defined]


# -- the command ------------------------------------------------------------------------------


def test_cli_good_artifacts_pass_and_write_report(exported: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify")
    assert res.returncode == 0, res.stderr
    _no_traceback(res)
    lines = res.stdout.splitlines()
    for name in VARIANTS:
        row = next(line for line in lines if line.startswith(name + " "))
        assert " PASS " in row and "FAIL" not in row
    assert "PASSED: all 6 artifacts match TensorFlow" in res.stdout
    assert "  tflite_float32, onnx_float32: max_abs_error <= 0.0001, mean_abs_error <= 1e-05," in res.stdout
    assert "  tflite_int8, onnx_int8: mean_abs_error <= 0.25," in res.stdout  # int8 max error: reported only
    report = json.loads((root / REPORT_NAME).read_text())
    assert report["passed"] is True and set(report["artifacts"]) == set(VARIANTS)
    f32 = report["artifacts"]["tflite_float32"]["metrics"]
    assert f32["max_abs_error"]["bound"] == 1e-4 and f32["max_abs_error"]["passed"] is True
    assert f32["top1_agreement"]["value"] == 1.0
    assert report["artifacts"]["tflite_int8"]["metrics"]["max_abs_error"]["op"] == "info"
    assert report["inputs"]["count"] == 128 and report["inputs"]["split"] == "test" and report["inputs"]["first_index"] == 0
    assert len(report["inputs"]["sha256"]) == 64
    for key in ("python", "numpy", "tensorflow", "ai-edge-litert", "onnxruntime"):
        assert report["versions"].get(key), key
    assert report["timings"]["total"] > 0
    assert (root / "verify-report.html").is_file()  # the page is written by default, beside the JSON


def test_cli_mutants_fail_naming_artifact_and_metric(
    exported: Path, other_seed_tflite: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root = _copy(exported, tmp_path)
    _scale_one_onnx_weight(root / "model.onnx")
    _redescribe(root, "onnx_float32")
    shutil.copyfile(other_seed_tflite, root / "model_float32.tflite")
    _redescribe(root, "tflite_float32")
    report_path = tmp_path / "out" / "parity.json"
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--report", str(report_path))
    assert res.returncode == 1, res.stdout + res.stderr
    _no_traceback(res)
    lines = res.stdout.splitlines()
    onnx_row = next(line for line in lines if line.startswith("onnx_float32 "))
    tfl_row = next(line for line in lines if line.startswith("tflite_float32 "))
    assert " FAIL " in onnx_row and " FAIL " in tfl_row
    assert next(line for line in lines if line.startswith("tflite_int8 ")).count("FAIL") == 0
    assert "  onnx_float32: max_abs_error = " in res.stdout
    assert "  tflite_float32: top1_agreement = " in res.stdout
    # The checksums were updated, so only parity fails, not integrity.
    assert "checksum" not in res.stdout.split("FAILED")[1]
    assert "error: 2 of 6 artifacts do not match TensorFlow" in res.stderr
    assert "onnx_float32 [onnxruntime]: " in res.stderr and "tflite_float32 [litert]: " in res.stderr
    report = json.loads(report_path.read_text())
    assert not (root / REPORT_NAME).exists() and not (root / "verify-report.html").exists()
    assert '<tr data-artifact="tflite_float32" data-result="FAIL">' in (tmp_path / "out" / "parity.html").read_text()
    assert report["passed"] is False
    onnx_m = report["artifacts"]["onnx_float32"]["metrics"]
    assert onnx_m["max_abs_error"]["passed"] is False and onnx_m["max_abs_error"]["value"] > 1e-3
    tfl_m = report["artifacts"]["tflite_float32"]["metrics"]
    assert tfl_m["top1_agreement"]["passed"] is False and tfl_m["top1_agreement"]["value"] < 0.9
    assert all(report["artifacts"][n]["passed"] for n in VARIANTS if n not in ("onnx_float32", "tflite_float32"))


def test_cli_only_unknown_is_usage_error(exported: Path) -> None:
    res = invoke_cli("verify", "--artifacts", str(exported), "--only", "tflite_float32", "--only", "tflite_fp8")
    assert res.returncode == 2
    _no_traceback(res)
    assert "--only: unknown artifact name 'tflite_fp8'" in res.stderr
    assert "tflite_float32, tflite_float16, tflite_dynamic, tflite_int8, onnx_float32, onnx_int8" in res.stderr.replace("\n       ", " ")


def test_cli_bad_name_value_is_usage_error(exported: Path) -> None:
    res = invoke_cli("verify", "--artifacts", str(exported), "--atol", "tflite_float16")
    assert res.returncode == 2 and "--atol: expected NAME=VALUE" in res.stderr
    _no_traceback(res)
    res = invoke_cli("verify", "--artifacts", str(exported), "--min-top1", "tflite_int8=1.5")
    assert res.returncode == 2 and "a fraction between 0 and 1" in res.stderr


def test_cli_json_only_and_samples(exported: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--only", "tflite_int8,onnx_float32", "--samples", "50", "--batch-size", "16", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # stdout is the JSON report and nothing else
    assert list(report["artifacts"]) == ["tflite_int8", "onnx_float32"]
    assert report["inputs"]["count"] == 50 and report["inputs"]["batch_size"] == 16
    assert report == json.loads((root / REPORT_NAME).read_text())


# -- the library ------------------------------------------------------------------------------


def test_checksum_mismatch_fails_naming_the_artifact(exported: Path, cfg_for, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    with open(root / "model_float16.tflite", "ab") as f:  # file changed, manifest not updated
        f.write(b"\0" * 16)
    report = check(Manifest.load(root), cfg_for(root))
    assert not report.passed
    bad = report.result("tflite_float16")
    assert [m.name for m in bad.failures] == ["checksum"]
    assert "changed since the manifest was written" in bad.failures[0].detail
    assert all(report.result(n).passed for n in VARIANTS if n != "tflite_float16")
    assert any(line.startswith("tflite_float16: checksum: ") and "model_float16.tflite changed" in line
               for line in report.failures())
    row = next(line for line in render_table(report).splitlines() if line.startswith("tflite_float16 "))
    assert row.split()[2:4] == ["FAIL", "FAIL"]  # result, checksum
    assert "tflite_float16" in report.summary() and "checksum" in report.summary()


def test_unloadable_artifact_fails_alone(exported: Path, cfg_for, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    path = root / "model_int8.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _redescribe(root, "onnx_int8")
    report = check(Manifest.load(root), cfg_for(root, only=("onnx_int8", "tflite_float32")))
    bad = report.result("onnx_int8")
    assert not bad.passed and bad.error and "model_int8.onnx" in bad.error
    assert report.result("tflite_float32").passed
    assert "onnx_int8: could not run in onnxruntime: " in "\n".join(report.failures())
    assert json.loads(report.path.read_text())["artifacts"]["onnx_int8"]["error"] == bad.error


def test_overrides_change_the_bounds(exported: Path, cfg_for, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    cfg = cfg_for(root, only=("tflite_float16", "tflite_int8"), atol={"tflite_float16": 1e-9},
                  min_top1={"tflite_int8": 0.5}, samples=40)
    report = check(Manifest.load(root), cfg)
    f16 = report.result("tflite_float16").metric("max_abs_error")
    assert f16.bound == 1e-9 and not f16.passed
    assert report.result("tflite_int8").metric("top1_agreement").bound == 0.5
    assert report.result("tflite_int8").passed
    assert report.inputs["count"] == 40


def test_unknown_names_and_sample_count_are_config_errors(exported: Path, cfg_for) -> None:
    manifest = Manifest.load(exported)
    with pytest.raises(UsageError, match=r"--atol: unknown artifact name 'onnx'; the manifest .* has: tflite_float32"):
        check(manifest, cfg_for(exported, atol={"onnx": 0.1}))
    with pytest.raises(ConfigError, match=r"--samples 129: the test split has only 128 images"):
        check(manifest, cfg_for(exported, samples=129, report=exported.parent / "unused.json"))


def test_native_unavailable_is_a_clear_error(exported: Path, cfg_for, monkeypatch: pytest.MonkeyPatch) -> None:
    """--native when runtime_check.native.runtime cannot be imported: RuntimeUnavailableError, nothing run."""
    import sys

    monkeypatch.setitem(sys.modules, "runtime_check.native.runtime", None)  # makes the import fail
    cfg = cfg_for(exported, native=True, report=exported.parent / "never.json")
    with pytest.raises(RuntimeUnavailableError, match="native runners not available"):
        check(Manifest.load(exported), cfg)
    assert not (exported.parent / "never.json").exists()


def test_native_runs_match_tf_and_their_binding_exactly(exported: Path, cfg_for, tmp_path: Path) -> None:
    pytest.importorskip("runtime_check.native.runtime")
    root = _copy(exported, tmp_path)
    cfg = cfg_for(root, native=True, only=("tflite_int8", "onnx_float32"), samples=20)
    report = check(Manifest.load(root), cfg)  # the runners are compiled here: needs a C compiler, as test_native does
    assert [(a.name, a.runtime) for a in report.artifacts] == [
        ("tflite_int8", "litert"), ("tflite_int8@native", "native-litert"),
        ("onnx_float32", "onnxruntime"), ("onnx_float32@native", "native-onnxruntime"),
    ]
    for name in ("tflite_int8@native", "onnx_float32@native"):
        native = report.result(name)
        assert native.metric("binding_max_abs_diff").value == 0.0, name
        assert native.metric("top1_agreement").passed, name
    assert report.passed, report.failures()
    assert "native-litert" in report.versions and "native-onnxruntime" in report.versions


def test_report_is_written_where_asked_and_html(exported: Path, cfg_for, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    cfg = cfg_for(root, only=("onnx_float32",), samples=10, report=tmp_path / "r.json", html=tmp_path / "r.html")
    report = check(Manifest.load(root), cfg)
    assert report.passed and report.path == tmp_path / "r.json"
    assert json.loads((tmp_path / "r.json").read_text())["artifacts"]["onnx_float32"]["passed"] is True
    page = (tmp_path / "r.html").read_text()
    assert '<tr data-artifact="onnx_float32" data-result="PASS">' in page and "<title>edgefm verify: PASSED" in page
    assert report.html_path == tmp_path / "r.html" and report.timings["html"] > 0
    assert not (root / REPORT_NAME).exists() and not (root / "verify-report.html").exists()
    with pytest.raises(ConfigError, match=r"The HTML page .*r.json would overwrite the JSON report"):
        check(Manifest.load(root), cfg_for(root, only=("onnx_float32",), samples=10, report=tmp_path / "r.json",
                                           html=tmp_path / "r.json"))


# -- the real thing ---------------------------------------------------------------------------


def _train_quickly(model: object, real_data: Path, epochs: int = 1) -> None:
    """A few hundred SGD steps on the real train split (enough for a model that behaves like a real one)."""
    import tensorflow as tf

    from edgefm.data.fashion_mnist import load_split

    train = load_split("train", real_data)
    x, y = train.scaled(), train.labels.astype(np.int32)
    variables = model.trainable_variables  # type: ignore[attr-defined]

    @tf.function
    def step(xb: tf.Tensor, yb: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model(xb)))  # type: ignore[operator]
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign_sub(0.1 * g)

    order = np.random.default_rng(0).permutation(len(x))
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            step(x[idx], y[idx])


@pytest.mark.integration
def test_real_model_every_variant_passes_on_the_full_test_split(real_data: Path, tmp_path: Path) -> None:
    """The default tolerances hold for a real trained MLP, on all 10,000 test images, in well under a minute."""
    from edgefm.core.contract import CLASS_NAMES
    from edgefm.train.model import MLP, write_savedmodel
    from export.pipeline import export

    model = MLP(hidden_units=20, seed=0)
    _train_quickly(model, real_data)
    root = tmp_path / "artifacts"
    manifest = Manifest(model="mlp", labels=list(CLASS_NAMES))
    manifest.artifacts["savedmodel"] = write_savedmodel(model, root)
    manifest.save(root)
    export(manifest, ExportConfig(artifacts=root))
    report = check(Manifest.load(root), CheckConfig(artifacts=root, html=root / "verify-report.html"))
    assert report.passed, report.failures()
    assert report.timings["html"] < 4, report.timings  # ~1 s measured; the page must not slow verify down much
    assert report.inputs["count"] == 10_000
    assert report.reference["accuracy"] > 0.75
    assert {a.name for a in report.artifacts} >= set(VARIANTS)
    assert report.result("tflite_int8").metric("top1_agreement").value >= 0.97
    assert report.timings["total"] < 30, report.timings


# -- every bound overridable; the report reloads ---------------------------------------------------


def test_bound_overrides_any_metric_and_the_failure_names_the_option(exported: Path, cfg_for, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    cfg = cfg_for(root, only=("onnx_int8", "tflite_float16"), samples=40,
                  bounds={"onnx_int8": {"cosine": 1.0, "mean_abs_error": 0.0}, "tflite_float16": {"max_abs_error": None}})
    report = check(Manifest.load(root), cfg)
    int8 = report.result("onnx_int8")
    assert int8.metric("cosine").bound == 1.0 and int8.metric("mean_abs_error").bound == 0.0
    assert {m.name for m in int8.failures} >= {"mean_abs_error"}
    assert report.result("tflite_float16").metric("max_abs_error").informational
    summary = report.summary()
    assert "--bound onnx_int8.mean_abs_error=VALUE" in summary
    assert "--atol NAME=VALUE" not in summary  # the old advice named options that could not help


def test_cli_bound_syntax_and_meaning_errors(exported: Path) -> None:
    for args, message in (
        (["--bound", "onnx_int8cosine=0.9"], "expected NAME.METRIC=VALUE"),
        (["--bound", "onnx_int8.cosine=high"], "is not a number"),
        (["--bound", "onnx_int8.cosine=1.5"], "--bound onnx_int8.cosine=1.5: the bound must be a number of at least -1 and at most 1"),
        (["--bound", "onnx_int8.checksum=1"], "'checksum' has no bound to set"),
        (["--bound", "onnx_fp8.cosine=0.9"], "--bound: unknown artifact name 'onnx_fp8'"),
    ):
        res = invoke_cli("verify", "--artifacts", str(exported), *args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in " ".join(res.stderr.split()), (args, res.stderr)
        _no_traceback(res)


def test_cli_bound_loosens_a_failing_check(exported: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    common = ["verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
              "--only", "tflite_float16", "--samples", "20", "--no-html"]
    strict = invoke_cli(*common, "--bound", "tflite_float16.max_abs_error=0")
    assert strict.returncode == 1 and "--bound tflite_float16.max_abs_error=VALUE" in " ".join(strict.stderr.split())
    loose = invoke_cli(*common, "--bound", "tflite_float16.max_abs_error=0", "--bound", "tflite_float16.max_abs_error=info")
    assert loose.returncode == 0, loose.stderr  # the last one given wins


def test_report_reloads_and_renders_again_without_running(exported: Path, cfg_for, tmp_path: Path) -> None:
    from runtime_check.verify.html_page import render_html
    from runtime_check.verify.report import ParityReport

    root = _copy(exported, tmp_path)
    report = check(Manifest.load(root), cfg_for(root, samples=30))
    loaded = ParityReport.load(report.path)
    assert loaded.to_dict() == report.to_dict()
    assert render_table(loaded) == render_table(report)
    assert loaded.host["int8_kernels"] and "avx2" in loaded.host["features"] or loaded.host["machine"] != "x86_64"
    assert "host: " in render_table(loaded)
    assert set(loaded.images) == set(report.images) and all(
        np.array_equal(loaded.images[i], report.images[i]) for i in report.images)
    page = render_html(loaded)
    assert page.count("data-artifact=") == render_html(report).count("data-artifact=")
    (root / REPORT_NAME).write_text('{"schema_version": 1}')
    with pytest.raises(ManifestError, match="schema version 1; this edgefm reads version 2"):
        ParityReport.load(root / REPORT_NAME)


# -- output that fits, JSON errors, a reference with the wrong input ------------------------------


def _line_lengths(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_cli_table_fits_the_terminal_width(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                           tmp_path: Path) -> None:
    """COLUMNS=80: one block per artifact, every line within 80 columns; the JSON report stays complete."""
    from runtime_check.verify.report import ParityReport

    root = _copy(exported, tmp_path)
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--no-html", env={"COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    assert _line_lengths(res.stdout) <= 80, res.stdout
    for name in VARIANTS:
        head = next(line for line in res.stdout.splitlines() if line.startswith(name + "  "))
        assert " PASS " in head
    assert "max|d| ok" in res.stdout and "PASSED: all 6 artifacts match TensorFlow" in res.stdout
    report = ParityReport.load(root / REPORT_NAME)
    wide = render_table(report)
    assert _line_lengths(wide) > 120  # without a width: one row per artifact, as wide as it takes
    # The widest case the issue measured: every artifact with its native row (~250 columns in one row).
    natives = []
    for a in report.artifacts:
        n = type(a).from_dict(a.name + "@native", {**a.to_dict(), "runtime": "native"})
        n.metrics.append(type(a.metrics[0])("binding_max_abs_diff", 0.0, 0.0, "==", True))
        natives.append(n)
    report.artifacts += natives
    assert _line_lengths(render_table(report)) > 240
    for width in (80, 100):
        text = render_table(report, width=width)
        assert _line_lengths(text) <= width, text
        assert text.count("=binding ok 0") == len(natives)  # nothing dropped to make it fit
        assert all(f"{a.name}  " in text for a in report.artifacts)
    data = json.loads((root / REPORT_NAME).read_text())
    assert set(data["artifacts"]) == set(VARIANTS) and all(data["artifacts"][n]["metrics"] for n in VARIANTS)


def test_cli_json_errors_are_json_on_stdout(exported: Path) -> None:
    res = invoke_cli("verify", "--artifacts", str(exported), "--only", "tflite_fp8", "--json")
    assert res.returncode == 2
    err = json.loads(res.stdout)
    assert err["exit_code"] == 2 and "--only: unknown artifact name 'tflite_fp8'" in err["error"]
    assert res.stderr.strip().splitlines()[-1].startswith("error: --only: unknown artifact name")
    res = invoke_cli("verify", "--artifacts", str(exported), "--samples", "zero", "--json")  # click's own usage error
    assert res.returncode == 2 and json.loads(res.stdout)["exit_code"] == 2
    assert "'zero' is not a valid integer" in json.loads(res.stdout)["error"]


def _savedmodel_with_input(path: Path, input_name: str) -> None:
    import tensorflow as tf

    class Renamed(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.zeros([784, 10]))

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name=input_name)])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            logits = tf.reshape(x, [-1, 784]) @ self.w
            return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    m = Renamed()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})


def test_reference_with_a_misnamed_input_is_a_bad_file_exit_1(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                               tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    shutil.rmtree(root / "saved_model")
    _savedmodel_with_input(root / "saved_model", "pixels")
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--only", "onnx_float32", "--json")
    assert res.returncode == 1, res.stderr
    _no_traceback(res)
    msg = json.loads(res.stdout)["error"]
    assert "does not take the inputs its manifest records" in msg and "'pixels'" in msg and "`edgefm train`" in msg


# -- the reference cache ----------------------------------------------------------------------


def _cache_note(report: object) -> str:
    return report.reference["cache"].get("note", "")  # type: ignore[attr-defined]


def test_reference_is_cached_reused_and_recomputed_on_request(exported: Path, cfg_for, tmp_path: Path) -> None:
    from runtime_check.verify.reference_cache import CACHE_NAME, KEY_NAME

    root = _copy(exported, tmp_path)
    for name in (CACHE_NAME, KEY_NAME):
        (root / name).unlink(missing_ok=True)
    cold = check(Manifest.load(root), cfg_for(root))
    assert cold.reference["cache"]["status"] == "computed" and _cache_note(cold) == ""
    meta = json.loads((root / KEY_NAME).read_text())
    assert meta["key"]["inputs_sha256"] == cold.inputs["sha256"] and meta["key"]["count"] == 128
    assert meta["key"]["tensorflow"] and meta["key"]["savedmodel_sha256"] == Manifest.load(root).artifacts["savedmodel"].sha256
    warm = check(Manifest.load(root), cfg_for(root))
    assert warm.reference["cache"]["status"] == "reused" and warm.passed
    assert "reused from reference-outputs.npz" in render_table(warm).splitlines()[0]
    for name in VARIANTS:  # the same numbers as with TensorFlow run
        assert warm.result(name).to_dict()["metrics"] == cold.result(name).to_dict()["metrics"], name
    assert warm.reference["accuracy"] == cold.reference["accuracy"]
    assert warm.versions["tensorflow"] == cold.versions["tensorflow"]
    again = check(Manifest.load(root), cfg_for(root, recompute_reference=True))
    assert again.reference["cache"]["status"] == "computed" and "--recompute-reference" in _cache_note(again)
    assert json.loads(again.path.read_text())["reference"]["cache"]["status"] == "computed"


def test_a_bad_or_stale_cache_is_recomputed_with_a_note(exported: Path, cfg_for, tmp_path: Path) -> None:
    from runtime_check.verify.reference_cache import CACHE_NAME, KEY_NAME

    root = _copy(exported, tmp_path)
    only = ("tflite_float32",)
    check(Manifest.load(root), cfg_for(root, only=only))  # writes the cache (or reuses the copied one)
    npz, key = root / CACHE_NAME, root / KEY_NAME
    good_npz, good_key = npz.read_bytes(), key.read_text()

    def verify() -> object:
        report = check(Manifest.load(root), cfg_for(root, only=only))
        assert report.passed
        return report

    data = bytearray(good_npz)
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    r = verify()
    assert r.reference["cache"]["status"] == "computed" and "does not match the sha256" in _cache_note(r)
    assert npz.read_bytes() == good_npz  # written again, whole

    key.write_text("{not json")
    r = verify()
    assert r.reference["cache"]["status"] == "computed" and "cannot be read (JSONDecodeError" in _cache_note(r)

    # an object array (a pickle inside the .npz), with its sha256 duly recorded: refused, never unpickled
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, out_0=np.array([{"x": 1}], dtype=object), out_1=np.zeros(1), b1_0=np.zeros(1), b1_1=np.zeros(1))
    npz.write_bytes(buf.getvalue())
    meta = json.loads(good_key)
    meta["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    key.write_text(json.dumps(meta))
    r = verify()
    assert r.reference["cache"]["status"] == "computed" and "Object arrays cannot be loaded" in _cache_note(r)

    r = check(Manifest.load(root), cfg_for(root, only=only, samples=100))  # other inputs: recomputed
    assert r.reference["cache"]["status"] == "computed"
    assert "made for other inputs, another number of inputs" in _cache_note(r)
    r = check(Manifest.load(root), cfg_for(root, only=only, samples=100, batch_size=7))
    assert "another --batch-size" in _cache_note(r)
    assert check(Manifest.load(root), cfg_for(root, only=only, samples=100, batch_size=7)).reference["cache"]["status"] == "reused"


def test_warm_verify_never_imports_tensorflow_nor_onnx(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                       tmp_path: Path) -> None:
    """The second verify reuses TF's outputs and the ONNX structure checks' passes (edgefm.core.verdicts)."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    root = _copy(exported, tmp_path)
    args = ["verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify", "-q"]
    code = (
        "import json, runpy, sys\n"
        f"sys.argv = ['edgefm', *{args!r}, *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('edgefm.cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    status = e.code\n"
        "print(json.dumps({'status': status, 'tensorflow': 'tensorflow' in sys.modules, 'onnx': 'onnx' in sys.modules}))\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no pass remembered by an earlier test

    def run(*extra: str) -> dict[str, object]:
        proc = subprocess.run([sys.executable, "-c", code, *extra], capture_output=True, text=True, timeout=600,
                              cwd=REPO, stdin=subprocess.DEVNULL, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert run("--recompute-reference") == {"status": 0, "tensorflow": True, "onnx": True}
    assert run() == {"status": 0, "tensorflow": False, "onnx": False}
    report = json.loads((root / REPORT_NAME).read_text())
    assert report["reference"]["cache"]["status"] == "reused" and report["passed"] is True


# -- streamed inputs and --split ----------------------------------------------------------------


def test_streamed_images_are_the_split_and_bad_files_are_dataset_errors(
    tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from edgefm.core.errors import DatasetError
    from edgefm.data import fashion_mnist as ds

    d = tiny_data_session[0]
    whole = ds.load_split("train", d, verify=False).images
    parts = list(ds.stream_images("train", d, batch_size=50, verify=False))
    assert [len(p) for p in parts] == [50] * 5 + [6] and np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(np.concatenate(list(ds.stream_images("train", d, batch_size=64, count=70, verify=False))), whole[:70])
    with pytest.raises(DatasetError, match=r"Checksum mismatch for .*train-images-idx3-ubyte\.gz"):
        list(ds.stream_images("train", d, batch_size=64))  # not the official bytes: raised after the last batch
    bad = tmp_path / "fmnist"
    shutil.copytree(d, bad)
    ds.write_idx(bad / "train-images-idx3-ubyte.gz", whole)
    import gzip

    raw = gzip.decompress((bad / "train-images-idx3-ubyte.gz").read_bytes())
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[: len(raw) - 784 * 3 - 5]))
    with pytest.raises(DatasetError, match=r"declares shape \(256, 28, 28\) \(200704 bytes of data\) but ends after 252 images: it is truncated"):
        list(ds.stream_images("train", bad, batch_size=64, verify=False))


def test_split_train_streams_and_hashes_like_the_whole_array(exported: Path, cfg_for, tmp_path: Path,
                                                             tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    import hashlib

    from edgefm.data.fashion_mnist import load_split

    root = _copy(exported, tmp_path)
    report = check(Manifest.load(root), cfg_for(root, split="train", samples=200, batch_size=64,
                                               only=("tflite_float32", "onnx_int8")))
    assert report.passed and report.inputs["split"] == "train" and report.inputs["count"] == 200
    scaled = load_split("train", tiny_data_session[0], verify=False).scaled()
    assert report.inputs["sha256"] == hashlib.sha256(scaled[:200].tobytes()).hexdigest()
    assert report.inputs["invariance_sha256"] == hashlib.sha256(scaled[:64].tobytes()).hexdigest()
    assert report.inputs["shape"] == [200, 28, 28]
    reloaded = json.loads(report.path.read_text())
    assert reloaded["inputs"]["split"] == "train"
    with pytest.raises(ConfigError, match=r"--split 'val': use one of train, test"):
        cfg_for(root, split="val")
    res = invoke_cli("verify", "--artifacts", str(root), "--split", "val")
    assert res.returncode == 2 and "--split 'val'" in res.stderr
    _no_traceback(res)
    assert 0 < reloaded["resources"]["peak_rss_mb"] == report.resources["peak_rss_mb"]
