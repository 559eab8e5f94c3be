"""``PinnedRuntime``: a model in a released runtime version, run by a child process in that version's environment.

The child (``child.py``) is started once per model by the environment's Python
and kept for every batch; tensors travel as .npy files in a private temporary
directory, protocol lines as JSON over its stdin/stdout. Quantized I/O is
quantized and dequantized here with ``TensorSpec`` (the same rule as
``LiteRTRuntime``), so the child passes raw tensors only.

A model the version cannot load fails in ``activate`` with one line that names
why; for TFLite's "Didn't find op for builtin opcode 'FULLY_CONNECTED' version
'12'" it names the operator, the version the file needs, and the newest
version of that operator this runtime registers (``newest_op_version``: the file
loaded again with that operator's version lowered until the runtime finds it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import ModelFileError, RuntimeUnavailableError
from edgefm.core.manifest import TensorSpec
from runtime_check.runtimes.base import Runtime
from runtime_check.versions.environment import NUMPY1_ERRORS, RuntimeEnvironment, ensure_environment
from runtime_check.versions.spec import RuntimeSpec

CHILD = Path(__file__).with_name("child.py")
#: seconds the child may take to load a model or run one batch
CALL_TIMEOUT_S = 300.0
MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'")


class PinnedRuntime(Runtime):
    """A .tflite or .onnx file in one released version of a runtime package (``tflite-runtime==2.14.0``)."""

    def __init__(self, path: Path, spec: RuntimeSpec | str, *, threads: int | None = None,
                 environment: RuntimeEnvironment | None = None) -> None:
        super().__init__(path, threads=threads)
        if isinstance(spec, str):
            from runtime_check.versions.spec import parse_runtime_spec

            spec = parse_runtime_spec(spec)
        self.spec = spec
        self.name = spec.label  # type: ignore[misc]  # the row's runtime name: tflite-runtime-2.14.0
        self.format = spec.info.format  # type: ignore[misc]
        self.environment = environment
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: Path | None = None

    # -- hooks ------------------------------------------------------------------
    def _activate_impl(self) -> None:
        env = self.environment = self.environment or ensure_environment(self.spec)
        hello, self._proc = start_child(env, self.path, self.threads)
        if not hello.get("ok") and not env.numpy1 and any(m in str(hello.get("error")) for m in NUMPY1_ERRORS):
            self._stop()  # built against NumPy 1.x, given NumPy 2 by its loose pin: rebuilt once with numpy<2
            env = self.environment = ensure_environment(self.spec, numpy1=True)
            hello, self._proc = start_child(env, self.path, self.threads)
        if not hello.get("ok"):
            self._stop()
            raise self._load_error(hello)
        self._tmp = Path(tempfile.mkdtemp(prefix="edgefm-pinned-"))
        self._raw_in = [_spec(d) for d in hello["inputs"]]
        self._raw_out = [_spec(d) for d in hello["outputs"]]

    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def logical(specs: list[TensorSpec]) -> list[TensorSpec]:
            return [TensorSpec(s.name, "float32" if s.quantized else s.dtype, s.shape) for s in specs]

        return logical(self._raw_in), logical(self._raw_out)

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        assert self._proc is not None and self._tmp is not None
        for i, spec in enumerate(self._raw_in):
            x = feeds[spec.name]
            np.save(self._tmp / f"in_{i}.npy", spec.quantize(x) if spec.quantized else x)
        answer = self._ask(str(self._tmp))
        self._engine = float(answer["seconds"])
        out = {}
        for i, spec in enumerate(self._raw_out):
            y = np.load(self._tmp / f"out_{i}.npy")
            out[spec.name] = spec.dequantize(y) if spec.quantized else y
        return out

    def _engine_seconds(self) -> float | None:
        return getattr(self, "_engine", None)

    def _deactivate_impl(self) -> None:
        self._stop()

    def versions(self) -> dict[str, str]:
        return {self.spec.package + "@" + self.spec.version: self.environment.module_version if self.environment else self.spec.version}

    # -- the child ----------------------------------------------------------------
    def _ask(self, line: str) -> dict:
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
            reply = _read_line(self._proc, CALL_TIMEOUT_S)
        except (OSError, ValueError) as e:
            reply = None
            why = str(e)
        if reply is None:
            code = self._proc.poll()
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            raise ModelFileError(f"{self.spec} stopped while running {self.path} ({why}).")
        if not reply.get("ok"):
            raise ModelFileError(f"{self.spec} failed while running {self.path}: {reply.get('error')}")
        return reply

    def _load_error(self, hello: dict) -> Exception:
        error = str(hello.get("error", "no answer"))
        if hello.get("stage") == "import":
            return RuntimeUnavailableError(f"{self.spec} cannot run on this Python/CPU: importing it failed ({error}).")
        if (m := MISSING_OP.search(error)) is not None and self.format == TFLITE_FORMAT:
            op, need = m.group(1), int(m.group(2))
            newest = newest_op_version(self.environment, self.path, op, need) if self.environment else None
            has = f"; the newest {op} it has is version {newest}" if newest else ""
            return ModelFileError(
                f"{self.spec} cannot load {self.path.name}: the file needs {op} version {need}{has}. "
                "Export for that runtime (`edgefm export --min-runtime`) or run a newer runtime on the device."
            )
        what = "LiteRT" if self.format == TFLITE_FORMAT else "ONNX Runtime" if self.format == ONNX_FORMAT else "it"
        return ModelFileError(f"{self.spec} cannot load {self.path.name} ({what}: {error.splitlines()[0][:300]}).")

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def start_child(env: RuntimeEnvironment, model: Path, threads: int | None) -> tuple[dict, subprocess.Popen[str]]:
    """Start ``child.py`` in ``env`` on ``model``; its first line (what it loaded, or why not) and the process."""
    cmd = [str(env.python), "-I", str(CHILD), env.spec.info.module, env.spec.info.format, str(model), str(threads or 0)]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, bufsize=1)
    except OSError as e:
        raise RuntimeUnavailableError(f"Cannot start the Python of {env.spec} ({e}); delete {env.directory} to rebuild it.") from e
    hello = _read_line(proc, CALL_TIMEOUT_S)
    if hello is None:
        code = proc.wait()
        why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        hello = {"ok": False, "stage": "load", "error": f"the runner stopped before answering ({why})"}
    return hello, proc


def _read_line(proc: subprocess.Popen[str], timeout: float) -> dict | None:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise ModelFileError(f"The runner did not answer within {timeout:g} s and was stopped.")
    line = proc.stdout.readline()
    return json.loads(line) if line.strip() else None


def _spec(d: dict) -> TensorSpec:
    dtype = np.dtype(d["dtype"])
    quantized = bool(d.get("scale")) and dtype.kind in "iu"
    return TensorSpec(d["name"], dtype.name, [None if int(s) < 0 else int(s) for s in d["shape"]],
                      scale=float(d["scale"]) if quantized else None,
                      zero_point=int(d["zero_point"]) if quantized else None)


def newest_op_version(env: RuntimeEnvironment, path: Path, op: str, needed: int) -> int | None:
    """The newest version of ``op`` that ``env``'s runtime registers: the file loaded with that op's version lowered.

    The runtime says only that it lacks ``needed``; its registration table is
    not exposed to Python. So the operator code's version in a copy of the file
    is set to needed-1, needed-2, ... until the error about the op goes (the load
    may then fail for another reason: the op's version is still found). None if
    the file cannot be patched or no version loads.
    """
    from edgefm.formats.tflite_file import with_op_version

    with tempfile.TemporaryDirectory(prefix="edgefm-opversion-") as tmp:
        for version in range(needed - 1, 0, -1):
            patched = with_op_version(path, op, version, Path(tmp) / path.name)
            if patched is None:
                return None
            hello, proc = start_child(env, patched, 1)
            if proc.stdin:
                proc.stdin.close()
            proc.wait()
            m = MISSING_OP.search(str(hello.get("error", "")))
            if hello.get("ok") or m is None or m.group(1) != op:
                return version
    return None
