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


def test_threads_from_environment_cap_torch_cpu_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("IATROS_THREADS", "1")
    try:
        assert get_settings().threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.delenv("IATROS_THREADS")
    assert get_settings().threads is None


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_thread_count_names_the_variable(monkeypatch, value):
    from iatros.errors import ConfigError

    monkeypatch.setenv("IATROS_THREADS", value)
    with pytest.raises(ConfigError, match="IATROS_THREADS must be a positive whole number"):
        get_settings()
