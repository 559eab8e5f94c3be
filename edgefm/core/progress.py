"""Progress of long steps, as an interface the library calls and the CLI renders.

A library function (``export``, ``benchmark``, ``train``) takes a ``Progress`` and
says what it starts, how far it is and what it finished; it never decides how that
looks. The CLI passes a live bar on a terminal (``edgefm.cli.console``), and
``LineProgress`` off a terminal: timestamped lines with an ETA, rate-limited, so a
log file shows what ran when without one line per batch. ``NoProgress`` is
``--quiet`` (and the default of a Python caller who passes nothing).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Progress(Protocol):
    """What a long step reports; every method is cheap and never raises."""

    def start(self, what: str, total: int | None = None) -> None:
        """A step of ``total`` units (``None``: unknown) begins, e.g. ``("converting variants", 6)``."""

    def advance(self, done: int, detail: str = "") -> None:
        """``done`` of the current step's units are finished; ``detail`` says what is running now."""

    def note(self, text: str) -> None:
        """A line that stays (a result, a decision)."""

    def finish(self) -> None:
        """The current step ended."""


class NoProgress:
    """Silence (``--quiet``)."""

    def start(self, what: str, total: int | None = None) -> None:
        pass

    def advance(self, done: int, detail: str = "") -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass


def format_seconds(seconds: float) -> str:
    """``7 s``, ``2 min 05 s``, ``1 h 02 min``: an ETA a reader takes in at a glance."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def eta_seconds(done: int, total: int | None, elapsed: float) -> float | None:
    """Seconds left at the rate so far; ``None`` until one unit is done (or with no total)."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return elapsed / done * max(total - done, 0)


class LineProgress:
    """Timestamped lines on a stream (stderr by default): for logs, CI and pipes.

    ``12:04:31 [3/6] converting: tflite_int8 (elapsed 14 s, ETA 12 s)``. A step of at
    most ``EVERY_UNIT`` units (variants, models) gets a line when it starts and one per
    unit; a longer one (the batches of an epoch) a line every ``interval`` seconds, the
    first after ``interval``: a 938-batch epoch of 0.2 s prints nothing of its own (the
    caller's note sums it up), one of 3 minutes a line with its ETA every 10 s.
    """

    EVERY_UNIT = 50

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self.interval = interval
        self._clock, self._wall = clock, wall
        self._what, self._total = "", None
        self._t0 = self._last = 0.0

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stamp = time.strftime("%H:%M:%S", time.localtime(self._wall()))
        try:
            stream.write(f"{stamp} {text}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not fail the run
            pass

    def _few(self) -> bool:
        return self._total is not None and self._total <= self.EVERY_UNIT

    def start(self, what: str, total: int | None = None) -> None:
        self._what, self._total = what, total
        self._t0 = self._last = self._clock()
        if total is None or self._few():  # a long step of many units speaks once it has taken ``interval``
            self._write(what)

    def advance(self, done: int, detail: str = "") -> None:
        now = self._clock()
        if not self._few() and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._t0
        total = self._total
        eta = eta_seconds(done, total, elapsed) if total is not None and done < total else None
        count = f"[{done}/{total}] " if total else ""
        timing = f"elapsed {format_seconds(elapsed)}" + (f", ETA {format_seconds(eta)}" if eta is not None else "")
        self._write(f"{count}{self._what}{f': {detail}' if detail else ''} ({timing})")

    def note(self, text: str) -> None:
        self._write(text)

    def finish(self) -> None:
        self._what, self._total = "", None



def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``5 epochs``, ``1 artifact``; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
