"""Plain-text tables that fit a width: the one layout ``verify``, ``export`` and ``benchmark`` print.

A table is a header and rows of strings (each command formats its own numbers).
Without a width (a file, a pipe) it is one aligned row per record, however wide,
because that greps well. With a width (``edgefm.cli.console.output_width``: the
terminal's, or ``$COLUMNS``) it stays that way when it fits; otherwise each record
becomes a block: its key cells on one line, then ``header value`` items packed
into the width, never split. Nothing is dropped to make it fit except cells that
are ``-`` (no value); a word longer than a line (a deep path) is broken, as the
terminal would break it anyway.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Sequence

#: a cell with no value: shown in rows, left out of blocks
EMPTY = "-"


def fit_line(line: str, width: int | None, indent: str = "") -> list[str]:
    """``line`` wrapped to ``width`` (continuations under ``indent``, default its own indent + 2); unchanged without a width."""
    if width is None or len(line) <= width:
        return [line]
    lead = line[: len(line) - len(line.lstrip(" "))]
    return textwrap.wrap(line.lstrip(" "), width, initial_indent=lead, subsequent_indent=indent or lead + "  ",
                         break_on_hyphens=False) or [line[:width]]


def pack(first: str, items: Sequence[str], width: int | None, indent: str, sep: str = " ") -> list[str]:
    """``first`` then ``items`` on as few lines of ``width`` as fit, never splitting an item (continuations indented)."""
    if width is None:
        return [sep.join([first, *items]) if first else sep.join(items)]
    out: list[str] = []
    line = first
    for item in items:
        candidate = f"{line}{sep}{item}" if line.strip() else f"{line}{item}"
        if len(candidate) > width and line.strip():
            out.append(line.rstrip())
            candidate = f"{indent}{item}"
        line = candidate
    if line.strip():
        out.append(line.rstrip())
    return [w for ln in out for w in fit_line(ln, width, indent)]  # an item longer than a line is wrapped itself


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    """The header, a rule of dashes and one row per record; columns ``right`` (numbers) right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *[fmt(r) for r in rows]]


def fit_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    *,
    right: Collection[int] = (),
    key: int = 1,
    titles: Sequence[str] | None = None,
    trailers: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """``aligned`` rows when they fit ``width`` (always when it is ``None``), else one block per row.

    A block's first line is ``titles[i]`` (default: the first ``key`` cells, two spaces apart),
    wrapped under four spaces; then ``header value`` of every other non-empty cell packed into
    ``width`` under three spaces; then ``trailers[i]``, lines the caller has already fitted.
    """
    table = aligned(header, rows, right)
    if width is None or max(map(len, table)) <= width:
        return table
    out: list[str] = []
    for i, row in enumerate(rows):
        title = titles[i] if titles is not None else "  ".join(row[:key])
        out += fit_line(title, width, indent="    ")
        out += pack("   ", [f"{h} {c}" for h, c in zip(header[key:], row[key:]) if c != EMPTY], width, "   ", sep="  ")
        if trailers is not None:
            out += trailers[i]
    return out
