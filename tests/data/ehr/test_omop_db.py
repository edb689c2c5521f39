"""An OMOP CDM in a database (SQLite, DuckDB, a real PostgreSQL server) converts to the same
events and stays as the same CDM from its CSV zip; bad URLs fail without showing passwords."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from iatros import api
from iatros.data.ehr.omop_db import TABLES, is_database_url, masked
from iatros.errors import ConfigError, MissingDataError

ZIP = Path("omop_synthea27nj") / "Synthea27Nj_5.4.zip"


@pytest.fixture(scope="module")
def cdm_frames(shared_data_module: Path) -> dict[str, pd.DataFrame]:
    """The CDM tables of the real zip (only empty strings are missing, as a database holds them)."""
    path = shared_data_module / ZIP
    if not path.is_file():
        pytest.skip(f"{path} is absent from the data root")
    with zipfile.ZipFile(path) as z:
        return {t: pd.read_csv(io.BytesIO(z.read(f"{t.upper()}.csv")), keep_default_na=False,
                               na_values=[""]) for t in (*TABLES, "concept")}


@pytest.fixture(scope="module")
def from_zip(shared_data_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip")
    api.convert("omop", shared_data_module / ZIP, out)
    return out


def _same(a: Path, b: Path) -> None:
    for name, key in (("events.parquet", None), ("stays.parquet", ["stay_id"])):
        x, y = pl.read_parquet(a / name), pl.read_parquet(b / name)
        keys = key or x.columns
        assert x.sort(keys, nulls_last=True).equals(y.sort(keys, nulls_last=True)), name


def test_sqlite_cdm_converts_like_the_zip(cdm_frames, from_zip, tmp_path):
    import sqlite3

    db = tmp_path / "cdm.sqlite"
    with sqlite3.connect(db) as con:
        for table, frame in cdm_frames.items():
            frame.to_sql(table, con, index=False)
    api.convert("omop", f"sqlite:///{db}", tmp_path / "out")
    _same(from_zip, tmp_path / "out")
    concepts = pl.read_parquet(tmp_path / "out" / "omop_tables" / "concept.parquet")
    assert concepts.height < len(cdm_frames["concept"])  # only the concepts the tables use


def test_duckdb_cdm_converts_like_the_zip(cdm_frames, from_zip, tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="duckdb (iatros[dev]) is not installed")
    db = tmp_path / "cdm.duckdb"
    con = duckdb.connect(str(db))
    for table, frame in cdm_frames.items():
        con.register("frame", frame)
        con.execute(f"create table {table} as select * from frame")
        con.unregister("frame")
    con.close()
    api.convert("omop", f"duckdb:///{db}", tmp_path / "out")
    _same(from_zip, tmp_path / "out")


def test_postgresql_cdm_in_a_schema_converts_like_the_zip(postgres_url, cdm_frames, from_zip,
                                                          tmp_path):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as con:
        con.execute(text("create schema if not exists cdm"))
    for table, frame in cdm_frames.items():
        frame.to_sql(table, engine, schema="cdm", index=False, if_exists="replace")
    engine.dispose()
    api.convert("omop", postgres_url, tmp_path / "out", schema="cdm")
    _same(from_zip, tmp_path / "out")


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
    url = "postgresql+psycopg://alice:s3cret-pw@127.0.0.1:1/cdm?connect_timeout=2"
    with pytest.raises(MissingDataError) as info:
        api.convert("omop", url, tmp_path / "out")
    assert "s3cret-pw" not in str(info.value) and "alice" in str(info.value)


def test_a_database_without_person_is_a_clear_error(tmp_path):
    import sqlite3

    db = tmp_path / "empty.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table visit_occurrence (visit_occurrence_id integer)")
    with pytest.raises(MissingDataError, match="no person table"):
        api.convert("omop", f"sqlite:///{db}", tmp_path / "out")


def test_urls_are_told_from_paths_and_masked():
    assert is_database_url("postgresql://u@h/db") and is_database_url("duckdb:///x.duckdb")
    assert not is_database_url("/data/omop.zip") and not is_database_url("file:///data")
    assert "pw" not in masked("postgresql://u:pw@h/db")


def test_a_schema_or_url_for_another_source_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="OMOP CDM source"):
        api.convert("fhir", "postgresql://u@h/db", tmp_path / "out")
    with pytest.raises(ConfigError, match="--schema"):
        api.convert("omop", tmp_path, tmp_path / "out", schema="cdm")
    with pytest.raises(ConfigError, match="plain SQL name"):
        api.convert("omop", f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path / "out",
                    schema="cdm; drop table person")
