"""One virtual environment per runtime version, in the per-user cache, built whole or not at all.

Layout under ``$XDG_CACHE_HOME/edgefm/runtimes/``:

- ``wheels/<package>-<version>-cp311-<machine>/``: the wheels ``pip download
  --only-binary=:all:`` fetched for the version and its dependencies, and
  ``wheels.json`` with each wheel's sha256. A later build (the environment was
  deleted, or there is no network) installs from here with ``--no-index``.
- ``<package>-<version>-cp311-<machine>/``: the environment (``python -m venv
  --without-pip``, then this process's pip installs into it with ``--python``)
  and ``runtime.json``: the wheels, the imported module's own version, how long the
  build took.

Both directories are built in a temporary sibling and renamed into place
(``atomic_directory``): an interrupted or failed build leaves nothing a later run
would take for a finished one. A version that installs but cannot be imported here
(no wheel for this Python, an instruction this CPU lacks) is a
``RuntimeUnavailableError`` that says so: the row fails, the others run.

pip is the only network client: ``pip download`` talks to the configured index
(PyPI unless ``PIP_INDEX_URL`` says otherwise). Its failures are read from its
output: "(from versions: a, b)" means the version does not exist; "(from
versions: none)" means no wheel for this Python/CPU; a connection error means no
network (then the cached wheels are used, or one message says what to do).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefm.core.errors import RuntimeUnavailableError, UsageError
from edgefm.core.fileio import atomic_directory, sha256_file, user_cache_dir
from runtime_check.versions.spec import RuntimeSpec

RECORD = "runtime.json"
WHEELS_RECORD = "wheels.json"
PIP_TIMEOUT_S = 900.0
#: pip's own retries: a dead network fails in seconds, not minutes
PIP_NETWORK = ("--retries", "1", "--timeout", "20")
_NETWORK = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Connection refused|ConnectTimeout|ProxyError|"
    r"Max retries exceeded|No route to host|SSLError"
)


@dataclass(frozen=True)
class RuntimeEnvironment:
    """A built environment: its Python runs ``child.py`` with the pinned runtime importable."""

    spec: RuntimeSpec
    directory: Path
    wheels: dict[str, str]  # wheel file name -> sha256
    module_version: str
    build_seconds: float
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"

    @property
    def numpy1(self) -> bool:
        return any(w.startswith("numpy-1.") for w in self.wheels)

    def describe(self) -> dict[str, Any]:
        return {"package": self.spec.package, "version": self.spec.version, "environment": str(self.directory),
                "wheels": self.wheels, "module_version": self.module_version,
                "build_seconds": round(self.build_seconds, 2), "cached": self.cached}


def cache_root() -> Path:
    return user_cache_dir("runtimes")


def _tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}"


class _BuiltForNumpy1(Exception):
    """The runtime imported with a NumPy 2 beside it but was compiled against NumPy 1.x."""


#: NumPy's own warning when a module built against NumPy 1.x is imported under NumPy 2
NUMPY1_ABI = "compiled using NumPy 1.x cannot be run in"
#: what such a module raises when it first needs NumPy's C API (ai-edge-litert 1.0.x: at the first model)
NUMPY1_ERRORS = ("_ARRAY_API not found", "numpy.core.multiarray failed to import")


def ensure_environment(spec: RuntimeSpec, *, cache: Path | None = None, numpy1: bool = False) -> RuntimeEnvironment:
    """The environment of ``spec``, from the cache or built now (wheels from the cache or from the index).

    A release built against NumPy 1.x that declares only ``numpy>=1.23`` (ai-edge-litert 1.0.x) gets
    NumPy 2 from pip, imports with NumPy's warning "A module that was compiled using NumPy 1.x cannot
    be run in NumPy 2", then fails at its first model ("SystemError: CreateWrapperFromFile returned a
    result with an exception set", caused by "numpy.core.multiarray failed to import"; NumPy's C API is
    imported only there). Such a release is built again with ``numpy<2``: here when its import shows the
    warning, or by ``numpy1=True`` when its first model showed the error (``PinnedRuntime``).
    """
    root = Path(cache) if cache is not None else cache_root()
    directory = root / f"{spec.label}-{_tag()}"
    if not numpy1 and (found := _load(directory, spec)) is not None:
        return found
    pins = tuple(spec.info.extra_requirements)
    if numpy1:
        return _build(spec, root, directory, (*pins, "numpy<2") if "numpy<2" not in pins else pins)
    try:
        return _build(spec, root, directory, pins)
    except _BuiltForNumpy1:
        return _build(spec, root, directory, (*pins, "numpy<2"))


def _build(spec: RuntimeSpec, root: Path, directory: Path, pins: tuple[str, ...]) -> RuntimeEnvironment:
    t0 = time.perf_counter()
    wheels_dir, wheels = _wheels(spec, root, pins)
    with atomic_directory(directory) as staging:
        _run([sys.executable, "-m", "venv", "--without-pip", str(staging)], f"create a virtual environment for {spec}")
        python = staging / "bin" / "python"
        _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check",
              "--no-index", "--find-links", str(wheels_dir), "--only-binary=:all:", "--no-compile",
              spec.requirement, *pins], f"install {spec} from the cached wheels")
        module_version = _import_check(python, spec, numpy2_retry="numpy<2" not in pins)
        env = RuntimeEnvironment(spec, directory, wheels, module_version, time.perf_counter() - t0)
        (staging / RECORD).write_text(json.dumps({**env.describe(), "pins": list(pins)}, indent=2) + "\n",
                                      encoding="utf-8")
    return env


def _load(directory: Path, spec: RuntimeSpec) -> RuntimeEnvironment | None:
    try:
        rec = json.loads((directory / RECORD).read_text(encoding="utf-8"))
        env = RuntimeEnvironment(spec, directory, dict(rec["wheels"]), str(rec["module_version"]),
                                 float(rec["build_seconds"]), cached=True)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return env if rec.get("package") == spec.package and rec.get("version") == spec.version and env.python.exists() else None


def _wheels(spec: RuntimeSpec, root: Path, pins: tuple[str, ...]) -> tuple[Path, dict[str, str]]:
    """The directory of ``spec``'s wheels (its record checked), downloaded first if it is not cached whole."""
    numpy1 = "-numpy1" if "numpy<2" in pins and "numpy<2" not in spec.info.extra_requirements else ""
    directory = root / "wheels" / f"{spec.label}-{_tag()}{numpy1}"
    try:
        rec = json.loads((directory / WHEELS_RECORD).read_text(encoding="utf-8"))
        if rec and all(sha256_file(directory / name) == sha for name, sha in rec.items()):
            return directory, dict(rec)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"Cannot write the runtime cache {root} ({e}). Make it writable or set XDG_CACHE_HOME.") from e
    with atomic_directory(directory) as staging:
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
               *PIP_NETWORK, "--dest", str(staging), spec.requirement, *pins]
        proc = _pip(cmd)
        if proc.returncode != 0:
            raise _download_error(spec, proc.stdout + proc.stderr)
        wheels = {p.name: sha256_file(p) for p in sorted(staging.glob("*.whl"))}
        (staging / WHEELS_RECORD).write_text(json.dumps(wheels, indent=2) + "\n", encoding="utf-8")
    return directory, wheels


