"""The shell examples of the README and of docs/, run exactly as written, as a new user copies them.

The marking rule (README.md and every docs/**.md): every ```sh / ```bash / ```shell / ```console block has an
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

New blocks are picked up by themselves, in the README and in any page under docs/: a marked one
runs, an unmarked one fails ``test_every_shell_example_is_marked`` with what to add.

The README is the front door: ``test_readme_is_the_front_door`` holds it to ``README_MAX_BYTES`` and
its links to pages that exist; every relative link of the README and of docs/ must reach a file (and
a heading, when it names one); docs/reference/options.md lists exactly the real CLI's options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = REPO / "README.md"
#: the pages whose shell blocks run: the README first, then docs/ (adding-a-runner.md and the rest)
PAGES = [README, *sorted((REPO / "docs").rglob("*.md"))]
README_MAX_BYTES = 15_000  # issue 27: the front door fits about a screenful of sections; the depth is in docs/
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
    page: str = "README.md"  # the file, relative to the repository

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.section})"

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


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every shell block of a page (the README or one under docs/) with its marker and commands."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(("# ", "## ")):  # a docs page's title is its first section
            section = heading = line.split(" ", 1)[1].strip()
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
            block = Block(line=i + 1, section=section, heading=heading, lang=lang, commands=_commands(lang, body), mark=None,
                          page=page)
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


BLOCKS = [b for page in PAGES for b in readme_blocks(page.read_text(encoding="utf-8"), str(page.relative_to(REPO)))]
TESTED = [b for b in BLOCKS if b.mark == "tested" and not b.problem]


def test_every_shell_example_is_marked() -> None:
    """Each block says whether it runs; each exception and each untested block says why, and still applies."""
    assert any(b.page == "README.md" for b in TESTED), "no README block is marked <!-- tested -->"
    assert any(b.page.startswith("docs/") for b in TESTED), "no docs/ block is marked <!-- tested -->"
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


def _id(b: Block) -> str:
    page = "" if b.page == "README.md" else b.page.removeprefix("docs/").removesuffix(".md") + ":"
    return f"{page}{b.heading.strip('`')}:{b.line}".replace(" ", "-")


@pytest.mark.parametrize("block", TESTED, ids=[_id(b) for b in TESTED])
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
        said = f"{block.page}:{command.line}: {command.text}\nexit {res.returncode}\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
        assert res.returncode == 0 and "Traceback" not in res.stderr, said
        program = " ".join(command.text.split()[:2])
        if program in TABLE_COMMANDS and "--json" not in command.text:
            long = [ln for ln in res.stdout.splitlines() if len(ln) > WIDTH]
            assert not long, f"{said}\nlonger than {WIDTH} columns:\n" + "\n".join(long)


# -- the front door and the rooms: sizes, links, the options reference, the measured page ------------------

#: pages linked before they exist, and why; each must be dropped here once its page lands (the test says so)
PENDING_PAGES: dict[str, str] = {}
_FENCED = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
_LINK = re.compile(r"\]\(([^()\s]+)\)")


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose(page: Path) -> str:
    return _FENCED.sub("", page.read_text(encoding="utf-8"))


def _links(page: Path) -> list[str]:
    """Relative links of a page (web links and mail left out), as written."""
    return [t for t in _LINK.findall(_prose(page)) if not re.match(r"[a-z]+:", t)]


def _broken(page: Path, target: str) -> str | None:
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    rel = dest.relative_to(REPO).as_posix() if dest.is_relative_to(REPO) else str(dest)
    if not dest.exists():
        return None if rel in PENDING_PAGES else f"{target}: no file {rel}"
    if anchor and dest.suffix == ".md":
        headings = re.findall(r"^#{1,6} (.+)$", _prose(dest), re.M)
        if anchor not in {_slug(h) for h in headings}:
            return f"{target}: {rel} has no heading #{anchor}"
    return None


def test_readme_is_the_front_door() -> None:
    """≤ 15 KB; says first who it is for; "Your own model" second; every link goes to a page of docs/ that exists."""
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size:,} bytes (at most {README_MAX_BYTES:,}): move depth to docs/"
    text = README.read_text(encoding="utf-8")
    first_screen = text.split("\n## ", 1)[0]
    for own in ("SavedModel", "`.keras`", "`.tflite`"):  # a user with a model from elsewhere sees it is for them
        assert own in first_screen, f"the README's first screen does not name {own}"
    sections = re.findall(r"^## (.+)$", _prose(README), re.M)
    assert sections[:2] == ["Quick start", "Your own model"], sections
    links = _links(README)
    outside = [t for t in links if t.split("#")[0] and not (t.startswith("docs/") or t == "CHANGELOG.md")]
    assert not outside, f"the README links only to docs/ pages and CHANGELOG.md: {outside}"
    for need in ("docs/guides/your-model.md", "docs/reference/options.md", "docs/measured.md", "CHANGELOG.md"):
        assert need in links, f"the README does not link {need}"
    assert "Zalando SE" in text and "MIT" in text  # the dataset's licence stays on the front page


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_reaches_a_page_and_heading(page: Path) -> None:
    broken = [b for t in _links(page) if (b := _broken(page, t))]
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_pending_pages_are_still_pending() -> None:
    """An exception for a missing page ends when the page lands."""
    landed = [p for p in PENDING_PAGES if (REPO / p).exists()]
    assert not landed, f"{landed} exist now: drop them from PENDING_PAGES"


def _leaf_commands() -> dict[str, Any]:
    import click

    from edgefm.cli.main import cli

    out: dict[str, Any] = {}

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")
        else:
            out[path] = cmd

    walk(cli, "edgefm")
    return out


def test_options_reference_lists_exactly_the_real_options() -> None:
    """docs/reference/options.md: a section per command, one row per option as `--help` prints it."""
    import click

    text = (REPO / "docs" / "reference" / "options.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    commands = _leaf_commands()
    assert sorted(sections) == sorted(commands), "options.md's sections are not the CLI's commands"
    for path, cmd in commands.items():
        ctx = click.Context(cmd, info_name=path)
        real = {rec[0] for p in cmd.params if (rec := p.get_help_record(ctx))}
        documented = {o.replace("\\|", "|") for o in re.findall(r"^\| `(.+?)` \|", sections[path], re.M)}
        assert documented == real, f"{path}: missing {sorted(real - documented)}, stale {sorted(documented - real)}"


def test_measured_page_is_what_make_bench_writes(tmp_path: Path) -> None:
    """docs/measured.md has the header `make bench` writes; a contradictory option is a usage error, not a run."""
    from benchmarks import run as bench

    assert bench.MEASURED_PAGE == REPO / "docs" / "measured.md"
    page = bench.MEASURED_PAGE.read_text(encoding="utf-8")
    assert page.startswith(bench.MEASURED_HEADER + "Measured on "), "docs/measured.md lost the generated header"
    assert "\n## Targets\n" in page and re.search(r"^- (PASS|FAIL|SKIP) ", page, re.M)
    machine = {"ram_gib": 1.0, "cores": 2, "usable_cores": 2, "load_average_at_start": None, "cpu": "CPU", "os": "OS",
               "python": "3", "tensorflow": "2", "keras": "3", "litert": "2", "onnxruntime": "1", "date": "DATE"}
    result = {"machine": machine, "options": {"quick": False}, "targets": [], "crashed": [], "total_seconds": 1.0}
    md = bench.measured_markdown(result)
    assert md.startswith(bench.MEASURED_HEADER + "Measured on CPU, 2 cores") and md.count("\n# ") == 0
    assert "Mode: full." in md and md.endswith("Suite wall time: 1.0 s.\n")
    with pytest.raises(SystemExit) as e:
        bench.main(["--measured", str(tmp_path / "m.md"), "--no-measured", "--out", str(tmp_path)])
    assert e.value.code == 2 and not (tmp_path / "m.md").exists()


def test_a_crashed_bench_run_leaves_the_measured_page(tmp_path: Path) -> None:
    """No dataset: the first stage crashes in a second, and the page it would replace is not written."""
    empty, page = tmp_path / "no-dataset", tmp_path / "measured.md"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--skip-train-speed", "--skip-any-model",
                           "--data-dir", str(empty), "--out", str(tmp_path / "out"), "--measured", str(page)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / "out" / "bench.md").is_file() and not page.exists()
    assert f"{page} not written: a stage crashed" in proc.stderr
