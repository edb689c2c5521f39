from pathlib import Path

import pytest

from iatros.settings import get_settings


def test_explicit_data_root_beats_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IATROS_DATA", str(tmp_path / "env"))
    assert get_settings(data_root=tmp_path / "flag").data_root == (tmp_path / "flag").resolve()


def test_environment_beats_default(monkeypatch, tmp_path):
    monkeypatch.setenv("IATROS_DATA", str(tmp_path / "env"))
    assert get_settings().data_root == (tmp_path / "env").resolve()


def test_default_data_root_is_user_cache(monkeypatch):
    monkeypatch.delenv("IATROS_DATA", raising=False)
    assert get_settings().data_root == Path("~/.cache/iatros/data").expanduser().resolve()


def test_database_defaults_to_sqlite_in_workspace(iatros_home):
    settings = get_settings()
    assert settings.home == iatros_home.resolve()
    assert settings.database_url == f"sqlite:///{iatros_home.resolve() / 'registry.db'}"


def test_database_url_from_environment(monkeypatch):
    monkeypatch.setenv("IATROS_DATABASE_URL", "postgresql://u@h/db")
    assert get_settings().database_url == "postgresql://u@h/db"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_device_is_explicit_when_given(device):
    assert get_settings(device=device).device == device


def test_auto_device_is_cpu_without_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_settings(device="auto").device == "cpu"
