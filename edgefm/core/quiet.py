"""Keep converter log spam away from the user, but keep it for error messages.

TensorFlow, the TFLite converter (MLIR) and ONNX Runtime's quantizer print from
C++ straight to file descriptors 1 and 2 (e.g. "fully_quantize: 0, ...", absl's
"All log messages before absl::InitializeLog()"), which no Python logging level
reaches; ``TF_CPP_MIN_LOG_LEVEL`` silences only part of it. So both descriptors
are redirected to a temporary file while converters run, and Python loggers are
raised to ERROR. The captured text is kept so a converter failure can quote it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

# Python loggers that converters write warnings to (onnxruntime.quantization uses the root logger).
NOISY_LOGGERS: tuple[str, ...] = ("", "tensorflow", "tf2onnx", "absl", "onnxruntime", "h5py")
# Python warnings converters raise about their own internals (the int8 calibrator
# still drives the deprecated tf.lite.Interpreter); nothing a user can act on.
IGNORED_WARNINGS: tuple[str, ...] = (r".*tf\.lite\.Interpreter is deprecated",)
CAPTURE_TAIL_CHARS = 2000


@dataclass
class CapturedOutput:
    """What native code printed while the context was active."""

    text: str = ""

    def tail(self, chars: int = CAPTURE_TAIL_CHARS) -> str:
        lines = [ln for ln in self.text.strip().splitlines() if ln.strip()]
        return "\n".join(lines)[-chars:]


@contextlib.contextmanager
def quiet_native_output() -> Iterator[CapturedOutput]:
    """Redirect fds 1 and 2 and mute noisy loggers; restore everything on exit."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    captured = CapturedOutput()
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no stdout/stderr descriptors (a daemon): nothing to redirect
        saved = []
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        for pattern in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            if saved:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, target in zip(saved, (1, 2)):
                os.dup2(fd, target)
                os.close(fd)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def import_tensorflow() -> ModuleType:
    """Import TensorFlow with its logging turned down (call inside ``quiet_native_output``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    return tf
