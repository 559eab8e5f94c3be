"""``verify-report.html``: the verification report as one self-contained page.

``render_html(report)`` turns a ``ParityReport`` into a single HTML document a
reviewer can open offline, attach to a ticket or archive with the artifacts:

- the pass/fail table: every artifact, every check, its value and its bound,
  failed cells highlighted, and the list of failures;
- sizes (bytes per artifact) and latencies (the per-image times verify measured
  while it ran: the large-batch pass and the batch-1 invariance pass);
- the training curves from the manifest's history (or ``training_curves.png``);
- per artifact: a histogram of ``|candidate - TF|`` over every logit (log-scale
  counts), the confusion matrix with the cells that differ from TF's marked, and
  the test images where its top-1 differs from TF's, labelled with both
  predictions.
- after ``verify --explain``, per explained artifact (``report.explanations``): the SNR
  of every tensor compared with TensorFlow along the graph, the variant's bound, the
  first divergent tensor and the steepest drop marked, and a table of them and the
  worst tensors.

Everything is inline: charts are PNGs drawn by matplotlib (``Figure`` with the
Agg canvas, no pyplot state, no display) and embedded as ``data:`` URIs, the
confusion matrices are HTML tables, the styles and the one script are inline,
and a Content-Security-Policy forbids every fetch, so the page never touches
the network. The script sets ``data-images-loaded`` / ``data-images-total`` on
``<body>`` once the page has loaded, so a headless browser can prove every
image decoded.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefm.core.contract import CURVES_NAME
from edgefm.core.errors import OutputError
from edgefm.core.fileio import atomic_write_text
from edgefm.core.progress import plural
from edgefm.formats.layers import name_key
from runtime_check.verify.oracle import two_questions
from runtime_check.verify.report import ArtifactDetail, ParityReport, describe_inputs
from runtime_check.verify.results import (
    EXACT_DB,
    OUTPUT_SEP,
    ArtifactResult,
    Metric,
    artifact_of,
    format_value,
    is_native_row,
)
from runtime_check.verify.text import COLUMNS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: pixel upscale of the 28x28 test images
IMAGE_ZOOM = 3
DPI = 100
#: every check in table order; metrics not listed here follow in the order they appear
HTML_COLUMNS: tuple[tuple[str, str], ...] = (
    ("checksum", "checksum"),
    ("outputs", "outputs"),
    ("output_shapes", "shapes"),
    *[(k, h) for k, h in COLUMNS if k != "checksum"],
)
_OPS = {"<=": "≤", ">=": "≥", "==": "="}
_COLOURS = {"candidate": "#1f77b4", "reference": "#7f7f7f", "batch1": "#ff7f0e", "fail": "#d62728",
            "exact": "#aec7e8", "first": "#7a0019", "broken": "#24292f"}
#: ``--explain``: the worst tensors listed per artifact (as many as the terminal shows)
EXPLAIN_WORST = 5
#: ``--explain`` figure: tensor names along the x axis, at most this many (one per tick), each cut to this length
EXPLAIN_LABELS = 60
EXPLAIN_LABEL_CHARS = 30

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1f23;background:#fff}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{margin:.2em 0 .1em;font-size:26px} h2{margin:1.6em 0 .4em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin:1.2em 0 .3em} .muted{color:#586069} code{font-size:90%;background:#f3f4f6;padding:0 3px;border-radius:3px}
.banner{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700}
.banner.pass,.badge.pass{background:#2da44e} .banner.fail,.badge.fail{background:#cf222e}
.badge{color:#fff;font-size:12px;font-weight:700;padding:1px 7px;border-radius:3px;vertical-align:middle}
table.checks{border-collapse:collapse;font-size:12px;margin:.4em 0;width:100%}
.scroll{overflow-x:auto}
table.checks th,table.checks td{border:1px solid #d0d7de;padding:3px 4px;text-align:right;vertical-align:top;white-space:nowrap}
table.checks thead th{white-space:normal;vertical-align:bottom} table.checks th[scope=row] .rt{display:block;font-weight:400;color:#57606a;font-size:11px}
table.checks thead th:first-child{text-align:left}
table.checks th{background:#f6f8fa;font-weight:600} table.checks th[scope=row]{text-align:left;white-space:nowrap}
table.checks td.res{text-align:center;font-weight:700}
table.checks td.pass.res{color:#1a7f37} td.fail{background:#ffebe9;color:#a40e26;font-weight:700}
table.checks td .b{display:block;font-size:11px;font-weight:400;color:#57606a;white-space:nowrap}
table.checks td.info{color:#57606a} table.checks tr.reference{background:#f6f8fa} tr.error td{text-align:left;color:#a40e26;background:#fff8f7;white-space:normal}
ul.failures li{color:#a40e26;margin:.2em 0} p.fail{color:#a40e26}
.charts img{max-width:100%;height:auto;display:block}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start} .hist{width:480px}
table.cm caption{text-align:left;font-size:12px;padding-bottom:4px}
section.artifact{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px 12px;margin:16px 0}
section.artifact.failed{border-color:#cf222e;border-width:2px}
table.cm{border-collapse:collapse;font-size:11px}
table.cm td{width:34px;height:22px;text-align:center;border:1px solid #eee}
table.cm th{font-weight:400;font-size:11px;padding:0 4px;text-align:right;white-space:nowrap}
table.cm thead th{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;padding:4px 0;height:80px;vertical-align:bottom}
table.cm td.diff{outline:2px solid #cf222e;outline-offset:-2px;font-weight:700}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure.d{margin:0;width:112px;font-size:11px;line-height:1.3}
figure.d img{display:block;width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc}
figure.d .tf{color:#57606a} figure.d .cand{color:#a40e26;font-weight:600}
figure.d figcaption span{white-space:nowrap} p.same{margin:.4em 0}
details{margin:.6em 0} table.kv td{padding:0 12px 0 0;font-size:13px}
table.checks.explain{width:auto} table.checks.explain td.name{text-align:left;white-space:normal;word-break:break-all}
table.checks.explain .role,table.checks.explain th.name{text-align:left} table.checks.explain tr.first td{font-weight:700}
"""

