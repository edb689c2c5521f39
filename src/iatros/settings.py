"""The one settings object: where data is read, where runs are written, which database, device
and how many CPU threads torch may use."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from iatros.errors import ConfigError

DEFAULT_DATA_ROOT = Path("~/.cache/iatros/data")
DEFAULT_HOME = Path("~/.iatros")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. `data_root` is input only (may be read-only); `home` is writable."""

    data_root: Path
    home: Path
    database_url: str
    device: str
    threads: int | None = None

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


def _threads(value: str | None) -> int | None:
    """IATROS_THREADS as a positive int (None: torch's own default, one per core)."""
    if value is None or value.strip() == "":
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(f"IATROS_THREADS must be a positive whole number of CPU threads, got "
                          f"{value!r}; unset it to let torch use one per core")
    return threads


def home_dir(home: str | Path | None = None) -> Path:
    """The workspace folder (explicit argument, else IATROS_HOME, else ~/.iatros), resolved
    without touching torch: text tools need only this."""
    return Path(home or os.environ.get("IATROS_HOME") or DEFAULT_HOME).expanduser().resolve()


def get_settings(
    data_root: str | Path | None = None,
    home: str | Path | None = None,
    database_url: str | None = None,
    device: str | None = None,
) -> Settings:
    """Resolve settings: explicit argument, else environment variable, else default."""
    root = Path(data_root or os.environ.get("IATROS_DATA") or DEFAULT_DATA_ROOT)
    home_path = home_dir(home)
    url = database_url or os.environ.get("IATROS_DATABASE_URL") or (
        f"sqlite:///{home_path / 'registry.db'}"
    )
    dev = device or os.environ.get("IATROS_DEVICE") or "auto"
    if dev == "auto":
        dev = auto_device()
    threads = _threads(os.environ.get("IATROS_THREADS"))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return Settings(data_root=root.expanduser().resolve(), home=home_path, database_url=url,
                    device=dev, threads=threads)
