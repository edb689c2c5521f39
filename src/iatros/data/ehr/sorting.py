"""Writing a lazy polars table sorted, with bounded memory: polars streams the rows to disk and
DuckDB sorts them out of core (spilling to disk past its memory limit), so converting a health
record database larger than memory does not hold its events in memory.

The limit is `IATROS_SORT_MEMORY` (DuckDB's syntax, default "1GB"). An encrypted workspace sorts
in memory instead: unencrypted rows are never written to disk, even temporarily.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from iatros.crypto import KeyProvider, active_provider
from iatros.crypto import parquet as encrypted_parquet
from iatros.errors import ConfigError

DEFAULT_MEMORY = "1GB"
_ROW = "_iatros_row"


def sort_memory() -> str:
    """DuckDB's memory limit for sorting, from IATROS_SORT_MEMORY (e.g. "500MB", "4GB")."""
    value = os.environ.get("IATROS_SORT_MEMORY", DEFAULT_MEMORY).strip().upper().replace(" ", "")
    number = value.rstrip("KMGTIB")
    if not number.replace(".", "", 1).isdigit() or value == number:
        raise ConfigError(f"IATROS_SORT_MEMORY={value!r}: expected a size such as 500MB or 4GB")
    return value


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_sorted(frame: pl.LazyFrame, path: Path, keys: Sequence[str],
                 provider: KeyProvider | None = None,
                 batches: Callable[[Path, Path], None] | None = None) -> None:
    """Write `frame` to `path` sorted by `keys` (nulls first, ties kept in the frame's order).

    `batches(sorted_file, path)`, when given, writes the final file from the sorted one (e.g. to
    validate and align it batch by batch); otherwise the sorted file is the result.
    """
    provider = provider or active_provider()
    if provider is not None:
        table = frame.sort(list(keys), maintain_order=True, nulls_last=False).collect().to_arrow()
        encrypted_parquet.write_table(table, path, provider)
        return
    import duckdb

    unsorted = path.with_name(path.name + ".unsorted")
    ordered = path.with_name(path.name + ".sorted")
    spill = path.with_name(path.name + ".spill")
    try:
        frame.with_row_index(_ROW).sink_parquet(unsorted)
        order = ", ".join([*(f'"{k}" ASC NULLS FIRST' for k in keys), _ROW])
        with duckdb.connect() as con:
            con.execute(f"SET memory_limit = '{sort_memory()}'")
            con.execute(f"SET temp_directory = {_quoted(spill)}")
            con.execute("SET preserve_insertion_order = false")
            con.execute(f"COPY (SELECT * EXCLUDE ({_ROW}) FROM read_parquet({_quoted(unsorted)}) "
                        f"ORDER BY {order}) TO {_quoted(ordered if batches else path)} "
                        "(FORMAT parquet)")
        if batches is not None:
            batches(ordered, path)
    finally:
        for leftover in (unsorted, ordered):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
