"""Find the runtime libraries, compile the native runners with the system C compiler, cache them.

The runners (``runner_litert.c``, ``runner_onnxruntime.c``, both with
``runner_common.h``) are plain C with no Python in them. They ``dlopen`` the
runtime library that the Python wheels already ship (``ai_edge_litert/libLiteRt.so``,
``onnxruntime/capi/libonnxruntime.so.<version>``) by absolute path, so building
needs only a C compiler and ``-ldl``: no headers, no build system.

A build is cached in ``$XDG_CACHE_HOME/edgefm/native`` (default ``~/.cache``),
keyed by the sha256 of the sources, the library (path, version, size, mtime),
the compiler (path and version) and the flags. It is atomic: the compiler
writes a temporary file in the cache directory, which is then renamed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgefm.core.contract import SERVING_SIGNATURE
from edgefm.core.errors import RuntimeUnavailableError
from edgefm.core.fileio import user_cache_dir

#: runner kind -> its C source, beside this file
SOURCES: dict[str, str] = {"litert": "runner_litert.c", "onnxruntime": "runner_onnxruntime.c"}
COMMON_HEADER = "runner_common.h"
#: -ffp-contract=off: no fused multiply-add, so (de)quantization rounds exactly like NumPy.
CFLAGS: tuple[str, ...] = ("-std=c11", "-O2", "-Wall", "-ffp-contract=off")
LDLIBS: tuple[str, ...] = ("-ldl",)
COMPILERS: tuple[str, ...] = ("cc", "gcc", "clang")
COMPILE_TIMEOUT_S = 120.0
#: Environment variables that point at a library instead of the installed wheel's (read by the C runners too).
LIBRARY_ENV: dict[str, str] = {"litert": "EDGEFM_LITERT_LIB", "onnxruntime": "EDGEFM_ONNXRUNTIME_LIB"}
#: What to install when a library is missing.
INSTALL_HINT: dict[str, str] = {
    "litert": "pip install ai-edge-litert (the runner uses its ai_edge_litert/libLiteRt.so)",
    "onnxruntime": "pip install onnxruntime (the runner uses its onnxruntime/capi/libonnxruntime.so.<version>)",
}
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
}


@dataclass(frozen=True)
class RuntimeLibrary:
    """A runtime's shared library on this machine."""

    kind: str
    path: Path
    version: str


@dataclass(frozen=True)
class NativeRunner:
    """A compiled runner executable and the library it loads."""

    kind: str
    executable: Path
    library: RuntimeLibrary
    compiler: str
    cached: bool
    build_seconds: float

    def command(self, mode: str, model: Path, *args: str, signature: str = SERVING_SIGNATURE) -> list[str]:
        """argv for one invocation: ``runner MODE --lib LIB --model MODEL --signature KEY ARGS...``."""
        return [str(self.executable), mode, "--lib", str(self.library.path), "--model", str(model),
                "--signature", signature, *args]


def source_dir() -> Path:
    """The directory that holds the runner sources (this package)."""
    return Path(__file__).resolve().parent


def runner_sources(kind: str) -> list[Path]:
    """The files a runner is built from: its .c file, then the shared header."""
    if kind not in SOURCES:
        raise RuntimeUnavailableError(f"No native runner named {kind!r}; edgefm has {', '.join(SOURCES)}.")
    return [source_dir() / SOURCES[kind], source_dir() / COMMON_HEADER]


def cache_dir() -> Path:
    return user_cache_dir("native")


# -- compiler ---------------------------------------------------------------------------------


def find_compiler(cc: str | None = None) -> str:
    """Absolute path of the C compiler: ``cc`` if given, else ``$CC``, else cc, gcc or clang on PATH."""
    wanted = [cc] if cc else ([os.environ["CC"]] if os.environ.get("CC") else list(COMPILERS))
    for name in wanted:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeUnavailableError(
        f"No C compiler found (looked for {', '.join(wanted)}). The native runners are compiled on this "
        "machine: install one, e.g. `apt-get install gcc` (Debian/Ubuntu), or set CC to a C compiler."
    )


@functools.lru_cache(maxsize=8)
def compiler_version(cc: str) -> str:
    """First line of ``cc --version`` (part of the cache key)."""
    try:
        proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeUnavailableError(
            f"The C compiler {cc} does not run ({e}). Install a working one, e.g. `apt-get install gcc`."
        ) from e
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


# -- libraries --------------------------------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _distribution_version(kind: str) -> str | None:
    from importlib import metadata

    for dist in _DISTRIBUTIONS[kind]:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return None


