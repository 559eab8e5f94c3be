"""Shared fixtures: tiny synthetic IDX files and a tiny SavedModel with its manifest.

Unit tests use these (fast, made here); integration tests use the real dataset
(``real_data`` skips nowhere: it fails loudly if the dataset is missing, because
`make test` installs it).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefm.data import fashion_mnist as ds

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their environment when the run itself had
# neither (measured with pytest-xdist 3.8), and edgefm's tables fit $COLUMNS: a command run by a worker
# (in-process or as a child) would wrap what a serial run prints on one line. The controller notes their
# absence for its workers, which drop them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in os.environ.pop("EDGEFM_TESTS_UNSET", "").split():
        os.environ.pop(_name, None)
else:
    os.environ["EDGEFM_TESTS_UNSET"] = " ".join(n for n in ("COLUMNS", "LINES") if n not in os.environ)


def make_idx_dir(directory: Path, n_train: int = 256, n_test: int = 128, seed: int = 0) -> dict[str, str]:
    """Write four synthetic IDX .gz files whose classes are separable; return their sha256."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for i, lbl in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, 2 + 2 * lbl : 4 + 2 * lbl, 4:24] = 230
        img_stem, lbl_stem = ds.FILES[split]
        for stem, arr in ((img_stem, images), (lbl_stem, labels)):
            ds.write_idx(directory / (stem + ".gz"), arr)
            header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            sums[stem] = hashlib.sha256(header + arr.tobytes()).hexdigest()
    return sums


