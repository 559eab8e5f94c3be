"""How the CLI shows progress and sizes its output: the library reports, this module renders.

- On a terminal, a live line drawn by ``rich`` (spinner, bar, done/total, elapsed,
  ETA); results printed above it stay. ``rich`` is already installed as a dependency
  of Keras; it turns colour off by itself when the stream is not a terminal or
  ``NO_COLOR`` is set (https://no-color.org, rich's ``Console`` reads it).
- Off a terminal (a pipe, a log, CI), ``edgefm.core.progress.LineProgress``:
  timestamped lines with an ETA on stderr.
- ``--quiet``: nothing.

Progress goes to a duplicate of file descriptor 2 taken when the command starts:
the converters' output is silenced by redirecting fds 1 and 2 while they run
(``edgefm.core.quiet``), and progress written during a conversion must still
reach the user, not the capture.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click

from edgefm.core.progress import LineProgress, NoProgress, Progress

#: ``ctx.meta`` key: the command printed its JSON result (an error after it is not printed as JSON again)
JSON_PRINTED = "edgefm.json_printed"


def echo_json(data: Any) -> None:
    """The command's one JSON document on stdout; an error raised after it stays on stderr only."""
    import json

    click.echo(json.dumps(data, indent=2, default=str))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[JSON_PRINTED] = True


def _stderr() -> tuple[TextIO, bool]:
    """A stream on the real stderr that survives fd redirection, and whether we opened it (to close it)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # click's CliRunner, a StringIO
        return sys.stderr, False
    if sys.stderr is not sys.__stderr__:  # someone (pytest's capsys) replaced it: respect that
        return sys.stderr, False
    return os.fdopen(os.dup(fd), "w", encoding=sys.stderr.encoding or "utf-8", errors="replace"), True


class RichProgress:
    """``Progress`` as a live rich line on a terminal; ``note`` lines stay above it."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=stream, highlight=False, soft_wrap=False)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
            console=self.console, transient=True,
        )
        self._task: Any = None
        self._started = False

    def start(self, what: str, total: int | None = None) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self.finish()
        self._task = self._progress.add_task(what, total=total, detail="")

    def advance(self, done: int, detail: str = "") -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, detail=detail)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None

    def close(self) -> None:
        self.finish()
        if self._started:
            self._progress.stop()


@contextlib.contextmanager
def progress_for(quiet: bool) -> Iterator[Progress]:
    """The ``Progress`` a command passes to its library function: live, lines, or nothing."""
    if quiet:
        yield NoProgress()
        return
    stream, opened = _stderr()
    try:
        if stream.isatty():
            view = RichProgress(stream)
            try:
                yield view
            finally:
                view.close()
        else:
            yield LineProgress(stream)
    finally:
        if opened:
            stream.close()


#: C0 controls but tab and newline, DEL and the C1 controls: what a terminal acts on instead of printing
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0, 9), *range(11, 32), *range(127, 160))}


def plain(text: object) -> str:
    """``text`` with every control character but tab and newline written as an escape (``\\x1b``).

    Names come from files (class names embedded in a .tflite, a model or artifact name in a manifest):
    printed raw, an OSC sequence in one set the window title or wrote the clipboard (OSC 52). Every
    line ``inspect``, ``predict`` and ``verify`` print for people passes here; JSON escapes them itself.
    """
    return str(text).translate(_CONTROL)


def echo(text: object = "", err: bool = False) -> None:
    """``click.echo`` of ``plain(text)``."""
    click.echo(plain(text), err=err)


def text_callback(progress: Progress) -> Callable[[str], None]:
    """For library functions that report plain messages (``check``): ``...…`` starts a step, anything else stays."""

    def say(message: str) -> None:
        message = plain(message)
        if message.endswith("…"):
            progress.start(message[:-1].rstrip())
        else:
            progress.finish()
            progress.note(message)

    return say


def output_width() -> int | None:
    """Columns the printed tables must fit: ``$COLUMNS``, else the terminal's; ``None`` when stdout is a file or pipe.

    Off a terminal (and without ``COLUMNS``) tables keep their one-row-per-artifact form, which greps well.
    """
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 40)
    try:
        if sys.stdout.isatty():
            return max(shutil.get_terminal_size().columns, 40)
    except (AttributeError, ValueError, OSError):
        pass
    return None
