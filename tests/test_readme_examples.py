"""The README's shell examples, run exactly as written, as a new user copies them.

The marking rule (README.md): every ```sh / ```bash / ```shell / ```console block has an
HTML comment on the line before its fence (blank lines between are allowed) that says
whether this test runs it:

- ``<!-- tested -->``: every command runs, in order, in one directory where ``artifacts/``
  is what `make demo` leaves (a copy of the session's trained and exported MLP, the
  ``trained_artifacts`` fixture); ``<!-- tested: fresh -->`` starts from an empty directory.
- ``; except "TEXT" (why), "TEXT" (why)`` after either: the command whose line contains TEXT
  is left out, for the reason given. Each TEXT must match exactly one command, so an example
  that is edited or removed cannot leave a stale exception behind.
- ``<!-- untested: why -->``: the whole block is left out, for the reason given.

A command is a line (continued by a trailing ``\\``) that is not blank or a ``#`` comment; in a
``console`` block only the lines after a ``$ ``. Each command runs in ``bash`` with ``edgefm``
and ``python`` on PATH (this checkout, this interpreter), ``COLUMNS=80`` (the width a new
user's terminal has) and a user cache that holds the dataset (so `edgefm data fetch` finds
it verified and downloads nothing). It must exit 0; the tables ``export``, ``verify`` and
``benchmark`` print must fit the 80 columns.

New blocks are picked up by themselves: a marked one runs, an unmarked one fails
``test_every_shell_example_is_marked`` with what to add.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = REPO / "README.md"
SHELLS = {"sh", "bash", "shell", "console"}
#: sections whose blocks need no marker yet, and why (a marked block there still runs)
UNMARKED_SECTIONS: dict[str, str] = {}
#: commands whose output is a table sized to the terminal (COLUMNS)
TABLE_COMMANDS = ("edgefm export", "edgefm verify", "edgefm benchmark")
WIDTH = 80

_MARK = re.compile(r"<!--\s*(tested|untested)\b(.*?)-->", re.S)
_EXCEPT = re.compile(r'"([^"]+)"\s*\(([^()]+)\)')


@dataclass
class Command:
    line: int  # 1-based line in README.md
    text: str  # as written (continuations joined), its comment included


@dataclass
class Block:
    line: int  # the opening fence
    section: str  # the ``##`` heading it is under
    heading: str  # the nearest heading (``##`` or ``###``), for the test's id
    lang: str
    commands: list[Command]
    mark: str | None  # "tested" | "untested" | None
    fresh: bool = False
    reason: str = ""  # untested: why
    excepted: dict[str, str] | None = None  # TEXT -> why
    problem: str = ""  # a marker that does not parse

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"

    def skipped(self, command: Command) -> str | None:
        return next((why for text, why in (self.excepted or {}).items() if text in command.text), None)


def _commands(lang: str, body: list[tuple[int, str]]) -> list[Command]:
    out: list[Command] = []
    pending: tuple[int, str] | None = None
    for n, raw in body:
        text = raw.strip()
        if pending is not None:
            pending = (pending[0], pending[1] + "\n" + raw)
        elif lang == "console":
            if not text.startswith("$ "):
                continue
            pending = (n, text[2:])
        elif text and not text.startswith("#"):
            pending = (n, text)
        else:
            continue
        if not pending[1].endswith("\\"):
            out.append(Command(*pending))
            pending = None
    if pending is not None:
        out.append(Command(*pending))
    return out


def _parse_mark(block: Block, kind: str, rest: str) -> None:
    block.mark = kind
    rest = " ".join(rest.split())
    if kind == "untested":
        block.reason = rest.removeprefix(":").strip()
        if not rest.startswith(":") or not block.reason:
            block.problem = 'an untested block says why: <!-- untested: WHY -->'
        return
    head, _, tail = rest.partition(";")
    if head.strip() not in ("", ": fresh", ":fresh"):
        block.problem = f"unknown option {head.strip()!r} (only ': fresh')"
    block.fresh = "fresh" in head
    block.excepted = {}
    if tail.strip():
        if not tail.strip().startswith("except "):
            block.problem = f"after ';' comes except \"TEXT\" (why), ...; found {tail.strip()!r}"
            return
        items = tail.strip().removeprefix("except ")
        block.excepted = dict(_EXCEPT.findall(items))
        if _EXCEPT.sub("", items).replace(",", "").strip() or not block.excepted:
            block.problem = f'cannot read {items!r}: write except "TEXT" (why), "TEXT" (why)'


def readme_blocks(text: str) -> list[Block]:
    """Every shell block of the README with its marker and commands."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = heading = line[3:].strip()
        elif line.startswith("### "):
            heading = line[4:].strip()
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        lang = fence.group(1)
        if lang in SHELLS:
            body = [(n + 1, lines[n]) for n in range(i + 1, end)]
            block = Block(line=i + 1, section=section, heading=heading, lang=lang, commands=_commands(lang, body), mark=None)
            before = "\n".join(lines[:i]).rstrip()
            if before.endswith("-->"):
                start = before.rfind("<!--")
                m = _MARK.fullmatch(before[start:])
                if m:
                    _parse_mark(block, m.group(1), m.group(2))
                else:
                    block.mark, block.problem = "?", f"the comment {before[start:]!r} is not a marker"
            blocks.append(block)
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
TESTED = [b for b in BLOCKS if b.mark == "tested" and not b.problem]


