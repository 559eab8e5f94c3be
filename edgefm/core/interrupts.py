"""SIGINT and SIGTERM as the stages see them: an interruption to report, or a wait.

``interrupts_noted`` turns both into ``KeyboardInterrupt`` (SIGTERM would otherwise
end the process with no message) and remembers which arrived; ``signals_deferred``
holds them while several writes must land together. Used by train (one epoch's
checkpoint and its state) and export (the files and the manifest that lists them).
Both only work in the main thread; elsewhere they leave signals alone.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def interrupts_noted() -> Iterator[list[str]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt here, and are remembered in the yielded list.

    Remembered because a library can turn the KeyboardInterrupt into another error:
    a signal that lands while an extension module is being imported (LiteRT's, when
    the first .tflite is checked) surfaces as ``ImportError: initialization failed``,
    which must not read as a converter failure. Main thread only; elsewhere a no-op.
    """
    seen: list[str] = []

    def handle(signum: int, _frame: object) -> None:
        seen.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

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
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)
