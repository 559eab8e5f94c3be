"""``edgefm verify --explain``: planted faults are named as the first divergent layer, a good export as none.

The model is the 8-unit MLP of the session fixture with non-zero biases (zero biases are
folded away by tf2onnx and LiteRT, leaving no bias to plant a fault in), exported once per
module to float32 .tflite and .onnx by the real exporter. Each fault is planted in a copy:
one named layer's weights or bias scaled by 1.02 in the file's own bytes, the manifest's
sha256 updated so the checksum still passes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from explain_helpers import scale_onnx_initializer, scale_onnx_weight_of, scale_tflite_tensor

from edgefm.core.manifest import Manifest
from edgefm.data.inputs import load_inputs
from export.config import ExportConfig
from runtime_check.explain.explain import explain, explain_artifact, format_explanation
from runtime_check.explain.graphs import LiteRTTap, TensorFlowTap, name_key
from runtime_check.verify.config import CheckConfig

from conftest import invoke_cli, redescribe, run_cli

# How LiteRT names the FULLY_CONNECTED weights (measured): w1, stored [hidden, 784] as FULLY_CONNECTED takes it,
# keeps its read op's name, "MatMul/ReadVariableOp" [8, 784]; w2 ([8, 10]) is transposed by the converter into a
# constant named after its MatMul, "MatMul_1" [10, 8]. tf2onnx folds w1's transpose into "const_fold_opt__N".
W1_TFLITE, W2_TFLITE = "MatMul/ReadVariableOp", "MatMul_1"


@pytest.fixture(scope="module")
def exported(tiny_data_session: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgefm.core.contract import CLASS_NAMES
    from edgefm.core.manifest import tool_versions
    from edgefm.train.model import MLP, write_savedmodel
    from export.pipeline import run_export

    root = tmp_path_factory.mktemp("explain") / "artifacts"
    root.mkdir()
    model = MLP(hidden_units=8, seed=0)
    model.b1.assign(np.linspace(-0.2, 0.3, 8, dtype=np.float32))
    model.b2.assign(np.linspace(0.1, -0.1, 10, dtype=np.float32))
    manifest = Manifest(model="mlp", labels=list(CLASS_NAMES), versions=tool_versions("tensorflow-cpu"))
    manifest.artifacts["savedmodel"] = write_savedmodel(model, root)
    manifest.save(root)
    run_export(ExportConfig(artifacts=root, data_dir=tiny_data_session[0], verify_data=False,
                            calibration_samples=64))
    return root


@pytest.fixture(scope="module")
def tf_tap(exported: Path) -> TensorFlowTap:
    return TensorFlowTap(exported / "saved_model")


@pytest.fixture(scope="module")
def data(exported: Path, tiny_data_session: tuple[Path, dict[str, str]]):
    cfg = CheckConfig(artifacts=exported, data_dir=tiny_data_session[0], verify_data=False)
    return load_inputs(cfg, Manifest.load(exported))


def _planted(exported: Path, tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    shutil.copytree(exported, root)
    return root


def test_correct_float32_exports_flag_no_layer(exported: Path, tf_tap: TensorFlowTap, data) -> None:
    manifest = Manifest.load(exported)
    for name in ("tflite_float32", "onnx_float32"):
        ex = explain_artifact(tf_tap, exported, name, manifest.deployable()[name], data)
        assert ex.error is None and ex.rows == 64
        assert ex.first_divergent is None, format_explanation(ex)
        methods = {t.method for t in ex.tensors}
        assert "signature" in methods and any(m.startswith("name") for m in methods)
        # the hidden layer and the logits are compared, and float32 round-off stays far above the bound
        assert {name_key(t.tf) for t in ex.tensors} >= {"Relu:0", "add_1:0", "images:0"}
        assert min(t.stats.snr_db for t in ex.tensors) > 100
        assert all(t.stats.cosine > 0.999999 for t in ex.tensors)
    # reduced precision: healthy, each above its own bound; the int8 tensors measured in quantization steps
    for name in ("tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_int8"):
        ex = explain_artifact(tf_tap, exported, name, manifest.deployable()[name], data)
        assert ex.error is None and ex.first_divergent is None, format_explanation(ex)
        if name.endswith("int8"):
            steps = [t for t in ex.tensors if t.quantized]
            assert steps and all(0 < t.stats.rmse_lsb < 3 for t in steps), format_explanation(ex)
            assert any("quantize" in t.method for t in ex.tensors)
    # LiteRT fuses MatMul + bias + ReLU into one FULLY_CONNECTED: the TF tensors inside are reported, not compared
    ex = explain_artifact(tf_tap, exported, "tflite_float32", manifest.deployable()["tflite_float32"], data)
    assert {name_key(n) for n in ex.fused_away} >= {"MatMul:0", "add:0"}


@pytest.mark.parametrize(("layer", "first"), [("first", "Relu:0"), ("second", "add_1:0")])
def test_planted_tflite_weight_fault_is_named_first(exported: Path, tf_tap: TensorFlowTap, data, tmp_path: Path,
                                                    layer: str, first: str) -> None:
    root = _planted(exported, tmp_path)
    scale_tflite_tensor(root / "model_float32.tflite", W1_TFLITE if layer == "first" else W2_TFLITE)
    redescribe(root, "tflite_float32")
    ex = explain_artifact(tf_tap, root, "tflite_float32", Manifest.load(root).deployable()["tflite_float32"], data)
    bad = ex.first_divergent
    assert bad is not None and name_key(bad.tf) == first, format_explanation(ex)
    i = ex.tensors.index(bad)
    assert i > 0 and all(t.passed for t in ex.tensors[:i])  # the inputs and the layers before it follow TF
    assert bad.stats.snr_db < 40  # a 2% weight error: ~34 dB
    assert ex.steepest is bad and bad.drop_db > 60  # the error enters here, it does not accumulate


def test_planted_onnx_bias_fault_is_named_first(exported: Path, tf_tap: TensorFlowTap, data, tmp_path: Path) -> None:
    root = _planted(exported, tmp_path)
    # tf2onnx keeps the TF names: the first layer's bias is ".../add/ReadVariableOp:0"
    scale_onnx_initializer(root / "model.onnx", "/add/ReadVariableOp:0")
    redescribe(root, "onnx_float32")
    ex = explain_artifact(tf_tap, root, "onnx_float32", Manifest.load(root).deployable()["onnx_float32"], data)
    bad = ex.first_divergent
    assert bad is not None and name_key(bad.tf) == "add:0", format_explanation(ex)
    i = ex.tensors.index(bad)
    names = [name_key(t.tf) for t in ex.tensors[:i]]
    assert "MatMul:0" in names and all(t.passed for t in ex.tensors[:i])  # the MatMul before the bias is intact


def test_cli_explains_failing_artifacts_in_table_and_report(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    root = _planted(exported, tmp_path)
    scale_onnx_weight_of(root / "model.onnx", "/MatMul")
    redescribe(root, "onnx_float32")
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--no-html", "--explain")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "first divergent: MatMul:0 (as StatefulPartitionedCall/StatefulPartitionedCall/MatMul:0" in res.stdout, res.stdout
    report = json.loads((root / "verify-report.json").read_text())
    record = report["artifacts"]["onnx_float32"]["explain"]
    assert name_key(record["first_divergent"]["tf"]) == "MatMul:0"
    assert record["first_divergent"]["passed"] is False and record["rows"] == 64
    assert all(t["passed"] for t in record["tensors"][: record["tensors"].index(record["first_divergent"])])
    assert "explain" not in report["artifacts"]["tflite_float32"]  # it passed: not explained unless named
    assert set(k for k, a in report["artifacts"].items() if "explain" in a) == {"onnx_float32"}
    from runtime_check.verify.report import ParityReport

    assert not ParityReport.load(root / "verify-report.json", images=False).passed  # the report still reads back


def test_explain_after_a_warm_reference_keeps_tensorflow_quiet(exported: Path, tmp_path: Path,
                                                                 tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    """A warm verify never imports TensorFlow; explain is then the first to load it, and its start-up lines
    (absl's and oneDNN's, printed by TF's C++ runtime) stay out of the user's terminal."""
    root = _planted(exported, tmp_path)
    args = ("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify", "--no-html",
            "--only", "tflite_float32")
    assert run_cli(*args).returncode == 0  # computes and keeps the reference outputs
    res = run_cli(*args, "--explain", "tflite_float32")  # named: explained though it passes
    assert res.returncode == 0, res.stdout + res.stderr
    assert "reused from reference-outputs.npz" in res.stderr and "explain: comparing" in res.stderr, res.stderr
    assert "InitializeLog" not in res.stderr and "oneDNN" not in res.stderr, res.stderr


def test_explain_unknown_name_is_a_usage_error(exported: Path, tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    from edgefm.core.errors import UsageError
    from runtime_check.explain.explain import run_explain

    cfg = CheckConfig(artifacts=exported, data_dir=tiny_data_session[0], verify_data=False)
    with pytest.raises(UsageError, match=r"--explain: unknown artifact name 'tflite_nope'; the manifest in .* has: "
                                         r"tflite_float32, "):
        run_explain(cfg, None, ("tflite_float32,tflite_nope",))


def test_explain_of_several_is_one_tf_tap(exported: Path, data) -> None:
    out = explain(exported, Manifest.load(exported), ["tflite_float32", "onnx_float32"], data, rows=16, batch=8)
    assert [ex.rows for ex in out.values()] == [16, 16]
    assert isinstance(LiteRTTap(exported / "model_float32.tflite").tensor_name("0"), str)


# -- the explanation in the HTML page (and in the report it is written from) -----------------------


def _explain_section(page: str) -> str:
    """The page's layer-by-layer section: from its heading to the next section's."""
    start = page.index('<h2 id="explain">')
    return page[start:page.index("<h2>", start + 1)]


def _figure_png(section: str, name: str):
    import base64
    import io

    from PIL import Image

    m = re.search(rf'<img alt="SNR of every tensor of {name} along the graph" src="data:image/png;base64,([^"]+)"',
                  section)
    assert m, section[:2000]
    return Image.open(io.BytesIO(base64.b64decode(m.group(1))))


def test_cli_page_marks_the_planted_layer_first_divergent(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                          tmp_path: Path) -> None:
    """verify --explain with the page on: the JSON printed, the JSON file and the page all carry the record."""
    from runtime_check.verify.html_page import render_html
    from runtime_check.verify.report import ParityReport

    root = _planted(exported, tmp_path)
    scale_tflite_tensor(root / "model_float32.tflite", W1_TFLITE)  # the first layer: Relu:0 parts from TF
    redescribe(root, "tflite_float32")
    res = invoke_cli("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
                     "--only", "tflite_float32", "--explain", "--json")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stdout + res.stderr
    printed = json.loads(res.stdout)
    assert printed["artifacts"]["tflite_float32"]["explain"] == json.loads(
        (root / "verify-report.json").read_text())["artifacts"]["tflite_float32"]["explain"]
    record = printed["artifacts"]["tflite_float32"]["explain"]
    assert name_key(record["first_divergent"]["tf"]) == "Relu:0"

    page = (root / "verify-report.html").read_text(encoding="utf-8")
    section = _explain_section(page)
    assert 'data-explain="tflite_float32" data-first-divergent="Relu:0"' in section
    assert '<span class="badge fail">diverges</span>' in section
    first = record["tensors"].index(record["first_divergent"])
    assert f"First divergent: <code>Relu:0</code> (tensor {first}, as <code>" in section
    # the table: the first divergent row, then the worst five (the steepest drop is the first divergent one here)
    rows = re.findall(r'<tr class="(first)?" data-index="(\d+)"><td class="role">([^<]+)</td><td>\d+</td>'
                      r'<td class="name"[^>]*>([^<]+)</td>', section)
    assert rows[0] == ("first", str(first), "first divergent", "Relu:0")
    assert [r[2] for r in rows[1:]] == [f"worst {k}" for k in range(1, 6)]
    assert "steepest drop" not in [r[2] for r in rows]
    snrs = [float(t["snr_db"]) for t in record["tensors"]]
    assert [int(r[1]) for r in rows[1:]] == sorted(range(len(snrs)), key=snrs.__getitem__)[:5]
    assert f'data-fused="{len(record["fused_away"])}"' in section and len(record["fused_away"]) >= 2
    img = _figure_png(section, "tflite_float32")
    assert img.format == "PNG" and img.width == 1100 and img.height > 300
    assert '<a href="#x-tflite_float32">' in page  # from the artifact's card
    # the report read back from its JSON renders the same section, figure included, byte for byte
    assert _explain_section(render_html(ParityReport.load(root / "verify-report.json"))) == section


def test_page_of_a_healthy_and_an_unexplainable_artifact(exported: Path, tiny_data_session: tuple[Path, dict[str, str]],
                                                         tmp_path: Path) -> None:
    """Artifacts explained but not checked (--only another): healthy int8 says so, a truncated file says why not;
    the report, with entries holding only "explain", reads back and renders the same section."""
    import html

    from runtime_check.explain.explain import run_explain
    from runtime_check.verify.check import run_check
    from runtime_check.verify.html_page import render_html
    from runtime_check.verify.report import ParityReport

    root = _planted(exported, tmp_path)
    (root / "model_int8.onnx").write_bytes((root / "model_int8.onnx").read_bytes()[:300])
    redescribe(root, "onnx_int8")
    cfg = CheckConfig(artifacts=root, data_dir=tiny_data_session[0], verify_data=False, only=("onnx_float32",),
                      samples=32, html=root / "verify-report.html")
    report = run_check(cfg)
    assert report.passed
    run_explain(cfg, report, ("tflite_int8,onnx_int8",))
    assert set(report.explanations) == {"tflite_int8", "onnx_int8"}

    raw = json.loads((root / "verify-report.json").read_text())
    assert raw["artifacts"]["tflite_int8"].keys() == {"explain"} and raw["artifacts"]["onnx_float32"]["passed"]
    page = (root / "verify-report.html").read_text(encoding="utf-8")
    section = _explain_section(page)
    healthy = re.search(r'<section[^>]* data-explain="tflite_int8".*?</section>', section, re.S).group(0)
    assert 'data-first-divergent=""' in healthy and '<span class="badge pass">follows TF</span>' in healthy
    assert "No tensor out of bounds: the export follows TensorFlow layer by layer." in healthy
    assert "First divergent" not in healthy and "bound SNR ≥ 12 dB" in healthy
    assert _figure_png(healthy, "tflite_int8").format == "PNG"
    lsb = re.findall(r"<td>(\d+\.\d\d|–)</td><td>[^<]*</td></tr>", healthy)  # the LSB column of quantized tensors
    assert any(v != "–" for v in lsb), healthy

    error = raw["artifacts"]["onnx_int8"]["explain"]["error"]
    broken = re.search(r'<section[^>]* data-explain="onnx_int8".*?</section>', section, re.S).group(0)
    assert error and f'<p class="fail">could not explain: {html.escape(error)}</p>' in broken
    assert "<img" not in broken and '<span class="badge fail">could not explain</span>' in broken

    loaded = ParityReport.load(root / "verify-report.json")
    assert [a.name for a in loaded.artifacts] == ["onnx_float32"] and set(loaded.explanations) == set(report.explanations)
    assert _explain_section(render_html(loaded)) == section

    # names are escaped everywhere (a record is data from a file); a record without tensors says nothing was compared
    record = loaded.explanations["tflite_int8"]
    odd = [{**t, "tf": f"<i>{t['tf']}", "candidate": "<b>&", "matched_by": "<u>"} for t in record["tensors"]]
    loaded.explanations = {"<s>": {**record, "tensors": odd, "path": "<p>"},
                           "empty": {**record, "tensors": [], "first_divergent": None, "steepest_drop": None}}
    section = _explain_section(render_html(loaded))
    assert not re.search(r"<[ibsup]>", section) and '<td class="name" title="&lt;i&gt;' in section and 'id="x-&lt;s&gt;"' in section
    empty = re.search(r'<section[^>]* data-explain="empty".*?</section>', section, re.S).group(0)
    assert "nothing compared" in empty and "<img" not in empty


def test_page_marks_the_steepest_drop_apart_from_the_first_divergent(
        exported: Path, tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A small fault in the first layer (in bounds, ~90 dB: the steepest drop from exact), a smaller one in the
    second that takes it out of bounds (~75 dB, the first divergent)."""
    from runtime_check.explain.explain import run_explain
    from runtime_check.verify.check import run_check

    root = _planted(exported, tmp_path)
    scale_tflite_tensor(root / "model_float32.tflite", W1_TFLITE, 1.00005)
    scale_tflite_tensor(root / "model_float32.tflite", W2_TFLITE, 1.00015)
    redescribe(root, "tflite_float32")
    cfg = CheckConfig(artifacts=root, data_dir=tiny_data_session[0], verify_data=False, only=("tflite_float32",),
                      samples=32, html=root / "verify-report.html")
    report = run_check(cfg)
    ex = run_explain(cfg, report, ("tflite_float32",))["tflite_float32"]
    assert name_key(ex.first_divergent.tf) == "add_1:0" and name_key(ex.steepest.tf) == "Relu:0", format_explanation(ex)
    section = _explain_section((root / "verify-report.html").read_text(encoding="utf-8"))
    first, steep = ex.tensors.index(ex.first_divergent), ex.tensors.index(ex.steepest)
    assert f"Steepest drop: <code>Relu:0</code> (tensor {steep}) loses {ex.steepest.drop_db:.1f} dB" in section
    roles = re.findall(r'data-index="(\d+)"><td class="role">([^<]+)</td>', section)
    assert roles[:2] == [(str(first), "first divergent"), (str(steep), "steepest drop")]
    assert _figure_png(section, "tflite_float32").format == "PNG"
