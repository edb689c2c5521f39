import pytest

from iatros.errors import ConfigError, RunError
from iatros.registry import Registry


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "db").mkdir()
    return Registry(f"sqlite:///{tmp_path / 'db' / 'registry.db'}")


def _add(registry, path, task="t", value=0.9):
    return registry.register_run(path, task, "mlp", 0, "auroc",
                                 {"value": value, "ci95": [value - 0.05, value + 0.05], "n": 80})


def test_registered_runs_are_listed_newest_first_with_headline_metric(registry, tmp_path):
    _add(registry, tmp_path / "a", value=0.8)
    _add(registry, tmp_path / "b", value=0.9)
    runs = registry.runs()
    assert [r.path for r in runs] == [str(tmp_path / "b"), str(tmp_path / "a")]
    assert runs[0].value == 0.9 and runs[0].ci_low == pytest.approx(0.85) and runs[0].n == 80


def test_registering_the_same_folder_twice_updates_it(registry, tmp_path):
    _add(registry, tmp_path / "a", value=0.8)
    _add(registry, tmp_path / "a", value=0.7)
    assert len(registry.runs()) == 1 and registry.runs()[0].value == 0.7


def test_runs_filter_by_task(registry, tmp_path):
    _add(registry, tmp_path / "a", task="x")
    _add(registry, tmp_path / "b", task="y")
    assert [r.task for r in registry.runs(task="y")] == ["y"]


def test_promotion_numbers_versions_per_model_name(registry, tmp_path):
    a = _add(registry, tmp_path / "a")
    b = _add(registry, tmp_path / "b")
    assert registry.promote(a.id, "mi-risk").version == 1
    v2 = registry.promote(str(tmp_path / "b"), "mi-risk", stage="production")
    assert (v2.version, v2.stage, v2.run.id) == (2, "production", b.id)
    assert [m.version for m in registry.model_versions("mi-risk")] == [1, 2]


def test_promoting_an_unknown_run_is_a_clear_error(registry):
    with pytest.raises(RunError, match="no registered run"):
        registry.promote("999", "x")


def test_unusable_database_url_is_a_clear_error():
    with pytest.raises(ConfigError, match="registry database"):
        Registry("nosuchdialect://x")
