"""Every command survives bad input: a specific one-paragraph message, a non-zero exit, no crash.

Each case runs the real ``edgefm`` command group (in this process, ``invoke_cli``;
corrupt model files through the entry point in a subprocess, ``run_cli``, where a
crash would show) and asserts the exit status (2 for usage errors, never 70 -- the
"unexpected ... this is a bug" status), that the message names the file or option,
and that nothing crashed: no "Traceback", no "Fatal Python error", no segfault or
abort (a negative return code is a death by signal).

Corrupt model files (empty, truncated, random bytes, the other format's bytes)
go through predict, inspect and benchmark as ``--model``, and through verify
sitting inside an artifacts directory: one verify run reads a manifest that lists
every corrupt file, and each parametrized case checks its own artifact's line.
Everything shares one tiny exported artifacts directory (module scope); only the
cases that must load a SavedModel import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgefm.core.manifest import Artifact, Manifest

from conftest import REPO, invoke_cli, run_cli

CRASH_MARKERS = ("Traceback", "Fatal Python error", "Segmentation fault", "Aborted", "core dumped")
BUG_EXIT = 70  # EdgefmGroup.invoke's "unexpected X ... this is a bug"


def assert_fails_cleanly(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Exit ``code`` (never a signal, never 70), no crash output, and a message containing every needle."""
    both = proc.stdout + proc.stderr
    assert proc.returncode > 0, f"exit {proc.returncode} (negative: killed by a signal)\n{both[-2000:]}"
    assert proc.returncode != BUG_EXIT, f"a bug, not a specific message:\n{proc.stderr[-2000:]}"
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stderr[-2000:]}"
    for marker in CRASH_MARKERS:
        assert marker not in both, f"{marker!r} in the output:\n{both[-3000:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    message = " ".join(proc.stderr.split())
    if proc.stderr.lstrip().startswith("Usage:"):  # click's own usage errors (unknown choice, bad type)
        assert lines[-1].startswith("Error: "), proc.stderr
    else:  # edgefm's: one paragraph on one line, the last one
        assert lines[-1].startswith("error: "), proc.stderr
        message = lines[-1]
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    return message


# -- shared fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tiny_data_session: tuple[Path, dict[str, str]]) -> Path:
    return tiny_data_session[0]