# After load, count the images that decoded (naturalWidth > 0): a headless browser reads the result from <body>.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok.length));
  var root = document.documentElement, checks = document.getElementById('checks-box');
  document.body.setAttribute('data-page-overflow', String(Math.max(0, root.scrollWidth - root.clientWidth)));
  if (checks) document.body.setAttribute('data-checks-overflow', String(Math.max(0, checks.scrollWidth - checks.clientWidth)));
});
"""

# Nothing may be fetched: images only from data: URIs, styles and the script inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_html(report: ParityReport, path: Path) -> Path:
    """Render ``report`` and write it to ``path`` atomically; the report remembers where."""
    path = Path(path)
    page = render_html(report)
    try:
        atomic_write_text(path, page)
    except OutputError:
        raise
    except OSError as e:  # exit 1 like an unwritable --report: the path is the problem, not the options
        raise OutputError(path, e) from e
    report.html_path = path
    return path


def render_html(report: ParityReport) -> str:
    """The page, its charts' texts drawn as written.

    Artifact names reach the charts, and matplotlib reads ``$...$`` in a text as mathtext: a manifest
    name ``odd$^$name`` raised a ValueError while drawing, after every check had passed (exit 70).
    Texts made inside this rc context are plain (``text.parse_math`` is read when a Text is made).
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _render_html(report)


def _render_html(report: ParityReport) -> str:
    """The whole page as one string (see the module docstring for what it holds)."""
    esc = html.escape
    status = {"PASS": "PASSED", "FAIL": "FAILED"}.get(report.verdict, report.verdict)
    ref = report.reference
    inputs = report.inputs
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>edgefm verify: {status}</title><style>{_CSS}</style></head>",
        f'<body data-status="{status}"><main>',
        f'<h1>edgefm verify <span class="banner {"pass" if report.passed else "fail"}" id="status">{status}</span></h1>',
        '<p class="muted">',
        f"{len(report.artifacts)} artifacts against the TensorFlow reference <code>{esc(str(ref.get('path', '')))}</code> "
        f"(accuracy {esc(format_value('accuracy', ref.get('accuracy')))}) on {esc(describe_inputs(inputs))}"
        + (f" from index {esc(str(inputs.get('first_index', 0)))}" if "split" in inputs else "")
        + " "
        f"(sha256 <code>{esc(str(inputs.get('sha256', ''))[:12])}…</code>)."
        + (f" JSON report: <code>{esc(str(report.path))}</code>." if report.path else "")
        + "</p>",
        "<h2>Checks</h2>",
        _checks_table(report),
        _failures(report),
        _verdict_notes(report),
        _explain_section(report),
        '<h2>Size and latency</h2><div class="charts">',
        _img(_png(_size_latency_figure(report)), "sizes and latencies"),
        '</div><p class="muted">Latency: wall time per image measured by this verify run, one pass each, '
        f"including Python and copying: the whole input set in batches of {esc(str(_large_batch(report)))} "
        f"divided by the number of images, and {esc(str(inputs.get('invariance_samples', '?')))} single-image "
        "calls (the batch-1 invariance check) divided by their number. Use <code>edgefm benchmark</code> for "
        "percentiles.</p>",
        "<h2>Training</h2>",
        _training_section(report),
        "<h2>Per artifact</h2>",
        _reference_confusion(report),
        *[_artifact_section(report, a) for a in report.artifacts],
        _versions(report),
        f"</main><script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


# -- the table ----------------------------------------------------------------------------------


def _columns(artifacts: Sequence[ArtifactResult]) -> list[tuple[str, str]]:
    present = {m.name for a in artifacts for m in a.metrics}
    known = [(k, h) for k, h in HTML_COLUMNS if k in present]
    names = {k for k, _ in HTML_COLUMNS}
    # other outputs' metrics (OUTPUT/metric) and the reported-only ones get no column (the table must fit):
    # every value is in the JSON, a failed one in the failure list under the table
    # (a metric judged nowhere: ``requires``, ``top1_raw``, ``io_names``, which later releases added)
    judged = {m.name for a in artifacts for m in a.metrics if not m.informational}
    quiet = lambda m: OUTPUT_SEP in m.name or m.name in ("max_rel_error", "snr_db") or m.name not in judged  # noqa: E731
    extra = dict.fromkeys(m.name for a in artifacts for m in a.metrics if m.name not in names and not quiet(m))
    return known + [(k, k) for k in extra]


def unjudged_reason(m: Metric, quantization: str = "") -> str:
    """Why a reported metric has no bound (shown under it, so a value without a bound is not a mystery)."""
    if m.name == "max_abs_error" and quantization == "int8":
        return ("int8 clips logits outside its calibration range, so its largest error is large by design; int8 is "
                "judged by top-1 agreement, accuracy, cosine and mean error instead (set one with --bound NAME.max_abs_error=VALUE)")
    if m.name == "accuracy":
        return ""  # the accuracy drop is judged
    if m.name == "batch_invariance" or m.op == "info":
        return "reported only (set a bound with --bound NAME.METRIC=VALUE)"
    return ""


