"""The aarch64 runtime libraries: taken from the PyPI aarch64 wheels of exactly the installed versions.

``pip download --no-deps --only-binary=:all:`` fetches a wheel without installing
it; edgefm extracts the one library the runner loads (``ai_edge_litert/libLiteRt.so``,
``onnxruntime/capi/libonnxruntime.so.<version>``) into
``$XDG_CACHE_HOME/edgefm/device/libs/<distribution>-<version>-aarch64/`` with a
``library.json`` that records the wheel, its sha256 and the library's sha256. The
directory appears whole or not at all (``atomic_directory``), and a cached
library whose bytes no longer match its record is fetched again.

The platform tags: the 2.3.0 LiteRT wheel is tagged manylinux_2_27, the ONNX Runtime
1.32.0 one manylinux_2_28 (seen when fetching them here); the prototype of
issue 17 found that ``--platform manylinux2014_aarch64`` alone finds neither, so
all three tags are passed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from edgefm.core.errors import RuntimeUnavailableError
from edgefm.core.fileio import atomic_directory, sha256_file
from runtime_check.native.build import _distribution_version

PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")
PYTHON_VERSION = "3.11"
#: runner kind -> (distribution, regex of the library's path inside the wheel)
WHEELS: dict[str, tuple[str, str]] = {
    "litert": ("ai-edge-litert", r"ai_edge_litert/libLiteRt\.so"),
    "onnxruntime": ("onnxruntime", r"onnxruntime/capi/libonnxruntime\.so\.\d+\.\d+\.\d+"),
}
DOWNLOAD_TIMEOUT_S = 600.0
RECORD = "library.json"


@dataclass(frozen=True)
class DeviceLibrary:
    """One aarch64 runtime library in the cache and where it came from."""

    kind: str
    path: Path
    distribution: str
    version: str
    wheel: str
    wheel_sha256: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "path": str(self.path)}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgefm" / "device"


def installed_version(kind: str) -> str:
    version = _distribution_version(kind)
    if version is None:
        dist = WHEELS[kind][0]
        raise RuntimeUnavailableError(
            f"{dist} is not installed here, so edgefm does not know which version's aarch64 library to fetch for "
            f"the device. Install it (`pip install {dist}`)."
        )
    return version


def download_command(kind: str, version: str, dest: Path) -> list[str]:
    dist = WHEELS[kind][0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    for tag in PLATFORMS:
        cmd += ["--platform", tag]
    return [*cmd, "--python-version", PYTHON_VERSION, "--dest", str(dest), f"{dist}=={version}"]


def _load_record(directory: Path, kind: str) -> DeviceLibrary | None:
    try:
        rec = json.loads((directory / RECORD).read_text(encoding="utf-8"))
        lib = DeviceLibrary(**{**rec, "path": directory / Path(rec["path"]).name})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if lib.kind != kind or not lib.path.is_file() or sha256_file(lib.path) != lib.sha256:
        return None
    return lib


def fetch_library(kind: str, *, version: str | None = None, cache: Path | None = None) -> DeviceLibrary:
    """The aarch64 library of ``kind`` for ``version`` (default: the installed one), fetched once into the cache."""
    if kind not in WHEELS:
        raise RuntimeUnavailableError(f"No aarch64 library for {kind!r}; edgefm has {', '.join(WHEELS)}.")
    version = version or installed_version(kind)
    dist, member_re = WHEELS[kind]
    root = Path(cache) if cache is not None else cache_root() / "libs"
    directory = root / f"{dist}-{version}-aarch64"
    if (found := _load_record(directory, kind)) is not None:
        return found
    try:
        root.mkdir(parents=True, exist_ok=True)
        download = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    except OSError as e:
        raise RuntimeUnavailableError(f"Cannot write the device cache {root} ({e}). Make it writable or set XDG_CACHE_HOME.") from e
    try:
        cmd = download_command(kind, version, download)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            proc = None
            why = str(e)
        if proc is None or proc.returncode != 0:
            why = why if proc is None else " / ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeUnavailableError(
                f"Could not fetch the aarch64 wheel of {dist}=={version} for the device ({why}). The device runs the "
                f"same version as this machine's binding; run `{' '.join(cmd[2:-3])} ... {dist}=={version}` where the "
                f"package index is reachable, or install another {dist} version that has an aarch64 wheel."
            )
        wheels = sorted(download.glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeUnavailableError(f"pip download of {dist}=={version} left {len(wheels)} wheels in {download}; expected one.")
        wheel = wheels[0]
        with zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if re.fullmatch(member_re, n)]
            if len(members) != 1:
                raise RuntimeUnavailableError(
                    f"The aarch64 wheel {wheel.name} holds {len(members)} files like {member_re} (expected one): "
                    "its layout changed; edgefm does not know which library to load."
                )
            with atomic_directory(directory) as staging:
                target = staging / Path(members[0]).name
                with zf.open(members[0]) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                lib = DeviceLibrary(kind, directory / target.name, dist, version, wheel.name, sha256_file(wheel),
                                    sha256_file(target), target.stat().st_size)
                (staging / RECORD).write_text(json.dumps(lib.to_dict(), indent=2) + "\n", encoding="utf-8")
        return lib
    finally:
        import shutil

        shutil.rmtree(download, ignore_errors=True)
