"""Validate model files before a native runtime sees them.

LiteRT and ONNX Runtime are C++ libraries: on some malformed files they abort or
segfault the whole process instead of raising. So a file is first checked
cheaply in Python (size, flatbuffer identifier, protobuf parse), then loaded once
in a short-lived child process; a crash there becomes a ``ModelFileError`` here.
Results (accepted and rejected files) are cached per (path, size, mtime) for the
life of the process.

``validate_model_files`` checks many files with *one* child process (most of a
probe's 0.2-0.5 s is starting Python and importing the runtime, not the load):
the child loads the files one after another and reports each on its own line. If
that child dies by a signal or hangs, the files it did not report are probed
again one child each (``probe_in_subprocess``), so the file that crashes the
runtime is still named and the others are still checked.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from edgefm.core.errors import ModelFileError
from edgefm.core.verdicts import PassedChecks
from edgefm.formats import onnx_file, tflite_file

#: file suffix -> the format's structure check
STRUCTURE_CHECKS = {tflite_file.SUFFIX: tflite_file.check_tflite_structure, onnx_file.SUFFIX: onnx_file.check_onnx_structure}

PROBE_TIMEOUT_S = 60.0
# A model with a dynamic spatial size ([-1, -1, -1, 3]) is stored with 1s there: allocating at that
# size fails in a 3x3 VALID convolution ("XNNPack delegate failed to reshape", measured) although any
# real input size runs. Such a model is allocated when its input size is known; a fixed-size model
# that fails to allocate is broken.
_ALLOCATE = (
    "    try:\n"
    "        i.allocate_tensors()\n"
    "    except RuntimeError:\n"
    "        if not any(-1 in list(d['shape_signature'])[1:] for d in i.get_input_details()):\n"
    "            raise\n"
)

_PROBE = {
    ".tflite": (
        "import sys\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "i = Interpreter(model_path=sys.argv[1])\n"
        + "".join(line[4:] + "\n" for line in _ALLOCATE.splitlines()) +
        "i.get_signature_list()\n"
    ),
    ".onnx": (
        "import sys\n"
        "import onnxruntime as ort\n"
        "o = ort.SessionOptions(); o.log_severity_level = 4\n"
        "ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n"
    ),
}
#: one child for many files: reads one JSON-quoted path per line on stdin, loads it, says "ok" or "error";
#: imports only the runtimes it needs, once
_PROBE_MANY = (
    "import json, sys, traceback\n"
    "def say(*f):\n"
    "    print('\\t'.join(f), flush=True)\n"
    "def load_tflite(p):\n"
    "    from ai_edge_litert.interpreter import Interpreter\n"
    "    i = Interpreter(model_path=p)\n"
    + _ALLOCATE +
    "    i.get_signature_list()\n"
    "def load_onnx(p):\n"
    "    import onnxruntime as ort\n"
    "    o = ort.SessionOptions(); o.log_severity_level = 4\n"
    "    ort.InferenceSession(p, o, providers=['CPUExecutionProvider'])\n"
    "for k, line in enumerate(sys.stdin):\n"
    "    p = json.loads(line)\n"
    "    say('start', str(k))\n"
    "    try:\n"
    "        (load_tflite if p.lower().endswith('.tflite') else load_onnx)(p)\n"
    "    except BaseException as e:\n"
    "        lines = [ln for ln in ''.join(traceback.format_exception_only(type(e), e)).splitlines() if ln.strip()]\n"
    "        say('error', str(k), lines[-1] if lines else type(e).__name__)\n"
    "    else:\n"
    "        say('ok', str(k))\n"
)
_validated: set[tuple[str, int, int]] = set()
#: files the probe refused, with the error it gave (same key as ``_validated``)
_rejected: dict[tuple[str, int, int], ModelFileError] = {}


def _what_to_do(path: Path) -> str:
    return f"Re-export it with `edgefm export` (or pass the right file); edgefm will not load {path.name} as is."


def check_structure(path: Path, passed: PassedChecks | None = None) -> None:
    """Cheap in-process checks of the file's format (``edgefm.formats``); runtimes load only in the probe.

    ``passed``: where the format's check remembers the files whose bytes passed it, and skips them
    the next time (``edgefm.core.verdicts``; only the ONNX check, whose ``import onnx`` costs 0.5 s).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist or is not a file. Check the path, or run `edgefm export`.")
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ModelFileError(f"Model file {path} is empty (0 bytes). {_what_to_do(path)}")
    check = STRUCTURE_CHECKS.get(suffix)
    if check is None:
        raise ModelFileError(f"{path}: unsupported model file type {suffix!r} (expected .tflite or .onnx).")
    check(path, _what_to_do(path), passed)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _hung(path: Path, timeout: float) -> ModelFileError:
    return ModelFileError(f"Loading {path} hung for {timeout:.0f} s in a test process. {_what_to_do(path)}")


def _cannot_load(path: Path, reason: str) -> ModelFileError:
    return ModelFileError(f"The runtime cannot load {path}: {reason}. {_what_to_do(path)}")


def probe_in_subprocess(path: Path) -> None:
    """Load ``path`` in a child process; a crash or error there is reported here."""
    path = Path(path)
    code = _PROBE[path.suffix.lower()]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise _hung(path, PROBE_TIMEOUT_S) from e
    if proc.returncode < 0:
        raise ModelFileError(
            f"{path} crashed the runtime while loading (killed by {_signal_name(proc.returncode)}); the file is "
            f"corrupt. {_what_to_do(path)}"
        )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise _cannot_load(path, lines[-1] if lines else f"exit status {proc.returncode}")