def _metric_cell(m: Metric | None, error: bool, quantization: str = "") -> str:
    esc = html.escape
    if m is None:
        return '<td class="info">' + ("not run" if error else "–") + "</td>"
    if m.name == "checksum":
        text = "match" if m.passed else ("missing" if m.value == "missing" else "changed")
        return f'<td class="{"pass" if m.passed else "fail"}" title="{esc(str(m.detail or m.value))}">{text}</td>'
    value = esc(format_value(m.name, m.value))
    title = f' title="{esc(m.detail)}"' if m.detail else ""
    if m.informational:
        return f'<td class="info"{title}>{value}<span class="b" title="{esc(why)}">not judged</span></td>' if (
            why := unjudged_reason(m, quantization)) else f'<td class="info"{title}>{value}</td>'
    bound = f"{_OPS.get(m.op, m.op)} {format_value(m.name, m.bound)}"
    return f'<td class="{"pass" if m.passed else "fail"}"{title}>{value}<span class="b">{esc(bound)}</span></td>'


def _checks_table(report: ParityReport) -> str:
    esc = html.escape
    cols = _columns(report.artifacts)
    head = "".join(f'<th scope="col">{esc(h)}</th>' for _, h in cols)
    # The reference first: its own checks (checksum, batch invariance) and the accuracy the others are held to.
    ref = report.reference
    ref_metrics = {m.name: m for m in report.reference_metrics}
    if isinstance(ref.get("accuracy"), float):
        ref_metrics.setdefault("accuracy", Metric.check("accuracy", ref["accuracy"], None, "info"))
    ref_ok = all(m.passed for m in report.reference_metrics)
    rows = [
        f'<tr class="reference" data-reference="{esc(str(ref.get("name", "")))}"><th scope="row">'
        f'{esc(str(ref.get("name", "reference")))} <span class="muted">(reference)</span>'
        f'<span class="rt">{esc(str(ref.get("runtime", "tensorflow")))}</span></th>'
        f'<td class="res {"pass" if ref_ok else "fail"}">{"REF" if ref_ok else "FAIL"}</td>'
        + "".join(_metric_cell(ref_metrics.get(k), False) if k in ref_metrics else '<td class="info"></td>' for k, _ in cols)
        + "</tr>"
    ]
    for a in report.artifacts:
        by = {m.name: m for m in a.metrics}
        res = a.verdict
        cells = "".join(_metric_cell(by.get(k), a.error is not None, a.quantization) for k, _ in cols)
        rows.append(
            f'<tr data-artifact="{esc(a.name)}" data-result="{res}"><th scope="row">'
            f'<a href="#a-{esc(a.name)}">{esc(a.name)}</a><span class="rt">{esc(a.runtime)}</span></th>'
            f'<td class="res {res.lower()}">{res}</td>{cells}</tr>'
        )
        if a.error:
            rows.append(f'<tr class="error"><td colspan="{len(cols) + 2}">{esc(a.name)} could not run: {esc(a.error)}</td></tr>')
    # The runtime sits under the name (one column fewer), headers wrap: the table fits a 1280 px window.
    # Narrower windows scroll the table inside its box, never the page.
    return (
        '<div class="scroll" id="checks-box"><table class="checks" id="checks"><thead><tr>'
        '<th scope="col">artifact / runtime</th>'
        f'<th scope="col">result</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        '<p class="muted">Each cell: the measured value, and under it the bound it is held to; "not judged" cells '
        "are reported only (hover for why). Accuracy drop = reference accuracy − artifact accuracy.</p>"
    )


def _verdict_notes(report: ParityReport) -> str:
    """The two questions of each int8 file, the undecided bounds and every weak-evidence note (docs/verdict.md)."""
    esc = html.escape
    items = [f"<li>{esc(q)}</li>" for a in report.artifacts if (q := two_questions(a))]
    items += [f'<li class="weak">weak evidence: {esc(n["text"])}</li>' for n in report.weak_evidence]
    return f'<ul class="verdict-notes" id="verdict-notes">{"".join(items)}</ul>' if items else ""


def _failures(report: ParityReport) -> str:
    failures = report.failures()
    if not failures:
        return f'<p id="failures">All {plural(len(report.artifacts), "artifact")} pass every check.</p>'
    items = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
    return f'<h3>Failures</h3><ul class="failures" id="failures">{items}</ul>'


