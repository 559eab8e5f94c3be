"""The native runners behind edgefm's one runtime interface.

``NativeLiteRTRuntime`` runs a .tflite file and ``NativeOnnxRuntime`` an .onnx
file in the C runners of this package (built by :mod:`runtime_check.native.build`).
A loaded runtime is one runner process started with an *empty* environment, so what
runs is the C runtime library alone: no Python, no LD_LIBRARY_PATH. It loads the model
once and runs every call as a request on its stdin (``serve``; a process per call cost
a model load per batch, 10-15x the binding's time on a real network under ONNX
Runtime's graph optimisation). Tensors travel as .npy files in a temporary directory. ``time_calls`` times a warm loop of calls
inside one runner process instead (``--warmup W --runs N``), which is what the C
API costs per call without the process start.

Inputs and outputs are logical, as for the Python runtimes: every tensor has its
own dtype (float32, float16, int8, uint8, int16, int32, int64 or bool, passed
through byte for byte), except quantized ones. For int8/uint8/int16-I/O .tflite
models the *runner* quantizes the float32 input and dequantizes the outputs with
each tensor's own scale and zero point, in float32 exactly as ``LiteRTRuntime``
does in NumPy, so both give identical numbers.

A crash of the runtime (a signal) or a hang (timeout) is reported as an
``EdgefmError`` that names the signal or the time limit, never as a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import (
    EdgefmError,
    ModelFileError,
    ParityError,
    RuntimeUnavailableError,
    UsageError,
)
from edgefm.core.manifest import TensorSpec
from runtime_check.native.build import NativeRunner, build_runner
from runtime_check.runtimes.base import Runtime

#: Seconds one runner process may take (load + all batches) before it is killed.
DEFAULT_TIMEOUT_S = 300.0

#: Runner exit status -> (error type, what failed). Kept in step with runner_common.h.
EXIT_CODES: dict[int, tuple[type[EdgefmError], str]] = {
    2: (UsageError, "rejected its command line"),
    3: (RuntimeUnavailableError, "could not use the runtime library"),
    4: (ModelFileError, "could not load the model"),
    5: (UsageError, "could not read an input file"),
    6: (UsageError, "was given an input that does not fit the model"),
    7: (ModelFileError, "failed while running the model"),
    8: (EdgefmError, "could not write an output file"),
    9: (ParityError, "found outputs that differ from the expected ones"),
}


@dataclass(frozen=True)
class RunTiming:
    """What the runner measured itself (no process start-up): load, and one batch.

    After ``--warmup W --runs N`` (``NativeRuntime.time_calls``) also every timed
    call's milliseconds in call order and their p50/p90/p99 as the runner computed
    them (NumPy's linear interpolation): a warm loop inside one process.
    """

    open_ms: float
    run_ms: float
    min_run_ms: float
    batches: int
    warmup: int = 0
    latencies_ms: tuple[float, ...] = ()
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None


def _runner_message(stderr: str) -> str:
    """The runner's own error line plus the runtime's ERROR lines; INFO/WARNING chatter dropped."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    own = [ln.split("error: ", 1)[1] for ln in lines if ": error: " in ln]
    runtime = [ln for ln in lines if ln.startswith("ERROR")]
    picked = runtime[-3:] + own[-1:]
    return " / ".join(picked) if picked else (lines[-1] if lines else "no message")


def run_process(cmd: list[str], *, timeout: float, what: str, subject: Path) -> subprocess.CompletedProcess[str]:
    """Run a runner with an empty environment; turn a signal, a timeout or an error exit into an EdgefmError."""
    try:
        proc = subprocess.run(
            cmd,
            env={},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise _timed_out(what, subject, timeout) from e
    except OSError as e:
        raise RuntimeUnavailableError(
            f"Cannot start the native runner {cmd[0]} ({e}). Delete the cache directory that holds it to rebuild."
        ) from e
    raise_for_status(proc.returncode, proc.stderr, what=what, subject=subject)
    return proc


def raise_for_status(returncode: int, stderr: str, *, what: str, subject: Path) -> None:
    """A runner's death by a signal or its error exit status as an EdgefmError; nothing for status 0."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        raise ModelFileError(
            f"The native runtime crashed {what} {subject} (killed by {sig}): the file is corrupt or truncated, "
            f"or the runtime cannot handle it. Re-export it with `edgefm export`. Runtime said: "
            f"{_runner_message(stderr)}"
        )
    if returncode != 0:
        error, failed = EXIT_CODES.get(returncode, (EdgefmError, "failed"))
        raise error(
            f"The native runner {failed} ({what} {subject}, exit status {returncode}): "
            f"{_runner_message(stderr)}"
        )


def _timed_out(what: str, subject: Path, timeout: float) -> ModelFileError:
    return ModelFileError(
        f"The native runner did not finish {what} {subject} within {timeout:g} s and was stopped. The "
        "runtime may hang on this file: re-export it with `edgefm export`, or allow more time (timeout=)."
    )


class Server:
    """One runner process in ``serve`` mode: the model loaded once, then one request per call.

    A request is run's options on one line (tab-separated); the answer is run's stdout and a
    ``done<TAB>STATUS`` line. The process has the empty environment of every runner call; its
    stderr goes to a temporary file (never a pipe that could fill up). A timeout kills it; a
    death by a signal or an error status becomes the EdgefmError a one-shot run would raise.
    The child reads its requests from a pipe, so it also ends by itself when this process is
    gone (end of input), and ``close`` ends it when the runtime is deactivated.
    """

    def __init__(self, cmd: list[str], *, timeout: float, subject: Path) -> None:
        self.timeout, self.subject = timeout, subject
        self.err = tempfile.TemporaryFile(prefix="edgefm-native-err-")
        self.buffer = b""
        try:
            self.proc = subprocess.Popen(cmd, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        except OSError as e:
            self.err.close()
            raise RuntimeUnavailableError(
                f"Cannot start the native runner {cmd[0]} ({e}). Delete the cache directory that holds it to rebuild."
            ) from e

    def _stderr_since(self, offset: int) -> str:
        self.err.flush()
        self.err.seek(offset)
        text = self.err.read().decode(errors="replace")
        self.err.seek(0, os.SEEK_END)
        return text

    def _read_until(self, ends: tuple[bytes, ...], what: str, offset: int) -> tuple[str, bytes]:
        """stdout up to a line starting with one of ``ends``: (the text before it, that line)."""
        import selectors
        import time

        deadline = time.monotonic() + self.timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                start = 0
                while (nl := self.buffer.find(b"\n", start)) >= 0:
                    line = self.buffer[start:nl]
                    if line.startswith(ends):
                        text, self.buffer = self.buffer[:start], self.buffer[nl + 1:]
                        return text.decode(errors="replace"), line
                    start = nl + 1
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise _timed_out(what, self.subject, self.timeout)
                chunk = os.read(fd, 1 << 16)
                if not chunk:  # the runner is gone: its status says why
                    status = self.proc.wait()
                    raise_for_status(status or 1, self._stderr_since(offset), what=what, subject=self.subject)
                self.buffer += chunk

    def ready(self) -> str:
        """The ``info`` text the runner prints once the model is loaded."""
        try:
            return self._read_until((b"ready",), "loading", 0)[0]
        except BaseException:
            self.kill()
            raise

    def request(self, args: list[str]) -> str:
        """One run on the loaded model: its stdout (timing, output lines)."""
        assert self.proc.stdin is not None
        offset = self.err.seek(0, os.SEEK_END)
        try:
            self.proc.stdin.write(("\t".join(args) + "\n").encode())
            self.proc.stdin.flush()
            text, done = self._read_until((b"done\t",), "running", offset)
        except BrokenPipeError:  # the runner died between requests: its status says why
            status = self.proc.wait()
            raise_for_status(status or 1, self._stderr_since(offset), what="running", subject=self.subject)
            raise
        except BaseException:  # a timeout, a crash, Ctrl-C or SIGTERM: the child must not outlive the call
            self.kill()
            raise
        raise_for_status(int(done.split(b"\t")[1]), self._stderr_since(offset), what="running", subject=self.subject)
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """End of input ends the runner; one that does not go within seconds is killed."""
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            self.kill()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.err.close()


def _fields(stdout: str, tag: str) -> list[list[str]]:
    return [ln.split("\t")[1:] for ln in stdout.splitlines() if ln.startswith(tag + "\t")]


def parse_info(stdout: str) -> tuple[list[TensorSpec], list[TensorSpec], str]:
    """Raw specs (stored dtype, scale, zero point) and the runtime version from ``runner info``."""
    specs: dict[str, list[TensorSpec]] = {"input": [], "output": []}
    for tag in specs:
        for name, dtype, dims, scale, zp in _fields(stdout, tag):
            shape: list[int | None] = [None if int(d) < 0 else int(d) for d in dims.split(",") if d]
            quant = scale != "-"
            specs[tag].append(
                TensorSpec(name, dtype, shape, float(scale) if quant else None, int(zp) if quant else None)
            )
    runtime = _fields(stdout, "runtime")
    version = runtime[0][1] if runtime and len(runtime[0]) > 1 else "unknown"
    return specs["input"], specs["output"], version


def parse_cpu(stdout: str) -> dict[str, object]:
    """The CPU the runner ran on, as it sees it: ``{"machine", "features", "int8_kernels"}``."""
    from edgefm.core.hostinfo import int8_kernel_path

    rows = _fields(stdout, "cpu")
    if not rows or not rows[0]:
        return {}
    machine, features = rows[0][0], rows[0][1:]
    return {"machine": machine, "features": features, "int8_kernels": int8_kernel_path(machine, features)}


def parse_timing(stdout: str) -> RunTiming | None:
    rows = _fields(stdout, "timing")
    if not rows:
        return None
    kv = dict(item.split("=", 1) for item in rows[0] if "=" in item)
    lat = _fields(stdout, "latencies")
    pct = {k: float(kv[k]) if k in kv else None for k in ("p50_ms", "p90_ms", "p99_ms")}
    return RunTiming(
        float(kv["open_ms"]), float(kv["run_ms"]), float(kv["min_run_ms"]), int(kv["batches"]),
        warmup=int(kv.get("warmup", 0)), latencies_ms=tuple(float(x) for x in lat[0]) if lat else (), **pct,
    )


def _logical(spec: TensorSpec) -> TensorSpec:
    """What callers see: quantized tensors (a scale) are float32, every other one keeps its dtype, like LiteRTRuntime's.

    A uint8 image input without a scale stays uint8: the runner passes it through as stored.
    """
    dtype = "float32" if spec.scale is not None else spec.dtype
    return TensorSpec(spec.name, dtype, list(spec.shape))


class ChildProcess:
    """The place of a native runner on this machine: one environment-less runner process per loaded runtime
    (``serve``: the model loaded once, every call a request), its files (.npy inputs and outputs) in a
    temporary directory.

    ``launcher`` is an argv prefix the runner is started under, e.g. ``("qemu-x86_64-static", "-cpu", "Haswell")``
    to run it on an emulated CPU whose kernels differ from the host's, or qemu-aarch64 with a cross-built runner
    (``runtime_check.device.emulated``: ``library``, ``cc`` and ``cache`` then name the aarch64 build; build_runner
    keys its cache by all three, so it never replaces the host's). ``spec`` names the place in the runtime's name
    (``native-litert@SPEC``); ``versions``, when given, replace what the runtime reports of itself.
    """

    def __init__(self, *, launcher: tuple[str, ...] = (), library: Path | None = None, cc: str | None = None,
                 cache: Path | None = None, timeout: float = DEFAULT_TIMEOUT_S, spec: str = "",
                 versions: Mapping[str, str] | None = None) -> None:
        self.launcher = tuple(launcher)
        self.library, self.cc, self.cache, self.timeout, self.spec = library, cc, cache, timeout, spec
        self.fixed_versions = None if versions is None else dict(versions)
        self.servers: dict[int, Server] = {}  # id(runtime) -> its runner process, from load to unload

    def load(self, rt: NativeRuntime) -> str:
        """Build (or find cached) the runner and start it in ``serve`` mode (the model loaded once for every
        call until ``unload``); what it printed of the model (``info``'s lines)."""
        rt.runner = build_runner(rt.kind, lib=self.library, cc=self.cc, cache=self.cache)
        self.unload(rt)
        threads = ["--threads", str(rt.threads)] if rt.threads else []
        server = Server([*self.launcher, *rt.runner.command("serve", rt.model_arg(), *threads)],
                        timeout=self.timeout, subject=rt.path)
        info = server.ready()
        self.servers[id(rt)] = server
        return info

    def run(self, rt: NativeRuntime, feeds: Mapping[str, np.ndarray], flags: list[str]) -> tuple[str, dict[str, np.ndarray]]:
        """One request to the runtime's runner process on ``feeds``: its stdout and its outputs."""
        assert rt.runner is not None
        server = self.servers.get(id(rt))
        if server is None:
            raise EdgefmError(f"The native runner for {rt.path} is not running: activate the runtime first.")
        with tempfile.TemporaryDirectory(prefix="edgefm-native-") as tmp:
            args: list[str] = []
            for i, (name, arr) in enumerate(feeds.items()):
                file = Path(tmp) / f"input_{i}.npy"
                np.save(file, np.ascontiguousarray(arr))
                args += ["--input", f"{name}={file}"]
            out_dir = Path(tmp) / "out"
            out_dir.mkdir()
            args += ["--output-dir", str(out_dir)]
            stdout = server.request([*args, *flags])
            files = {row[0]: row[1] for row in _fields(stdout, "output")}
            missing = [s for s in rt.raw_output_names() if s not in files]
            if missing:
                raise EdgefmError(
                    f"The native runner wrote no output {', '.join(missing)} for {rt.path}; it printed: "
                    f"{stdout.strip()[-500:]}"
                )
            try:  # the runner writes plain .npy: never unpickle what a file says
                return stdout, {s: np.load(files[s], allow_pickle=False) for s in rt.raw_output_names()}
            except (OSError, ValueError) as e:
                raise EdgefmError(f"The native runner's output for {rt.path} is unreadable ({e}).") from e

    def unload(self, rt: NativeRuntime) -> None:
        server = self.servers.pop(id(rt), None)
        if server is not None:
            server.close()

    def versions(self, rt: NativeRuntime) -> dict[str, str]:
        if self.fixed_versions is not None:
            return dict(self.fixed_versions)
        if rt.runner is None:
            return {}
        return {
            **({f"native-{rt.kind}-launcher": " ".join(self.launcher)} if self.launcher else {}),
            f"native-{rt.kind}": rt.runtime_version,
            **({f"native-{rt.kind}-cpu": " ".join(map(str, [rt.cpu["machine"], *rt.cpu["features"]]))}  # type: ignore[list-item]
               if rt.cpu else {}),
            f"native-{rt.kind}-library": f"{rt.runner.library.path} ({rt.runner.library.version})",
            "cc": rt.runner.compiler,
        }


class Place(Protocol):
    """Where a native runner runs and how its process is started (``ChildProcess``; the boards of
    ``runtime_check.device``). A place never knows the runner kind: the runtime passes itself."""

    spec: str
    timeout: float

    def load(self, rt: NativeRuntime) -> str: ...

    def run(self, rt: NativeRuntime, feeds: Mapping[str, np.ndarray], flags: list[str]) -> tuple[str, dict[str, np.ndarray]]: ...

    def unload(self, rt: NativeRuntime) -> None: ...

    def versions(self, rt: NativeRuntime) -> dict[str, str]: ...


class NativeRuntime(Runtime):
    """A model run by a C runner of kind ``kind`` (its source and library) at a ``place`` (where its process runs).

    The runner kinds are the subclasses below (data only); the places compose with every kind instead of
    multiplying them, as Polygraphy's runners take a loader.
    """

    kind: ClassVar[str] = ""
    probe_before_load = True

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        library: Path | None = None,
        cache: Path | None = None,
        cc: str | None = None,
        launcher: tuple[str, ...] = (),
        place: Place | None = None,
    ) -> None:
        super().__init__(path, threads=threads)
        self.place: Place = place or ChildProcess(launcher=launcher, library=library, cc=cc, cache=cache, timeout=timeout)
        self.timeout = self.place.timeout
        if self.place.spec:
            self.name = f"{type(self).name}@{self.place.spec}"  # type: ignore[misc]
        self.runner: NativeRunner | None = None
        self.last_timing: RunTiming | None = None
        self._raw_in: list[TensorSpec] = []
        self._raw_out: list[TensorSpec] = []
        self.runtime_version = "unknown"
        #: the CPU as the runner saw it at load (under an emulator: the emulated one)
        self.cpu: dict[str, object] = {}

    @property
    def launcher(self) -> tuple[str, ...]:
        return tuple(getattr(self.place, "launcher", ()))

    def _activate_impl(self) -> None:
        stdout = self.place.load(self)
        self._raw_in, self._raw_out, self.runtime_version = parse_info(stdout)
        self.cpu = parse_cpu(stdout)

    def model_arg(self) -> Path:
        return Path(os.path.abspath(self.path))

    def raw_output_names(self) -> list[str]:
        return [s.name for s in self._raw_out]  # the file's own names (Runtime.expecting renames _output_specs)

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return [_logical(s) for s in self._raw_in], [_logical(s) for s in self._raw_out]

    def raw_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Specs as stored in the file (int8 with scale and zero point for int8 I/O)."""
        self._require_active()
        return list(self._raw_in), list(self._raw_out)

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return self._run(feeds, batch_size=None)

    def infer_batched(self, feeds: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
        """Like the base class (chunks of ``batch_size``, concatenated), but in one runner process."""
        self._require_active()
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}.")
        checked = self._own_feeds(self._check_feeds(feeds))
        return self._named_outputs(self._run(checked, batch_size=batch_size))

    def time_calls(self, feeds: Mapping[str, np.ndarray], *, warmup: int, runs: int) -> RunTiming:
        """Time ``runs`` calls on ``feeds`` after ``warmup`` untimed ones, in one runner process (``--runs``).

        The latencies are the runner's own clock around each call of the C API: no
        process start, no .npy files, no Python. Returns its ``RunTiming``; the
        outputs (of the last call) are checked and dropped.
        """
        self._require_active()
        if warmup < 0 or runs < 1:
            raise UsageError(f"time_calls needs warmup >= 0 and runs >= 1, got {warmup} and {runs}.")
        self._run(self._own_feeds(self._check_feeds(feeds)), batch_size=None, extra=("--warmup", str(warmup), "--runs", str(runs)))
        assert self.last_timing is not None
        return self.last_timing

    def _run(self, feeds: Mapping[str, np.ndarray], batch_size: int | None, extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        flags: list[str] = []
        if batch_size is not None:
            flags += ["--batch-size", str(batch_size)]
        if self.threads:
            flags += ["--threads", str(self.threads)]
        stdout, outputs = self.place.run(self, feeds, [*flags, *extra])
        self.last_timing = parse_timing(stdout)
        return outputs

    def _deactivate_impl(self) -> None:
        self.place.unload(self)

    def _engine_seconds(self) -> float | None:
        """The runner's own time for one batch, without the process start (``timing`` line)."""
        return None if self.last_timing is None else self.last_timing.run_ms / 1e3

    def versions(self) -> dict[str, str]:
        return self.place.versions(self)


class NativeLiteRTRuntime(NativeRuntime):
    """A .tflite file in LiteRT's C API (libLiteRt.so), CPU accelerator. ``threads`` is not used."""

    name = "native-litert"
    format = TFLITE_FORMAT
    kind = "litert"


class NativeOnnxRuntime(NativeRuntime):
    """An .onnx file in ONNX Runtime's C API, CPU execution provider."""

    name = "native-onnxruntime"
    format = ONNX_FORMAT
    kind = "onnxruntime"


def native_runtime_for(path: Path, *, threads: int | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                       place: Place | None = None) -> NativeRuntime:
    """The native runtime for ``path`` (a .tflite or an .onnx file; the format's first native runner kind),
    at ``place`` (default: a child process on this machine)."""
    from runtime_check.runtimes.registry import NATIVE, SAVEDMODEL_FORMAT, format_of, runner_kinds

    path = Path(path)
    fmt = format_of(path, what="The native runners run .tflite (LiteRT) and .onnx (ONNX Runtime) files",
                    missing="Pass a .tflite or an .onnx file.")
    kinds = runner_kinds(fmt, NATIVE)
    if fmt == SAVEDMODEL_FORMAT or not kinds:
        raise UsageError(f"{path}: the native runners run .tflite (LiteRT) and .onnx (ONNX Runtime) files, not "
                         f"{path.suffix.lower() or '(no extension)'!r}.")
    cls = kinds[0].runtime_class()
    assert issubclass(cls, NativeRuntime)
    return cls(path, threads=threads, timeout=timeout, place=place)