@pytest.fixture(scope="module")
def exported(exported_float32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_artifacts with a float32 .tflite and .onnx exported by the real exporter (the run's, copied)."""
    root = tmp_path_factory.mktemp("bad_input") / "artifacts"
    shutil.copytree(exported_float32, root)
    return root


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    a = np.zeros((28, 28), dtype=np.uint8)
    a[4:26, 9:19] = 220
    path = tmp_path_factory.mktemp("images") / "trouser.png"
    Image.fromarray(a).save(path)
    return path


def _corrupt(kind: str, own: bytes, other: bytes) -> bytes:
    if kind == "empty":
        return b""
    if kind == "truncated":
        return own[: len(own) // 2]
    if kind == "truncated-header":
        return own[:12]
    if kind == "random":
        return random.Random(7).randbytes(4096)
    if kind == "foreign":  # the other format's bytes under this suffix
        return other
    raise AssertionError(kind)


CORRUPTIONS = ("empty", "truncated", "truncated-header", "random", "foreign")
FORMATS = {"tflite": "model_float32.tflite", "onnx": "model.onnx"}
CASES = [(kind, fmt) for kind in CORRUPTIONS for fmt in FORMATS]
CASE_IDS = [f"{kind}-{fmt}" for kind, fmt in CASES]
# What the message must say about each file (besides naming it and saying to re-export).
NOT_ONNX = "is not a valid ONNX protobuf"
EXPECTED = {
    ("empty", "tflite"): "is empty (0 bytes)",
    ("empty", "onnx"): "is empty (0 bytes)",
    ("truncated", "tflite"): "The runtime cannot load",  # passes the cheap check; the probe process refuses it
    ("truncated", "onnx"): NOT_ONNX,
    ("truncated-header", "tflite"): "is truncated or corrupt: its root table offset",
    ("truncated-header", "onnx"): NOT_ONNX,
    ("random", "tflite"): "is not a TFLite model: its flatbuffer identifier is",
    ("random", "onnx"): NOT_ONNX,
    ("foreign", "tflite"): "is not a TFLite model: its flatbuffer identifier is",
    ("foreign", "onnx"): NOT_ONNX,
}


@pytest.fixture(scope="module")
def corrupt_files(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every (kind, format) corrupt model file, in its own directory."""
    d = tmp_path_factory.mktemp("corrupt")
    good = {fmt: (exported / name).read_bytes() for fmt, name in FORMATS.items()}
    out = {}
    for kind, fmt in CASES:
        other = good["onnx" if fmt == "tflite" else "tflite"]
        path = d / f"{kind}.{fmt}"
        path.write_bytes(_corrupt(kind, good[fmt], other))
        out[(kind, fmt)] = path
    return out


@pytest.mark.parametrize(("kind", "fmt"), CASES, ids=CASE_IDS)
def test_corrupt_model_predict(corrupt_files: dict[tuple[str, str], Path], image: Path, kind: str, fmt: str) -> None:
    path = corrupt_files[(kind, fmt)]
    proc = run_cli("predict", str(image), "--model", str(path))
    assert_fails_cleanly(proc, 1, str(path), EXPECTED[(kind, fmt)], "edgefm export")


@pytest.mark.parametrize(("kind", "fmt"), CASES, ids=CASE_IDS)
def test_corrupt_model_inspect(corrupt_files: dict[tuple[str, str], Path], kind: str, fmt: str) -> None:
    path = corrupt_files[(kind, fmt)]
    proc = run_cli("inspect", str(path))
    assert_fails_cleanly(proc, 1, str(path), EXPECTED[(kind, fmt)], "edgefm export")


@pytest.mark.parametrize(("kind", "fmt"), CASES, ids=CASE_IDS)
def test_corrupt_model_benchmark(corrupt_files: dict[tuple[str, str], Path], tmp_path: Path, kind: str, fmt: str) -> None:
    """``--artifacts`` without a manifest: only the file itself is measured (no TensorFlow baseline)."""
    path = corrupt_files[(kind, fmt)]
    proc = run_cli("benchmark", "--model", str(path), "--artifacts", str(tmp_path), "--runs", "1", "--warmup", "0",
                   "--batch-sizes", "1")
    message = assert_fails_cleanly(proc, 1, "could not be benchmarked", str(path), EXPECTED[(kind, fmt)])
    assert "crashed" not in message


@pytest.fixture(scope="module")
def verify_all_corrupt(exported: Path, corrupt_files: dict[tuple[str, str], Path], data_dir: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    """One ``edgefm verify`` over an artifacts dir whose manifest lists every corrupt file (checksums match)."""
    root = tmp_path_factory.mktemp("verify_corrupt") / "artifacts"
    shutil.copytree(exported, root)
    manifest = Manifest.load(root)
    template = {fmt: manifest.artifacts[f"{fmt}_float32"] for fmt in FORMATS}
    manifest.artifacts = {"savedmodel": manifest.artifacts["savedmodel"]}
    (root / "bad").mkdir()
    for (kind, fmt), src in corrupt_files.items():
        dst = root / "bad" / src.name
        shutil.copyfile(src, dst)
        t = template[fmt]
        manifest.artifacts[f"{fmt}_{kind}"] = Artifact.describe(
            root, dst, format=fmt, quantization="none", inputs=t.inputs, outputs=t.outputs)
    manifest.save(root)
    report = root / "report.json"
    proc = run_cli("verify", "--artifacts", str(root), "--data-dir", str(data_dir), "--no-verify",
                   "--samples", "16", "--report", str(report))
    data = json.loads(report.read_text()) if report.is_file() else {}
    return proc, data, root


@pytest.mark.parametrize(("kind", "fmt"), CASES, ids=CASE_IDS)
def test_corrupt_model_in_artifacts_verify(verify_all_corrupt: tuple[subprocess.CompletedProcess[str], dict, Path],
                                           kind: str, fmt: str) -> None:
    proc, report, root = verify_all_corrupt
    name, path = f"{fmt}_{kind}", root / "bad" / f"{kind}.{fmt}"
    assert_fails_cleanly(proc, 1, name)  # the summary names every failed artifact
    results = report["artifacts"] if isinstance(report.get("artifacts"), dict) else {
        a["name"]: a for a in report.get("artifacts", [])}
    entry = results[name]
    assert entry["passed"] is False and entry["error"], entry
    assert str(path) in entry["error"] and "edgefm export" in entry["error"]
    assert EXPECTED[(kind, fmt)] in entry["error"]


# -- SavedModel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_signature_savedmodel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel whose only signature is not ``serving_default``."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
    def other(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"out": images * module.scale}

    module.other = other
    path = tmp_path_factory.mktemp("nosig") / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"other": other})
    return path


@pytest.fixture
def savedmodel_variant(exported: Path, no_signature_savedmodel: Path, tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the artifacts whose SavedModel is missing, empty, or lacks the serving signature.

    For "no-signature" the manifest's sha256 is updated, so export gets past its checksum check.
    """

    def make(kind: str) -> Path:
        root = tmp_path / "artifacts"
        shutil.copytree(exported, root)
        sm = root / "saved_model"
        shutil.rmtree(sm)
        if kind == "empty":
            sm.mkdir()
        elif kind == "no-signature":
            shutil.copytree(no_signature_savedmodel, sm)
            manifest = Manifest.load(root)
            old = manifest.artifacts["savedmodel"]
            manifest.artifacts["savedmodel"] = Artifact.describe(
                root, sm, format="savedmodel", quantization="none", inputs=old.inputs, outputs=old.outputs)
            manifest.save(root)
        return root

    return make


def _savedmodel_command(command: str, root: Path, image: Path, data_dir: Path) -> list[str]:
    """Arguments that make ``command`` load ``root/saved_model``."""
    sm = str(root / "saved_model")
    return {
        "predict": ["predict", str(image), "--model", sm],
        "inspect": ["inspect", sm],
        "export": ["export", "--artifacts", str(root), "--data-dir", str(data_dir), "--no-verify", "--quantize", "none"],
        "verify": ["verify", "--artifacts", str(root), "--data-dir", str(data_dir), "--no-verify", "--samples", "8"],
        "benchmark": ["benchmark", "--artifacts", str(root), "--model", sm, "--runs", "1", "--warmup", "0",
                      "--batch-sizes", "1"],
    }[command]


@pytest.mark.parametrize("kind", ["missing", "empty"])
@pytest.mark.parametrize("command", ["predict", "inspect", "export", "verify", "benchmark"])
def test_savedmodel_missing_or_empty(savedmodel_variant: Callable[[str], Path], image: Path, data_dir: Path,
                                     kind: str, command: str) -> None:
    root = savedmodel_variant(kind)
    sm = root / "saved_model"
    proc = invoke_cli(*_savedmodel_command(command, root, image, data_dir))
    # export looks for saved_model.pb itself; the runtimes first check that the path exists
    needle = "does not exist" if kind == "missing" and command != "export" else "no saved_model.pb"
    message = assert_fails_cleanly(proc, 1, str(sm), needle)
    assert "edgefm train" in message or "Pass a SavedModel directory" in message  # what to do


@pytest.mark.parametrize("command", ["predict", "inspect", "export", "verify"])
def test_savedmodel_without_serving_signature(savedmodel_variant: Callable[[str], Path], image: Path, data_dir: Path,
                                              command: str) -> None:
    root = savedmodel_variant("no-signature")
    sm = root / "saved_model"
    proc = invoke_cli(*_savedmodel_command(command, root, image, data_dir))
    if command == "inspect":  # issue 29: inspect lists the signatures it finds and says how to export one
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert "other: (images float32 [N, 28, 28]) -> out float32 [N, 28, 28]" in proc.stdout
        assert "no 'serving_default' signature" in proc.stdout and "--signature NAME" in proc.stdout
        return
    assert_fails_cleanly(proc, 1, str(sm), "no 'serving_default' signature (found: other)", "edgefm train")


# -- manifest -----------------------------------------------------------------------------------

MANIFEST_CASES = {
    "missing": (None, "No manifest.json in"),
    "invalid-json": ('{"schema_version": 1, "model": ', "is not valid JSON"),
    "not-utf8": (b"\xff\xfe\x00garbage", "is not valid JSON"),
    "unknown-schema": ('{"schema_version": 99, "model": "mlp", "labels": [], "artifacts": {}}', "schema version 99"),
    "not-an-object": ("[1, 2, 3]", "schema version 'list'"),
    "malformed-field": ('{"schema_version": 1, "model": "mlp", "labels": [], "artifacts": {"x": {"path": 1}}}',
                        "missing or has a malformed field"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
@pytest.mark.parametrize("command", ["verify", "export", "predict", "benchmark"])
def test_bad_manifest(exported: Path, image: Path, data_dir: Path, tmp_path: Path, case: str, command: str) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(exported, root)
    content, needle = MANIFEST_CASES[case]
    manifest = root / "manifest.json"
    if content is None:
        manifest.unlink()
    else:
        manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = {
        "verify": ["verify", "--data-dir", str(data_dir), "--no-verify", "--samples", "8"],
        "export": ["export", "--data-dir", str(data_dir), "--no-verify", "--quantize", "none"],
        "predict": ["predict", str(image)],
        "benchmark": ["benchmark", "--runs", "1"],
    }[command]
    proc = invoke_cli(*args, "--artifacts", str(root))
    message = assert_fails_cleanly(proc, 1, needle, "edgefm train")
    assert str(root) in message
    assert manifest.exists() == (content is not None)  # nothing rewrote or deleted it


def test_missing_artifacts_directory(tmp_path: Path) -> None:
    proc = invoke_cli("verify", "--artifacts", str(tmp_path / "nowhere"))
    assert_fails_cleanly(proc, 1, f"Artifacts directory {tmp_path / 'nowhere'} does not exist", "edgefm train")


# -- images -------------------------------------------------------------------------------------


def _one_pixel(path: Path) -> None:
    from PIL import Image

    Image.new("L", (1, 1), 200).save(path)


IMAGE_CASES: dict[str, tuple[str, Callable[[Path], None] | None, str]] = {
    "text-named-png": ("notes.png", lambda p: p.write_text("just some text\n"), "is not an image Pillow can read"),
    "missing": ("missing.png", None, "does not exist"),
    "one-pixel": ("dot.png", _one_pixel, "Nothing to classify in"),
    "truncated-png": ("cut.png", None, "truncated or corrupt"),
    "empty-file": ("empty.png", lambda p: p.write_bytes(b""), "is not an image Pillow can read"),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_image(exported: Path, image: Path, tmp_path: Path, case: str) -> None:
    name, make, needle = IMAGE_CASES[case]
    path = tmp_path / name
    if case == "truncated-png":
        path.write_bytes(image.read_bytes()[:60])
    elif make is not None:
        make(path)
    proc = invoke_cli("predict", str(path), "--model", str(exported / "model.onnx"))
    message = assert_fails_cleanly(proc, 1, str(path), needle)
    assert "model.onnx" not in message  # the image is blamed, not the model


def test_one_bad_image_among_good_ones_names_only_it(exported: Path, image: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("text")
    proc = invoke_cli("predict", str(image), str(bad), "--model", str(exported / "model.onnx"))
    message = assert_fails_cleanly(proc, 1, str(bad))
    assert str(image) not in message


# -- option values ------------------------------------------------------------------------------

OPTION_CASES: dict[str, tuple[list[str], str]] = {
    "train-epochs-zero": (["train", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    "train-epochs-negative": (["train", "--epochs", "-2"], "--epochs must be a positive integer, got -2"),
    "train-batch-zero": (["train", "--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    "train-batch-negative": (["train", "--batch-size", "-64"], "--batch-size must be a positive integer"),
    "train-lr-zero": (["train", "--learning-rate", "0"], "--learning-rate must be a positive finite number"),
    "train-lr-negative": (["train", "--learning-rate", "-0.1"], "--learning-rate must be a positive finite number"),
    "train-lr-nan": (["train", "--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
    "train-hidden-zero": (["train", "--hidden-units", "0"], "--hidden-units must be a positive integer"),
    "train-seed-negative": (["train", "--seed", "-1"], "--seed must be a non-negative integer"),
    "train-unknown-model": (["train", "--model", "resnet"], "'--model': 'resnet' is not one of"),
    "train-epochs-text": (["train", "--epochs", "many"], "'--epochs': 'many' is not a valid integer"),
    "export-unknown-format": (["export", "--format", "keras"], "'--format': 'keras' is not one of"),
    "export-unknown-quantization": (["export", "--quantize", "int4"], "'--quantize': 'int4' is not one of"),
    "export-no-such-variant": (["export", "--format", "onnx", "--quantize", "float16"], "there is no such variant"),
    "export-opset": (["export", "--opset", "99"], "--opset must be between 13 and 18"),
    "export-calibration-zero": (["export", "--calibration-samples", "0"], "--calibration-samples must be a positive"),
    "verify-samples-zero": (["verify", "--samples", "0"], "--samples must be a positive integer"),
    "verify-batch-negative": (["verify", "--batch-size", "-1"], "--batch-size must be a positive integer"),
    "verify-atol-negative": (["verify", "--atol", "tflite_float32=-1"], "--atol tflite_float32 must be a positive"),
    "verify-atol-syntax": (["verify", "--atol", "0.1"], "--atol: expected NAME=VALUE"),
    "verify-min-top1-above-one": (["verify", "--min-top1", "x=2"], "a fraction between 0 and 1"),
    "predict-top-k-zero": (["predict", "x.png", "--top-k", "0"], "--top-k must be a positive integer"),
    "benchmark-runs-zero": (["benchmark", "--runs", "0"], "--runs must be a positive integer"),
    "benchmark-batch-sizes": (["benchmark", "--batch-sizes", "1,0"], "--batch-sizes: '0' is not a positive integer"),
    "benchmark-threads-zero": (["benchmark", "--threads", "0"], "--threads must be a positive integer"),
    "fetch-retries": (["data", "fetch", "--retries", "0"], "'--retries': 0 is not in the range"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_option_out_of_range_is_a_usage_error(exported: Path, tmp_path: Path, case: str) -> None:
    """Exit 2 and the option named; checked before any file is touched (the artifacts dir stays as it was)."""
    args, needle = OPTION_CASES[case]
    before = snapshot(exported)
    extra = ["--artifacts", str(exported)] if args[0] in ("train", "export", "verify", "benchmark", "predict") else []
    proc = invoke_cli(*args, *extra)
    assert_fails_cleanly(proc, 2, needle)
    assert snapshot(exported) == before


# -- dataset ------------------------------------------------------------------------------------


@pytest.fixture
def dataset_variant(data_dir: Path, tmp_path: Path) -> Callable[[str], Path]:
    def make(kind: str) -> Path:
        d = tmp_path / "fmnist"
        if kind == "missing-dir":
            return d
        shutil.copytree(data_dir, d)
        target = d / "t10k-images-idx3-ubyte.gz"
        if kind == "missing-file":
            target.unlink()
        elif kind == "truncated-gzip":
            target.write_bytes(target.read_bytes()[:300])
        elif kind == "truncated-idx":  # a valid gzip of a cut IDX file
            import gzip

            target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:1000]))
        return d

    return make


DATASET_CASES = {
    "missing-dir": ("does not exist", False),
    "missing-file": ("lacks t10k-images-idx3-ubyte[.gz]", False),
    "truncated-gzip": ("t10k-images-idx3-ubyte.gz: Compressed file ended", False),
    "truncated-idx": ("t10k-images-idx3-ubyte.gz declares shape", False),
    "checksum-mismatch": ("Checksum mismatch for", True),  # the synthetic files are not the official release
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
@pytest.mark.parametrize("command", ["data-verify", "train", "verify"])
def test_bad_dataset(dataset_variant: Callable[[str], Path], exported: Path, tmp_path: Path, case: str, command: str) -> None:
    d = dataset_variant(case)
    needle, checksum_only = DATASET_CASES[case]
    verify_flag = [] if checksum_only else ["--no-verify"]
    args = {
        "data-verify": ["data", "verify", "--data-dir", str(d)],
        "train": ["train", "--epochs", "1", "--data-dir", str(d), "--artifacts", str(tmp_path / "run"), "-q", *verify_flag],
        "verify": ["verify", "--artifacts", str(exported), "--data-dir", str(d), "--samples", "8", *verify_flag],
    }[command]
    if command == "data-verify" and case == "truncated-idx":  # `data verify` compares checksums before parsing
        needle = f"Checksum mismatch for {d / 't10k-images-idx3-ubyte.gz'}"
    proc = invoke_cli(*args)
    message = assert_fails_cleanly(proc, 1, needle)
    assert "edgefm data fetch" in message or "--no-verify" in message or "re-fetch" in message
    if command == "train":
        assert not (tmp_path / "run" / "manifest.json").exists()


# -- interrupted export -------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (hidden temporary files included)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# Loaded by export when it checks the first converted .tflite in LiteRT: conversions have begun,
# and three more TFLite variants and the ONNX ones (seconds of work) are still to come.
CONVERTING_MARKER = "_pywrap_litert_interpreter_wrapper"


def _converting(pid: int) -> bool:
    try:
        return CONVERTING_MARKER in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_sigint_during_export_leaves_previous_artifacts_intact(exported: Path, data_dir: Path, tmp_path: Path) -> None:
    """A real SIGINT to a real `edgefm export` while it converts: byte-identical files, no temp files, exit 130."""
    root = tmp_path / "artifacts"
    shutil.copytree(exported, root)
    before = snapshot(root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefm.cli", "export", "--artifacts", str(root), "--data-dir", str(data_dir),
         "--no-verify", "--calibration-samples", "32", "--format", "all", "--quantize", "all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while not _converting(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "export finished before it could be interrupted"
        assert _converting(proc.pid), f"{CONVERTING_MARKER} never loaded: is this still how export checks a .tflite?"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_fails_cleanly(done, 130, "Export interrupted (SIGINT) before anything was written", str(root))
    assert snapshot(root) == before
    assert not [p.name for p in root.rglob(".*") if ".tmp" in p.name]


def test_no_temporary_files_left_behind(exported: Path) -> None:
    """After every case above, the shared artifacts dir holds no stray ``.NAME.*.tmp`` files."""
    assert not [p for p in exported.rglob(".*") if ".tmp" in p.name]
    assert os.listdir(exported)  # still there
    assert re.fullmatch(r"[0-9a-f]{64}", Manifest.load(exported).artifacts["tflite_float32"].sha256)


def test_signals_are_held_while_export_commits() -> None:
    """The commit step of export (files, then manifest.json) defers SIGINT until it is done."""
    from edgefm.core.interrupts import signals_deferred

    reached_end = False
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a signal that was not held would interrupt here
            reached_end = True
    assert reached_end


# -- outputs that cannot be written -------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "verify-report"])
def test_unwritable_output_path(exported: Path, data_dir: Path, tmp_path: Path, command: str) -> None:
    """An output path under a regular file: the path is named, exit 1, nothing half-written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    target = blocker / ("run" if command == "train" else "report.json")
    args = {
        "train": ["train", "--epochs", "1", "--data-dir", str(data_dir), "--no-verify", "--artifacts", str(target), "-q"],
        "verify-report": ["verify", "--artifacts", str(exported), "--data-dir", str(data_dir), "--no-verify",
                          "--samples", "8", "--report", str(target)],
    }[command]
    proc = invoke_cli(*args)
    assert_fails_cleanly(proc, 1, f"Cannot write {target}", "writable directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_atomic_writes_raise_an_output_error_that_is_still_an_oserror(tmp_path: Path) -> None:
    from edgefm.core.errors import EdgefmError, OutputError
    from edgefm.core.fileio import atomic_directory, atomic_output_path, atomic_write_bytes

    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    for write in (lambda p: atomic_write_bytes(p, b"data"), lambda p: atomic_output_path(p).__enter__(),
                  lambda p: atomic_directory(p).__enter__()):
        with pytest.raises(OutputError, match=rf"Cannot write {re.escape(str(blocker / 'out'))}: (File exists|Not a dir)") as info:
            write(blocker / "out")
        assert isinstance(info.value, OSError) and isinstance(info.value, EdgefmError)
        assert info.value.strerror in str(info.value) and info.value.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# -- resuming from a corrupt checkpoint -------------------------------------------------------------


@pytest.fixture(scope="module")
def one_epoch_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts dir after one finished epoch (trained in this process: TensorFlow is loaded already)."""
    from edgefm.train.config import TrainConfig
    from edgefm.train.trainer import train

    root = tmp_path_factory.mktemp("resume") / "run"
    train(TrainConfig(epochs=1, batch_size=64, hidden_units=8, data_dir=data_dir, verify_data=False, quiet=True,
                      artifacts=root))
    return root


def _break_checkpoint(root: Path, kind: str) -> None:
    ckpt = root / "checkpoints"
    if kind == "truncated-data":
        data = next(ckpt.glob("ckpt-1.data-*"))
        data.write_bytes(data.read_bytes()[:1000])
    elif kind == "garbage-index":
        (ckpt / "ckpt-1.index").write_bytes(b"\x00" * 100)
    elif kind == "state-not-an-object":
        (ckpt / "state.json").write_text("[1, 2]\n")
    elif kind == "state-invalid-json":
        (ckpt / "state.json").write_text('{"model": ')


RESUME_CASES = {
    "truncated-data": ("ModelFileError", "cannot be restored", "it is truncated or corrupt"),
    "garbage-index": ("ModelFileError", "cannot be restored", "it is truncated or corrupt"),
    "state-not-an-object": ("ConfigError", "state.json is missing or unreadable (a JSON list, not an object)", "train without --resume"),
    "state-invalid-json": ("ConfigError", "state.json is missing or unreadable", "train without --resume"),
}


@pytest.mark.parametrize("kind", list(RESUME_CASES))
def test_resume_from_a_corrupt_checkpoint(one_epoch_run: Path, data_dir: Path, tmp_path: Path, kind: str) -> None:
    from edgefm.core import errors
    from edgefm.train.config import TrainConfig
    from edgefm.train.trainer import train

    root = tmp_path / "run"
    shutil.copytree(one_epoch_run, root)
    _break_checkpoint(root, kind)
    before = snapshot(root)
    error, *needles = RESUME_CASES[kind]
    cfg = TrainConfig(epochs=2, batch_size=64, hidden_units=8, data_dir=data_dir, verify_data=False, quiet=True,
                      artifacts=root, resume=True)
    with pytest.raises(getattr(errors, error)) as info:
        train(cfg)
    assert str(root / "checkpoints") in str(info.value) and all(n in str(info.value) for n in needles)
    assert snapshot(root) == before  # the finished run's manifest and files are left as they were


def test_resume_from_a_truncated_checkpoint_through_the_cli(one_epoch_run: Path, data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(one_epoch_run, root)
    _break_checkpoint(root, "truncated-data")
    proc = invoke_cli("train", "--epochs", "2", "--hidden-units", "8", "--data-dir", str(data_dir), "--no-verify",
                      "--artifacts", str(root), "--resume", "-q")
    assert_fails_cleanly(proc, 1, "--resume: the checkpoint", str(root / "checkpoints"), "train without --resume")