class ProbeChild:
    """One child process that loads the files it is sent, one after another (``_PROBE_MANY``).

    ``send`` a file as soon as its structure check passed (so the child starts and
    imports the runtimes while this process still checks the next file), then
    ``finish`` for the outcome per file. A child that crashed or hung leaves the
    files it did not report to ``finish``'s per-file re-probe.
    """

    def __init__(self, timeout: float = PROBE_TIMEOUT_S, per_file: float = 2.0) -> None:
        #: seconds the child may take: ``timeout`` plus ``per_file`` for each file sent
        self.timeout, self.per_file = timeout, per_file
        self.sent: list[Path] = []
        self._dead = False
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE_MANY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )

    def send(self, path: Path) -> None:
        self.sent.append(Path(path))
        if self._dead:
            return
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(str(path)) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):  # it died on an earlier file: finish() re-probes
            self._dead = True

    def finish(self) -> dict[Path, ModelFileError | None]:
        # Loads take milliseconds; the budget is for a loaded machine, not for a hanging file.
        timeout = self.timeout + self.per_file * len(self.sent)
        crashed = self._dead
        try:
            stdout, _ = self._proc.communicate(timeout=timeout)
            crashed = crashed or self._proc.returncode != 0
        except (BrokenPipeError, OSError):  # stdin closed under us: the child is gone
            stdout, crashed = "", True
            self._proc.kill()
            self._proc.communicate()
        except subprocess.TimeoutExpired:
            self._proc.kill()
            stdout, _ = self._proc.communicate()  # what it printed before it hung
            crashed = True
        results: dict[Path, ModelFileError | None] = {}
        for line in (stdout or "").splitlines():
            tag, _, rest = line.partition("\t")
            index, _, reason = rest.partition("\t")
            if tag not in ("ok", "error") or not index.isdigit() or int(index) >= len(self.sent):
                continue
            path = self.sent[int(index)]
            results[path] = None if tag == "ok" else _cannot_load(path, reason or "unknown error")
        if crashed:  # re-probe one by one whatever the dead child left unreported
            for path in self.sent:
                if path not in results:
                    try:
                        probe_in_subprocess(path)
                    except ModelFileError as e:
                        results[path] = e
                    else:
                        results[path] = None
        return results


def probe_many_in_subprocess(paths: list[Path]) -> dict[Path, ModelFileError | None]:
    """Load every file in one child process; ``None`` for each file it loaded, the error for each it refused.

    If the child crashes (a signal) or hangs, every file it had not reported yet is
    probed again in a child of its own (``probe_in_subprocess``): the one that
    kills the runtime is named by its own probe, and the rest are still checked.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return {}
    child = ProbeChild()
    for path in paths:
        child.send(path)
    return child.finish()


def _state(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def validate_model_file(path: Path) -> None:
    """Structure check, then an isolated load. Cached per file state within this process."""
    path = Path(path)
    try:  # a file in the state it was validated in needs no second look (its structure checks passed then)
        key: tuple[str, int, int] | None = _state(path)
    except OSError:
        key = None
    if key in _validated:
        return
    if key in _rejected:
        raise _rejected[key]
    check_structure(path)
    key = _state(path)
    try:
        probe_in_subprocess(path)
    except ModelFileError as e:
        _rejected[key] = e
        raise
    _validated.add(key)


class PendingValidation:
    """``validate_model_files`` begun: structure checks done here, loads running in one child; ``wait`` for them.

    Between the two the caller may do other work (load inputs, import runtimes):
    the child runs meanwhile. No runtime in this process may load a file before
    ``wait`` said it is fine.
    """

    def __init__(self, paths: Iterable[Path], passed: PassedChecks | None = None) -> None:
        """``passed``: the structure checks' remembered passes (``check_structure``); ``None``: check every file."""
        self.results: dict[Path, ModelFileError | None] = {}
        self._keys: dict[Path, tuple[str, int, int]] = {}
        self._child: ProbeChild | None = None
        self._order = list(dict.fromkeys(Path(p) for p in paths))
        for path in self._order:
            try:
                key = _state(path)
            except OSError:
                key = None
            if key is not None and key in _validated:
                self.results[path] = None
                continue
            if key is not None and key in _rejected:
                self.results[path] = _rejected[key]
                continue
            if self._child is None:  # started before the first structure check: its start-up overlaps them
                self._child = ProbeChild()
            try:
                check_structure(path, passed)
                key = _state(path)
            except ModelFileError as e:
                self.results[path] = e
                continue
            except OSError as e:  # gone between the check and stat
                self.results[path] = ModelFileError(f"Model file {path} cannot be read ({e}). {_what_to_do(path)}")
                continue
            self._keys[path] = key
            self._child.send(path)

    def wait(self) -> dict[Path, ModelFileError | None]:
        if self._child is not None:
            for path, error in self._child.finish().items():
                self.results[path] = error
                if error is None:
                    _validated.add(self._keys[path])
                else:
                    _rejected[self._keys[path]] = error
            self._child = None
        return {p: self.results[p] for p in self._order}  # in the order given


def validate_model_files(paths: Iterable[Path]) -> dict[Path, ModelFileError | None]:
    """``validate_model_file`` for many files with one probe process; the outcome per file, never raising.

    Structure checks run here first (a file that fails one is not loaded at all);
    files already validated in this process are not probed again. Afterwards a
    ``validate_model_file`` of any of them is answered from the cache.
    """
    return PendingValidation(paths).wait()
