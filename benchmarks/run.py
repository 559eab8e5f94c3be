"""The benchmark suite: every speed, size and accuracy figure of edgefm, measured in one run.

    python -m benchmarks.run [--out bench-results] [--quick] [--skip-train-speed] [--skip-distributed]
                             [--skip-any-model] [--json] [--data-dir DIR]

In order, on this machine:

1. end to end: ``edgefm train``, ``export`` and ``verify`` with their defaults, each
   the real CLI in a subprocess, in a temporary artifacts directory (seconds per
   stage and in total). The suite trains only here: the sections below use the
   model and the exports of this run.
2. inference: batch-1 and batch-256 latency p50/p99 and throughput of the TF
   SavedModel, every LiteRT quantization, ONNX Runtime and the native C runners,
   each in a fresh process (``runtime_check.tools.benchmark``);
3. size of every artifact relative to the float32 TFLite file;
4. accuracy of every artifact and its change vs TF (the verify report of step 1);
5. verify: cold vs warm ``edgefm verify`` (the reference computed vs reused from
   its cache), the load probe (one child for all artifacts vs one per artifact),
   and verify's seconds and peak RSS at 1,000, 10,000 and 60,000 inputs
   (``benchmarks.verify_speed``);
6. device: ``edgefm verify --device qemu-aarch64:cortex-a72``, the device rows' parity and
   emulated latency beside the host rows (``benchmarks.device``);
7. training: per-epoch median of edgefm graph mode vs ``--eager`` vs Keras
   ``model.fit``, the MLP's GFLOP/s beside the same matmuls alone, and the CNN per seed
   beside the baseline CNN (``benchmarks.train_speed``);
8. distributed: seconds per epoch of one process and ``--workers 2`` side by side,
   and their largest weight difference (``benchmarks.distributed``);
9. a real architecture (``keras.applications.MobileNetV2``, ``weights=None``) at 32x32
   and 64x64: brought with ``export --keras``, export and verify seconds, sizes and
   parity per variant (``benchmarks.any_model``);
10. soundness: the zoo of real models (``benchmarks.zoo``), every good export and every
   planted fault through verify, with its two PASS/FAIL targets (``benchmarks.soundness``;
   skipped with ``--skip-any-model``, one model with ``--quick``).

Writes ``OUT/bench.md`` and ``OUT/bench.json`` atomically and prints the Markdown
(or the JSON with ``--json``); progress goes to stderr. The targets are printed as
PASS/FAIL lines and never change the exit status; a stage that crashes does (1).
Every figure comes from this run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# After the TF log level (ruff's E402 allows imports after an os.environ change).
from benchmarks import any_model, device, explain_speed, inference, soundness, verify_speed
from edgefm.core.errors import EdgefmError
from edgefm.core.manifest import utc_now

SCHEMA_VERSION = 1
DEFAULT_OUT = Path("bench-results")
#: ``edgefm`` stages of the end-to-end run, in order, each with its defaults.
E2E_STAGES: tuple[str, ...] = ("train", "export", "verify")
STAGE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Effort:
    """How many runs and epochs; ``--quick`` trades precision for time (for the test)."""

    runs: int
    warmup: int
    epochs: int
    eager_epochs: int
    verify_reps: int  # cold/warm verify pairs (and at least 3 probe rounds)
    cnn_epochs: int | None  # None: each CNN's own default epochs (what the CNN targets mean)
    cnn_seeds: tuple[int, ...]  # seeds of today's CNN (its accuracy target holds for the lowest)
    mlp_rounds: int = 1  # interleaved rounds of the MLP contenders (``train_speed.run``)


FULL = Effort(runs=100, warmup=10, epochs=5, eager_epochs=2, verify_reps=3, cnn_epochs=None, cnn_seeds=(0, 1),
              mlp_rounds=3)
# Three graph epochs, so the median is not the first (traced) epoch; one CNN epoch each (its targets
# are then computed but mean little).
QUICK = Effort(runs=10, warmup=2, epochs=3, eager_epochs=1, verify_reps=1, cnn_epochs=1, cnn_seeds=(0,))


#: the .tflite files whose native batch-1 p50 is held against the Python binding's
NATIVE_TARGETS: tuple[str, ...] = ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8")


@dataclass(frozen=True)
class Target:
    """One goal the issue sets: ``value op bound``, from a figure of this run."""

    name: str
    what: str  # how the value reads, e.g. "{value:.1f}× faster"
    op: str  # ">=" or "<="
    bound: float
    goal: float | None = None
    unit: str = "×"  # how the bound reads: "target ≥ 12×", "target ≥ 92%"


TARGETS: tuple[Target, ...] = (
    Target("training speed-up over Keras fit", "edgefm graph (MLP) {value:.1f}× faster per epoch than Keras model.fit "
           "(the faster of its two thread settings)", ">=", 12.0),
    Target("LiteRT float32 batch-1 p50 vs TF SavedModel", "LiteRT float32 batch-1 p50 {value:.1f}× lower than the TF SavedModel's", ">=", 10.0),
    Target("int8 TFLite size vs float32", "int8 TFLite {value:.2f}× the float32 size", "<=", 0.35),
    Target("float16 TFLite size vs float32", "float16 TFLite {value:.2f}× the float32 size", "<=", 0.6),
    Target("warm verify vs cold verify", "warm verify of every artifact on 10,000 images (reference reused) "
           "{value:.2f}× the cold verify's wall time", "<=", 0.4),
    Target("probe: one child vs one per artifact", "the load probe in one child {value:.2f}× the probe with a child "
           "per artifact, six artifacts", "<=", 0.3),
    Target("verify peak RSS 60k vs 10k inputs", "verify's peak RSS at 60,000 inputs {value:.2f}× that at 10,000 "
           "(the larger of cold and warm)", "<=", 1.3),
    *(Target(f"native vs binding batch-1 p50, {name}", f"native C API batch-1 p50 of {name} {{value:.2f}}× the "
             "Python binding's", "<=", 1.2) for name in NATIVE_TARGETS),
    Target("explain one MLP artifact, 1,000 inputs", "verify --explain of tflite_int8 on 1,000 inputs {value:.1f} s "
           "(a fresh process, imports and TF graph freeze included)", "<=", 10.0, unit=" s"),
    Target("explain peak RSS 10k vs 1k inputs", "explain's peak RSS at 10,000 inputs {value:.2f}× that at 1,000",
           "<=", 1.3),
    Target("CNN test accuracy", "CNN test accuracy {value:.2f}% (the lowest of its seeds)", ">=", 92.0, unit="%"),
    Target("CNN parameters", "CNN {value:,.0f} parameters", "<=", 100_000, unit=" parameters"),
    Target("CNN training time vs baseline", "CNN training {value:.2f}× the seconds of the baseline CNN trained in "
           "this run", "<=", 1.5),
)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- the machine -------------------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            k, sep, v = line.partition(":")
            if sep and k.strip() == key:
                return v.strip()
    return None


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))}, Linux {platform.release()}"
    return platform.platform()


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, OS, tool versions, date and load: where and when the figures were measured."""
    from edgefm.core.manifest import tool_versions

    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    versions = tool_versions("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "onnxruntime", "numpy")
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": int(mem_kb.split()[0]) / 1024**2 if mem_kb else None,
        "os": _os_name(),
        "python": platform.python_version(),
        "tensorflow": versions.get("tensorflow-cpu") or versions.get("tensorflow"),
        "keras": versions.get("keras"),
        "litert": versions.get("ai-edge-litert"),
        "onnxruntime": versions.get("onnxruntime"),
        "numpy": versions.get("numpy"),
        "date": utc_now(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# -- end to end ------------------------------------------------------------------------------


def end_to_end(artifacts: Path, data_dir: Path | None) -> dict[str, Any]:
    """Wall time of ``edgefm train``, ``export`` and ``verify`` with defaults, each a real CLI process.

    ``verify`` exiting 1 with a report is a parity failure, recorded and not a crash;
    any other non-zero exit is an ``EdgefmError`` with the command's last stderr lines.
    """
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    stages: dict[str, float] = {}
    verify_status = None
    t_start = time.perf_counter()
    for stage in E2E_STAGES:
        cmd = [sys.executable, "-m", "edgefm.cli", stage, "--artifacts", str(artifacts), "-q", *extra]
        say(f"end to end: edgefm {stage}")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STAGE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise EdgefmError(f"`edgefm {stage}` did not finish within {STAGE_TIMEOUT_S:.0f} s.") from e
        stages[stage] = time.perf_counter() - t0
        if stage == "verify":
            verify_status = proc.returncode
        parity_failure = stage == "verify" and proc.returncode == 1 and (artifacts / "verify-report.json").is_file()
        if proc.returncode != 0 and not parity_failure:
            tail = " / ".join(ln for ln in proc.stderr.strip().splitlines()[-3:] if ln.strip())
            raise EdgefmError(f"`edgefm {' '.join(cmd[3:])}` exited with status {proc.returncode}: {tail or 'no message'}")
    return {
        "commands": [f"edgefm {s} --artifacts TMP -q" + (" --data-dir DIR" if extra else "") for s in E2E_STAGES],
        "stage_seconds": stages,
        "total_seconds": time.perf_counter() - t_start,
        "verify_exit_status": verify_status,
    }


def end_to_end_markdown(section: dict[str, Any]) -> str:
    lines = ["| stage (defaults, real CLI process) | seconds |", "|---|---:|"]
    names = {"export": "export (every format and quantization)"}
    for stage, s in section["stage_seconds"].items():
        lines.append(f"| edgefm {names.get(stage, stage)} | {s:.1f} |")
    lines.append(f"| **total** | **{section['total_seconds']:.1f}** |")
    if section["verify_exit_status"]:
        lines += ["", f"`edgefm verify` exited {section['verify_exit_status']}: some artifacts do not match TF."]
    return "\n".join(lines)


# -- training ------------------------------------------------------------------------------------


def training(effort: Effort, data_dir: Path | None) -> dict[str, Any]:
    from benchmarks import train_speed

    say(f"training speed: {effort.mlp_rounds} x ({effort.epochs} graph and {effort.epochs} Keras fit epochs), "
        f"{effort.eager_epochs} eager epochs, the matmul limit, the CNN (seeds {', '.join(map(str, effort.cnn_seeds))}) "
        "and the baseline CNN")
    return train_speed.run(effort.epochs, effort.eager_epochs, data_dir, cnn_epochs=effort.cnn_epochs,
                           cnn_seeds=effort.cnn_seeds, rounds=effort.mlp_rounds)


def training_markdown(section: dict[str, Any]) -> str:
    from benchmarks import train_speed

    return (
        train_speed.markdown(section)
        + f"\n\n- edgefm graph mode is **{section['speedup_vs_keras_fit']:.1f}×** faster per epoch than Keras "
        f"`model.fit` and **{section['speedup_vs_eager']:.1f}×** faster than `--eager` (medians of "
        f"{len(section['epochs']['edgefm graph'])}, {len(section['epochs']['edgefm --eager'])} and "
        f"{len(section['epochs']['keras fit (numpy)'])} epochs; Keras test accuracy "
        f"{100 * section['keras_test_accuracy']:.2f}%)."
    )


def distributed(effort: Effort, data_dir: Path | None) -> dict[str, Any]:
    from benchmarks import distributed as dist

    say(f"distributed: {effort.epochs} epochs each of 1 process (with and without XLA) and --workers 2")
    return dist.run(effort.epochs, data_dir)


def distributed_markdown(section: dict[str, Any]) -> str:
    from benchmarks import distributed as dist

    return dist.markdown(section)


# -- targets ----------------------------------------------------------------------------------


def _row(section: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not section or "rows" not in section:
        return None
    return next((r for r in section["rows"] if r["name"] == name), None)


def target_values(sections: dict[str, Any]) -> list[float | None]:
    """The measured value of each of ``TARGETS``, ``None`` where its section did not run."""
    train = sections.get("training") or {}
    tfl = _row(sections.get("inference"), "tflite_float32")
    b1 = (tfl or {}).get("latency", {}).get("1", {})
    sizes = [(_row(sections.get("size"), n) or {}).get("vs_float32_tflite") for n in ("tflite_int8", "tflite_float16")]
    verify = sections.get("verify") or {}
    verify_values = [
        (verify.get("warm_vs_cold") or {}).get("warm_vs_cold"),
        (verify.get("probe") or {}).get("one_vs_per_artifact"),
        (verify.get("growth") or {}).get("rss_ratio_worst"),
    ]
    inf = sections.get("inference")
    native = [inference.native_vs_binding_p50(inf, n) if inf and "rows" in inf else None for n in NATIVE_TARGETS]
    cnn = train.get("cnn") or {}
    cnn_values = [100 * cnn["min_test_accuracy"] if "min_test_accuracy" in cnn else None, cnn.get("parameters"),
                  cnn.get("time_vs_baseline")]
    explained = sections.get("explain") or {}
    explain_values = [explained.get("seconds_1k"), explained.get("rss_ratio")]
    return [train.get("speedup_vs_keras_fit"), b1.get("speedup_vs_tf"), *sizes, *verify_values, *native,
            *explain_values, *cnn_values]


def check_targets(sections: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t, value in zip(TARGETS, target_values(sections)):
        if value is None or not math.isfinite(value):
            status = "SKIP"
        else:
            status = "PASS" if (value >= t.bound if t.op == ">=" else value <= t.bound) else "FAIL"
        goal_met = None if t.goal is None or value is None else value >= t.goal
        out.append({"name": t.name, "value": value, "op": t.op, "bound": t.bound, "goal": t.goal, "unit": t.unit,
                    "goal_met": goal_met, "status": status, "what": t.what})
    return out


def target_line(t: dict[str, Any]) -> str:
    bound = f"target {'≥' if t['op'] == '>=' else '≤'} {t['bound']:g}{t.get('unit', '×')}"
    if t["status"] == "SKIP":
        return f"SKIP {t['name']}: not measured in this run ({bound})"
    goal = "" if t["goal"] is None else f"; goal {t['goal']:g}×: {'reached' if t['goal_met'] else 'not reached'}"
    return f"{t['status']} {t['what'].format(value=t['value'])} ({bound}{goal})"


# -- the report ----------------------------------------------------------------------------------


def header_markdown(m: dict[str, Any], quick: bool) -> str:
    ram = f"{m['ram_gib']:.1f} GiB RAM" if m["ram_gib"] else "RAM unknown"
    cores = f"{m['cores']} cores" + (f" ({m['usable_cores']} usable)" if m["usable_cores"] != m["cores"] else "")
    load = m["load_average_at_start"]
    return (
        "# edgefm benchmark\n\n"
        f"Measured on {m['cpu']}, {cores}, {ram}, {m['os']}; Python {m['python']}, TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, LiteRT {m['litert']}, ONNX Runtime {m['onnxruntime']}; {m['date']}. "
        + (f"Load average at start {load:.2f} (a shared machine makes timings noisy). " if load is not None else "")
        + ("Mode: `--quick` (fewer runs and epochs)." if quick else "Mode: full.")
    )


SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("end_to_end", "End to end: `edgefm train → export → verify`", end_to_end_markdown),
    ("training", "Training: the MLP per epoch vs Keras fit and vs the matmul limit; the CNN vs its baseline",
     training_markdown),
    ("distributed", "Training on two workers (this machine) vs one process", distributed_markdown),
    ("inference", "Inference latency and throughput", inference.inference_markdown),
    ("size", "Size", inference.size_markdown),
    ("accuracy", "Accuracy on the test split", inference.accuracy_markdown),
    ("verify", "Verify: cold vs warm, the load probe, cost growth", verify_speed.markdown),
    ("device", "On the device: emulated Arm64 rows beside the host rows", device.markdown),
    ("explain", "verify --explain: seconds and peak memory by input count", explain_speed.markdown),
    ("any_model", "A real architecture: MobileNetV2 at two input sizes", any_model.markdown),
    ("soundness", "Soundness of the verdict: good exports pass, planted faults fail (benchmarks.zoo)",
     soundness.markdown),
)


def markdown(result: dict[str, Any]) -> str:
    parts = [header_markdown(result["machine"], result["options"]["quick"])]
    for key, title, render in SECTIONS:
        section = result.get(key)
        if section is None:
            continue
        if "error" in section:
            body = f"CRASHED: {section['error']}"
        elif section.get("skipped"):
            body = f"Skipped: {section['skipped']}"
        else:
            body = render(section)
        parts.append(f"## {title}\n\n{body}")
    parts.append("## Targets\n\n" + "\n".join(f"- {target_line(t)}" for t in result["targets"]))
    if result["crashed"]:
        parts.append("Crashed stages: " + ", ".join(result["crashed"]))
    parts.append(f"Suite wall time: {result['total_seconds']:.1f} s.")
    return "\n\n".join(parts) + "\n"


def json_safe(obj: Any) -> Any:
    """NaN and infinities become ``null``: the JSON stays strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# -- the run ----------------------------------------------------------------------------------------


def _stage(result: dict[str, Any], key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one section; a crash is recorded in its place (and in ``crashed``), never raised."""
    t0 = time.perf_counter()
    try:
        section = fn()
    except Exception as e:  # noqa: BLE001 - one crashed stage must not hide the others
        message = str(e) if isinstance(e, EdgefmError) else f"{type(e).__name__}: {e}"
        result[key] = {"error": message, "traceback": traceback.format_exc()}
        result["crashed"].append(key)
        say(f"{key}: CRASHED: {message}")
        return None
    section["seconds"] = time.perf_counter() - t0
    result[key] = section
    say(f"{key}: done in {section['seconds']:.1f} s")
    return section


def run(out: Path, *, quick: bool = False, skip_train_speed: bool = False, skip_distributed: bool = False,
        data_dir: Path | None = None, skip_any_model: bool = False) -> dict[str, Any]:
    """Run every section, write ``OUT/bench.json`` and ``OUT/bench.md``; return the result."""
    from edgefm.core.fileio import atomic_write_json, atomic_write_text

    t_start = time.perf_counter()
    effort = QUICK if quick else FULL
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "machine": machine(),
        "options": {"quick": quick, "skip_train_speed": skip_train_speed, "skip_distributed": skip_distributed,
                    "skip_any_model": skip_any_model,
                    "data_dir": None if data_dir is None else str(data_dir), **effort.__dict__},
        "crashed": [],
    }
    with tempfile.TemporaryDirectory(prefix="edgefm-bench-") as tmp:
        artifacts = Path(tmp) / "artifacts"
        e2e = _stage(result, "end_to_end", lambda: end_to_end(artifacts, data_dir))
        if e2e is None:
            for key in ("inference", "size", "accuracy", "verify", "explain", "device"):
                result[key] = {"skipped": "the end-to-end run produced no artifacts"}
        else:
            say("inference: each runtime in a fresh process")
            _stage(result, "inference", lambda: inference.inference_section(
                artifacts, runs=effort.runs, warmup=effort.warmup, data_dir=data_dir))
            _stage(result, "size", lambda: inference.size_section(artifacts))
            _stage(result, "accuracy", lambda: inference.accuracy_section(artifacts / "verify-report.json"))
            say("verify: cold vs warm, the probe, 1k/10k/60k inputs")
            _stage(result, "verify", lambda: verify_speed.verify_section(
                artifacts, Path(tmp), reps=effort.verify_reps, data_dir=data_dir))
            say("explain: verify --explain tflite_int8 on 1,000 and 10,000 inputs")
            _stage(result, "explain", lambda: explain_speed.explain_section(artifacts, data_dir=data_dir))
            say("device: verify --device qemu-aarch64:cortex-a72")
            # --quick (the suite's own test): the two int8 files on 500 images, ~10 s instead of ~30 s
            _stage(result, "device", lambda: device.device_section(
                artifacts, Path(tmp), samples=500 if quick else None, data_dir=data_dir, inference=result.get("inference"),
                only=("tflite_int8", "onnx_int8") if quick else ()))
    if skip_any_model:
        result["any_model"] = {"skipped": "--skip-any-model"}
    else:
        say("any model: MobileNetV2 brought from Keras, exported and verified")
        _stage(result, "any_model", lambda: any_model.any_model_section(quick=quick, data_dir=data_dir))
        say("soundness: the zoo's good exports and planted faults through verify")
        _stage(result, "soundness", lambda: soundness.soundness_section(["resnet"] if quick else None,
                                                                        data_dir=data_dir))
    if skip_train_speed:
        result["training"] = {"skipped": "--skip-train-speed"}
    else:
        _stage(result, "training", lambda: training(effort, data_dir))
    if skip_distributed or skip_train_speed:  # both are training-speed figures
        result["distributed"] = {"skipped": "--skip-train-speed" if skip_train_speed else "--skip-distributed"}
    else:
        _stage(result, "distributed", lambda: distributed(effort, data_dir))
    inf = result.get("inference") or {}
    failed = [r["name"] for r in inf.get("rows", []) if r["status"] == "failed"]
    if failed:  # a model that its (available) runtime could not run is a crash of that stage
        result["crashed"].append("inference (" + ", ".join(failed) + ")")
    result["targets"] = check_targets(result)
    result["total_seconds"] = time.perf_counter() - t_start
    result = json_safe(result)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for bench.md and bench.json (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer timed runs and epochs (for the test)")
    p.add_argument("--skip-train-speed", action="store_true", help="leave out graph vs eager vs Keras fit, and one process vs --workers 2")
    p.add_argument("--skip-distributed", action="store_true", help="leave out one process vs --workers 2")
    p.add_argument("--skip-any-model", action="store_true",
                   help="leave out the MobileNetV2 rows (minutes: Keras fits and exports a real architecture)")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the Markdown")
    p.add_argument("--data-dir", type=Path, default=None, help="directory with the four Fashion-MNIST IDX files")
    a = p.parse_args(argv)
    if a.out.exists() and not a.out.is_dir():
        p.error(f"--out {a.out} is a file; pass a directory for bench.md and bench.json.")
    if a.data_dir is not None and not a.data_dir.is_dir():
        p.error(f"--data-dir {a.data_dir} is not a directory; pass the one that holds the Fashion-MNIST IDX files.")
    result = run(a.out, quick=a.quick, skip_train_speed=a.skip_train_speed, skip_distributed=a.skip_distributed,
                 data_dir=a.data_dir, skip_any_model=a.skip_any_model)
    if a.json:
        import json

        print(json.dumps(result, indent=2))
    else:
        print(markdown(result), end="")
    say(f"wrote {a.out / 'bench.md'} and {a.out / 'bench.json'} ({result['total_seconds']:.0f} s)")
    if result["crashed"]:
        say("crashed: " + ", ".join(result["crashed"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