@pytest.fixture
def tiny_data(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "fmnist"
    return d, make_idx_dir(d)


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The directory ``name`` that ``make(dir)`` fills, made once for the whole run and shared read-only.

    Under pytest-xdist each worker runs session fixtures itself; the first worker to need the
    directory makes it under a file lock in the workers' common basetemp parent and the others
    wait for it and reuse it (pytest-xdist's documented recipe for session fixtures, with fcntl
    for the lock). Without xdist it is made in this session's basetemp. ``make`` fills a scratch
    directory that is renamed into place, so an interrupted one is never taken for a finished one.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            make(scratch)
            scratch.chmod(0o755)
            scratch.rename(target)
    return target


@pytest.fixture(scope="session")
def tiny_data_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``tiny_data``, made once for the run (read-only: copy before changing a file)."""
    d = made_once(tmp_path_factory, "fmnist", make_idx_dir)
    return d, {p.name.removesuffix(".gz"): hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
               for p in sorted(d.glob("*.gz"))}


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts dir with an untrained 8-unit MLP SavedModel and its manifest (session-wide: copy before mutating)."""

    def make(root: Path) -> None:
        from edgefm.core.contract import CLASS_NAMES
        from edgefm.core.manifest import Manifest, tool_versions
        from edgefm.train.model import MLP, write_savedmodel

        model = MLP(hidden_units=8, seed=0)
        manifest = Manifest(model="mlp", labels=list(CLASS_NAMES), versions=tool_versions("tensorflow-cpu"))
        manifest.artifacts["savedmodel"] = write_savedmodel(model, root)
        manifest.save(root)

    return made_once(tmp_path_factory, "artifacts", make)


def _exported_copy(tmp_path_factory: pytest.TempPathFactory, name: str, tiny_artifacts: Path, data_dir: Path,
                   **config: object) -> Path:
    """``tiny_artifacts`` copied and exported by the real exporter with ``config``, made once for the run."""

    def make(root: Path) -> None:
        from edgefm.core.manifest import Manifest
        from export.config import ExportConfig
        from export.pipeline import export

        shutil.copytree(tiny_artifacts, root, dirs_exist_ok=True)
        export(Manifest.load(root), ExportConfig(artifacts=root, data_dir=data_dir, verify_data=False, **config))

    return made_once(tmp_path_factory, name, make)


@pytest.fixture(scope="session")
def exported_float32(tmp_path_factory: pytest.TempPathFactory, tiny_artifacts: Path,
                     tiny_data_session: tuple[Path, dict[str, str]]) -> Path:
    """``tiny_artifacts`` with its float32 .tflite and .onnx (``--format all --quantize none``); copy before mutating."""
    return _exported_copy(tmp_path_factory, "exported-float32", tiny_artifacts, tiny_data_session[0],
                          format="all", quantize="none")


@pytest.fixture(scope="session")
def exported_all(tmp_path_factory: pytest.TempPathFactory, tiny_artifacts: Path,
                 tiny_data_session: tuple[Path, dict[str, str]]) -> Path:
    """``tiny_artifacts`` exported to every variant, int8 calibrated on 128 images; copy before mutating."""
    return _exported_copy(tmp_path_factory, "exported-all", tiny_artifacts, tiny_data_session[0],
                          calibration_samples=128)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real Fashion-MNIST directory; `make test` installs it, so absence is a failure."""
    try:
        return ds.locate(None)
    except ds.DatasetError as e:
        pytest.fail(f"real dataset required for integration tests: {e}")


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Path:
    """What `make demo` leaves in artifacts/: the reference MLP trained on the real data, every variant exported.

    Made once per run through the real CLI in subprocesses (``edgefm train``, ``edgefm export``: ~15 s); the
    end-to-end tests verify it in place, the README examples run on copies.
    """

    def make(directory: Path) -> None:
        for args in (("train",), ("export", "--format", "all", "--quantize", "all")):
            res = run_cli(*args, "--artifacts", str(directory / "artifacts"), "-q")
            assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout + res.stderr

    return made_once(tmp_path_factory, "trained", make) / "artifacts"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real `edgefm` entry point in a subprocess (for exit status and stderr)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgefm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )


#: Python's own warning filters (``python -W`` unset), which a fresh ``edgefm`` process starts with.
_PYTHON_DEFAULT_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                           ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                           ("ignore", ResourceWarning, None))
_SHOW_WARNING = warnings._showwarnmsg_impl  # the stock printer to sys.stderr, before pytest records warnings


@contextlib.contextmanager
def _native_output_captured() -> Iterator[list[str]]:
    """File descriptors 1 and 2 sent to files while the block runs; yields [stdout, stderr] written to them.

    What native code (TensorFlow's C++ logging, a converter) writes there lands in a CLI's real stdout
    and stderr, not in the Python streams click's runner replaces.
    """
    texts = ["", ""]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield texts
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for i, f in enumerate((out, err)):
                f.seek(0)
                texts[i] = f.read().decode("utf-8", errors="replace")


def invoke_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``edgefm ARGS`` in this process, through the same group and exit-status mapping as ``run_cli``; no TF start-up.

    For tests of what a command prints and its exit status. Tests of signals, crashes (exit 70 with
    its traceback), a terminal, start-up output or the environment a process inherits use ``run_cli``.
    Returns what ``run_cli`` returns: returncode, stdout and stderr (what native code wrote to the file
    descriptors comes first: it is written while a command runs, before its result or error message). An exception that escapes the group is printed to
    stderr as the interpreter would, with exit status 1. The working directory is the repository's, as
    for ``run_cli``; signal handlers, the unraisable hook and warning filters are restored afterwards.
    """
    from click.testing import CliRunner

    from edgefm.cli import main as cli_main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    hook, cwd = sys.unraisablehook, os.getcwd()
    os.chdir(REPO)
    try:
        with warnings.catch_warnings(), _native_output_captured() as native:
            warnings.resetwarnings()
            for action, category, module in reversed(_PYTHON_DEFAULT_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            warnings._showwarnmsg_impl = _SHOW_WARNING
            result = CliRunner().invoke(cli_main.cli, list(args), prog_name="edgefm", env=env)
    finally:
        os.chdir(cwd)
        sys.unraisablehook = hook
        cli_main._SIGNALLED.clear()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    code, stderr = result.exit_code, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
        code = 1
    return subprocess.CompletedProcess(["edgefm", *args], code, native[0] + result.stdout, native[1] + stderr)


def read_terminal(master: int) -> bytes:
    """Everything a child wrote to the pseudo-terminal whose master end is ``master``, until it closed; closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks)


def redescribe(root: Path, name: str) -> None:
    """Update one manifest entry's sha256 and size to the file now on disk (a planted fault's checksum passes)."""
    from edgefm.core.manifest import Artifact, Manifest

    manifest = Manifest.load(root)
    old = manifest.artifacts[name]
    manifest.artifacts[name] = Artifact.describe(root, root / old.path, format=old.format, quantization=old.quantization,
                                                 inputs=old.inputs, outputs=old.outputs, created=old.created,
                                                 tools=old.tools, extra=old.extra)
    manifest.save(root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, files with a ``slow`` test go first: a file runs on one worker (``--dist loadfile``),
    and the benchmark suite's run or the CNN's training started last would leave the other workers idle
    while it ends the run. Every worker sorts alike, so they agree on the order; a serial run keeps its own."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order inside a file is kept
