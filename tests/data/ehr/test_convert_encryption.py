"""Converted event folders at rest: with a master key every table (parts, events, stays, the
MEDS copy) is written with Parquet modular encryption and read back transparently, also as a
MEDS source; without the key, or with another, the cache is refused and never converted over;
rotation re-encrypts the tables and keeps the cache valid."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from iatros.crypto import MASTER_KEY_FILE_ENV, DecryptionError, KeyMissingError
from iatros.crypto.parquet import is_encrypted_parquet
from iatros.data.ehr import convert, get_source, physionet2012
from iatros.data.ehr.convert import read_parquet, rotate_cache
from tests.crypto.helpers import use_key, write_key
from tests.data.ehr.builders import physionet_record, record_calls, write_physionet_set

SOURCE = get_source("physionet2012")


def _input(root: Path) -> Path:
    write_physionet_set(root, "a", {1: physionet_record(1), 2: physionet_record(2)},
                        ["1,6,1,5,-1,0", "2,16,8,8,-1,0"])
    return root


def _tables(out: Path) -> list[Path]:
    return sorted(out.rglob("*.parquet"))


@pytest.fixture
def key(tmp_path, monkeypatch):
    return use_key(monkeypatch, write_key(tmp_path / "master.key"))


def test_every_table_is_encrypted_and_reads_back_the_same_rows(tmp_path, key, monkeypatch):
    source = _input(tmp_path / "in")
    tables = convert(SOURCE, source, tmp_path / "out")
    files = _tables(tmp_path / "out")
    assert len(files) >= 7 and all(is_encrypted_parquet(p) for p in files)
    assert read_parquet(tmp_path / "out" / "events.parquet").equals(tables.events)
    assert read_parquet(tmp_path / "out" / "stays.parquet").equals(tables.stays)
    calls = record_calls(monkeypatch, physionet2012, "convert_set")
    again = convert(SOURCE, source, tmp_path / "out")  # from the encrypted cache
    assert again.manifest["from_cache"] and calls == [] and again.events.equals(tables.events)
    use_key(monkeypatch, None)
    plain = convert(SOURCE, source, tmp_path / "plain")
    assert plain.events.equals(tables.events) and plain.stays.equals(tables.stays)
    assert not any(is_encrypted_parquet(p) for p in _tables(tmp_path / "plain"))


def test_the_encrypted_folder_reads_back_as_a_meds_source(tmp_path, key):
    tables = convert(SOURCE, _input(tmp_path / "in"), tmp_path / "out")
    again = convert(get_source("meds"), tmp_path / "out", tmp_path / "meds-out")

    def rows(frame: pl.DataFrame) -> pl.DataFrame:  # MEDS keeps values as float32
        return frame.sort("stay_id", "time", "code").select(
            "stay_id", "code", pl.col("numeric_value").cast(pl.Float32))

    assert rows(again.events).equals(rows(tables.events))
    assert sorted(again.stays["stay_id"]) == sorted(tables.stays["stay_id"])


def test_without_the_key_the_cache_is_refused_and_left_as_it_was(tmp_path, key, monkeypatch):
    source = _input(tmp_path / "in")
    convert(SOURCE, source, tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    use_key(monkeypatch, None)
    with pytest.raises(KeyMissingError, match=MASTER_KEY_FILE_ENV) as caught:
        convert(SOURCE, source, tmp_path / "out")
    assert "stays.parquet" in str(caught.value)   # the first table a cached read opens
    use_key(monkeypatch, write_key(tmp_path / "other.key"))
    with pytest.raises(DecryptionError, match="authentication failed"):
        convert(SOURCE, source, tmp_path / "out")
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before


def test_rotation_reencrypts_the_tables_and_keeps_the_cache_valid(tmp_path, key, monkeypatch):
    source = _input(tmp_path / "in")
    tables = convert(SOURCE, source, tmp_path / "out")
    new = use_key(monkeypatch, write_key(tmp_path / "new.key"))
    report = rotate_cache(tmp_path / "out", key, new)
    assert len(report.rewrapped) == len(_tables(tmp_path / "out")) and not report.failed
    calls = record_calls(monkeypatch, physionet2012, "convert_set")
    again = convert(SOURCE, source, tmp_path / "out")
    assert again.manifest["from_cache"] and calls == [] and again.events.equals(tables.events)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sha256"] and manifest["meds"]


def test_rotation_goes_on_past_a_damaged_table_and_reports_it(tmp_path, key, monkeypatch):
    convert(SOURCE, _input(tmp_path / "in"), tmp_path / "out")
    damaged = tmp_path / "out" / "stays.parquet"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    new = use_key(monkeypatch, write_key(tmp_path / "new.key"))
    report = rotate_cache(tmp_path / "out", key, new)
    assert [p for p, _ in report.failed] == [str(damaged)]
    assert damaged.read_bytes() == bytes(data)
    assert len(report.rewrapped) == len(_tables(tmp_path / "out")) - 1
    assert read_parquet(tmp_path / "out" / "events.parquet").height > 0


def test_a_plain_cache_still_reads_with_a_key_configured(tmp_path, monkeypatch):
    source = _input(tmp_path / "in")
    use_key(monkeypatch, None)
    plain = convert(SOURCE, source, tmp_path / "out")
    use_key(monkeypatch, write_key(tmp_path / "master.key"))
    again = convert(SOURCE, source, tmp_path / "out")
    assert again.manifest["from_cache"] and again.events.equals(plain.events)
    assert pl.read_parquet(tmp_path / "out" / "events.parquet").equals(plain.events)


def test_an_omop_database_copy_is_encrypted_and_converts_like_a_plain_one(shared_data, tmp_path,
                                                                          monkeypatch):
    import io
    import sqlite3
    import zipfile

    import pandas as pd

    from iatros import api
    from iatros.data.ehr.omop_db import TABLES

    zipped = shared_data / "omop_synthea27nj" / "Synthea27Nj_5.4.zip"
    if not zipped.is_file():
        pytest.skip(f"{zipped} is absent from the data root")
    db = tmp_path / "cdm.sqlite"
    with zipfile.ZipFile(zipped) as z, sqlite3.connect(db) as con:
        for table in (*TABLES, "concept"):
            pd.read_csv(io.BytesIO(z.read(f"{table.upper()}.csv")), keep_default_na=False,
                        na_values=[""]).to_sql(table, con, index=False)
    use_key(monkeypatch, None)
    api.convert("omop", f"sqlite:///{db}", tmp_path / "plain")
    use_key(monkeypatch, write_key(tmp_path / "master.key"))
    api.convert("omop", f"sqlite:///{db}", tmp_path / "sealed")
    copies = sorted((tmp_path / "sealed" / "omop_tables").glob("*.parquet"))
    assert copies and all(is_encrypted_parquet(p) for p in copies)
    for name in ("events.parquet", "stays.parquet"):
        assert read_parquet(tmp_path / "sealed" / name).equals(pl.read_parquet(tmp_path / "plain" / name))


def test_an_encrypted_conversion_sorts_in_memory_and_never_writes_plaintext(tmp_path, key,
                                                                            monkeypatch):
    def plaintext_sink(self, *args, **kwargs):
        raise AssertionError("an unencrypted sink was opened")

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", plaintext_sink)
    tables = convert(SOURCE, _input(tmp_path / "in"), tmp_path / "out")
    assert tables.events.height > 0
    assert all(is_encrypted_parquet(p) for p in (tmp_path / "out").rglob("*") if p.is_file()
               and p.suffix == ".parquet")
