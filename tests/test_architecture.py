"""Imports point one way (docs/architecture.md): checked on the source, module by module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iatros"

# layer -> iatros packages it must never import
FORBIDDEN = {
    "data": {"models", "tasks", "train", "evaluate", "report", "registry", "api", "cli"},
    "models": {"tasks", "train", "evaluate", "report", "registry", "api", "cli"},
    "tasks": {"train", "evaluate", "report", "registry", "api", "cli"},
    "train": {"tasks", "evaluate", "report", "registry", "api", "cli"},
    "evaluate": {"data", "models", "tasks", "train", "report", "registry", "api", "cli"},
    "report": {"data", "models", "tasks", "train", "registry", "api", "cli"},
    "explain": {"tasks", "train", "evaluate", "report", "registry", "api", "cli"},
    "registry": {"data", "models", "tasks", "train", "evaluate", "report", "api", "cli"},
    "api": {"cli"},
    "survival_run": {"cli"},
    "text_run": {"cli"},
    "nlp": {"tasks", "train", "evaluate", "report", "registry", "api", "cli"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("iatros.") and n.count(".") >= 1}


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_point_one_way(path):
    forbidden = FORBIDDEN.get(_layer(path), set())
    bad = _imported_packages(path) & forbidden
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_nothing_imports_the_cli():
    offenders = [p for p in MODULES if _layer(p) != "cli" and "cli" in _imported_packages(p)]
    assert offenders == []
