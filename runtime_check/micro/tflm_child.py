"""The child process that loads a .tflite file in TFLite Micro: op check, then the arena bisection.

Run as a script (``python tflm_child.py REQUEST_JSON``), never imported by edgefm:
TFLM's C++ code segfaults instead of raising when the arena is too small even for
its own bookkeeping (measured with tflite-micro 0.dev20261023182759 on edgefm's MLP
int8: every arena below 512 B killed the process with SIGSEGV after "Failed to
allocate tail memory"), and a corrupt file may do the same. So every interpreter
this file creates lives here; the parent (``runtime_check.micro.arena``) reads one
JSON line per attempt on stdout and, if this process dies, knows which attempt
killed it.

Imports only the standard library and tflite_micro (no edgefm: the child starts
in ~0.2 s).

Request: ``{"path": str, "scan": bool, "lo": int, "hi": int | null}``
- ``scan``: first find every op TFLM has no kernel for (TFLM stops at the first
  one, so each found op is swapped for ADD in a copy of the model and the load
  repeated), then whether the model loads at all with a large arena.
- then bisect the arena between ``lo`` (known to fail) and ``hi`` (known to work,
  or null: grow from 10x the file size until it works), in steps of 16 bytes.

Lines written (JSON): ``{"missing": [op, ...]}``, ``{"error": text}``,
``{"try": n}`` before each attempt, ``{"ok": n, "head": h, "tail": t}`` /
``{"fail": n, "text": ...}`` after it, ``{"done": n}``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

ALIGN = 16
#: TFLM's words for "the arena is too small" (micro_allocator.cc, single_arena_buffer_allocator.cc)
TOO_SMALL = re.compile(r"Failed to (allocate|resize buffer)|missing: \d+|Arena size is too small", re.I)
MISSING_OP = re.compile(r"Didn't find op for (?:builtin|custom) opcode '([^']+)'")
#: the largest arena tried before giving up (a model needing more does not fit any microcontroller)
MAX_ARENA = 1 << 30


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


class Captured:
    """Redirect fd 2 (TFLM's MicroPrintf goes there) into a temp file for one call; ``text`` after it."""

    def __enter__(self) -> Captured:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._sink = tempfile.TemporaryFile()
        os.dup2(self._sink.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._sink.seek(0)
        self.text = self._sink.read().decode("utf-8", "replace")
        self._sink.close()


def load(runtime, data: bytes, arena: int) -> tuple[bool, str]:
    with Captured() as c:
        try:
            runtime.Interpreter.from_bytes(data, arena_size=arena)
            ok = True
        except (RuntimeError, ValueError) as e:
            ok, err = False, str(e)
    return ok, c.text if ok else (c.text + "\n" + err).strip()


def without_op(data: bytes, op: str) -> bytes:
    """A copy of the model whose ``op`` operator codes are ADD: TFLM then looks up the next op's kernel."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {k: v for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    for code in model.operatorCodes:
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom == op or (not custom and names.get(op) == max(code.builtinCode, code.deprecatedBuiltinCode)):
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
            code.customCode = None
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def scan(runtime, data: bytes, big: int) -> bool:
    """Say the ops TFLM lacks and any other load error; True if the model loads with ``big`` bytes."""
    missing: list[str] = []
    probe = data
    while True:
        ok, text = load(runtime, probe, big)
        found = MISSING_OP.findall(text)
        if ok or not found or found[0] in missing or len(missing) > 64:
            break
        missing.append(found[0])
        probe = without_op(probe, found[0])
    if missing:
        say(missing=missing)
        return False
    if not ok and not TOO_SMALL.search(text):
        say(error=text)
        return False
    return True


def main() -> None:
    request = json.loads(sys.argv[1])
    from tflite_micro.python.tflite_micro import runtime

    with open(request["path"], "rb") as f:
        data = f.read()
    lo, hi = int(request["lo"]), request["hi"]
    if request["scan"] and not scan(runtime, data, max(10 * len(data), 1 << 20)):
        return
    if hi is None:  # grow until it loads: the first size that works bounds the search
        hi = max(10 * len(data), 4096) // ALIGN * ALIGN
        while True:
            say(**{"try": hi})
            ok, text = load(runtime, data, hi)
            if ok:
                say(ok=hi)
                break
            if not TOO_SMALL.search(text) or hi >= MAX_ARENA:
                say(error=text)
                return
            say(fail=hi)
            lo, hi = hi, hi * 2
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        say(**{"try": mid})
        ok, text = load(runtime, data, mid)
        if ok:
            hi = mid
            say(ok=mid)
        else:
            lo = mid
            say(fail=mid)
    # the split of the smallest arena, as TFLM's RecordingMicroAllocator prints it
    interp = runtime.Interpreter.from_bytes(data, arena_size=hi)
    with Captured() as c:
        interp.print_allocations()
    part = {k: int(v) for k, v in re.findall(r"Arena allocation (head|tail) (\d+) bytes", c.text)}
    say(done=hi, head=part.get("head"), tail=part.get("tail"))


if __name__ == "__main__":
    main()
