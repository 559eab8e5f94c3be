"""Validate model files before a native runtime sees them.

LiteRT and ONNX Runtime are C++ libraries: on some malformed files they abort or
segfault the whole process instead of raising. So a file is first checked
cheaply in Python (size, flatbuffer identifier, protobuf parse), then loaded once
in a short-lived child process; a crash there becomes a ``ModelFileError`` here.
Results are cached per (path, size, mtime) for the life of the process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from edgefm.core.errors import ModelFileError
from edgefm.formats import onnx_file, tflite_file

#: file suffix -> the format's structure check
STRUCTURE_CHECKS = {tflite_file.SUFFIX: tflite_file.check_tflite_structure, onnx_file.SUFFIX: onnx_file.check_onnx_structure}

PROBE_TIMEOUT_S = 60.0

_PROBE = {
    ".tflite": (
        "import sys\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "i = Interpreter(model_path=sys.argv[1])\n"
        "i.allocate_tensors()\n"
        "i.get_signature_list()\n"
    ),
    ".onnx": (
        "import sys\n"
        "import onnxruntime as ort\n"
        "o = ort.SessionOptions(); o.log_severity_level = 4\n"
        "ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n"
    ),
}
_validated: set[tuple[str, int, int]] = set()


def _what_to_do(path: Path) -> str:
    return f"Re-export it with `edgefm export` (or pass the right file); edgefm will not load {path.name} as is."


def check_structure(path: Path) -> None:
    """Cheap in-process checks of the file's format (``edgefm.formats``); runtimes load only in the probe."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist or is not a file. Check the path, or run `edgefm export`.")
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ModelFileError(f"Model file {path} is empty (0 bytes). {_what_to_do(path)}")
    check = STRUCTURE_CHECKS.get(suffix)
    if check is None:
        raise ModelFileError(f"{path}: unsupported model file type {suffix!r} (expected .tflite or .onnx).")
    check(path, _what_to_do(path))


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
        raise ModelFileError(f"Loading {path} hung for {PROBE_TIMEOUT_S:.0f} s in a test process. {_what_to_do(path)}") from e
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        raise ModelFileError(
            f"{path} crashed the runtime while loading (killed by {sig}); the file is corrupt. {_what_to_do(path)}"
        )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ModelFileError(f"The runtime cannot load {path}: {reason}. {_what_to_do(path)}")


def validate_model_file(path: Path) -> None:
    """Structure check, then an isolated load. Cached per file state within this process."""
    path = Path(path)
    check_structure(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _validated:
        return
    probe_in_subprocess(path)
    _validated.add(key)