def _pip(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=PIP_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise UsageError(f"pip did not finish within {PIP_TIMEOUT_S:g} s: `{' '.join(cmd[2:])}`. Try again.") from e


def _download_error(spec: RuntimeSpec, output: str) -> UsageError | RuntimeUnavailableError:
    """pip's failure as the one paragraph a user can act on."""
    m = re.search(r"\(from versions: ([^)]*)\)", output)
    offered = [] if m is None or m.group(1).strip() == "none" else [v.strip() for v in m.group(1).split(",")]
    if _NETWORK.search(output) and not offered:
        return UsageError(
            f"Cannot reach the package index to fetch {spec} (pip: {_last_line(output, _NETWORK)}), and it is not in "
            f"the runtime cache {cache_root()}. Run once where PyPI is reachable (the wheels are then kept), or "
            "point PIP_INDEX_URL at a mirror."
        )
    if offered:
        return UsageError(
            f"{spec.package} has no version {spec.version} for this Python/CPU ({_tag()}). Versions it has: "
            f"{', '.join(offered[-12:])}."
        )
    if m is not None:
        return RuntimeUnavailableError(
            f"{spec.package} publishes no wheel that installs on this Python/CPU ({_tag()}, Python "
            f"{platform.python_version()}), so {spec} cannot run here. Run this check on a machine the package supports."
        )
    return UsageError(f"pip could not fetch {spec}: {_last_line(output)}")


def _last_line(output: str, pattern: re.Pattern[str] | None = None) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    hits = [ln for ln in lines if pattern is None or pattern.search(ln)]
    return ((hits or lines or ["no output"])[-1])[:300]


def _run(cmd: list[str], what: str) -> None:
    proc = _pip(cmd)
    if proc.returncode != 0:
        raise RuntimeUnavailableError(f"Could not {what}: {_last_line(proc.stdout + proc.stderr)}")


def _import_check(python: Path, spec: RuntimeSpec, *, numpy2_retry: bool = False) -> str:
    """Import the runtime in the new environment; a crash or ImportError means it cannot run on this machine."""
    top = spec.info.module.split(".")[0]
    # the native wrappers too: LiteRT's interpreter imports its _pywrap_* module only at the first model, and
    # that is where a NumPy 1.x build meets NumPy 2
    code = (f"import importlib, importlib.metadata as m, pkgutil; mod = importlib.import_module({spec.info.module!r}); "
            f"top = importlib.import_module({top!r}); "
            f"[importlib.import_module({top!r} + '.' + i.name) for i in pkgutil.iter_modules(top.__path__) "
            f"if i.name.startswith('_pywrap')]; print(m.version({spec.package!r}))")
    try:
        proc = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, errors="replace",
                              timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeUnavailableError(f"{spec} installed but its Python could not start ({e}).") from e
    if numpy2_retry and NUMPY1_ABI in proc.stderr.replace("\n", " "):
        raise _BuiltForNumpy1()
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else _last_line(proc.stderr)
        raise RuntimeUnavailableError(
            f"{spec} installs but cannot run on this Python/CPU ({_tag()}): importing {top} failed ({how})."
        )
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else spec.version


def remove_environment(spec: RuntimeSpec, *, cache: Path | None = None) -> None:
    """Delete a version's environment (its wheels stay): the next use builds it again offline."""
    root = Path(cache) if cache is not None else cache_root()
    shutil.rmtree(root / f"{spec.label}-{_tag()}", ignore_errors=True)


def available_versions(package: str) -> list[str]:
    """The versions of ``package`` the index offers for this Python/CPU, oldest first (``pip index versions``)."""
    from runtime_check.versions.spec import version_key

    cmd = [sys.executable, "-m", "pip", "index", "versions", "--disable-pip-version-check", *PIP_NETWORK, package]
    proc = _pip(cmd)
    m = re.search(r"Available versions: (.*)", proc.stdout)
    if proc.returncode != 0 or m is None:
        spec = RuntimeSpec(package, "?")
        raise _download_error(spec, proc.stdout + proc.stderr) if _NETWORK.search(proc.stdout + proc.stderr) else UsageError(
            f"pip could not list the versions of {package}: {_last_line(proc.stdout + proc.stderr)}")
    versions = [v.strip() for v in m.group(1).split(",") if version_key(v.strip()) is not None]
    return sorted(versions, key=lambda v: version_key(v) or ())


