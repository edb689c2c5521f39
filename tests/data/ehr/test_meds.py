"""MEDS out and in: every converted folder is a valid MEDS dataset, iatros' own folders read
back to the same events and stays, and any MEDS dataset converts (bad shards named)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import meds
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iatros.data.ehr import convert, get_source
from iatros.data.ehr import meds_format as mf
from iatros.data.ehr.schema import stays_frame
from iatros.errors import ConfigError
from iatros.tasks.ehr import detect_source


@pytest.fixture(scope="module")
def mimic(shared_data_module, tmp_path_factory):
    return convert(get_source("mimic3"), shared_data_module / "mimic3_demo",
                   tmp_path_factory.mktemp("mimic3"))


def _foreign_meds(root: Path) -> Path:
    """A small MEDS dataset as another ETL would write it: two shards, no iatros tables."""
    t = dt.datetime(2020, 1, 1)
    rows = {
        "subject_id": [1, 1, 1, 1, 1, 2, 2, 2],
        "time": [None, dt.datetime(1950, 1, 1), t, t + dt.timedelta(hours=5),
                 t + dt.timedelta(days=2), None, t, t + dt.timedelta(hours=1)],
        "code": ["GENDER//F", "MEDS_BIRTH", "LAB//HR", "LAB//HR", "MEDS_DEATH", "GENDER//M",
                 "LAB//HR", "DX//I10"],
        "numeric_value": [None, None, 80.0, 120.0, None, None, 70.0, None],
    }
    (root / "data").mkdir(parents=True)
    table = pa.table({"subject_id": pa.array(rows["subject_id"], pa.int64()),
                      "time": pa.array(rows["time"], pa.timestamp("us")),
                      "code": pa.array(rows["code"], pa.string()),
                      "numeric_value": pa.array(rows["numeric_value"], pa.float32())})
    pq.write_table(table.slice(0, 5), root / "data" / "a.parquet")
    pq.write_table(table.slice(5), root / "data" / "b.parquet")
    return root


def test_a_converted_folder_is_a_valid_meds_dataset(mimic):
    out = mimic.path
    data = pq.read_table(out / "data" / "0.parquet")
    meds.DataSchema.validate(data)
    codes = pq.read_table(out / meds.code_metadata_filepath)
    meds.CodeMetadataSchema.validate(codes)
    assert set(data.column("code").to_pylist()) == set(codes.column("code").to_pylist())
    splits = pl.read_parquet(out / meds.subject_splits_filepath)
    assert splits["subject_id"].is_unique().all()
    assert set(splits["subject_id"]) == set(data.column("subject_id").to_pylist())
    assert set(splits["split"]) == {meds.train_split, meds.tuning_split, meds.held_out_split}
    meds.DatasetMetadataSchema.validate(
        __import__("json").loads((out / meds.dataset_metadata_filepath).read_text()))
    assert mimic.manifest["meds"].keys() == mf.meds_files(out).keys()


def test_meds_data_is_contiguous_per_subject_and_sorted_by_time(mimic):
    frame = pl.read_parquet(mimic.path / "data" / "0.parquet")
    runs = (frame["subject_id"] != frame["subject_id"].shift(1)).fill_null(True).sum()
    assert runs == frame["subject_id"].n_unique()  # each subject's rows form one block
    by_subject = frame.with_columns(pl.col("time").fill_null(dt.datetime(1, 1, 1)))
    assert by_subject.group_by("subject_id").agg(pl.col("time").is_sorted())["time"].all()


def test_source_events_stay_apart_from_the_rows_iatros_adds(mimic):
    frame = pl.read_parquet(mimic.path / "data" / "0.parquet")
    source_rows = frame.filter(~pl.col("iatros_derived"))
    assert source_rows.height == mimic.events.height
    derived = frame.filter(pl.col("iatros_derived"))
    assert derived.filter(pl.col("code") == mf.STAY_START).height == mimic.stays.height
    deaths = mimic.stays.filter(pl.col("death_time").is_not_null())["subject_id"].n_unique()
    assert frame.filter(pl.col("code") == "MEDS_DEATH")["iatros_subject_id"].n_unique() == deaths


def test_round_trip_gives_the_same_events_and_stays(mimic, tmp_path):
    back = convert(get_source("meds"), mimic.path, tmp_path / "back")
    keys = ["subject_id", "stay_id", "time", "code", "numeric_value", "text_value", "unit"]
    a = mimic.events.with_columns(pl.col("numeric_value").cast(pl.Float32)).sort(keys, nulls_last=True)
    b = back.events.with_columns(pl.col("numeric_value").cast(pl.Float32)).sort(keys, nulls_last=True)
    assert a.equals(b)  # MEDS stores values as float32: equal after the same rounding
    assert mimic.stays.sort("stay_id").equals(back.stays.select(mimic.stays.columns).sort("stay_id"))


def test_text_subject_ids_become_ranks_and_are_kept_beside_them():
    events = pl.DataFrame({"subject_id": ["b-uuid", "a-uuid"], "stay_id": ["s2", "s1"],
                           "time": [dt.datetime(2020, 1, 2), dt.datetime(2020, 1, 1)],
                           "code": ["X//1", "X//2"], "numeric_value": [1.0, None],
                           "text_value": [None, "t"], "unit": [None, None]})
    stays = pl.DataFrame({"subject_id": ["a-uuid", "b-uuid"], "stay_id": ["s1", "s2"],
                          "start_time": [dt.datetime(2020, 1, 1)] * 2,
                          "end_time": [dt.datetime(2020, 1, 3)] * 2, "sex": ["F", None],
                          "death_time": [None, None]},
                         schema_overrides={"death_time": pl.Datetime("us")})
    data = pl.from_arrow(mf.data_table(events, stays))
    pairs = dict(data.select("iatros_subject_id", "subject_id").unique().iter_rows())
    assert pairs == {"a-uuid": 0, "b-uuid": 1}


def test_numeric_subject_ids_are_kept_as_they_are():
    assert mf.subject_numbers(pl.Series(["132539", "7"])) == {"132539": 132539, "7": 7}


def test_a_foreign_meds_dataset_converts_with_derived_stays(tmp_path):
    root = _foreign_meds(tmp_path / "foreign")
    assert detect_source(root) == "meds"
    tables = convert(get_source("meds"), root, tmp_path / "out")
    stays = tables.stays.sort("subject_id")
    assert stays["subject_id"].to_list() == ["1", "2"]
    assert stays["sex"].to_list() == ["F", "M"]
    assert stays["died"].to_list() == [1, 0]
    assert stays["age"][0] == pytest.approx(70.0, abs=0.05)
    assert tables.events.filter(pl.col("code") == "LAB//HR").height == 3
    assert any("derived" in n for n in tables.manifest["notes"])


def test_an_invalid_shard_is_named_and_the_others_convert(tmp_path, caplog):
    root = _foreign_meds(tmp_path / "foreign")
    pq.write_table(pa.table({"subject_id": ["x"], "code": ["A"]}), root / "data" / "c.parquet")
    tables = convert(get_source("meds"), root, tmp_path / "out")
    skipped = tables.manifest["skipped"]["examples"]
    assert [s["where"] for s in skipped] == ["c.parquet"]
    assert "not a valid MEDS data shard" in skipped[0]["reason"]
    assert tables.stays.height == 2


def test_a_missing_meds_copy_is_written_again_from_the_cache(tmp_path, shared_data, caplog):
    source = get_source("mimic3")
    first = convert(source, shared_data / "mimic3_demo", tmp_path / "m")
    (first.path / "data" / "0.parquet").unlink()
    with caplog.at_level(logging.WARNING, logger="iatros"):
        again = convert(source, shared_data / "mimic3_demo", tmp_path / "m")
    assert again.manifest["from_cache"] and "MEDS copy" in caplog.text
    meds.DataSchema.validate(pq.read_table(first.path / "data" / "0.parquet"))


def test_converting_into_the_input_folder_is_refused(tmp_path):
    root = _foreign_meds(tmp_path / "foreign")
    with pytest.raises(ConfigError, match="is the input itself"):
        convert(get_source("meds"), root, root)
    assert sorted(p.name for p in (root / "data").iterdir()) == ["a.parquet", "b.parquet"]


def test_splits_put_each_patient_in_one_part_with_the_stated_shares():
    data = pa.table({"subject_id": pa.array(np.arange(200), pa.int64())})
    splits = pl.from_arrow(mf.splits_table(data))
    counts = dict(splits["split"].value_counts().iter_rows())
    assert counts == {"train": 140, "tuning": 30, "held_out": 30}


def test_a_stay_without_events_survives_the_round_trip(tmp_path):
    t = dt.datetime(2020, 1, 1)
    events = pl.DataFrame({"subject_id": ["1"], "stay_id": ["a"], "time": [t], "code": ["X//1"],
                           "numeric_value": [1.0], "text_value": [None], "unit": [None]},
                          schema_overrides={"text_value": pl.Utf8, "unit": pl.Utf8})
    stays = stays_frame([{"subject_id": s, "stay_id": k, "start_time": t, "died": 0,
                          "end_time": t + dt.timedelta(days=1), "sex": x}
                         for s, k, x in (("1", "a", "F"), ("2", "b", "M"))])
    root = tmp_path / "ours"
    (root / "data").mkdir(parents=True)
    pq.write_table(mf.data_table(events, stays), root / "data" / "0.parquet")
    stays.write_parquet(root / "stays.parquet")
    back = convert(get_source("meds"), root, tmp_path / "back")
    assert sorted(back.stays["stay_id"]) == ["a", "b"] and back.events.height == 1
