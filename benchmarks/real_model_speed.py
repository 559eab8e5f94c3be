"""Speed on a real network: where verify, explain and export spend their time beside the runtimes' own work.

``keras.applications.MobileNetV2`` (alpha 0.35, 96x96x3, ``weights=None``, untrained:
speed does not depend on the weights) brought with ``export --keras``, then four
ratios, each measured side by side in this run:

- a native row's wall time vs its Python binding's on the same 1,000 rows, each
  through the stream verify uses (``Stream`` / ``NativeStream``: load, the batch
  pass, the batch-1 runs), A and B interleaved, worst variant;
- ``edgefm verify --native`` (every variant, 1,000 rows, the reference computed)
  vs the floor: the reference's and the bindings' own inference seconds in its report;
- ``verify --explain tflite_int8`` vs a plain ``verify --only tflite_int8``;
- export of every variant vs the sum of its single-variant exports.

Every command is the real CLI in a subprocess; wall seconds and the children's CPU
seconds (user + sys) are both recorded, as the machine may be shared.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURE = "keras.applications.MobileNetV2(alpha=0.35, weights=None, classes=10) at 96x96x3, untrained"
ROWS = 1000
#: export --format/--quantize of each single variant
SINGLE_VARIANTS = (("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"),
                   ("onnx", "none"), ("onnx", "int8"))
#: (key, bound, what) of the section's targets
TARGETS = (
    ("native_vs_binding", 1.5, "native row wall vs its binding's on the same rows (worst variant): {value:.2f}x"),
    ("verify_vs_floor", 1.5, "verify --native wall vs the reference's + bindings' own inference: {value:.2f}x"),
    ("explain_vs_verify", 3.0, "verify --explain tflite_int8 wall vs a plain verify of it: {value:.2f}x"),
    ("export_all_vs_singles", 0.7, "export of every variant vs the sum of single-variant exports: {value:.2f}x"),
)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cli(*args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """The CLI in a subprocess: (wall s, its CPU s, the process)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgefm.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=3600)
    return time.perf_counter() - t0, _children_cpu() - c0, proc


def _checked(proc: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"edgefm {what} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


def _build(root: Path) -> None:
    """The model and its data in a child (TensorFlow stays out of this process until the rows)."""
    code = (
        "import sys, numpy as np, keras\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[1]); keras.utils.set_random_seed(0)\n"
        "net = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,"
        " classifier_activation=None)\n"
        "net.save(root / 'model.keras'); name = net.layers[0].name; rng = np.random.default_rng(0)\n"
        "np.savez(root / 'calibration.npz', **{name: rng.random((64, 96, 96, 3), dtype=np.float32)})\n"
        f"np.savez(root / 'test.npz', **{{name: rng.random(({ROWS}, 96, 96, 3), dtype=np.float32)}})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=True, capture_output=True, stdin=subprocess.DEVNULL,
                   timeout=1800)


def _export(root: Path, out: Path, *extra: str) -> tuple[float, float]:
    wall, cpu, proc = _cli("export", "--keras", str(root / "model.keras"), "--artifacts", str(out), "--data",
                           str(root / "calibration.npz"), "--calibration-samples", "64", "--keep-going", *extra)
    _checked(proc, "export")
    return wall, cpu


class _Rows:
    """``ROWS`` inputs in verify's batches, and its batch-1 head (``invariance_samples``)."""

    def __init__(self, x: np.ndarray, name: str, head: int = 64) -> None:
        self.x, self.name, self.head = x, name, {name: x[:head]}

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.x), batch_size):
            yield {self.name: self.x[i : i + batch_size]}


def rows_side_by_side(art: Path, data: Path, reps: int = 2) -> list[dict[str, Any]]:
    """Per model file: binding and native row through verify's streams, interleaved; wall and CPU seconds."""
    from edgefm.core.manifest import Manifest
    from runtime_check.runtimes.registry import NATIVE, format_of, runner_kinds, runtime_for
    from runtime_check.verify.streams import NativeStream, Stream, stream_through

    z = np.load(data)
    rows = _Rows(z[z.files[0]], z.files[0])
    out = []
    for name, a in Manifest.load(art).artifacts.items():
        path = art / a.path
        kinds = runner_kinds(format_of(path), NATIVE)
        if not kinds:
            continue
        made = {"binding": lambda p=path: Stream("binding", runtime_for(p)),
                "native": lambda p=path, k=kinds[0]: NativeStream("native", k.runtime_class()(p))}
        got: dict[str, list[tuple[float, float]]] = {"binding": [], "native": []}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for _ in range(reps):
            for label, make in made.items():
                stream = make()
                c0, t0 = _self_cpu() + _children_cpu(), time.perf_counter()
                stream_through([stream], rows, 1000)
                got[label].append((time.perf_counter() - t0, _self_cpu() + _children_cpu() - c0))
                if stream.error is not None:
                    raise stream.error
                outputs[label] = {**stream.outputs, **{k + "/b1": v for k, v in stream.batch1.items()}}
        diff = max(float(np.max(np.abs(outputs["native"][k].astype(np.float64) - v))) for k, v in outputs["binding"].items())
        wall = {k: sum(w for w, _ in v) for k, v in got.items()}
        cpu = {k: sum(c for _, c in v) for k, v in got.items()}
        out.append({"name": name, "binding_wall": wall["binding"] / reps, "native_wall": wall["native"] / reps,
                    "binding_cpu": cpu["binding"] / reps, "native_cpu": cpu["native"] / reps,
                    "wall_ratio": wall["native"] / wall["binding"], "cpu_ratio": cpu["native"] / max(cpu["binding"], 1e-9),
                    "binding_max_abs_diff": diff})
    return out


