"""Shared fixtures: every test gets its own writable iatros home and registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def iatros_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate the workspace (runs, registry) per test; devices default to CPU."""
    home = tmp_path / "iatros-home"
    monkeypatch.setenv("IATROS_HOME", str(home))
    monkeypatch.delenv("IATROS_DATABASE_URL", raising=False)
    monkeypatch.setenv("IATROS_DEVICE", "cpu")
    return home


@pytest.fixture
def shared_data() -> Path:
    """The read-only real-data folder beside the checkout; skip when this machine lacks it."""
    root = Path(os.environ.get("IATROS_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (set IATROS_DATA to ../shared/data)")
    return root


@pytest.fixture(scope="module")
def shared_data_module() -> Path:
    """`shared_data` for module-scoped fixtures."""
    root = Path(os.environ.get("IATROS_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (set IATROS_DATA to ../shared/data)")
    return root
