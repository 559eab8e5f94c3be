"""The HTML verification page, rendered by a real headless Chromium.

The page is built once per module from the tiny exported set (the session's
untrained 8-unit MLP exported to every variant, verified on the 128 synthetic
test images) with one real mutant: the float32 .tflite of another seed, so the
page shows a FAIL, a failed cell and disagreement images. Chromium is required:
without it the tests fail and say how to install it (``make test`` does).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.contract import CLASS_NAMES
from edgefm.core.manifest import Manifest
from export.config import ExportConfig
from runtime_check.verify.check import check
from runtime_check.verify.config import CheckConfig
from runtime_check.verify.html_page import CURVES_NAME, render_html
from runtime_check.verify.report import SHOWN_DISAGREEMENTS, ArtifactDetail, ParityReport
from runtime_check.verify.results import ArtifactResult, Metric
from runtime_check.verify.text import render_table

from conftest import invoke_cli, redescribe

VARIANTS = ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx_float32", "onnx_int8")
MUTANT = "tflite_float32"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: offline, no first-run work, nothing fetched (the machine has no internet)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic", "--hide-scrollbars", "--virtual-time-budget=5000",
)
HISTORY = [
    {"epoch": e, "train_loss": 1.2 / e, "test_loss": 1.3 / e, "train_accuracy": 0.6 + 0.05 * e,
     "test_accuracy": 0.58 + 0.05 * e, "seconds": 0.2}
    for e in range(1, 6)
]


# -- chromium -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    pytest.fail(
        "Chromium is required to test the HTML verify report (it renders the page headless). Install it: "
        "`apt-get install -y chromium chromium-driver` on Debian (`make test` installs it)."
    )


def _chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    res = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def dump_dom(binary: str, page: Path, tmp_path: Path) -> str:
    """The DOM after load (and after the page's script ran), serialised by Chromium."""
    return _chromium(binary, tmp_path, "--dump-dom", page.resolve().as_uri()).stdout


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


# -- the page on the tiny set with a mutant ---------------------------------------------------


@pytest.fixture(scope="module")
def verified(exported_all: Path, tiny_data_session: tuple[Path, dict[str, str]],
             tmp_path_factory: pytest.TempPathFactory) -> tuple[ParityReport, Path]:
    """Every variant exported, float32 .tflite swapped for another seed's, verified with the page written."""
    from edgefm.train.model import MLP, write_savedmodel
    from export.pipeline import export

    data = tiny_data_session[0]
    base = tmp_path_factory.mktemp("html")
    root = base / "artifacts"
    shutil.copytree(exported_all, root)  # every variant, calibrated on 128 images
    other = base / "seed1"
    manifest = Manifest(model="mlp", labels=list(CLASS_NAMES))
    manifest.artifacts["savedmodel"] = write_savedmodel(MLP(hidden_units=8, seed=1), other)
    manifest.save(other)
    export(manifest, ExportConfig(artifacts=other, data_dir=data, verify_data=False, format="tflite", quantize="none"))
    shutil.copyfile(other / "model_float32.tflite", root / "model_float32.tflite")
    redescribe(root, MUTANT)
    manifest = Manifest.load(root)
    manifest.training["history"] = HISTORY
    manifest.save(root)
    page = base / "out" / "page.html"
    report = check(manifest, CheckConfig(artifacts=root, data_dir=data, verify_data=False, html=page))
    return report, page


def test_page_is_self_contained(verified: tuple[ParityReport, Path]) -> None:
    report, page = verified
    text = page.read_text(encoding="utf-8")
    assert report.html_path == page and f"html: {page}" in render_table(report)
    assert not re.search(r"https?://", text, re.I), re.search(r".{60}https?://.{60}", text, re.I)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    srcs = re.findall(r'<img[^>]* src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"<(link|iframe|object|embed)\b|\bsrc=\"(?!data:)|url\(", text, re.I)


def test_chromium_dom_has_table_images_and_disagreements(verified: tuple[ParityReport, Path], chromium: str,
                                                         tmp_path: Path) -> None:
    report, page = verified
    assert not report.passed and not report.result(MUTANT).passed
    dom = dump_dom(chromium, page, tmp_path)
    body = _body_attrs(dom)
    # The page's script ran after load and every image decoded.
    n_img = page.read_text(encoding="utf-8").count("<img ")
    mutant = report.details[MUTANT]
    shown = min(mutant.disagreements, SHOWN_DISAGREEMENTS)
    assert n_img >= 2 + len(VARIANTS) + shown  # size/latency, curves, one histogram each, the disagreements
    assert body["data-status"] == "FAILED"
    assert body["data-images-total"] == str(n_img) and body["data-images-loaded"] == str(n_img)

    # One table row per artifact with its verdict; the mutant's top-1 cell is highlighted with its bound.
    rows = dict(re.findall(r'<tr data-artifact="([^"]+)" data-result="(PASS|FAIL)">', dom))
    assert rows == {n: ("FAIL" if n == MUTANT else "PASS") for n in VARIANTS}
    mutant_row = re.search(rf'<tr data-artifact="{MUTANT}".*?</tr>', dom, re.S).group(0)
    top1 = report.result(MUTANT).metric("top1_agreement")
    assert f'<td class="fail">{100 * top1.value:.2f}%<span class="b">≥ 100.00%</span></td>' in mutant_row
    good_row = re.search(r'<tr data-artifact="onnx_float32".*?</tr>', dom, re.S).group(0)
    assert 'class="fail"' not in good_row and "≤ 0.0001" in good_row
    assert f"{MUTANT}: top1_agreement = " in dom  # the failures list

    # The mutant's disagreements: pictures labelled with both predictions, and the total.
    assert mutant.disagreements > SHOWN_DISAGREEMENTS
    assert f"<b>{mutant.disagreements}</b> of 128 images" in dom
    alts = re.findall(rf'alt="(TF: [^"]+ / {MUTANT}: [^"]+)"', dom)
    assert len(alts) == shown
    i, tf_c, c = int(mutant.shown[0]), int(mutant.shown_reference[0]), int(mutant.shown_candidate[0])
    assert alts[0] == f"TF: {CLASS_NAMES[tf_c]} / {MUTANT}: {CLASS_NAMES[c]}"
    assert f'<figure class="d" data-index="{i}">' in dom
    assert "Top-1 equals TF's on all of 128 images." in dom  # the good artifacts

    # TF's confusion matrix once; an artifact's own only where it differs from TF's, else a sentence saying so.
    for name in ("reference", MUTANT):
        cm = re.search(rf'<table class="cm" data-artifact="{name}">.*?</table>', dom, re.S).group(0)
        assert all(cls in cm for cls in ("T-shirt/top", "Ankle boot")) and cm.count("<tr>") == 11
    for name in VARIANTS:
        same = np.array_equal(report.details[name].confusion, report.reference_confusion)
        assert (f'data-cm-same="{name}"' in dom) == same and (f'<table class="cm" data-artifact="{name}">' in dom) != same
    assert sum(np.array_equal(report.details[n].confusion, report.reference_confusion) for n in VARIANTS) >= 4

    # int8's largest error is reported, not judged, and the page says why.
    int8_row = re.search(r'<tr data-artifact="tflite_int8".*?</tr>', dom, re.S).group(0)
    assert 'not judged</span>' in int8_row and "int8 clips logits outside its calibration range" in int8_row
    # Thumbnail captions: short labels that never need breaking inside a word.
    assert f'<span class="cand">tflite: {CLASS_NAMES[c]}</span>' in dom


def _with_native_rows(report: ParityReport) -> ParityReport:
    """``report`` plus a native row per artifact, bit-identical to its binding: the widest table (``--native``)."""
    import copy

    r = copy.deepcopy(report)
    for a in list(r.artifacts):
        native = ArtifactResult(f"{a.name}@native", "native", a.path, a.format, a.quantization,
                                [*a.metrics, Metric.check("binding_max_abs_diff", 0.0, 0.0, "==")])
        r.artifacts.append(native)
        r.details[native.name] = r.details[a.name]
    return r


@pytest.mark.parametrize("width", [1280, 800])
def test_chromium_page_fits_the_window(verified: tuple[ParityReport, Path], chromium: str, tmp_path: Path,
                                       width: int) -> None:
    """With every artifact and its native row (the old table overflowed 1280 px by 30 px): the page never
    scrolls sideways; at 1280 px the Checks table needs no scrollbar either; every image decodes."""
    report, _ = verified
    page = tmp_path / "native.html"
    page.write_text(render_html(_with_native_rows(report)), encoding="utf-8")
    body = _body_attrs(_chromium(chromium, tmp_path, f"--window-size={width},1600", "--dump-dom",
                                 page.resolve().as_uri()).stdout)
    assert body["data-images-loaded"] == body["data-images-total"] != "0"
    assert body["data-page-overflow"] == "0", body
    if width >= 1280:
        assert body["data-checks-overflow"] == "0", body
    else:  # too narrow for 15 columns: the table scrolls inside its own box
        assert int(body["data-checks-overflow"]) > 0, body


def test_native_card_points_to_its_identical_binding(verified: tuple[ParityReport, Path]) -> None:
    """A native row bit-identical to its binding gets a one-line card that links there, not the same charts again."""
    report, _ = verified
    page = render_html(_with_native_rows(report))
    for name in VARIANTS:
        card = re.search(rf'<section class="artifact[^"]*" id="a-{name}@native".*?</section>', page, re.S).group(0)
        assert f'data-same-as="{name}"' in card and f'<a href="#a-{name}">' in card and "<img" not in card
        assert page.count(f'id="a-{name}"') == 1  # the binding's own card is still there, once


def test_chromium_explain_section_decodes_and_fits(verified: tuple[ParityReport, Path],
                                                   tiny_data_session: tuple[Path, dict[str, str]], chromium: str,
                                                   tmp_path: Path) -> None:
    """The mutant (another seed's weights) explained: its card and figure in the page, every image decoded,
    nothing wider than an 800 px window."""
    import copy

    from edgefm.data.inputs import load_inputs
    from runtime_check.explain.explain import explain

    report, _ = verified
    root = report.artifacts_dir
    manifest = Manifest.load(root)
    data = load_inputs(CheckConfig(artifacts=root, data_dir=tiny_data_session[0], verify_data=False), manifest)
    explained = copy.copy(report)
    explained.explanations = {MUTANT: explain(root, manifest, [MUTANT], data, rows=16)[MUTANT].to_dict()}
    page = tmp_path / "explained.html"
    page.write_text(render_html(explained), encoding="utf-8")
    dom = _chromium(chromium, tmp_path, "--window-size=800,1600", "--dump-dom", page.resolve().as_uri()).stdout
    body = _body_attrs(dom)
    assert body["data-images-loaded"] == body["data-images-total"] and body["data-page-overflow"] == "0", body
    card = re.search(rf'<section class="artifact failed" id="x-{MUTANT}" data-explain="{MUTANT}" '
                     r'data-first-divergent="([^"]+)">.*?</section>', dom, re.S)
    assert card and card.group(1) == "Relu:0", dom[dom.find('id="explain"'):][:3000]  # every weight differs: the first layer
    assert f'alt="SNR of every tensor of {MUTANT} along the graph"' in card.group(0)
    assert f'<a href="#x-{MUTANT}">' in dom and int(body["data-images-total"]) == page.read_text().count("<img ")


def test_chromium_notices_an_image_that_does_not_decode(verified: tuple[ParityReport, Path], chromium: str,
                                                        tmp_path: Path) -> None:
    """The image check can fail: one corrupt data: URI is counted as not loaded."""
    _, page = verified
    text = page.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src="data:image/png;base64,AAAA"', text, count=1))
    body = _body_attrs(dump_dom(chromium, broken, tmp_path))
    assert int(body["data-images-loaded"]) == int(body["data-images-total"]) - 1


def test_chromium_screenshot(verified: tuple[ParityReport, Path], chromium: str, tmp_path: Path) -> None:
    from PIL import Image

    _, page = verified
    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page.resolve().as_uri())
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2400)
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    banner = (np.abs(pixels - (0xCF, 0x22, 0x2E)).sum(axis=1) < 30).sum()  # the red FAILED banner and badges
    assert banner > 500, banner
    assert len(np.unique(pixels[::7], axis=0)) > 200  # charts and pictures, not a blank page


