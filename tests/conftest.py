"""Shared fixtures: every test gets its own writable iatros home and registry."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # parallel test processes share the cores: one torch/OpenMP thread each, or their threads
    # spin-wait on each other (measured: a third less CPU time and wall time on 2 cores)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def iatros_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate the workspace (runs, registry) per test; devices default to CPU."""
    home = tmp_path / "iatros-home"
    monkeypatch.setenv("IATROS_HOME", str(home))
    monkeypatch.delenv("IATROS_DATABASE_URL", raising=False)
    monkeypatch.delenv("IATROS_MASTER_KEY", raising=False)  # encryption at rest off unless a
    monkeypatch.delenv("IATROS_MASTER_KEY_FILE", raising=False)  # test configures a key
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


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run server commands as the postgres user when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start a PostgreSQL server")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on a Unix socket; skips, saying why, where the server
    binaries or the psycopg driver are absent."""
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
