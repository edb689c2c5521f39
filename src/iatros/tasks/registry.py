"""The task registry: built-in tasks, tasks added by other modules, and users' own tasks.

Tasks register by name (`register_task`). Parametric families such as `medmnist:dermamnist` or
`csv:my.csv` register a prefix (`register_family`). Users' modules are imported from the
`iatros.tasks` entry-point group and from the IATROS_PLUGINS environment variable.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from iatros.errors import ConfigError, UnknownTaskError
from iatros.tasks.base import Task

_TASKS: dict[str, Task] = {}
_FAMILIES: dict[str, Callable[[str, dict[str, Any]], Task]] = {}
_BUILTIN_MODULES = ("iatros.tasks.tabular", "iatros.tasks.csv_task", "iatros.tasks.imaging",
                    "iatros.tasks.survival", "iatros.tasks.ehr", "iatros.tasks.text",
                    "iatros.tasks.deid", "iatros.tasks.signals", "iatros.tasks.mitbih",
                    "iatros.tasks.molecules", "iatros.tasks.omics",
                    "iatros.tasks.drug_response")
_loaded = False


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add a task under its name; refuses to silently shadow another one."""
    if task.name in _TASKS and not replace and _TASKS[task.name] is not task:
        raise ConfigError(f"a task named {task.name!r} is already registered; pass replace=True")
    _TASKS[task.name] = task
    return task


def register_family(prefix: str, factory: Callable[[str, dict[str, Any]], Task]) -> None:
    """Add a family of tasks named `prefix:ARGUMENT`, built on demand by
    `factory(ARGUMENT, options)`; options come from the command line or the API."""
    _FAMILIES[prefix] = factory


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group="iatros.tasks"):
        ep.load()
    for module in filter(None, os.environ.get("IATROS_PLUGINS", "").split(",")):
        try:
            importlib.import_module(module.strip())
        except ImportError as e:
            raise ConfigError(f"IATROS_PLUGINS names {module!r}, which cannot be imported: {e}") from e


def get_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """The task called `name`; an unknown name gets the closest matches as suggestions.

    `options` configure family tasks (e.g. the target column of `csv:PATH`)."""
    _load_plugins()
    if name in _TASKS:
        return _TASKS[name]
    prefix, sep, argument = name.partition(":")
    if sep and prefix in _FAMILIES:
        return _FAMILIES[prefix](argument, dict(options or {}))
    close = difflib.get_close_matches(name, list(_TASKS), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownTaskError(f"no task named {name!r}.{hint} Run `iatros tasks` to list them.")


def list_tasks() -> list[Task]:
    """Every registered task, sorted by name."""
    _load_plugins()
    return [_TASKS[k] for k in sorted(_TASKS)]


def list_families() -> list[str]:
    _load_plugins()
    return sorted(_FAMILIES)
