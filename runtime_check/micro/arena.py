"""The exact tensor arena a .tflite file needs in TFLite Micro, and the ops TFLM lacks.

TFLM has no tool that says how big the arena must be (tensorflow#35070,
tflite-micro#2474; a ``get_allocations()`` was proposed and closed unmerged,
tflite-micro PR#1610) and ``print_allocations()`` only prints, after the fact.
But ``runtime.Interpreter.from_bytes(data, arena_size=N)`` plans and allocates
every tensor and raises when N is too small, and more arena never hurts: so the
smallest N, to 16 bytes, is found by bisection.

Every attempt runs in a child process (``tflm_child.py``): TFLM segfaults on an
arena too small for its own structures. The child reports each attempt before it
makes it; if it dies, the size it died on counts as too small and a new child
carries on from the bounds known so far.

The number is for this host's 64-bit build of TFLM: pointers and the structures
holding them are twice as wide as on a 32-bit Cortex-M, so it is an upper bound
for the microcontroller, not its exact figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgefm.core.errors import ModelFileError, RuntimeUnavailableError

CHILD = Path(__file__).with_name("tflm_child.py")
#: what the arena is, wherever it is printed
ARENA_NOTE = "host 64-bit build: an upper bound for a 32-bit Cortex-M"
#: seconds one child may take (a load takes milliseconds; the budget is for a loaded machine)
CHILD_TIMEOUT_S = 120.0
#: children that may die on an attempt before the search gives up on the file
MAX_CRASHES = 8


@dataclass(frozen=True)
class Arena:
    """The smallest tensor arena TFLM accepts for a model (16-byte steps), and how it was found."""

    bytes: int
    #: TFLM's own split of it (RecordingMicroAllocator): planned tensors (head) and persistent data (tail)
    head: int | None
    tail: int | None
    #: interpreter creations tried, children that crashed on one, wall seconds of the search
    attempts: int
    crashes: int
    seconds: float

    def describe(self) -> str:
        split = f" (head {self.head:,} / tail {self.tail:,})" if self.head is not None and self.tail is not None else ""
        return f"arena {self.bytes:,} B{split}, {ARENA_NOTE}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": ARENA_NOTE}


class TflmUnsupported(ModelFileError):
    """TFLite Micro cannot run the file: ops it has no kernel for, or a kernel that refuses the model."""

    def __init__(self, message: str, missing_ops: list[str]) -> None:
        super().__init__(message)
        self.missing_ops = missing_ops


def require_tflm() -> str:
    """The installed tflite-micro version, or RuntimeUnavailableError saying how to install it."""
    from importlib import metadata

    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError as e:
        raise RuntimeUnavailableError(
            "TFLite Micro is not installed: run `make micro`, or `pip install --pre --no-deps "
            "tflite-micro==0.dev20261023182759 flatbuffers pyyaml` (--no-deps: older wheels declare a "
            "`tensorflow` dependency that would install a second TensorFlow beside tensorflow-cpu)."
        ) from e


def _tflm_lines(text: str) -> str:
    """TFLM's own error lines (no Python traceback), joined into one."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    picked = [ln for ln in lines if not ln.startswith(("Traceback", "File ", "^", "self._", "return "))]
    return " / ".join(dict.fromkeys(picked))[:600] or "no message"


def _unsupported(path: Path, missing: list[str] | None, error: str | None) -> TflmUnsupported:
    if missing:
        return TflmUnsupported(
            f"TFLite Micro cannot run {path}: it has no kernel for {', '.join(missing)} (LiteRT runs these ops, so "
            "the LiteRT rows are unaffected). Rewrite the model without them, or register a custom kernel on the "
            "microcontroller.", missing)
    return TflmUnsupported(f"TFLite Micro cannot run {path}: {_tflm_lines(error or '')}.", [])


def find_arena(path: Path, *, scan: bool = True) -> Arena:
    """The smallest arena ``path`` loads with in TFLM; TflmUnsupported if it never loads (ops named)."""
    path = Path(path)
    require_tflm()
    if not path.is_file():
        raise ModelFileError(f"Model {path} does not exist. Check the path, or run `edgefm export`.")
    t0 = time.perf_counter()
    lo, hi = 0, None
    attempts = crashes = 0
    while True:
        request = json.dumps({"path": str(path.resolve()), "scan": scan, "lo": lo, "hi": hi})
        try:
            proc = subprocess.run([sys.executable, str(CHILD), request], capture_output=True, text=True,
                                  errors="replace", timeout=CHILD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise ModelFileError(f"TFLite Micro did not finish loading {path} within {CHILD_TIMEOUT_S:g} s.") from e
        trying = None
        for line in proc.stdout.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "missing" in msg or "error" in msg:
                raise _unsupported(path, msg.get("missing"), msg.get("error"))
            if "try" in msg:
                trying, attempts = int(msg["try"]), attempts + 1
            elif "ok" in msg:
                hi, trying = int(msg["ok"]), None
            elif "fail" in msg:
                lo, trying = int(msg["fail"]), None
            elif "done" in msg:
                return Arena(int(msg["done"]), msg.get("head"), msg.get("tail"), attempts, crashes,
                             time.perf_counter() - t0)
        scan = False  # the ops were checked (a crash during the scan is caught below)
        if trying is None and proc.returncode >= 0:
            raise _unsupported(path, None, proc.stderr or f"the loading process ended with status {proc.returncode}")
        # the child died on an attempt: that size is too small (or the file kills TFLM at any size)
        crashes += 1
        if trying is None or hi is None or crashes > MAX_CRASHES:
            raise ModelFileError(
                f"TFLite Micro crashed loading {path} (exit status {proc.returncode}): "
                f"the file is corrupt or TFLM cannot handle it. It said: {_tflm_lines(proc.stderr)}.")
        lo = trying
