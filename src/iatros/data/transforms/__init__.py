"""Transforms and augmentation per modality."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

from iatros.errors import ConfigError

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: dict[str, Any] | None, what: str) -> T:
    """A settings dataclass from a dict, refusing names it does not have (listing those it has)."""
    known = set(asdict(cls()))  # type: ignore[call-overload]
    unknown = set(values or {}) - known
    if unknown:
        raise ConfigError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(known)}")
    return cls(**(values or {}))
