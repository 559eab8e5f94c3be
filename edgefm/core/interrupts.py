"""SIGINT and SIGTERM as the stages see them: an interruption to report, or a wait.

``interrupts_noted`` turns both into ``KeyboardInterrupt`` (SIGTERM would otherwise
end the process with no message) and remembers which arrived; ``signals_deferred``
holds them while several writes must land together. Used by train (one epoch's
checkpoint and its state) and export (the files and the manifest that lists them).
Both only work in the main thread; elsewhere they leave signals alone.

Either way the ``KeyboardInterrupt`` is raised by ``interrupt_where_safe``: never
inside TensorFlow and the other libraries of ``FRAGILE_PACKAGES``, but as their
call returns to the code that made it.

A call that does not return for long (a converter, TensorFlow creating threads) would
keep the process alive for minutes: ``signal_watcher`` (around every CLI command) then
ends it ``GRACE_S`` after the signal, without raising into the library, once it has
removed what a forced end would leave half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

#: Top-level packages (and the import machinery) inside which an asynchronous KeyboardInterrupt is not
#: unwound safely: their C++ calls back into Python (TensorFlow's tracing flattens structures in
#: ``_pywrap_utils.Flatten``, which imports and calls Python; the converters call the calibration
#: generator) and does not always check for a pending exception. A SIGTERM while ``edgefm train`` traced
#: its first step, raised at once, gave a segfault or a ``SystemError: <built-in function __import__>
#: returned a result with an exception set`` out of ``Flatten`` followed by a ValueError or AttributeError
#: (measured: 2 in 123 signals timed into that ~0.16 s window), and in CI a process that printed that
#: traceback and hung. Inside ``import``, a module body stopped half-way left TensorFlow's modules broken
#: (later calls failed with unrelated errors).
FRAGILE_PACKAGES = frozenset(
    {"tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert", "importlib"}
)

#: the fragile frame whose return a deferred interrupt waits for (at most one)
_deferred: list[FrameType] = []


def interrupt_where_safe(frame: FrameType | None) -> None:
    """From a signal handler: raise KeyboardInterrupt now, or when the fragile code ``frame`` is in returns.

    ``frame`` is the one the signal interrupted. If any frame on its stack belongs to
    ``FRAGILE_PACKAGES``, the interrupt waits for the outermost of them to return, and that
    call then ends with KeyboardInterrupt instead of its result: at the call site, so the
    caller's ``with``, ``finally`` and ``except`` apply as to any exception of the call. (Raised
    at the caller's next line instead, a call that ended a ``with`` or ``try`` body skipped its
    ``__exit__`` and ``finally``, and one that ended a ``for`` loop's iterator was discarded with
    its StopIteration; found in review, measured on CPython 3.11.) The wait is a trace function
    on that frame alone, with tracing turned on for it: until the call returns, the Python code
    still running in it is ~1.2-1.6x slower (measured on TensorFlow's tracing), and a tracer
    already installed (a debugger, coverage) is dropped. A second signal while one waits is
    raised at once: the user (or a supervisor) insists, and a call that never returns must
    still be stoppable.
    """
    if _deferred and sys.gettrace() is not _trace_no_new_frames:
        _deferred.clear()  # somebody turned tracing off while it waited: that interrupt is lost, this one is new
    outermost = _outermost_fragile_frame(frame)
    if outermost is None or _deferred:
        _cancel_deferred()
        raise KeyboardInterrupt
    _deferred.append(outermost)
    outermost.f_trace_lines = False  # its return is the only event wanted
    outermost.f_trace = _raise_on_return
    sys.settrace(_trace_no_new_frames)  # turns tracing on; the frame's f_trace then sees its events


def _outermost_fragile_frame(frame: FrameType | None) -> FrameType | None:
    """The oldest frame on ``frame``'s stack that belongs to ``FRAGILE_PACKAGES``; None if there is none."""
    outermost = None
    while frame is not None:
        if frame.f_globals.get("__name__", "").partition(".")[0] in FRAGILE_PACKAGES:
            outermost = frame
        frame = frame.f_back
    return outermost


def _trace_no_new_frames(frame: FrameType, event: str, arg: Any) -> None:
    return None  # frames called from now on are not traced


def _raise_on_return(frame: FrameType, event: str, arg: Any) -> None:
    if event != "return":  # an exception passing through the library's frame, which the library may still handle
        return None  # (None keeps this trace function on the frame)
    # The frame returns (or unwinds, or yields): its call ends with the interrupt instead. Raising here
    # also makes CPython drop the trace function (sys.settrace(None)), as for any error in one.
    _cancel_deferred()
    raise KeyboardInterrupt


def _cancel_deferred() -> None:
    if _deferred:
        _deferred.pop().f_trace = None
        sys.settrace(None)


@contextlib.contextmanager
def interrupts_noted() -> Iterator[list[str]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt here, and are remembered in the yielded list.

    Remembered because a library can turn the KeyboardInterrupt into another error:
    a signal that lands while an extension module is being imported (LiteRT's, when
    the first .tflite is checked) surfaced as ``ImportError: initialization failed``,
    which must not read as a converter failure. Main thread only; elsewhere a no-op.
    """
    seen: list[str] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        seen.append(signal.Signals(signum).name)
        interrupt_where_safe(frame)

    old: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handle)
    try:
        yield seen
    finally:
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def signals_deferred(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold ``signals`` until the block ends, so several atomic writes land together or not at all.

    A signal that arrives inside the block is recorded, then raised again once the
    old handlers are back (SIGINT then raises KeyboardInterrupt, SIGTERM ends the
    process as it would have). Handlers, not a signal mask: with other threads
    running (TensorFlow's), the kernel hands a signal to any thread that does not
    block it. Outside the main thread Python cannot set handlers; the block runs as is.
    """
    pending: list[int] = []
    old: dict[int, Any] = {}
    _holding.append(None)  # the watcher does not end the process half-way through the block
    try:
        for sig in signals:
            old[sig] = signal.signal(sig, lambda signum, _frame: pending.append(signum))
    except ValueError:  # not the main thread
        for sig, handler in old.items():
            signal.signal(sig, handler)
        old.clear()
    try:
        yield
    finally:
        _holding.pop()
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


# -- the watcher: a stop that stops even while the main thread is inside a C call ------------------------
#
# Python runs a signal handler only when the main thread next executes Python bytecode: inside a long
# C++ call (a converter, TensorFlow creating 100,000 threads) neither the first SIGTERM nor a second
# one did anything for minutes. ``signal.set_wakeup_fd`` has the C-level handler write the signal
# number to a pipe at once, whatever the main thread does; a thread waiting on that pipe then gives the
# main thread ``GRACE_S`` to get back to Python and unwind as usual (its KeyboardInterrupt is raised
# where it is safe, above). If it has not finished by then, the watcher does the clean-up the CLI
# promises itself -- children stopped, staged files and temporary directories removed -- and ends
# the process with ``os._exit(130)``. It never raises into the main thread: an exception raised
# inside TensorFlow's C++ gave segfaults and hangs (``FRAGILE_PACKAGES``). Locks are ``flock``s,
# released by the kernel with the process. Files written atomically are either whole or still
# staged (and removed here); ``signals_deferred`` blocks are waited for, up to another ``GRACE_S``.

#: seconds the main thread has after a SIGINT/SIGTERM to unwind by itself before the watcher ends the process
GRACE_S = 4.0
#: staged files and directories (beside their targets) that a forced end removes; see ``removed_if_forced``
_leftovers: dict[str, None] = {}
#: clean-up that a forced end runs (the command's private temporary directory)
_cleanups: list[Callable[[], None]] = []
#: one entry per ``signals_deferred`` block in progress
_holding: list[None] = []


@contextlib.contextmanager
def removed_if_forced(path: Path) -> Iterator[None]:
    """While the block runs, a forced end (the watcher's) removes ``path``: a staged file that is not yet whole."""
    key = str(path)
    _leftovers[key] = None
    try:
        yield
    finally:
        _leftovers.pop(key, None)


def at_forced_end(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Run ``cleanup`` if the watcher ends the process; returns a function that cancels it."""
    _cleanups.append(cleanup)
    return lambda: _cleanups.remove(cleanup) if cleanup in _cleanups else None


@contextlib.contextmanager
def signal_watcher(command: Callable[[], str] = lambda: "the command") -> Iterator[None]:
    """For the block: a SIGINT or SIGTERM ends the process within ``GRACE_S`` (+ a commit in progress), clean.

    Main thread only (elsewhere a no-op). ``command`` names what was stopped, for the message.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        os.close(r), os.close(w)
        yield
        return
    stop = threading.Event()
    err = os.dup(2)  # the terminal: while a library's output is silenced (edgefm.core.quiet), fd 2 is /dev/null
    thread = threading.Thread(target=_watch, args=(r, err, stop, command), name="edgefm-signal-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old)
        stop.set()
        with contextlib.suppress(OSError):  # the thread may have closed its end already (EPIPE)
            os.write(w, b"\0")  # wakes the thread, which then closes its end
        os.close(w)


def _watch(r: int, err: int, stop: threading.Event, command: Callable[[], str]) -> None:
    try:
        while not stop.is_set():
            got = os.read(r, 64)
            signals = [b for b in got if b in (signal.SIGINT, signal.SIGTERM)]
            if signals and not stop.is_set():
                _end_after_grace(signal.Signals(signals[0]).name, err, stop, command)
                return
    finally:
        os.close(r)
        os.close(err)


def _end_after_grace(name: str, err: int, stop: threading.Event, command: Callable[[], str]) -> None:
    start = time.monotonic()
    while time.monotonic() - start < GRACE_S or (_holding and time.monotonic() - start < 2 * GRACE_S):
        if stop.wait(0.05):
            return  # the main thread unwound by itself
    with contextlib.suppress(OSError):  # a closed stderr must not keep the process alive
        os.write(err, f"error: interrupted by {name}: {command()} was inside a library call that did not return "
                      f"within {GRACE_S:g} s, so it was ended there; nothing half-written is kept.\n".encode())
    _stop_children()
    for path in list(_leftovers):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink(path)
    for cleanup in list(_cleanups):
        with contextlib.suppress(Exception):
            cleanup()
    os._exit(130)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _stop_children() -> None:
    """SIGTERM to this process's children (the probe, a runner, benchmark's child, local workers), as
    ``subprocess.run`` does for them when a KeyboardInterrupt unwinds through it."""
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = f.read().rpartition(")")[2].split()[1]
            if ppid == me:
                os.kill(int(entry.name), signal.SIGTERM)
        except (OSError, IndexError, ValueError):
            continue
