"""Which runtime versions edgefm can fetch and run: ``PACKAGE==VERSION`` and ``PACKAGE>=A,<=B``, parsed once.

A package is one line of ``PACKAGES``: the artifact format it runs, the module
the child imports, and the pins its old releases need beside them (tflite-runtime
2.14 was built against NumPy 1.x and fails to import under NumPy 2: "A module
that was compiled using NumPy 1.x cannot be run in NumPy 2").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgefm.core.contract import ONNX_FORMAT, TFLITE_FORMAT
from edgefm.core.errors import UsageError


@dataclass(frozen=True)
class Package:
    """A runtime distribution on PyPI that the child runner knows how to drive."""

    name: str
    format: str
    module: str  # what the child imports; it then uses that module's Interpreter / InferenceSession
    extra_requirements: tuple[str, ...] = ()


PACKAGES: dict[str, Package] = {
    "tflite-runtime": Package("tflite-runtime", TFLITE_FORMAT, "tflite_runtime.interpreter", ("numpy<2",)),
    "ai-edge-litert": Package("ai-edge-litert", TFLITE_FORMAT, "ai_edge_litert.interpreter"),
    "onnxruntime": Package("onnxruntime", ONNX_FORMAT, "onnxruntime"),
}
_VERSION = re.compile(r"\d+(\.\d+){0,3}([a-z]+\d*)?(\.post\d+|\.dev\d+)?")


@dataclass(frozen=True)
class RuntimeSpec:
    """One released version of one runtime package: ``tflite-runtime==2.14.0``."""

    package: str
    version: str

    @property
    def info(self) -> Package:
        return PACKAGES[self.package]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def label(self) -> str:
        """The verify row's suffix after ``@``: ``tflite-runtime-2.14.0``."""
        return f"{self.package}-{self.version}"

    def __str__(self) -> str:
        return self.requirement


def _package(name: str, text: str) -> Package:
    key = name.strip().lower().replace("_", "-")
    if key not in PACKAGES:
        raise UsageError(
            f"{text!r}: edgefm does not know how to run the package {name.strip()!r}. It runs "
            f"{', '.join(PACKAGES)} (for example --runtime tflite-runtime==2.14.0)."
        )
    return PACKAGES[key]


def parse_runtime_spec(text: str) -> RuntimeSpec:
    """``PACKAGE==VERSION`` -> RuntimeSpec; anything else is a UsageError naming the form."""
    name, sep, version = text.partition("==")
    package = _package(name, text)
    version = version.strip()
    if not sep or not _VERSION.fullmatch(version):
        raise UsageError(
            f"{text!r} is not PACKAGE==VERSION with one exact version (for example {package.name}==2.14.0); "
            "ranges go to --runtime-range."
        )
    return RuntimeSpec(package.name, version)


@dataclass(frozen=True)
class RuntimeRange:
    """``PACKAGE>=A,<=B``: every released version of a package between two bounds (either may be open)."""

    package: str
    low: tuple[int, ...] | None
    high: tuple[int, ...] | None
    text: str

    def contains(self, version: str) -> bool:
        v = version_key(version)
        return v is not None and (self.low is None or v >= self.low) and (self.high is None or v <= self.high)


def version_key(version: str) -> tuple[int, ...] | None:
    """A final release's numbers (``2.14.0`` -> (2, 14, 0)); None for a pre-release or anything else."""
    if not re.fullmatch(r"\d+(\.\d+){0,3}", version):
        return None
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def parse_runtime_range(text: str) -> RuntimeRange:
    """``ai-edge-litert>=1.0,<=2.3`` -> RuntimeRange; a malformed range is one UsageError paragraph."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+?)\s*((?:>=|<=)[^,]+(?:,\s*(?:>=|<=)[^,]+)?)\s*", text)
    if not m:
        raise UsageError(
            f"{text!r} is not a runtime range. Write PACKAGE>=LOW,<=HIGH with final versions, for example "
            "--runtime-range ai-edge-litert>=1.0,<=2.3 (either bound may be left out)."
        )
    package = _package(m.group(1), text)
    low = high = None
    for part in m.group(2).split(","):
        op, bound = part.strip()[:2], part.strip()[2:].strip()
        key = version_key(bound)
        if key is None:
            raise UsageError(f"{text!r}: {bound!r} is not a final version number like 1.0 or 2.3.0.")
        if op == ">=":
            low = key
        else:
            high = key
    if low is not None and high is not None and low > high:
        raise UsageError(f"{text!r} is empty: its lower bound is above its upper bound.")
    return RuntimeRange(package.name, low, high, text.strip())