def _version_key(name: str) -> tuple[int, ...]:
    tail = name.split(".so", 1)[1].lstrip(".")
    return tuple(int(p) for p in tail.split(".") if p.isdigit())


def _installed_library(kind: str) -> Path | None:
    if kind == "litert":
        pkg = _package_dir("ai_edge_litert")
        return pkg / "libLiteRt.so" if pkg else None
    pkg = _package_dir("onnxruntime")
    if pkg is None:
        return None
    # The wheel ships the real file as libonnxruntime.so.<version> (SONAME libonnxruntime.so.1):
    # take the real file with the longest version, never a symlink to it.
    found = [p for p in (pkg / "capi").glob("libonnxruntime.so*") if p.is_file() and not p.is_symlink()]
    return max(found, key=lambda p: _version_key(p.name)) if found else None


def find_library(kind: str, lib: Path | None = None) -> RuntimeLibrary:
    """The runtime library for ``kind``: ``lib``, else ``$EDGEFM_<KIND>_LIB``, else the installed wheel's."""
    if kind not in SOURCES:
        raise RuntimeUnavailableError(f"No native runner named {kind!r}; edgefm has {', '.join(SOURCES)}.")
    env = LIBRARY_ENV[kind]
    if lib is not None:
        path, origin = Path(lib), "given"
    elif os.environ.get(env):
        path, origin = Path(os.environ[env]), f"${env}"
    else:
        found = _installed_library(kind)
        if found is None:
            raise RuntimeUnavailableError(
                f"The {kind} runtime library is not installed. {INSTALL_HINT[kind]}; or point ${env} at the library."
            )
        path, origin = found, "installed wheel"
    if not path.is_file():
        raise RuntimeUnavailableError(
            f"The {kind} runtime library {path} ({origin}) does not exist. {INSTALL_HINT[kind]}; "
            f"or point ${env} at the library."
        )
    path = path.resolve()
    version = (_distribution_version(kind) if origin == "installed wheel" else None) or _file_version(path)
    return RuntimeLibrary(kind, path, version)


def _file_version(path: Path) -> str:
    key = _version_key(path.name) if ".so" in path.name else ()
    return ".".join(map(str, key)) if key else "unknown"


# -- build ------------------------------------------------------------------------------------


def cache_key(kind: str, library: RuntimeLibrary, cc: str) -> str:
    """sha256 over everything that changes the executable or its fit to the library."""
    h = hashlib.sha256()

    def add(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        h.update(label.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)

    add("kind", kind)
    for src in runner_sources(kind):
        add(src.name, src.read_bytes())
    st = library.path.stat()
    add("library", f"{library.path}|{library.version}|{st.st_size}|{st.st_mtime_ns}")
    add("compiler", f"{cc}|{compiler_version(cc)}")
    add("flags", " ".join(CFLAGS + LDLIBS))
    return h.hexdigest()


def build_runner(
    kind: str,
    *,
    lib: Path | None = None,
    cc: str | None = None,
    cache: Path | None = None,
) -> NativeRunner:
    """Compile the ``kind`` runner (``litert`` or ``onnxruntime``) unless a cached build matches."""
    t0 = time.perf_counter()
    sources = runner_sources(kind)
    library = find_library(kind, lib)
    compiler = find_compiler(cc)
    target_dir = Path(cache) if cache is not None else cache_dir()
    key = cache_key(kind, library, compiler)
    exe = target_dir / f"runner_{kind}-{key[:20]}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return NativeRunner(kind, exe, library, compiler_version(compiler), True, time.perf_counter() - t0)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{exe.name}.", suffix=".tmp", dir=target_dir)
    except OSError as e:
        raise RuntimeUnavailableError(
            f"Cannot write the native runner cache {target_dir} ({e}). Make it writable or set XDG_CACHE_HOME."
        ) from e
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [compiler, *CFLAGS, f"-I{source_dir()}", "-o", str(tmp), str(sources[0]), *LDLIBS]
    try:
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeUnavailableError(
                f"Compiling {sources[0].name} with {compiler} failed to run ({e}). Install a working C "
                "toolchain, e.g. `apt-get install gcc libc6-dev`."
            ) from e
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
            raise RuntimeUnavailableError(
                f"{compiler} could not compile {sources[0]} (exit status {proc.returncode}):\n{tail}\n"
                "Install a complete C toolchain with the C library headers, e.g. `apt-get install gcc libc6-dev`."
            )
        tmp.chmod(0o755)
        os.replace(tmp, exe)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return NativeRunner(kind, exe, library, compiler_version(compiler), False, time.perf_counter() - t0)
