"""The registry against a real PostgreSQL server (a throwaway cluster on a Unix socket).

Skips, saying why, where the PostgreSQL server binaries or the psycopg driver are absent.
"""

from __future__ import annotations

from iatros.registry import Registry


def test_runs_and_model_versions_round_trip_through_postgresql(postgres_url, tmp_path):
    registry = Registry(postgres_url)
    entry = registry.register_run(tmp_path / "run-a", "whas500-mortality-1y", "mlp", 0, "auroc",
                                  {"value": 0.84, "ci95": [0.75, 0.92], "n": 75})
    assert Registry(postgres_url).runs()[0].path == str(tmp_path / "run-a")
    version = registry.promote(entry.id, "mi-risk", stage="production")
    assert (version.name, version.version, version.stage) == ("mi-risk", 1, "production")
    assert [v.run.value for v in registry.model_versions("mi-risk")] == [0.84]
