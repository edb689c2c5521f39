"""The one settings object: where data is read, where runs are written, which database and device."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_DATA_ROOT = Path("~/.cache/iatros/data")
DEFAULT_HOME = Path("~/.iatros")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. `data_root` is input only (may be read-only); `home` is writable."""

    data_root: Path
    home: Path
    database_url: str
    device: str

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def with_data_root(self, data_root: str | Path | None) -> Settings:
        """A copy reading data from another root (e.g. another copy of the same dataset)."""
        if data_root is None:
            return self
        return replace(self, data_root=Path(data_root).expanduser().resolve())


def auto_device() -> str:
    """CUDA when a GPU is visible, else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_settings(
    data_root: str | Path | None = None,
    home: str | Path | None = None,
    database_url: str | None = None,
    device: str | None = None,
) -> Settings:
    """Resolve settings: explicit argument, else environment variable, else default."""
    root = Path(data_root or os.environ.get("IATROS_DATA") or DEFAULT_DATA_ROOT)
    home_path = Path(home or os.environ.get("IATROS_HOME") or DEFAULT_HOME).expanduser().resolve()
    url = database_url or os.environ.get("IATROS_DATABASE_URL") or (
        f"sqlite:///{home_path / 'registry.db'}"
    )
    dev = device or os.environ.get("IATROS_DEVICE") or "auto"
    if dev == "auto":
        dev = auto_device()
    return Settings(
        data_root=root.expanduser().resolve(), home=home_path, database_url=url, device=dev
    )
