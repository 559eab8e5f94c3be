"""The CLI shell: help, lazy imports, error mapping, `edgefm data` and config validation."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefm.cli.main import cli

from conftest import REPO, run_cli

COMMANDS = ("train", "export", "verify", "predict", "benchmark", "inspect", "data")


def test_help_lists_every_command() -> None:
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in res.output


def test_cli_import_and_help_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from click.testing import CliRunner; import edgefm.cli.main as c; "
        "r = CliRunner().invoke(c.cli, ['--help']); assert r.exit_code == 0; "
        "heavy = [m for m in ('tensorflow', 'onnxruntime', 'ai_edge_litert', 'tf2onnx', 'onnx') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr


# A `with` block an interrupt left suspended, finalised as the interpreter exits: TensorFlow's graph stack
# printed "Exception ignored in: <generator ...>" and a traceback after a SIGINT during export (a flaky
# tests/test_bad_input.py::test_sigint_during_export_leaves_previous_artifacts_intact showed it).
_SUSPENDED_AT_EXIT = """
import contextlib, sys
from edgefm.cli.main import _fail

@contextlib.contextmanager
def graph_stack():
    try:
        yield
    finally:
        raise AssertionError("Nesting violated for default stack")

held = graph_stack()
held.__enter__()
_fail("interrupted by SIGINT.", int(sys.argv[1]))
"""


@pytest.mark.parametrize("code, quiet", [(130, True), (1, False)])
def test_an_interrupted_exit_does_not_print_what_interrupted_libraries_leave(code: int, quiet: bool) -> None:
    res = subprocess.run([sys.executable, "-c", _SUSPENDED_AT_EXIT, str(code)], capture_output=True, text=True,
                         cwd=REPO)
    assert res.returncode == code and "error: interrupted by SIGINT." in res.stderr
    # after an interrupt the paragraph is all; any other failure keeps Python's report, which may be a bug's only trace
    assert ("Traceback" not in res.stderr) == quiet, res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["train", "--batch-size", "-3"], "--batch-size must be a positive integer"),
        (["train", "--learning-rate", "0"], "--learning-rate must be a positive finite number"),
        (["train", "--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
        (["train", "--model", "resnet"], "Invalid value for '--model'"),
    ],
)
def test_bad_train_options_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def test_data_info_and_verify_on_synthetic_data(tiny_data) -> None:
    d, _ = tiny_data
    res = CliRunner().invoke(cli, ["data", "info", "--data-dir", str(d)])
    assert res.exit_code == 0 and "train: 256 images" in res.output and "test : 128 images" in res.output
    res = CliRunner().invoke(cli, ["data", "verify", "--data-dir", str(d)])
    assert res.exit_code == 1 and "FAIL" in res.output and "Checksum mismatch" in res.output


def test_data_errors_have_no_traceback(tmp_path: Path) -> None:
    res = run_cli("data", "verify", "--data-dir", str(tmp_path / "missing"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: Data directory") and "does not exist" in res.stderr


@pytest.mark.integration
def test_data_verify_real_and_one_byte_changed(real_data: Path, tmp_path: Path) -> None:
    ok = run_cli("data", "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("ok  ") == 4
    copy = tmp_path / "copy"
    shutil.copytree(real_data, copy)
    path = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))
    bad = run_cli("data", "verify", "--data-dir", str(copy))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "Checksum mismatch for" in bad.stderr and "t10k-labels-idx1-ubyte.gz" in bad.stderr
