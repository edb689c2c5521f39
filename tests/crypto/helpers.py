"""Master keys for tests: key files with the right mode, and the environment pointing at one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iatros.crypto import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, LocalKeyProvider, new_key_text


def write_key(path: Path, mode: int = 0o600) -> Path:
    path.write_text(new_key_text(), encoding="ascii")
    os.chmod(path, mode)
    return path


def use_key(monkeypatch: pytest.MonkeyPatch, path: Path | None) -> LocalKeyProvider | None:
    """Configure the key in `path` through IATROS_MASTER_KEY_FILE (None: no key)."""
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    if path is None:
        monkeypatch.delenv(MASTER_KEY_FILE_ENV, raising=False)
        return None
    monkeypatch.setenv(MASTER_KEY_FILE_ENV, str(path))
    return LocalKeyProvider.from_file(path)