def real_model_speed_section(*, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    del data_dir  # the inputs are generated: speed does not depend on them
    with tempfile.TemporaryDirectory(prefix="edgefm-bench-real-") as tmp:
        root = Path(tmp)
        _build(root)
        art, data = root / "artifacts", root / "test.npz"
        export_all = _export(root, art)
        singles = [] if quick else [_export(root, root / f"single-{f}-{q}", "--format", f, "--quantize", q)
                                    for f, q in SINGLE_VARIANTS]
        rows = rows_side_by_side(art, data, reps=1 if quick else 2)
        common = ("--artifacts", str(art), "--data", str(data), "--no-html", "--json")
        v_wall, v_cpu, proc = _cli("verify", *common, "--native", "--report", str(root / "native.json"))
        report = json.loads(_checked(proc, "verify").stdout)
        own = lambda t: t.get("infer", 0.0) + t.get("batch1", 0.0)  # noqa: E731
        floor = own(report["reference"]["timings"]) + sum(
            own(a.get("timings") or {}) for n, a in report["artifacts"].items() if "@" not in n)
        plain = _cli("verify", *common, "--only", "tflite_int8", "--report", str(root / "plain.json"))
        explain = _cli("verify", *common, "--only", "tflite_int8", "--explain", "tflite_int8",
                       "--report", str(root / "explain.json"))
        for _, _, p in (plain, explain):
            _checked(p, "verify")
    values = {
        "native_vs_binding": max(r["wall_ratio"] for r in rows),
        "verify_vs_floor": v_wall / floor,
        "explain_vs_verify": explain[0] / plain[0],
        "export_all_vs_singles": export_all[0] / sum(w for w, _ in singles) if singles else None,
    }
    targets = [{"name": k, "value": values[k], "bound": bound, "what": what,
                "status": "SKIP" if values[k] is None else ("PASS" if values[k] <= bound else "FAIL")}
               for k, bound, what in TARGETS]
    return {
        "architecture": ARCHITECTURE, "rows": rows, "inputs": ROWS,
        "export": {"all": export_all, "singles": dict(zip([f"{f}_{q}" for f, q in SINGLE_VARIANTS], singles))},
        "verify": {"wall": v_wall, "cpu": v_cpu, "floor": floor, "timings": report.get("timings"),
                   "reference_timings": report["reference"]["timings"]},
        "explain": {"plain": plain[:2], "explain": explain[:2]},
        "values": values, "targets": targets,
    }


def target_lines(section: dict[str, Any]) -> list[str]:
    out = []
    for t in section["targets"]:
        what = "not measured" if t["value"] is None else t["what"].format(value=t["value"])
        out.append(f"{t['status']} {what} (target ≤ {t['bound']:g}×)")
    return out


def markdown(section: dict[str, Any]) -> str:
    lines = [f"{section['architecture']}; {section['inputs']:,} random inputs. Wall and CPU (user + sys) seconds.", "",
             "| variant | binding wall s | native wall s | native/binding wall | native/binding CPU | max abs diff |",
             "|---|---|---|---|---|---|"]
    for r in section["rows"]:
        lines.append(f"| {r['name']} | {r['binding_wall']:.2f} | {r['native_wall']:.2f} | {r['wall_ratio']:.2f}× | "
                     f"{r['cpu_ratio']:.2f}× | {r['binding_max_abs_diff']:g} |")
    v, e, x = section["verify"], section["export"], section["explain"]
    lines += ["", f"- verify --native: {v['wall']:.1f} s wall, {v['cpu']:.1f} s CPU; the runtimes' own inference "
              f"{v['floor']:.1f} s; stages {json.dumps(v['timings'])}",
              f"- verify --only tflite_int8: {x['plain'][0]:.1f} s wall ({x['plain'][1]:.1f} s CPU); with --explain "
              f"{x['explain'][0]:.1f} s ({x['explain'][1]:.1f} s CPU)",
              f"- export of every variant: {e['all'][0]:.1f} s wall ({e['all'][1]:.1f} s CPU); single variants: "
              + ", ".join(f"{k} {w:.1f} s" for k, (w, _) in e["singles"].items()), ""]
    return "\n".join(lines + [f"- {ln}" for ln in target_lines(section)])


if __name__ == "__main__":
    result = real_model_speed_section(quick="--quick" in sys.argv)
    print(markdown(result))
    print(json.dumps(result, default=str), file=sys.stderr)
