"""The first minutes of a new user: `make demo` says how to run edgefm, and the README says it first."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import REPO


@pytest.mark.skipif(shutil.which("make") is None, reason="make is part of the build; `make demo` needs it")
def test_make_demo_ends_by_saying_how_to_run_edgefm() -> None:
    # -n prints the recipe without running it (the recipe is what a user sees echoed at the end)
    res = subprocess.run(["make", "-n", "demo", "VENV=.venv"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    tail = "\n".join(res.stdout.strip().splitlines()[-4:])
    assert "source .venv/bin/activate" in tail and ".venv/bin/edgefm --help" in tail, tail


def test_readme_quick_start_activates_the_venv_before_any_edgefm_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.S).group(1)
    lines = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    first_edgefm = next(i for i, ln in enumerate(lines) if ln.startswith("edgefm"))
    assert lines.index("make demo") < lines.index("source .venv/bin/activate") < first_edgefm
    assert ".venv/bin/edgefm" in quick
