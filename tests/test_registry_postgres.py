"""The registry against a real PostgreSQL server (a throwaway cluster on a Unix socket).

Skips, saying why, where the PostgreSQL server binaries or the psycopg driver are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from iatros.registry import Registry


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run server commands as the postgres user when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start a PostgreSQL server")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="psycopg (iatros[postgres]) is not installed")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not found or not found[-1]:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    bindir = Path(found[-1]).parent
    # outside pytest's tmp tree, whose root-only parent the postgres user cannot enter
    base = Path(tempfile.mkdtemp(prefix="iatros-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "iatros"]), check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                                     str(base / "log"), "-o", f"-k {sock} -h '' -p 54329", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        pytest.skip(f"could not start a throwaway PostgreSQL server: {e}")
    yield f"postgresql+psycopg://iatros@/postgres?host={sock}&port=54329"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                   capture_output=True, timeout=120)
    shutil.rmtree(base, ignore_errors=True)


def test_runs_and_model_versions_round_trip_through_postgresql(postgres_url, tmp_path):
    registry = Registry(postgres_url)
    entry = registry.register_run(tmp_path / "run-a", "whas500-mortality-1y", "mlp", 0, "auroc",
                                  {"value": 0.84, "ci95": [0.75, 0.92], "n": 75})
    assert Registry(postgres_url).runs()[0].path == str(tmp_path / "run-a")
    version = registry.promote(entry.id, "mi-risk", stage="production")
    assert (version.name, version.version, version.stage) == ("mi-risk", 1, "production")
    assert [v.run.value for v in registry.model_versions("mi-risk")] == [0.84]
