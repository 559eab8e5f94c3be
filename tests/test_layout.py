"""The layout's rules, read from every module's imports (``ast``, lazy imports included).

Data flows one way: dataset -> ``edgefm.train`` -> SavedModel -> ``export`` ->
.tflite/.onnx -> ``runtime_check`` -> report, over a ground floor (``edgefm.core``)
and the file formats and data sources beside it. Only ``edgefm.cli`` reaches
across the stages. A new import that breaks a rule fails here, naming the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGES = ("edgefm", "export", "runtime_check", "benchmarks")

#: room -> the rooms of the project it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "edgefm.core": set(),
    "edgefm.formats": {"edgefm.core"},
    "edgefm.data": {"edgefm.core"},
    "edgefm.train": {"edgefm.core", "edgefm.data"},
    "export": {"edgefm.core", "edgefm.formats", "edgefm.data"},
    "runtime_check": {"edgefm.core", "edgefm.formats", "edgefm.data"},
    "edgefm.cli": {"edgefm.core", "edgefm.formats", "edgefm.data", "edgefm.train", "export", "runtime_check"},
    "benchmarks": {"edgefm.core", "edgefm.data", "edgefm.train", "runtime_check"},
}


def room(module: str) -> str:
    """The room a dotted module name belongs to (``edgefm.core.errors`` -> ``edgefm.core``)."""
    parts = module.split(".")
    if parts[0] == "edgefm" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the project's own packages in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            # `from edgefm.data import fashion_mnist` imports the submodule's room, not just the package
            found += [(node.lineno, n) for n in names[:1] if n.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in PACKAGES]
    return found


SOURCES = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_every_module_is_in_a_room_with_rules() -> None:
    rooms = {room(module_name(p)) for p in SOURCES}
    assert rooms - {"edgefm"} <= set(ALLOWED), rooms - set(ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_one_way(path: Path) -> None:
    here = room(module_name(path))
    if here == "edgefm":  # the package's own __init__: a docstring
        assert not project_imports(path)
        return
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {target} ({room(target)}); {here} may import "
        f"{', '.join(sorted(ALLOWED[here])) or 'nothing else of the project'}"
        for line, target in project_imports(path)
        if room(target) != here and room(target) not in ALLOWED[here] and target != "edgefm"
    ]
    assert not bad, "\n".join(bad)


def test_only_the_cli_imports_both_export_and_runtime_check() -> None:
    both = []
    for path in SOURCES:
        targets = {room(t) for _, t in project_imports(path)}
        if {"export", "runtime_check"} <= targets | {room(module_name(path))}:
            both.append(str(path.relative_to(REPO)))
    assert all(p.startswith("edgefm/cli/") for p in both), both
