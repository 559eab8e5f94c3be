"""`edgefm data fetch` against a real HTTP server on 127.0.0.1 (no machine here has internet)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefm.core.errors import DatasetError
from edgefm.data import fashion_mnist as ds

from conftest import make_idx_dir, run_cli


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
    ds.fetch(tmp_path / "c", mirrors=["http://127.0.0.1:9/", url], checksums=sums, progress=None, backoff=0.01, retries=1)
    assert len(ds.load_split("test", tmp_path / "c", checksums=sums)) == 32
    with pytest.raises(DatasetError, match="Could not download train-images-idx3-ubyte.gz .*404"):
        ds.fetch(tmp_path / "d", mirrors=[dead], checksums=sums, progress=None, backoff=0.01)


def test_fetch_deletes_a_file_that_fails_its_checksum(tmp_path: Path, server) -> None:
    url, _, _ = server
    with pytest.raises(DatasetError, match="Checksum mismatch"):
        ds.fetch(tmp_path / "c", mirrors=[url], progress=None)  # official sums vs test files
    assert not (tmp_path / "c" / "train-images-idx3-ubyte.gz").exists()


def test_fetch_progress_reports_bytes(tmp_path: Path, server) -> None:
    url, _, sums = server
    seen: list[tuple[str, int, int | None]] = []
    ds.fetch(tmp_path / "c", mirrors=[url], checksums=sums, progress=lambda *a: seen.append(a))
    last = [s for s in seen if s[0] == "train-images-idx3-ubyte.gz"][-1]
    assert last[1] == last[2] == (tmp_path / "c" / "train-images-idx3-ubyte.gz").stat().st_size


def test_cli_fetch_fails_clearly_on_non_official_files(tmp_path: Path, server) -> None:
    url, _, _ = server
    res = run_cli("data", "fetch", "--dest", str(tmp_path / "c"), "--mirror", url, "--retries", "1")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Checksum mismatch" in res.stderr and "train-images-idx3-ubyte" in res.stderr