def test_json_keeps_compact_details_not_logits(verified: tuple[ParityReport, Path]) -> None:
    report, _ = verified
    raw = report.path.read_bytes()
    data = json.loads(raw)
    assert len(raw) < 120_000  # 6 artifacts' summaries, not 6 x 128 x 10 logits written out
    n = data["inputs"]["count"]
    for name in VARIANTS:
        d = data["artifacts"][name]["details"]
        cm = np.array(d["confusion_matrix"])
        assert cm.shape == (10, 10) and cm.sum() == n
        assert sum(d["error_histogram"]["counts"]) == 10 * n
        assert len(d["error_histogram"]["edges"]) in (2, len(d["error_histogram"]["counts"]) + 1)
        top1 = data["artifacts"][name]["metrics"]["top1_agreement"]["value"]
        assert d["disagreements"]["count"] == round((1 - top1) * n)
        assert len(d["disagreements"]["shown"]) == min(d["disagreements"]["count"], SHOWN_DISAGREEMENTS)
        assert data["artifacts"][name]["bytes"] == (report.artifacts_dir / data["artifacts"][name]["path"]).stat().st_size
    assert np.array(data["reference"]["confusion_matrix"]).sum() == n
    shown = data["artifacts"][MUTANT]["details"]["disagreements"]["shown"]
    assert all(s["reference"] != s["candidate"] for s in shown)
    # The pictures are the test images themselves, back in uint8.
    from edgefm.data.fashion_mnist import load_split

    test = load_split("test", report.inputs["data_dir"], verify=False)
    assert all(np.array_equal(report.images[s["index"]], test.images[s["index"]]) for s in shown)


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_writes_the_page_beside_the_report_unless_told(verified: tuple[ParityReport, Path],
                                                           tiny_data_session: tuple[Path, dict[str, str]],
                                                           tmp_path: Path) -> None:
    report, _ = verified
    root = tmp_path / "artifacts"
    shutil.copytree(report.artifacts_dir, root)
    common = ("verify", "--artifacts", str(root), "--data-dir", str(tiny_data_session[0]), "--no-verify",
              "--only", "onnx_float32", "--samples", "20")
    res = invoke_cli(*common)
    assert res.returncode == 0, res.stderr
    assert (root / "verify-report.html").is_file() and f"html: {root / 'verify-report.html'}" in res.stdout
    (root / "verify-report.html").unlink()
    res = invoke_cli(*common, "--no-html", "--report", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert not (root / "verify-report.html").exists() and not (tmp_path / "r.html").exists()
    assert "html:" not in res.stdout
    res = invoke_cli(*common, "--no-html", "--html", str(tmp_path / "x.html"))
    assert res.returncode == 2 and "--html and --no-html contradict each other" in res.stderr
    assert "Traceback" not in res.stderr


# -- rendering without a browser: pieces that the tiny run does not reach ------------------------------


def _hand_report(tmp_path: Path, **kw: object) -> ParityReport:
    ok = ArtifactResult("tflite_float32", "litert", "model_float32.tflite",
                        metrics=[Metric.check("max_abs_error", 0.0, 1e-4, "<=")], timings={"infer": 0.01, "batch1": 0.02})
    broken = ArtifactResult("onnx_int8", "onnxruntime", "model_int8.onnx", error="ONNX Runtime could not load <model_int8.onnx>")
    logits = np.eye(4, 10, dtype=np.float32)
    detail = ArtifactDetail.from_logits(logits, logits, np.arange(4))
    return ParityReport([ok, broken], {"path": "saved_model", "accuracy": 1.0, "bytes": 5000},
                        {"count": 4, "split": "test", "batch_size": 1000, "invariance_samples": 4}, {"numpy": "2"},
                        details={"tflite_float32": detail}, artifacts_dir=tmp_path, **kw)


def test_page_without_history_uses_the_curves_png_and_shows_errors(tmp_path: Path) -> None:
    page = render_html(_hand_report(tmp_path))
    assert "no per-epoch training history" in page and CURVES_NAME in page
    assert "Every one of the 40 logits equals TF's exactly." in page
    assert "onnx_int8 could not run: ONNX Runtime could not load &lt;model_int8.onnx&gt;" in page  # escaped
    assert '<tr data-artifact="onnx_int8" data-result="FAIL">' in page

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 4), "red").save(buf, format="PNG")
    (tmp_path / CURVES_NAME).write_bytes(buf.getvalue())
    page = render_html(_hand_report(tmp_path))
    assert base64.b64encode(buf.getvalue()).decode() in page and "holds no per-epoch history" in page


