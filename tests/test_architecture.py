"""Imports point one way (docs/architecture.md), denied by default: every top-level module or
package of iatros is listed with the iatros units it may import; anything else fails here,
including a new unit nobody listed."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iatros"

# unit -> the iatros units it may import ("root" is `from iatros import __version__ / api`)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "kinds": set(),
    "targets": {"errors"},
    "settings": {"errors"},
    "crypto": {"errors"},
    "run_folder": {"crypto", "errors"},
    "registry": {"errors"},
    "data": {"crypto", "errors", "kinds"},
    "nlp": {"errors"},
    "models": {"data", "errors", "kinds", "targets"},
    "tasks": {"data", "errors", "kinds", "nlp", "settings", "targets"},
    "train": {"errors", "kinds", "models", "run_folder", "targets"},
    "evaluate": {"errors", "kinds", "targets"},
    "explain": {"errors"},
    "report": {"errors", "kinds", "run_folder"},
    "pipeline": {"root", "data", "errors", "evaluate", "explain", "kinds", "models", "nlp",
                 "registry", "report", "run_folder", "settings", "tasks", "train"},
    "access": {"crypto", "errors", "registry"},
    "federated": {"data", "errors", "evaluate", "kinds", "models", "pipeline", "report",
                  "run_folder", "settings", "tasks", "train"},
    "privacy": {"errors"},
    "pgx": {"errors"},
    "monitoring": {"data", "errors"},  # data: replay.py reads PhysioNet 2012 with the EHR reader
    "api": {"access", "crypto", "data", "errors", "evaluate", "federated", "monitoring", "nlp",
            "pgx", "pipeline", "privacy", "registry", "report", "run_folder", "settings", "tasks",
            "train"},
    "serve": {"root", "access", "api", "errors", "monitoring", "run_folder", "settings"},
    "cli": {"root", "api", "errors", "monitoring", "serve", "settings"},  # cli/monitor.py: replay
    "__init__": set(),
}
# inside the pipeline: scorers sit below the steps that use them
PIPELINE_BELOW = {"scoring": {"options", "runs", "scoring"}, "options": set(),
                  "runs": set(), "fit": set(), "inputs": set()}


def _unit(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Dotted iatros modules imported by one file (absolute imports only; relative are banned)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "iatros" or n.startswith("iatros.")}


def _units(modules: set[str]) -> set[str]:
    return {"root" if m == "iatros" else m.split(".")[1] for m in modules}


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_what_its_layer_allows(path):
    unit = _unit(path)
    assert unit in ALLOWED, f"{unit} is a new top-level unit: list its allowed imports here"
    bad = _units(_imports(path)) - ALLOWED[unit] - {unit}
    assert not bad, f"{path.relative_to(SRC)} ({unit}) imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((SRC / "pipeline").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_pipeline_steps_import_downward(path):
    part = path.relative_to(SRC / "pipeline").parts[0].removesuffix(".py")
    if part not in PIPELINE_BELOW:
        return
    used = {m.split(".")[2] for m in _imports(path) if m.startswith("iatros.pipeline.")}
    assert used <= PIPELINE_BELOW[part] | {part}, f"pipeline/{part} imports {sorted(used)}"


def test_relative_imports_are_not_used():
    relative = [str(p.relative_to(SRC)) for p in MODULES
                if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text())))]
    assert relative == []


def test_the_allowed_graph_has_no_cycles():
    graph = {unit: deps - {"root"} for unit, deps in ALLOWED.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:  # pragma: no cover - the message names the cycle
        pytest.fail(f"allowed imports form a cycle: {e.args[1]}")


def test_nothing_imports_the_cli_or_the_api_from_below():
    offenders = [str(p.relative_to(SRC)) for p in MODULES
                 if _unit(p) not in ("cli", "api", "serve") and _units(_imports(p)) & {"cli", "api"}]
    assert offenders == []


def test_the_root_package_is_imported_only_for_its_version_and_the_api():
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "iatros" and node.level == 0:
                names = {a.name for a in node.names}
                assert names <= {"__version__", "api"}, f"{path.relative_to(SRC)}: {names}"


# Where dispatch on a target kind or modality may be written out: the scorers (one per family of
# kinds) and the metric definitions (each metric's arithmetic per kind). Everywhere else looks
# the kind or modality up in a table (scorers, heads, explainers, input readers, figures,
# calibrators) or asks one of its traits (`TargetKind.is_classification`, ...).
KIND_BRANCHES_ALLOWED = ("pipeline/scoring/", "evaluate/metrics.py", "kinds.py")


def _kind_comparisons(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    aliases = {"TargetKind", "Modality"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "iatros.kinds":
            aliases |= {a.asname for a in node.names if a.asname}
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) \
                and node.value.id in ("TargetKind", "Modality"):
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
                isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
                for n in ast.walk(node)):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_branch_on_target_kind_or_modality_outside_scorers_and_tables():
    offenders = [hit for p in MODULES
                 if not str(p.relative_to(SRC)).startswith(KIND_BRANCHES_ALLOWED)
                 for hit in _kind_comparisons(p)]
    assert offenders == [], "\n".join(offenders)