def test_every_shell_example_is_marked() -> None:
    """Each block says whether it runs; each exception and each untested block says why, and still applies."""
    assert TESTED, "no README block is marked <!-- tested -->"
    problems = []
    for b in BLOCKS:
        if b.mark is None:
            if b.section not in UNMARKED_SECTIONS:
                problems.append(f"{b.where}: no marker; put <!-- tested -->, <!-- tested: fresh -->, "
                                "'; except \"TEXT\" (why)' or <!-- untested: why --> on the line before the fence")
            continue
        if b.problem:
            problems.append(f"{b.where}: {b.problem}")
        for text in b.excepted or {}:
            hits = [c for c in b.commands if text in c.text]
            if len(hits) != 1:
                problems.append(f"{b.where}: except {text!r} matches {len(hits)} commands (must be exactly one)")
        if b.mark == "tested" and all(b.skipped(c) for c in b.commands):
            problems.append(f"{b.where}: every command is excepted; mark it <!-- untested: why --> instead")
    assert not problems, "\n".join(problems)


def test_the_marking_rule_reads_what_it_says() -> None:
    """The parser on a README of its own: markers, fresh, exceptions, continuations, console prompts."""
    text = "\n".join([
        "## A", "<!-- tested -->", "```sh", "edgefm a   # first", "", "# a comment", "edgefm b \\", "  --c", "```",
        "<!-- tested: fresh; except \"b --x\" (slow), \"q\" (needs y) -->", "", "```console", "$ edgefm q",
        "output line", "$ b --x", "```",
        "<!-- untested: needs two machines -->", "```bash", "make demo", "```",
        "```sh", "edgefm plain", "```", "<!-- untested -->", "```sh", "x", "```", "```python", "edgefm no", "```",
    ])
    a, b, c, d, e = readme_blocks(text)
    assert (a.mark, a.fresh, [x.text for x in a.commands]) == ("tested", False, ["edgefm a   # first", "edgefm b \\\n  --c"])
    assert [x.line for x in a.commands] == [4, 7]
    assert (b.fresh, b.excepted, [x.text for x in b.commands]) == (True, {"b --x": "slow", "q": "needs y"},
                                                                    ["edgefm q", "b --x"])
    assert b.skipped(b.commands[1]) == "slow" and not a.skipped(a.commands[0])
    assert (c.mark, c.reason, d.mark) == ("untested", "needs two machines", None)
    assert e.problem.startswith("an untested block says why")


def _bin(tmp: Path) -> Path:
    """``edgefm`` and ``python`` for the examples: this checkout's CLI on this interpreter."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name, line in (("edgefm", f'exec "{sys.executable}" -m edgefm.cli "$@"'), ("python", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("readme")
    cache = tmp / "cache" / "edgefm" / "fashion-mnist"  # where `edgefm data fetch` writes: the dataset is there
    cache.mkdir(parents=True)
    for f in real_data.glob("*.gz"):
        (cache / f.name).symlink_to(f)
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEFM_DATA_DIR", "NO_COLOR")}
    return {**env, "PATH": f"{_bin(tmp)}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(REPO),
            "COLUMNS": str(WIDTH), "XDG_CACHE_HOME": str(tmp / "cache")}


@pytest.mark.parametrize("block", TESTED, ids=[f"{b.heading.strip('`')}:{b.line}".replace(" ", "-") for b in TESTED])
def test_readme_example_runs_as_written(block: Block, example_env: dict[str, str], trained_artifacts: Path,
                                        tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    if not block.fresh:
        shutil.copytree(trained_artifacts, cwd / "artifacts", symlinks=True)
    for command in block.commands:
        if block.skipped(command):
            continue
        res = subprocess.run(["bash", "-c", command.text], cwd=cwd, env=example_env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=600)
        said = f"README.md:{command.line}: {command.text}\nexit {res.returncode}\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
        assert res.returncode == 0 and "Traceback" not in res.stderr, said
        program = " ".join(command.text.split()[:2])
        if program in TABLE_COMMANDS and "--json" not in command.text:
            long = [ln for ln in res.stdout.splitlines() if len(ln) > WIDTH]
            assert not long, f"{said}\nlonger than {WIDTH} columns:\n" + "\n".join(long)
