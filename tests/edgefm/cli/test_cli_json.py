"""`--json` on every command that writes something (train is in test_progress.py), errors as JSON, and
`benchmark --model` reading the quantization a file embeds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgefm.core.manifest import Manifest

from conftest import invoke_cli

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


@pytest.fixture(scope="module")
def int8_export(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`edgefm export --json` of the float32 and int8 TFLite models: its stdout parsed."""
    root = tmp_path_factory.mktemp("json") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    res = invoke_cli("export", "--artifacts", str(root), "--format", "tflite", "--quantize", "int8",
                     "--data-dir", str(tiny_data_session[0]), "--no-verify", "--calibration-samples", "32", "--json")
    assert res.returncode == 0, res.stderr
    return root, json.loads(res.stdout)


def test_export_json_lists_what_it_wrote(int8_export: tuple[Path, dict]) -> None:
    root, data = int8_export
    manifest = Manifest.load(root)
    assert data["manifest"] == str(root / "manifest.json") and list(data["exported"]) == ["tflite_int8"]
    a = data["exported"]["tflite_int8"]
    assert a["path"] == "model_int8.tflite" and a["sha256"] == manifest.artifacts["tflite_int8"].sha256
    assert a["quantization"] == "int8" and data["bundle"] is None


def test_export_json_error_is_json(tmp_path: Path) -> None:
    res = invoke_cli("export", "--artifacts", str(tmp_path / "nowhere"), "--json")
    assert res.returncode == 1
    err = json.loads(res.stdout)
    assert err["exit_code"] == 1 and "does not exist" in err["error"]


def test_benchmark_model_reads_the_embedded_quantization(int8_export: tuple[Path, dict]) -> None:
    root, _ = int8_export
    res = invoke_cli("benchmark", "--artifacts", str(root), "--model", str(root / "model_int8.tflite"),
                     "--batch-sizes", "1", "--warmup", "1", "--runs", "2", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["model_int8.tflite"]["quantization"] == "int8"  # from the file's metadata; it was "unknown"
    # progress off a TTY: a timestamped line per model, on stderr
    lines = res.stderr.splitlines()
    assert lines and all(STAMP.match(ln) for ln in lines), res.stderr
    assert any("[1/2] benchmarking: model_int8.tflite" in ln for ln in lines)
    assert any(re.search(r"model_int8\.tflite: batch 1 p50 [\d.]+ ms$", ln) for ln in lines)


def test_data_verify_and_info_json(tiny_data: tuple[Path, dict[str, str]]) -> None:
    d, _ = tiny_data
    res = invoke_cli("data", "verify", "--data-dir", str(d), "--json")
    assert res.returncode == 1  # synthetic files: checksums differ from the release
    data = json.loads(res.stdout)  # one document: the per-file results, not an error object after them
    assert data["directory"] == str(d) and data["ok"] is False and len(data["files"]) == 4
    assert all(f["ok"] is False and "Checksum mismatch" in f["detail"] for f in data["files"])
    assert res.stderr.strip().startswith("error: ")
    res = invoke_cli("data", "verify", "--data-dir", str(d / "missing"), "--json")
    assert res.returncode == 1 and "does not exist" in json.loads(res.stdout)["error"]


def _serve(directory: Path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.mark.integration
def test_data_fetch_json_from_a_local_server(tmp_path: Path, real_data: Path, tiny_data: tuple[Path, dict[str, str]]) -> None:
    """`data fetch --json` from 127.0.0.1 serving the real files; synthetic files fail as a JSON error."""
    server, url = _serve(real_data)
    try:
        res = invoke_cli("data", "fetch", "--dest", str(tmp_path / "dl"), "--mirror", url, "--retries", "1", "--json")
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["directory"] == str(tmp_path / "dl") and data["verified"] is True and len(data["files"]) == 4
    server, url = _serve(tiny_data[0])
    try:
        res = invoke_cli("data", "fetch", "--dest", str(tmp_path / "bad"), "--mirror", url, "--retries", "1", "--json")
    finally:
        server.shutdown()
    assert res.returncode == 1, res.stderr
    err = json.loads(res.stdout)
    assert err["exit_code"] == 1 and err["error"] == res.stderr.strip().splitlines()[-1].removeprefix("error: ")
