"""Progress on long steps: timestamped lines with an ETA off a TTY, a live rich line on one, nothing with --quiet."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgefm.core.progress import LineProgress, format_seconds, plural
from edgefm.train.progress import EpochStats, TrainReporter

from conftest import REPO, read_terminal, run_cli

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_line_progress_few_units_a_line_each_with_eta() -> None:
    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, clock=clock, wall=lambda: 0.0)
    p.start("converting", total=4)
    for i, name in enumerate(["a", "b", "c", "d"]):
        p.advance(i, name)
        clock.t += 3.0
        p.note(f"exported {name}")
    lines = out.getvalue().splitlines()
    assert all(STAMP.match(ln) for ln in lines)
    bodies = [ln[9:] for ln in lines]
    assert bodies[:3] == ["converting", "[0/4] converting: a (elapsed 0 s)", "exported a"]
    assert bodies[3] == "[1/4] converting: b (elapsed 3 s, ETA 9 s)"
    assert bodies[-2] == "[3/4] converting: d (elapsed 9 s, ETA 3 s)"


def test_line_progress_many_units_rate_limited() -> None:
    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, interval=10.0, clock=clock, wall=lambda: 0.0)
    p.start("epoch 1/3", total=1000)
    for done in range(1, 1001):
        clock.t = done * 0.05  # 50 s for the epoch
        p.advance(done, "loss 0.5")
    lines = [ln[9:] for ln in out.getvalue().splitlines()]
    # nothing at the start (a fast epoch prints nothing of its own), then one line every 10 s
    assert lines[0] == "[200/1000] epoch 1/3: loss 0.5 (elapsed 10 s, ETA 40 s)"
    assert len(lines) == 5 and lines[-1].startswith("[1000/1000] epoch 1/3") and "ETA" not in lines[-1]


def test_small_words() -> None:
    assert plural(1, "epoch") == "1 epoch" and plural(5, "epoch") == "5 epochs" and plural(1, "artifact") == "1 artifact"
    assert format_seconds(7.4) == "7 s" and format_seconds(125) == "2 min 05 s" and format_seconds(3720) == "1 h 02 min"


def test_train_reporter_says_one_epoch_and_the_eta_of_the_run() -> None:
    from edgefm.train.config import TrainConfig

    out, clock = io.StringIO(), Clock()
    rep = TrainReporter(progress=LineProgress(out, clock=clock, wall=lambda: 0.0))
    rep.start(TrainConfig(epochs=1), n_params=15_910, start_epoch=0)
    rep.epoch_start(1, 3, 938)
    rep.epoch_end(EpochStats(1, 0.5, 0.8, 0.5, 0.8, seconds=20.0), 938)
    text = out.getvalue()
    assert "for 1 epoch," in text and "1 epochs" not in text
    assert "epoch 1/3: loss 0.5000" in text and "2 epochs left, ETA 40 s" in text


def test_quiet_reporter_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    rep = TrainReporter(quiet=True)
    rep.note("x")
    rep.epoch_start(1, 1, 10)
    rep.epoch_progress(5, 0.1, 0.9, 1.0)
    assert capsys.readouterr() == ("", "")


# -- the real CLI ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_data_session: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("progress") / "run"
    res = run_cli("train", "--epochs", "2", "--hidden-units", "8", "--data-dir", str(tiny_data_session[0]),
                  "--no-verify", "--artifacts", str(root))
    assert res.returncode == 0, res.stderr
    return root, res


def test_train_off_a_tty_prints_timestamped_lines_on_stderr(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, res = trained
    lines = res.stderr.splitlines()
    assert lines and all(STAMP.match(ln) for ln in lines), res.stderr
    assert "for 2 epochs" in lines[0]
    assert any("epoch 1/2: loss" in ln and "1 epoch left, ETA" in ln for ln in lines), res.stderr
    assert "\r" not in res.stderr and "\x1b" not in res.stderr  # no live-line control codes in a log
    assert res.stdout.startswith("test accuracy")


def test_train_into_a_finished_run_needs_force(trained: tuple[Path, subprocess.CompletedProcess[str]],
                                               tiny_data_session: tuple[Path, dict[str, str]]) -> None:
    root, _ = trained
    before = (root / "manifest.json").read_bytes()
    args = ("train", "--epochs", "1", "--hidden-units", "8", "--data-dir", str(tiny_data_session[0]), "--no-verify",
            "--artifacts", str(root))
    res = run_cli(*args, "--eager")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    msg = " ".join(res.stderr.split())
    assert f"{root} already holds a finished run" in msg and "mlp trained for 2 epochs" in msg
    assert "Pass --force to replace it, --artifacts NEW_DIR to keep both" in msg
    assert (root / "manifest.json").read_bytes() == before
    res = run_cli(*args, "--force", "--json", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # --quiet
    data = json.loads(res.stdout)
    assert data["manifest"] == str(root / "manifest.json") and len(data["training"]["history"]) == 1
    assert 0 <= data["training"]["test_accuracy"] <= 1


def test_train_on_a_tty_draws_a_live_line(tiny_data_session: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """stderr a real pseudo-terminal: rich draws the live line (carriage returns, cursor hidden and shown)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefm.cli", "train", "--epochs", "2", "--hidden-units", "8", "--data-dir",
         str(tiny_data_session[0]), "--no-verify", "--artifacts", str(tmp_path / "run")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO,
    )
    os.close(slave)
    written = read_terminal(master)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    tty = written.decode("utf-8", "replace")
    assert "\x1b[?25l" in tty and "\x1b[?25h" in tty  # rich's live display hides the cursor, then restores it
    assert "epoch 1/2" in tty and "\r" in tty
    assert not re.search(r"\x1b\[[0-9;]*3\dm", tty)  # NO_COLOR: no foreground colours
    assert "epoch 2/2: loss" in tty and b"test accuracy" in out
