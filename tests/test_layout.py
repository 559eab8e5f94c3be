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


#: the rooms inside runtime_check, bottom up: runtimes -> native -> device -> verify -> explain; tools beside
#: (it uses the rooms below it, none of them uses it). room -> the rooms of runtime_check it may import.
INNER: dict[str, set[str]] = {
    "runtime_check.runtimes": set(),
    "runtime_check.native": {"runtime_check.runtimes"},
    "runtime_check.device": {"runtime_check.runtimes", "runtime_check.native"},
    "runtime_check.verify": {"runtime_check.runtimes", "runtime_check.native", "runtime_check.device"},
    "runtime_check.explain": {"runtime_check.runtimes", "runtime_check.native", "runtime_check.device",
                              "runtime_check.verify"},
    "runtime_check.tools": {"runtime_check.runtimes", "runtime_check.native", "runtime_check.device",
                            "runtime_check.verify"},
}


def inner_room(module: str) -> str | None:
    """The room inside runtime_check (``runtime_check.verify.check`` -> ``runtime_check.verify``); None outside."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "runtime_check" and len(parts) > 1 else None


def inner_violations(path: Path, source: str | None = None) -> list[str]:
    """Imports of ``path`` (or of ``source`` read as if it were ``path``) that go up or sideways inside runtime_check."""
    here = inner_room(module_name(path))
    if here is None:
        return []
    # source: the mutation check, the same rule over a changed text
    imports = _imports_of(path.read_text(encoding="utf-8") if source is None else source, path)
    return [
        f"{path.relative_to(REPO)}:{line} imports {target}; {here} may import "
        f"{', '.join(sorted(INNER[here])) or 'no other room of runtime_check'}"
        for line, target in imports
        if (there := inner_room(target)) is not None and there != here and there not in INNER[here]
    ]


def _imports_of(source: str, path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] if node.module.split(".")[0] in PACKAGES else []
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in PACKAGES]
    return found


INNER_SOURCES = [p for p in SOURCES if inner_room(module_name(p)) is not None]


def test_every_runtime_check_module_is_in_an_inner_room() -> None:
    rooms = {inner_room(module_name(p)) for p in INNER_SOURCES}
    assert rooms <= set(INNER), rooms - set(INNER)


@pytest.mark.parametrize("path", INNER_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_check_rooms_import_downward(path: Path) -> None:
    bad = inner_violations(path)
    assert not bad, "\n".join(bad)


def test_no_two_runtime_check_rooms_import_each_other() -> None:
    edges = {(inner_room(module_name(p)), inner_room(t)) for p in INNER_SOURCES for _, t in project_imports(p)}
    edges = {(a, b) for a, b in edges if b is not None and a != b}
    assert not {(a, b) for a, b in edges if (b, a) in edges}, edges


@pytest.mark.parametrize(("mutated", "upward"), [
    ("runtime_check/device/ledger.py", "from runtime_check.verify.results import Metric"),
    ("runtime_check/verify/check.py", "from runtime_check.explain.explain import explain"),
    ("runtime_check/runtimes/base.py", "    import runtime_check.native.runtime"),
    ("runtime_check/verify/report.py", "from runtime_check.tools.benchmark import run_benchmark"),
])
def test_an_upward_import_inside_runtime_check_is_caught(mutated: str, upward: str) -> None:
    """The mutation check: the module's own text plus one upward import (a lazy one included) fails the rule."""
    path = REPO / mutated
    text = path.read_text(encoding="utf-8")
    assert not inner_violations(path, text)
    if upward.startswith(" "):  # lazy: inside a function, as the project's heavy imports are
        text += f"\n\ndef _mutant() -> None:\n{upward}\n"
    else:
        text += f"\n{upward}\n"
    bad = inner_violations(path, text)
    assert len(bad) == 1 and upward.split()[1] in bad[0], bad