def test_detail_from_logits() -> None:
    ref = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]], np.float32)
    cand = ref.copy()
    cand[1] = [0.0, 2.0, 2.5]  # disagrees, TF's gap 2.0
    cand[3] = [5.0, 9.0, 0.0]  # disagrees, TF's gap 5.0: shown first
    cand[2, 0] = np.nan  # not in the histogram; NumPy's argmax picks the NaN: a disagreement, TF's gap 1.0
    d = ArtifactDetail.from_logits(cand, ref, np.array([0, 1, 2, 0]), keep=1)
    assert d.disagreements == 3 and d.shown.tolist() == [3]
    assert d.shown_reference.tolist() == [0] and d.shown_candidate.tolist() == [1] and d.shown_label.tolist() == [0]
    assert d.error_counts.sum() == 11 and d.max_error == 9.0
    assert d.confusion[0].tolist() == [1, 1, 0] and d.confusion[2].tolist() == [1, 0, 0] and d.confusion.sum() == 4
    assert ArtifactDetail.from_logits(cand, ref, np.zeros(4, int)).shown.tolist() == [3, 1, 2]  # most sure first
    same = ArtifactDetail.from_logits(ref, ref, np.zeros(4, int))
    assert same.error_edges.tolist() == [0.0, 0.0] and same.error_counts.tolist() == [12] and same.disagreements == 0


def test_unwritable_page_is_a_clear_error_and_the_json_is_still_written(
    verified: tuple[ParityReport, Path], tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from edgefm.core.errors import OutputError

    report, _ = verified
    (tmp_path / "file").write_text("not a directory")
    cfg = CheckConfig(artifacts=report.artifacts_dir, data_dir=tiny_data_session[0], verify_data=False,
                      only=("onnx_float32",), samples=10, report=tmp_path / "r.json", html=tmp_path / "file" / "page.html")
    # exit status 1, like an unwritable --report (it was a ConfigError, exit 2, before)
    with pytest.raises(OutputError, match=r"Cannot write .*file/page.html: (File exists|Not a directory)\. Check that .* or pass another path"):
        check(Manifest.load(report.artifacts_dir), cfg)
    assert json.loads((tmp_path / "r.json").read_text())["artifacts"]["onnx_float32"]["passed"] is True
