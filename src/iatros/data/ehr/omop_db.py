"""An OMOP CDM in a database (PostgreSQL, SQLite, ... through SQLAlchemy; DuckDB files) read
into a folder of Parquet tables that the file-based OMOP source converts.

Each clinical table the source reads is copied whole; CONCEPT (millions of rows in a real CDM)
only for the concept ids the copied tables use. Every file is written to a temporary name and
renamed. The database URL's password never appears in a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from iatros.data.ehr.convert import parquet_writer
from iatros.errors import ConfigError, MissingDataError

TABLES = ("person", "visit_occurrence", "visit_detail", "condition_occurrence", "drug_exposure",
          "measurement", "observation", "procedure_occurrence", "device_exposure", "death", "note")
CONCEPT_CHUNK = 5000
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_database_url(text: str) -> bool:
    """Whether a source path is a database URL (postgresql://, sqlite:///, duckdb:///...)."""
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def masked(url: str) -> str:
    """The URL fit for messages: its password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: hide anything between : and @
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


class _Database:
    """Queries against the CDM: DuckDB files natively, anything else through SQLAlchemy."""

    def __init__(self, url: str, schema: str | None) -> None:
        if schema is not None and not _NAME.match(schema):
            raise ConfigError(f"--schema {schema!r} is not a plain SQL name")
        self.url, self.schema = url, schema
        if url.lower().startswith("duckdb:///"):
            import duckdb

            self.duck = duckdb.connect(url[len("duckdb:///"):], read_only=True)
            self.engine = None
        else:
            from sqlalchemy import create_engine

            self.duck = None
            self.engine = create_engine(url)

    def tables(self) -> set[str]:
        """Lower-case names of the tables in the schema."""
        if self.duck is not None:
            rows = self.duck.execute("select table_name from information_schema.tables where "
                                     "table_schema = coalesce(?, current_schema())",
                                     [self.schema]).fetchall()
            return {r[0].lower() for r in rows}
        from sqlalchemy import inspect

        return {t.lower() for t in inspect(self.engine).get_table_names(schema=self.schema)}

    def read(self, query: str) -> pl.DataFrame:
        if self.duck is not None:
            return self.duck.sql(query).pl()
        with self.engine.connect() as connection:  # type: ignore[union-attr]
            return pl.read_database(query, connection, infer_schema_length=None)

    def name(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def close(self) -> None:
        if self.duck is not None:
            self.duck.close()
        if self.engine is not None:
            self.engine.dispose()


def _write(frame: pl.DataFrame, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it (encrypted when a master
    key is configured: the copy holds the CDM's patients)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        parquet_writer(frame)(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _concept_ids(frames: Iterable[pl.DataFrame]) -> list[int]:
    """Every concept id the tables mention (columns named *concept_id)."""
    ids: set[int] = set()
    for frame in frames:
        for column in frame.columns:
            if column.lower().endswith("concept_id"):
                values = frame[column].cast(pl.Int64, strict=False).drop_nulls().unique()
                ids.update(values.to_list())
    ids.discard(0)
    return sorted(ids)


def dump(url: str, out: Path, schema: str | None = None) -> Path:
    """Copy the CDM's tables from the database into OUT/NAME.parquet; return OUT."""
    try:
        db = _Database(url, schema)
        present = db.tables()
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - driver errors vary; name the database, not its password
        raise MissingDataError(f"omop: cannot open {masked(url)}: {type(e).__name__}: "
                               f"{str(e).replace(url, masked(url)).splitlines()[0][:300]}") from e
    try:
        missing = [t for t in ("person", "visit_occurrence") if t not in present]
        if missing:
            raise MissingDataError(f"omop: {masked(url)} has no {', '.join(missing)} table"
                                   f"{' in schema ' + schema if schema else ''}; an OMOP CDM "
                                   "needs PERSON and VISIT_OCCURRENCE")
        out.mkdir(parents=True, exist_ok=True)
        frames = {}
        for table in (t for t in TABLES if t in present):
            frames[table] = db.read(f"select * from {db.name(table)}")
            _write(frames[table], out / f"{table}.parquet")
        if "concept" in present:
            ids = _concept_ids(frames.values())
            parts = [db.read(f"select * from {db.name('concept')} where concept_id in "
                             f"({', '.join(map(str, ids[i:i + CONCEPT_CHUNK]))})")
                     for i in range(0, len(ids), CONCEPT_CHUNK)]
            if parts:
                _write(pl.concat(parts, how="diagonal_relaxed"), out / "concept.parquet")
    finally:
        db.close()
    return out
