"""`edgefm data fetch` against a real HTTP server on 127.0.0.1 (no machine here has internet)."""

from __future__ import annotations

import http.server
import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefm.core.errors import DatasetError
from edgefm.data import fashion_mnist as ds

from conftest import REPO, make_idx_dir, read_terminal, run_cli


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root``; honours Range; can fail the first N requests per path."""

    root: Path
    fail_first: dict[str, int] = {}
    cut_first: dict[str, int] = {}  # send only this many bytes on the first request, then drop
    log: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        self.log.append((name, self.headers.get("Range")))
        if self.fail_first.get(name, 0) > 0:
            self.fail_first[name] -= 1
            self.send_error(503)
            return
        path = self.root / name
        if not self.path.startswith("/files/") or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.cut_first.pop(name, None)
        if cut is not None:
            self.wfile.write(body[start:cut])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, type[_Handler], dict[str, str]]]:
    root = tmp_path / "served"
    sums = make_idx_dir(root, 64, 32)
    handler = type("H", (_Handler,), {"root": root, "fail_first": {}, "cut_first": {}, "log": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/files/", handler, sums
    httpd.shutdown()
    httpd.server_close()


class _Recorder:
    """A ``Progress`` that keeps what it heard, in order (the interface the CLI renders as a bar or lines)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, what: str, total: int | None = None) -> None:
        self.events.append(("start", what, total))

    def advance(self, done: int, detail: str = "") -> None:
        self.events.append(("advance", done, detail))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def finish(self) -> None:
        self.events.append(("finish",))


def test_fetch_downloads_and_verifies(tmp_path: Path, server) -> None:
    url, handler, sums = server
    dest = ds.fetch(tmp_path / "cache", mirrors=[url], checksums=sums, progress=None)
    assert sorted(p.name for p in dest.iterdir()) == sorted(s + ".gz" for s in ds.ALL_FILES)
    assert len(ds.load_split("train", dest, checksums=sums)) == 64
    # Present and valid: a second fetch downloads nothing.
    n = len(handler.log)
    ds.fetch(dest, mirrors=[url], checksums=sums, progress=None)
    assert len(handler.log) == n


def test_fetch_retries_a_failing_server(tmp_path: Path, server) -> None:
    url, handler, sums = server
    handler.fail_first["t10k-labels-idx1-ubyte.gz"] = 2
    ds.fetch(tmp_path / "c", mirrors=[url], checksums=sums, progress=None, backoff=0.01)
    assert [n for n, _ in handler.log].count("t10k-labels-idx1-ubyte.gz") == 3


def test_fetch_resumes_a_partial_download(tmp_path: Path, server) -> None:
    url, handler, sums = server
    handler.cut_first["train-images-idx3-ubyte.gz"] = 1000
    ds.fetch(tmp_path / "c", mirrors=[url], checksums=sums, progress=None, backoff=0.01)
    ranges = [r for n, r in handler.log if n == "train-images-idx3-ubyte.gz"]
    assert ranges[0] is None and ranges[1] == "bytes=1000-"
    assert len(ds.load_split("train", tmp_path / "c", checksums=sums)) == 64


def test_fetch_falls_back_to_the_next_mirror(tmp_path: Path, server) -> None:
    url, handler, sums = server
    dead = url.replace("/files/", "/missing/")  # 404 on every file
    rec = _Recorder()
    ds.fetch(tmp_path / "c", mirrors=["http://127.0.0.1:9/", url], checksums=sums, progress=rec, backoff=0.01, retries=1)
    assert len(ds.load_split("test", tmp_path / "c", checksums=sums)) == 32
    notes = [e[1] for e in rec.events if e[0] == "note"]
    assert notes[0].startswith("http://127.0.0.1:9/train-images-idx3-ubyte.gz: ") and notes[0].endswith("; trying the next mirror")
    rec = _Recorder()
    with pytest.raises(DatasetError, match="Could not download train-images-idx3-ubyte.gz .*404"):
        ds.fetch(tmp_path / "d", mirrors=[dead], checksums=sums, progress=rec, backoff=0.01)
    assert rec.events[-1] == ("note", f"{dead}train-images-idx3-ubyte.gz: HTTP Error 404: Not Found; no mirror left")


def test_fetch_deletes_a_file_that_fails_its_checksum(tmp_path: Path, server) -> None:
    url, _, _ = server
    with pytest.raises(DatasetError, match="Checksum mismatch"):
        ds.fetch(tmp_path / "c", mirrors=[url], progress=None)  # official sums vs test files
    assert not (tmp_path / "c" / "train-images-idx3-ubyte.gz").exists()