# -- charts -------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    """A matplotlib figure on the Agg canvas, outside pyplot (no global state, no display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _plain_formatter() -> Any:
    """Tick labels as plain text (``1``, ``100``, ``1e+04``) instead of mathtext powers of ten."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version string or URL in the file
    return buf.getvalue()


def _img(png: bytes, alt: str, *, cls: str = "", width: int | None = None, height: int | None = None) -> str:
    size = (f' width="{width}"' if width else "") + (f' height="{height}"' if height else "")
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<img{klass}{size} alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
    )


def _large_batch(report: ParityReport) -> int:
    count, batch = report.inputs.get("count"), report.inputs.get("batch_size")
    if isinstance(count, int) and isinstance(batch, int):
        return min(count, batch)
    return batch if isinstance(batch, int) else 0


def _per_image_us(timings: dict[str, Any], key: str, n: object) -> float:
    t = timings.get(key)
    if not isinstance(t, (int, float)) or not isinstance(n, int) or n <= 0:
        return 0.0
    return 1e6 * float(t) / n


def _size_latency_figure(report: ParityReport) -> Figure:
    """Two panels: bytes per distinct artifact file (the SavedModel included), and µs per image."""
    ref_name = f"{report.reference.get('name', 'savedmodel')} (TF)"
    sizes: list[tuple[str, int, bool]] = []
    if isinstance(report.reference.get("bytes"), int):
        sizes.append((ref_name, report.reference["bytes"], True))
    seen: set[str] = set()
    for a in report.artifacts:
        if a.name in report.sizes and a.path not in seen:  # a native run shares its file with the binding's
            seen.add(a.path)
            sizes.append((a.name, report.sizes[a.name], False))
    n, n1 = report.inputs.get("count"), report.inputs.get("invariance_samples")
    lat = [(ref_name, report.reference.get("timings", {}), True)] + [(a.name, a.timings, False) for a in report.artifacts]

    rows = max(len(sizes), len(lat), 1)
    fig = _figure(12, 1.15 + 0.32 * rows)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"wspace": 0.55})
    y = np.arange(len(sizes))
    kb = [s / 1024 for _, s, _ in sizes]
    ax1.barh(y, kb, color=[_COLOURS["reference" if r else "candidate"] for *_, r in sizes])
    for yi, v in zip(y, kb):
        ax1.text(v, yi, f" {v:,.1f}", va="center", fontsize=8)
    ax1.set_yticks(y, [s[0] for s in sizes], fontsize=9)
    ax1.invert_yaxis()
    ax1.set_xlabel("size (KiB)")
    ax1.set_title("size on disk", fontsize=10)
    ax1.set_xlim(0, max(kb, default=1) * 1.25 or 1)

    y = np.arange(len(lat))
    big = [_per_image_us(t, "infer", n) for _, t, _ in lat]
    one = [_per_image_us(t, "batch1", n1) for _, t, _ in lat]
    h = 0.4
    ax2.barh(y - h / 2, big, h, color=_COLOURS["candidate"], label=f"batch {_large_batch(report)}")
    ax2.barh(y + h / 2, one, h, color=_COLOURS["batch1"], label="batch 1")
    for yi, b, o in zip(y, big, one):
        ax2.text(b, yi - h / 2, f" {b:,.1f}" if b else " –", va="center", fontsize=7)
        ax2.text(o, yi + h / 2, f" {o:,.1f}" if o else " –", va="center", fontsize=7)
    ax2.set_yticks(y, [name for name, *_ in lat], fontsize=9)
    ax2.invert_yaxis()
    ax2.set_xscale("symlog", linthresh=1.0)
    ax2.minorticks_off()
    ax2.xaxis.set_major_formatter(_plain_formatter())
    ax2.set_xlim(0, max(big + one, default=1) * 4 or 1)
    ax2.set_xlabel("µs per image (log scale)")
    ax2.set_title("latency measured during verify", fontsize=10)
    # Below the axes, where no bar can run into it.
    fig.legend(*ax2.get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.78, 0.0), ncols=2,
               fontsize=8, frameon=False)
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.13, right=0.98, top=1 - 0.35 / fig.get_figheight(), bottom=0.8 / fig.get_figheight())
    return fig


def _training_section(report: ParityReport) -> str:
    history = [h for h in report.training.get("history", []) if isinstance(h, dict)]
    keys = ("epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy")
    usable = [h for h in history if all(isinstance(h.get(k), (int, float)) for k in keys)]
    t = report.training
    facts = ", ".join(
        f"{label} {value}"
        for label, value in (
            ("model", t.get("model")),
            ("epochs", t.get("epochs")),
            ("batch size", t.get("batch_size")),
            ("learning rate", t.get("learning_rate")),
            ("test accuracy", format_value("accuracy", t.get("test_accuracy")) if t.get("test_accuracy") is not None else None),
        )
        if value is not None
    )
    text = f'<p class="muted">{html.escape(facts)}.</p>' if facts else ""
    if usable:
        return '<div class="charts" id="training">' + _img(_png(_curves_figure(usable)), "training curves") + "</div>" + text
    curves = _curves_png(report.artifacts_dir)
    if curves is not None:
        return (
            '<div class="charts" id="training">' + _img(curves[1], "training curves") + "</div>"
            f'<p class="muted">From {html.escape(str(curves[0]))} (the manifest holds no per-epoch history).</p>' + text
        )
    return ('<p id="training">The manifest holds no per-epoch training history and there is no '
            f"{CURVES_NAME} beside it (a SavedModel not trained by <code>edgefm train</code>).</p>" + text)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the page embeds the curves byte for byte: a bound, so a planted file cannot bloat a shared page
MAX_CURVES_BYTES = 4 << 20


def _curves_png(root: Path | None) -> tuple[Path, bytes] | None:
    """``training_curves.png`` beside the manifest, if it is a PNG file inside the directory.

    The page is shared with other people: a symlink to another file, or a file that
    is not a PNG, is never embedded (its bytes would travel base64 in the page).
    """
    if root is None:
        return None
    path = Path(root) / CURVES_NAME
    try:
        if not path.is_file() or not path.resolve().is_relative_to(Path(root).resolve()):
            return None
        if path.stat().st_size > MAX_CURVES_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return (path, data) if data.startswith(PNG_SIGNATURE) else None


def _curves_figure(history: list[dict[str, Any]]) -> Figure:
    epochs = [h["epoch"] for h in history]
    fig = _figure(10, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], "s--", label="test")
    ax1.set(title="loss", xlabel="epoch")
    ax2.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    ax2.plot(epochs, [100 * h["test_accuracy"] for h in history], "s--", label="test")
    ax2.set(title="accuracy (%)", xlabel="epoch")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.16, wspace=0.2)
    return fig


# -- layer by layer (verify --explain) ----------------------------------------------------------


def _explain_section(report: ParityReport) -> str:
    """One card per explained artifact, from its record (``Explanation.to_dict``, as the JSON holds it)."""
    if not report.explanations:
        return ""
    return (
        '<h2 id="explain">Layer by layer (<code>--explain</code>)</h2><p class="muted">Every intermediate tensor the '
        "artifact shares with TensorFlow, compared on the first verify inputs, in graph order. SNR = 10 log10(Σ TF² / "
        "Σ (artifact − TF)²) in dB; a tensor whose SNR is below its variant's bound is out of bounds, and the first "
        "one along the graph is where the export parts from TensorFlow. The steepest drop is the tensor that loses "
        "the most SNR against the tensors feeding it (drop dB), marked when it is not the first divergent one. "
        f"Exact tensors are drawn at {EXACT_DB:g} dB. LSB: rmse of a quantized tensor in quantization steps "
        "(reported, not judged).</p>"
        + "".join(_explain_card(name, record) for name, record in report.explanations.items())
    )


def _float(value: Any) -> float:
    """A number of the record: JSON keeps infinities as strings (``"inf"``: an exact tensor); else NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _number(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    v = _float(value)
    if math.isnan(v):
        return html.escape(str(value))
    if math.isinf(v):
        return "exact" if v > 0 else "−∞"
    return format(v, spec)


def _tensor_name(tensor: dict[str, Any]) -> str:
    """The TF tensor's short name (without the call wrappers; the record keeps the full one)."""
    return name_key(str(tensor.get("tf")))


def _explain_card(name: str, record: dict[str, Any]) -> str:
    esc = html.escape
    tensors = [t for t in record.get("tensors") or [] if isinstance(t, dict)]
    first = next((i for i, t in enumerate(tensors) if not t.get("passed", True)), None)
    # as the terminal: the steepest drop is news only when something diverged and it is elsewhere
    steep = _steepest(tensors) if first is not None else None
    steep = None if steep == first else steep
    bound = _float((record.get("bounds") or {}).get("snr_db"))
    error = record.get("error")
    failed = bool(error) or first is not None or not tensors
    verdict = ("could not explain" if error else "diverges" if first is not None else "follows TF" if tensors
               else "nothing compared")
    head = (
        f'<section class="artifact{" failed" if failed else ""}" id="x-{esc(name)}" data-explain="{esc(name)}" '
        f'data-first-divergent="{esc(_tensor_name(tensors[first])) if first is not None else ""}">'
        f'<h3>{esc(name)} <span class="badge {"fail" if failed else "pass"}">{verdict}</span> <span class="muted">'
        f'<code>{esc(str(record.get("path", "")))}</code> · {esc(str(record.get("quantization", "")))} · '
        f'{len(tensors)} tensors on {esc(str(record.get("rows", "?")))} inputs · bound SNR ≥ {_number(bound, "g")} dB · '
        f'{_number(record.get("seconds"), ".1f")} s</span></h3>'
    )
    if error:
        return head + f'<p class="fail">could not explain: {esc(str(error))}</p></section>'
    if not tensors:
        lead = '<p class="fail">No tensor of the artifact could be paired with one of TensorFlow: nothing compared.</p>'
    elif first is None:
        lead = '<p class="same">No tensor out of bounds: the export follows TensorFlow layer by layer.</p>'
    else:
        t = tensors[first]
        lead = (
            f'<p class="fail">First divergent: <code>{esc(_tensor_name(t))}</code> (tensor {first}, as '
            f'<code>{esc(str(t.get("candidate")))}</code>, matched by {esc(str(t.get("matched_by")))}): SNR '
            f'{_number(t.get("snr_db"), ".1f")} dB, max abs error {_number(t.get("max_abs_error"), ".3g")}.</p>'
        )
    if steep is not None and first is not None:
        lead += (f'<p>Steepest drop: <code>{esc(_tensor_name(tensors[steep]))}</code> (tensor {steep}) loses '
                 f'{_number(tensors[steep].get("drop_db"), ".1f")} dB of SNR in one step (the first divergent one '
                 f'lost {_number(tensors[first].get("drop_db"), ".1f")} dB).</p>')
    figure = ""
    if tensors:
        alt = f"SNR of every tensor of {name} along the graph"
        figure = '<div class="charts">' + _img(_png(_explain_figure(name, tensors, bound, first, steep)), alt) + "</div>"
    return head + lead + figure + _explain_table(tensors, first, steep) + _not_compared(record) + "</section>"


def _steepest(tensors: Sequence[dict[str, Any]]) -> int | None:
    """The index of the tensor with the largest ``drop_db`` (the first of equals, as ``Explanation.steepest``)."""
    drops = [_float(t.get("drop_db")) for t in tensors]
    return max(range(len(drops)), key=lambda i: -math.inf if math.isnan(drops[i]) else drops[i], default=None)


def _explain_table(tensors: Sequence[dict[str, Any]], first: int | None, steep: int | None) -> str:
    """The first divergent tensor, the steepest drop, then the worst ``EXPLAIN_WORST`` by SNR."""
    esc = html.escape
    rows = [(role, i) for role, i in (("first divergent", first), ("steepest drop", steep)) if i is not None]
    snr = [_float(t.get("snr_db")) for t in tensors]
    worst = sorted(range(len(tensors)), key=lambda i: -math.inf if math.isnan(snr[i]) else snr[i])[:EXPLAIN_WORST]
    rows += [(f"worst {k + 1}", i) for k, i in enumerate(worst)]
    if not rows:
        return ""
    body = []
    for role, i in rows:
        t = tensors[i]
        verdict = "pass" if t.get("passed", True) else "fail"
        body.append(
            f'<tr class="{"first" if i == first else ""}" data-index="{i}"><td class="role">{esc(role)}</td><td>{i}</td>'
            f'<td class="name" title="{esc(str(t.get("tf")))} / {esc(str(t.get("candidate")))}">'
            f'{esc(_tensor_name(t))}</td><td class="role">{esc(str(t.get("matched_by")))}</td>'
            f'<td class="{verdict}">{_number(t.get("snr_db"), ".1f")}</td><td>{_number(t.get("cosine"), ".6f")}</td>'
            f'<td>{_number(t.get("max_abs_error"), ".3g")}</td><td>{_number(t.get("rmse_lsb"), ".2f")}</td>'
            f'<td>{_number(t.get("drop_db"), ".1f")}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="checks explain"><thead><tr><th scope="col"></th><th scope="col">#</th>'
        '<th scope="col" class="name">TF tensor</th><th scope="col" class="name">matched by</th>'
        '<th scope="col">SNR dB</th><th scope="col">cosine</th><th scope="col">max err</th><th scope="col">LSB</th>'
        f'<th scope="col">drop dB</th></tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _not_compared(record: dict[str, Any]) -> str:
    """How many tensors of each side have no counterpart; their names folded away."""
    esc = html.escape
    fused = [str(n) for n in record.get("fused_away") or []]
    unmatched = record.get("unmatched") or {}
    if not fused and not unmatched:
        return '<p class="muted" data-fused="0" data-unmatched="0">Every tapped tensor of both sides was paired.</p>'
    text = (f'<p class="muted" data-fused="{len(fused)}" data-unmatched="{len(unmatched)}">Not compared: '
            f"{plural(len(fused), 'TensorFlow tensor')} without a counterpart in the artifact (fused away), "
            f"{plural(len(unmatched), 'tensor')} of the artifact without one in TensorFlow.</p>")
    items = [f"<li>TF <code>{esc(name_key(n))}</code></li>" for n in fused]
    items += [f"<li><code>{esc(str(n))}</code>: {esc(str(why))}</li>" for n, why in unmatched.items()]
    return text + f'<details><summary>the tensors not compared</summary><ul>{"".join(items)}</ul></details>'


def _explain_figure(name: str, tensors: Sequence[dict[str, Any]], bound: float, first: int | None,
                    steep: int | None) -> Figure:
    """A bar per tensor along the graph, the bound as a line, the first divergent tensor and the steepest drop
    marked and annotated. A bar is the SNR in dB, capped at ``EXACT_DB`` (where exact tensors are drawn); an SNR
    of −∞ (NaN/Inf in the artifact's tensor, or a TF tensor of zeros) is a dark bar of full height."""
    from matplotlib.patches import Patch

    n = len(tensors)
    snr = np.array([_float(t.get("snr_db")) for t in tensors])
    exact = snr == np.inf
    broken = ~np.isfinite(snr) & ~exact
    finite = snr[np.isfinite(snr)]
    # dB has no natural zero: the bars rise from 0, or from 10 dB below the lowest SNR, so that each can be seen
    base = min(0.0, float(finite.min()) - 10 if finite.size else 0.0)
    heights = np.where(exact | broken, EXACT_DB, np.minimum(snr, EXACT_DB))  # as drops are measured (explain._drops)
    out = np.array([not t.get("passed", True) for t in tensors])
    colours = np.where(exact, _COLOURS["exact"], np.where(out, _COLOURS["fail"], _COLOURS["candidate"]))
    colours = np.where(broken, _COLOURS["broken"], colours).tolist()
    if first is not None:
        colours[first] = _COLOURS["first"]

    short = _unscoped([_tensor_name(t) for t in tensors])
    ticks = _labelled_ticks(n, first, steep)
    labels = [f"{_cut(short[i])} #{i}" for i in ticks]
    label_in = 0.5 + 0.055 * max((len(s) for s in labels), default=0)  # rotated names (7 pt) and the x label
    height = 3.0 + label_in
    fig = _figure(11, height)
    ax = fig.add_axes((0.06, label_in / height, 0.92, 2.6 / height))
    bars = ax.bar(np.arange(n), heights - base, 0.8, bottom=base, color=colours)
    if steep is not None:
        bars[steep].set(edgecolor=_COLOURS["batch1"], linewidth=2.5)
    ax.axhline(bound, color=_COLOURS["fail"], ls="--", lw=1)
    for i, text, y, colour in ((first, "first divergent", EXACT_DB + 22, _COLOURS["first"]),
                               (steep, "steepest drop", EXACT_DB + 8, _COLOURS["batch1"])):
        if i is not None:
            ax.annotate(f"{text}: {_cut(short[i])}", xy=(i, heights[i]), xytext=(i, y),
                        ha="left" if i < n / 2 else "right", va="center", fontsize=8, color=colour,
                        fontweight="bold", arrowprops={"arrowstyle": "->", "color": colour, "lw": 1})
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(base, EXACT_DB + 34)
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_ylabel(f"SNR of {_cut(name)} vs TF (dB)", fontsize=8)
    ax.set_xlabel("tensor along the graph (TF name #index)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color=_COLOURS["candidate"], label="within bound"),
               Patch(color=_COLOURS["fail"], label="out of bound")]
    if first is not None:
        handles.append(Patch(color=_COLOURS["first"], label="first divergent"))
    if steep is not None:
        handles.append(Patch(facecolor="none", edgecolor=_COLOURS["batch1"], linewidth=2, label="steepest drop"))
    if exact.any():
        handles.append(Patch(color=_COLOURS["exact"], label=f"exact (drawn at {EXACT_DB:g} dB)"))
    if broken.any():
        handles.append(Patch(color=_COLOURS["broken"], label="SNR −∞ (NaN/Inf, or TF all zeros)"))
    handles.append(ax.plot([], [], color=_COLOURS["fail"], ls="--", lw=1, label=f"bound {bound:g} dB")[0])
    # above the axes: no bar or annotation under it (the card's heading names the artifact)
    ax.legend(handles=handles, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(handles),
              frameon=False, borderaxespad=0.2)
    return fig


def _labelled_ticks(n: int, first: int | None, steep: int | None) -> list[int]:
    """Every tensor's index when ``EXPLAIN_LABELS`` names fit; else evenly spaced ones, the marked tensors among them."""
    if n <= EXPLAIN_LABELS:
        return list(range(n))
    step = -(-n // EXPLAIN_LABELS)
    marked = {i for i in (first, steep) if i is not None}
    return sorted({i for i in range(0, n, step) if not any(0 < abs(i - m) < step for m in marked)} | marked)


def _unscoped(names: Sequence[str]) -> list[str]:
    """``names`` without the scope all the scoped ones share (Keras 3 puts every op under ``functional_1/``)."""
    scoped = [n.split("/")[:-1] for n in names if "/" in n]
    common: list[str] = []
    for parts in zip(*scoped) if scoped else ():
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    cut = len("/".join(common)) + 1 if common else 0
    return [n[cut:] if common and n.split("/")[: len(common)] == common else n for n in names]


def _cut(text: str) -> str:
    """At most ``EXPLAIN_LABEL_CHARS``, cut in the middle: a layer's scope and its op both stay readable."""
    if len(text) <= EXPLAIN_LABEL_CHARS:
        return text
    tail = EXPLAIN_LABEL_CHARS * 3 // 5
    return text[:EXPLAIN_LABEL_CHARS - tail - 1] + "…" + text[-tail:]


# -- one artifact -------------------------------------------------------------------------------


def _artifact_section(report: ParityReport, a: ArtifactResult) -> str:
    esc = html.escape
    res = a.verdict
    head = (
        f'<section class="artifact{"" if a.passed else " failed"}" id="a-{esc(a.name)}" data-artifact="{esc(a.name)}">'
        f'<h3>{esc(a.name)} <span class="badge {res.lower()}">{res}</span> '
        f'<span class="muted">{esc(a.runtime)} · <code>{esc(a.path)}</code></span></h3>'
    )
    explained = artifact_of(a.name)
    if explained in report.explanations:
        head += f'<p class="muted"><a href="#x-{esc(explained)}">Layer by layer: where {esc(explained)} parts from TF</a></p>'
    detail = report.details.get(a.name)
    if detail is None:
        why = f"could not run: {a.error}" if a.error else "no outputs to compare"
        return head + f'<p class="fail">{esc(why)}</p></section>'
    fails = [m.describe() for m in a.failures]
    failed = f'<p class="fail">{esc("; ".join(fails))}</p>' if fails else ""
    binding = _identical_binding(report, a)
    if binding is not None:
        return (head + failed + f'<p class="same" data-same-as="{esc(binding)}">Bit-identical to the Python binding\'s '
                f'outputs (max |Δ| = 0 on every output): histogram, confusion matrix and disagreements are those of '
                f'<a href="#a-{esc(binding)}">{esc(binding)}</a>.</p></section>')
    return (
        head + failed + '<div class="row">'
        + _error_histogram(a, detail)
        + "<div>" + _confusion_table(report, a.name, detail) + "</div></div>"
        + _disagreements(report, a, detail)
        + "</section>"
    )


def _identical_binding(report: ParityReport, a: ArtifactResult) -> str | None:
    """The binding run whose card a native run would repeat: same file, outputs bit-identical (checked, passed)."""
    same = next((m for m in a.metrics if m.name == "binding_max_abs_diff"), None)
    name = artifact_of(a.name)
    if (same is None or not same.passed or same.value != 0 or name == a.name or name not in report.details
            or a.name not in report.details):
        return None
    return name


def _error_histogram(a: ArtifactResult, d: ArtifactDetail) -> str:
    total = int(d.error_counts.sum())
    bound = next((m for m in a.metrics if m.name == "max_abs_error"), None)
    bound_text = (
        f"bound {_OPS.get(bound.op, bound.op)} {format_value(bound.name, bound.bound)}"
        if bound is not None and not bound.informational else
        f"not judged: {unjudged_reason(bound, a.quantization)}" if bound is not None and unjudged_reason(bound, a.quantization)
        else "no bound on the largest error for this variant"
    )
    caption = (
        f'<p class="muted">|{html.escape(a.name)} − TF| over {total:,} logits: largest '
        f"{format_value('max_abs_error', d.max_error)} ({html.escape(bound_text)}).</p>"
    )
    if d.max_error == 0:
        return f'<div class="hist"><p><b>Every one of the {total:,} logits equals TF\'s exactly.</b></p>{caption}</div>'
    fig = _figure(4.8, 2.8)
    ax = fig.add_axes((0.17, 0.17, 0.79, 0.76))  # room for 6-digit tick labels and the y label
    ax.stairs(d.error_counts, d.error_edges, fill=True, color=_COLOURS["fail" if not a.passed else "candidate"])
    ax.set_yscale("log")
    ax.set_ylim(0.7, max(float(d.error_counts.max()), 1.0) * 2)
    ax.set_xlim(0, d.max_error)
    # The bound as a line only where it can be seen (a bound far left of every error sits on the axis).
    if (bound is not None and not bound.informational and isinstance(bound.bound, (int, float))
            and 0.02 * d.max_error <= bound.bound <= d.max_error):
        ax.axvline(float(bound.bound), color=_COLOURS["fail"], ls="--", lw=1, label="bound")
        ax.legend(fontsize=8)
    ax.set_xlabel(f"|{a.name} − TF| per logit", fontsize=9)
    ax.set_ylabel("logits (log scale)", fontsize=9)
    ax.tick_params(labelsize=8)
    # Plain-text tick labels and no minor ticks: mathtext "10^k" labels and log-axis minor
    # ticks cost more to lay out than the rest of the plot.
    ax.minorticks_off()
    ax.yaxis.set_major_formatter(_plain_formatter())
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax.grid(alpha=0.3)
    return '<div class="hist">' + _img(_png(fig), f"histogram of the logit errors of {a.name}", width=480, height=280) + caption + "</div>"


def _confusion_table(report: ParityReport, name: str, d: ArtifactDetail) -> str:
    """True label x predicted class, shaded per row; cells whose count differs from TF's are outlined."""
    esc = html.escape
    cm = d.confusion
    ref = report.reference_confusion
    names = _class_names(report, cm.shape[0])
    head = "".join(f'<th scope="col">{esc(n)}</th>' for n in names)
    rows = []
    for i, row in enumerate(cm):
        total = max(int(row.sum()), 1)
        cells = []
        for j, v in enumerate(row):
            colour = _cm_colour(i == j, v / total, v)
            diff = ref is not None and ref.shape == cm.shape and int(ref[i, j]) != int(v)
            title = f"true {names[i]}, predicted {names[j]}: {int(v)}" + (f" (TF: {int(ref[i, j])})" if ref is not None and ref.shape == cm.shape else "")
            klass = ' class="diff"' if diff else ""
            cells.append(f'<td{klass} style="background:{colour}" title="{esc(title)}">{int(v)}</td>')
        rows.append(f'<tr><th scope="row">{esc(names[i])}</th>{"".join(cells)}</tr>')
    changed = int((ref != cm).sum()) if ref is not None and ref.shape == cm.shape else None
    if changed == 0:  # the same table as TF's: say so instead of repeating it
        return (f'<p class="muted same" data-cm-same="{esc(name)}">Confusion matrix identical to TF\'s '
                '(<a href="#reference-cm">shown once above</a>).</p>')
    note = (
        "" if changed is None else
        f" {changed} cell{'s' if changed != 1 else ''} differ from TF's matrix (outlined)." if changed else
        " Identical to TF's matrix."
    )
    return (
        f'<table class="cm" data-artifact="{esc(name)}"><caption class="muted">confusion matrix: rows true label, '
        f'columns {esc(name)}\'s prediction</caption><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<p class="muted">{esc(note.strip())}</p>'
    )


def _reference_confusion(report: ParityReport) -> str:
    """TF's own confusion matrix, once: the artifacts whose matrix equals it only say so."""
    ref = report.reference_confusion
    if ref is None:
        return ""
    esc = html.escape
    names = _class_names(report, ref.shape[0])
    head = "".join(f'<th scope="col">{esc(n)}</th>' for n in names)
    rows = []
    for i, row in enumerate(ref):
        total = max(int(row.sum()), 1)
        cells = "".join(
            f'<td style="background:{_cm_colour(i == j, v / total, v)}">{int(v)}</td>' for j, v in enumerate(row)
        )
        rows.append(f'<tr><th scope="row">{esc(names[i])}</th>{cells}</tr>')
    return (
        '<section class="artifact" id="reference-cm"><h3>TensorFlow (reference)</h3>'
        '<table class="cm" data-artifact="reference"><caption class="muted">confusion matrix: rows true label, '
        f'columns TF\'s prediction</caption><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></section>"
    )


def _cm_colour(diagonal: bool, share: float, v: int) -> str:
    return (f"rgba(31,119,180,{0.08 + 0.8 * share:.2f})" if diagonal else
            f"rgba(214,39,40,{min(0.85, 3 * share):.2f})" if v else "transparent")


def _class_names(report: ParityReport, n: int) -> list[str]:
    names = list(report.class_names)
    return names[:n] + [str(i) for i in range(len(names), n)]


def _disagreements(report: ParityReport, a: ArtifactResult, d: ArtifactDetail) -> str:
    esc = html.escape
    name = a.name
    # the caption's label: short (the card names the artifact), so a 112 px caption never breaks a word
    label = "native" if is_native_row(name) else (a.format or "this")
    count = report.inputs.get("count")
    of = f" of {count:,}" if isinstance(count, int) else ""
    if d.disagreements == 0:
        return f'<p class="disagreements" data-count="0">Top-1 equals TF\'s on all{of} images.</p>'
    names = _class_names(report, d.confusion.shape[0])
    share = f" ({100 * d.disagreements / count:.2f}%)" if isinstance(count, int) and count else ""
    shown = [i for i in d.shown.tolist() if i in report.images]
    intro = (
        f'<p class="disagreements" data-count="{d.disagreements}" data-shown="{len(shown)}"><b>{d.disagreements:,}</b>{of} '
        f"images{share} where {esc(name)}'s top-1 differs from TF's"
        + (f"; the {len(shown)} where TF was most sure are shown" if len(shown) < d.disagreements else "")
        + ".</p>"
    )
    figs = []
    for i, tf_c, c, y in zip(d.shown.tolist(), d.shown_reference, d.shown_candidate, d.shown_label):
        if i not in report.images:
            continue
        tf_name, c_name, y_name = names[int(tf_c)], names[int(c)], names[int(y)]
        alt = f"TF: {tf_name} / {name}: {c_name}"
        figs.append(
            f'<figure class="d" data-index="{i}">'
            + _img(_upscaled_png(report.images[i]), alt, width=84, height=84)
            + f'<figcaption><span class="tf">TF: {esc(tf_name)}</span><br><span class="cand">{esc(label)}: {esc(c_name)}</span>'
            f'<br><span class="muted">#{i} · true: {esc(y_name)}</span></figcaption></figure>'
        )
    return intro + f'<div class="grid">{"".join(figs)}</div>'


def _upscaled_png(image: np.ndarray) -> bytes:
    """A uint8 grayscale image as PNG, each pixel a square of ``IMAGE_ZOOM`` pixels."""
    from PIL import Image

    arr = np.asarray(image, np.uint8)
    pic = Image.fromarray(arr.reshape(arr.shape[0], -1))  # 2-D uint8: mode "L"
    pic = pic.resize((pic.width * IMAGE_ZOOM, pic.height * IMAGE_ZOOM), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def _versions(report: ParityReport) -> str:
    esc = html.escape
    host = {f"cpu {k}": " ".join(v) if isinstance(v, list) else v for k, v in report.host.items()}
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in [*host.items(), *sorted(report.versions.items())])
    timings = "".join(f"<tr><td>{esc(k)}</td><td>{v:.2f} s</td></tr>" for k, v in report.timings.items() if isinstance(v, (int, float)))
    return (
        "<details><summary>host, versions and timings</summary><div class=\"row\">"
        f'<table class="kv">{rows}</table><table class="kv">{timings}</table></div></details>'
    )