def test_fetch_reports_each_download_as_a_step_in_bytes(tmp_path: Path, server) -> None:
    url, handler, sums = server
    handler.fail_first["t10k-labels-idx1-ubyte.gz"] = 1
    rec = _Recorder()
    dest = ds.fetch(tmp_path / "c", mirrors=[url], checksums=sums, progress=rec, backoff=0.01)
    starts = [e for e in rec.events if e[0] == "start"]
    # one step per file: the refused attempt (503) never started one
    assert [e[1] for e in starts] == [f"downloading {s}.gz ({i}/4)" for i, s in enumerate(ds.ALL_FILES, 1)]
    for stem in ds.ALL_FILES:  # the step's total is the file's bytes; the last advance reaches it
        size = (dest / f"{stem}.gz").stat().st_size
        i = rec.events.index(("start", f"downloading {stem}.gz ({ds.ALL_FILES.index(stem) + 1}/4)", size))
        last = next(e for e in reversed(rec.events[:rec.events.index(("finish",), i)]) if e[0] == "advance")
        assert last[1] == size and last[2] == f"{size / 1e6:.1f} of {size / 1e6:.1f} MB"
    notes = [e[1] for e in rec.events if e[0] == "note"]
    host = url.split("/")[2]
    assert f"train-images-idx3-ubyte.gz: 0.0 MB from {host} in 0 s" in notes
    assert any(n.startswith(f"{url}t10k-labels-idx1-ubyte.gz: HTTP Error 503") and n.endswith("attempt 2 of 3 in 0 s")
               for n in notes), notes
    rec2 = _Recorder()  # already there: no step, a note per file
    ds.fetch(dest, mirrors=[url], checksums=sums, progress=rec2)
    assert rec2.events == [("note", f"{s}.gz: already in {dest} and verified") for s in ds.ALL_FILES]


def test_cli_fetch_progress_off_a_terminal_is_timestamped_lines(tmp_path: Path, server) -> None:
    """The shared reporter (edgefm.core.progress.LineProgress), as train/export/verify print it; --quiet: none."""
    url, handler, _ = server
    handler.fail_first["train-images-idx3-ubyte.gz"] = 1
    res = run_cli("data", "fetch", "--dest", str(tmp_path / "c"), "--mirror", url, "--retries", "2")
    assert res.returncode == 1 and "Traceback" not in res.stderr  # the synthetic files fail the official sha256
    lines = res.stderr.splitlines()
    stamp = r"\d\d:\d\d:\d\d "
    assert re.fullmatch(stamp + re.escape(f"{url}train-images-idx3-ubyte.gz: HTTP Error 503: Service Unavailable; "
                                          "attempt 2 of 2 in 1 s"), lines[0]), lines
    assert re.fullmatch(stamp + r"train-images-idx3-ubyte\.gz: 0\.0 MB from 127\.0\.0\.1:\d+ in 0 s", lines[1]), lines
    assert lines[-1].startswith("error: ") and "Checksum mismatch" in lines[-1]
    quiet = run_cli("data", "fetch", "--dest", str(tmp_path / "q"), "--mirror", url, "--retries", "1", "--quiet")
    assert quiet.returncode == 1 and quiet.stderr.startswith("error: "), quiet.stderr


def test_cli_fetch_on_a_terminal_draws_the_live_line(tmp_path: Path, server) -> None:
    """stderr a pseudo-terminal: the shared rich view (edgefm.cli.console.RichProgress) runs, its notes stay."""
    url, _, _ = server
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgefm.cli", "data", "fetch", "--dest", str(tmp_path / "c"),
                             "--mirror", url, "--retries", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    written = read_terminal(master)
    proc.communicate(timeout=120)
    tty = written.decode("utf-8", "replace")
    assert proc.returncode == 1 and "Checksum mismatch" in tty  # the synthetic files fail the official sha256
    assert "\x1b[?25l" in tty and "\x1b[?25h" in tty  # rich's live display hid the cursor, then restored it
    assert "train-images-idx3-ubyte.gz: 0.0 MB from 127.0.0.1:" in tty and not re.search(r"\d\d:\d\d:\d\d ", tty)


def test_cli_fetch_fails_clearly_on_non_official_files(tmp_path: Path, server) -> None:
    url, _, _ = server
    res = run_cli("data", "fetch", "--dest", str(tmp_path / "c"), "--mirror", url, "--retries", "1")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Checksum mismatch" in res.stderr and "train-images-idx3-ubyte" in res.stderr
