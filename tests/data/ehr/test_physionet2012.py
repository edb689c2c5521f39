"""PhysioNet/CinC 2012 record files and Outcomes files into the event format."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.ehr import convert, get_source
from iatros.data.ehr.physionet2012 import ANCHOR, read_record
from iatros.data.ehr.schema import EVENT_SCHEMA, STAY_SCHEMA, SkipLog
from tests.data.ehr.builders import physionet_record, write_physionet_set

SOURCE = get_source("physionet2012")
HR, TEMP = "PHYSIONET2012//HR", "PHYSIONET2012//Temp"
RECORDS = {
    132539: physionet_record(132539),  # HR 73, Temp 35.1, HR 80
    132540: physionet_record(132540, age=76, gender=1, height=175.3, icu_type=2, weight=76, lines=(
        "00:10,SysABP,120", "00:10,DiasABP,70", "02:00,Weight,75.5", "47:59,Urine,100")),
    132541: physionet_record(132541, age=90, gender=-1, icu_type=3,
                             lines=("00:05,pH,7.3", "00:05,GCS,14")),
}
OUTCOMES = ["132539,6,1,5,-1,0", "132540,16,8,8,-1,0", "132541,21,11,19,30,1"]
FIRST_EVENT_LINE = 8  # header + 6 descriptor lines


def set_a(root: Path, records: dict[int, str] | None = None,
          outcomes: list[str] | None = OUTCOMES) -> Path:
    write_physionet_set(root, "a", records or RECORDS, outcomes)
    return root


def run(root: Path, out: Path):
    return convert(SOURCE, root, out)


def stay(tables, rid: str) -> dict:
    return tables.stays.filter(pl.col("stay_id") == rid).row(0, named=True)


def test_three_records_give_their_events_with_codes_units_and_times(tmp_path):
    tables = run(set_a(tmp_path / "in"), tmp_path / "out")
    m = tables.manifest
    assert (m["n_subjects"], m["n_stays"], m["n_events"]) == (3, 3, 9)
    assert m["skipped"]["n"] == 0 and m["notes"] == []
    assert tables.events.schema == EVENT_SCHEMA
    assert tables.events.group_by("stay_id").len().sort("stay_id").rows() == [
        ("132539", 3), ("132540", 4), ("132541", 2)]
    first = tables.events.filter(pl.col("stay_id") == "132539").row(0, named=True)
    assert first == {"subject_id": "132539", "stay_id": "132539", "time": datetime(2000, 1, 1, 0, 7),
                     "code": HR, "numeric_value": 73.0, "text_value": None, "unit": "bpm"}
    last = tables.events.filter(pl.col("code") == "PHYSIONET2012//Urine").row(0, named=True)
    assert last["time"] == ANCHOR + timedelta(hours=47, minutes=59) and last["unit"] == "mL"
    # descriptors at 00:00 are static facts, not events; a later Weight is an event
    codes = set(tables.events["code"])
    assert not codes & {f"PHYSIONET2012//{d}" for d in ("RecordID", "Age", "Gender", "ICUType")}
    assert tables.events.filter(pl.col("code") == "PHYSIONET2012//Weight")["numeric_value"].to_list() \
        == [75.5]


def test_static_descriptors_become_stay_columns_with_minus_one_as_unknown(tmp_path):
    tables = run(set_a(tmp_path / "in"), tmp_path / "out")
    assert {k: tables.stays.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    a, b, c = (stay(tables, r) for r in ("132539", "132540", "132541"))
    assert (a["age"], a["sex"], a["icu_type"], a["height_cm"], a["weight_kg"]) == (
        54.0, "F", "Surgical ICU", None, None)
    assert (b["age"], b["sex"], b["icu_type"], b["height_cm"], b["weight_kg"]) == (
        76.0, "M", "Cardiac surgery recovery", 175.3, 76.0)
    assert (c["sex"], c["icu_type"]) == (None, "Medical ICU")
    assert {a["set"], a["start_time"], a["site_id"]} == {"set-a", ANCHOR, None}


def test_outcomes_are_joined_to_their_records(tmp_path):
    tables = run(set_a(tmp_path / "in"), tmp_path / "out")
    survived, died = stay(tables, "132539"), stay(tables, "132541")
    assert (survived["died"], survived["los_days"], survived["death_time"],
            survived["survival_days"], survived["saps1"], survived["sofa"]) == (0, 5.0, None, None, 6.0, 1.0)
    assert survived["end_time"] == ANCHOR + timedelta(days=5)
    assert (died["died"], died["los_days"], died["survival_days"], died["saps1"], died["sofa"]) == (
        1, 19.0, 30.0, 21.0, 11.0)
    assert died["end_time"] == ANCHOR + timedelta(days=19)
    assert died["death_time"] == ANCHOR + timedelta(days=30)


def test_a_malformed_line_is_a_counted_skip_naming_file_and_line(tmp_path):
    records = {**RECORDS, 132542: physionet_record(132542, lines=(
        "00:07,HR,70", "xx:yy,HR,abc", "00:08,HR", "00:60,HR,71", "00:09,Foo,1", "", "00:10,HR,72"))}
    tables = run(set_a(tmp_path / "in", records, [*OUTCOMES, "132542,1,1,1,-1,0"]), tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    n = FIRST_EVENT_LINE
    assert skipped == [
        (f"set-a/132542.txt:{n + 1}", "malformed line: time 'xx:yy' or value 'abc'"),
        (f"set-a/132542.txt:{n + 2}", "malformed line: 2 fields"),
        (f"set-a/132542.txt:{n + 3}", "malformed line: time '00:60' or value '71'"),
        (f"set-a/132542.txt:{n + 4}", "unknown variable: Foo"),
    ]
    assert tables.manifest["skipped"]["by_reason"] == {"malformed line": 3, "unknown variable": 1}
    assert tables.events.filter(pl.col("stay_id") == "132542")["numeric_value"].to_list() == [70.0, 72.0]
    assert tables.manifest["n_events"] == 11


def test_an_impossible_value_is_skipped_and_reported_with_its_stay(tmp_path):
    records = {**RECORDS, 132542: physionet_record(132542, lines=(
        "00:07,HR,-5", "00:08,Temp,0", "00:09,HR,0", "00:10,Temp,36.6"))}
    tables = run(set_a(tmp_path / "in", records, [*OUTCOMES, "132542,1,1,1,-1,0"]), tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    assert skipped == [
        ("set-a stay 132542 2000-01-01 00:07:00", f"impossible value: {HR} = -5.0"),
        ("set-a stay 132542 2000-01-01 00:08:00", f"impossible value: {TEMP} = 0.0"),
    ]
    kept = tables.events.filter(pl.col("stay_id") == "132542")
    assert kept.select("code", "numeric_value").rows() == [(HR, 0.0), (TEMP, 36.6)]


def test_without_an_outcomes_file_the_stays_have_no_outcomes_and_a_note_says_why(tmp_path):
    tables = run(set_a(tmp_path / "in", outcomes=None), tmp_path / "out")
    assert tables.manifest["notes"] == [
        "set-a: no Outcomes file beside it; its stays have no outcomes"]
    assert tables.stays.height == 3
    assert tables.stays["died"].null_count() == 3 and tables.stays["los_days"].null_count() == 3
    assert tables.manifest["skipped"]["n"] == 0


def test_records_and_outcome_rows_that_do_not_match_are_reported(tmp_path):
    outcomes = ["132539,6,1,5,-1,0", "132540,16,8,8,-1,0", "999999,1,1,1,-1,0",
                "132539,6,1,5,-1,0", "not,a,row", "132541,21,11,19,30,7"]
    tables = run(set_a(tmp_path / "in", outcomes=outcomes), tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    assert ("Outcomes-a.txt:5", "duplicate outcome row for record 132539") in skipped
    assert ("Outcomes-a.txt:6", "malformed outcome row: not,a,row") in skipped
    assert ("Outcomes-a.txt:7", "malformed outcome row: 132541,21,11,19,30,7") in skipped
    assert ("set-a/132541.txt", "no outcome row: record 132541") in skipped
    assert ("Outcomes-a.txt", "outcome without record: 999999") in skipped
    assert stay(tables, "132541")["died"] is None
    assert tables.stays.height == 3


def test_an_unreadable_record_and_a_repeated_record_id_within_a_set_are_skipped(tmp_path):
    root = set_a(tmp_path / "in")
    (root / "set-a" / "bad.txt").write_text("Time;Parameter;Value\n00:00;RecordID;1\n")
    (root / "set-a" / "zcopy.txt").write_text(RECORDS[132539])
    tables = run(root, tmp_path / "out")
    skipped = {s["where"]: s["reason"] for s in tables.manifest["skipped"]["examples"]}
    assert skipped["set-a/bad.txt"].startswith("unreadable record: header is")
    assert skipped["set-a/zcopy.txt"] == "duplicate record: 132539 is also in 132539.txt"
    assert tables.stays.height == 3 and tables.manifest["n_events"] == 9


def test_a_record_id_repeated_in_a_second_set_keeps_the_first_and_is_reported(tmp_path):
    root = set_a(tmp_path / "in")
    write_physionet_set(root, "b", {
        132539: physionet_record(132539, lines=("00:07,HR,111",)),
        140000: physionet_record(140000, lines=("00:07,HR,60",))},
        ["132539,6,1,5,-1,0", "140000,2,2,2,-1,0"])
    tables = run(root, tmp_path / "out")
    skipped = [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]]
    assert skipped == [("physionet2012 set-b stay 132539", "duplicate stay: already defined in set-a")]
    assert tables.stays.height == 4 and tables.stays["stay_id"].n_unique() == 4
    assert stay(tables, "132539")["set"] == "set-a"
    assert stay(tables, "140000")["set"] == "set-b"
    assert 111.0 not in tables.events["numeric_value"].to_list()
    assert tables.manifest["n_events"] == 10


def test_a_set_folder_itself_can_be_converted_with_its_outcomes_beside_it(tmp_path):
    root = set_a(tmp_path / "in")
    tables = run(root / "set-a", tmp_path / "out")
    assert tables.stays.height == 3 and tables.stays["died"].null_count() == 0


def test_a_nan_descriptor_is_not_fatal(tmp_path):
    records = {**RECORDS, 132542: physionet_record(132542).replace("00:00,Gender,0", "00:00,Gender,nan")}
    tables = run(set_a(tmp_path / "in", records, [*OUTCOMES, "132542,1,1,1,-1,0"]), tmp_path / "out")
    assert tables.stays.height == 4


@pytest.mark.parametrize(("descriptor", "raw"), [
    ("Gender,0", "nan"), ("ICUType,4", "nan"), ("ICUType,4", "inf"), ("Age,54", "-inf"),
    ("RecordID,132542", "nan")])
def test_a_non_finite_descriptor_is_a_skip_naming_its_line_and_left_unknown(tmp_path, descriptor, raw):
    name = descriptor.split(",")[0]
    record = physionet_record(132542).replace(f"00:00,{descriptor}", f"00:00,{name},{raw}")
    records = {**RECORDS, 132542: record}
    tables = run(set_a(tmp_path / "in", records, [*OUTCOMES, "132542,1,1,1,-1,0"]), tmp_path / "out")
    line = 2 + ("RecordID", "Age", "Gender", "Height", "ICUType").index(name)
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        (f"set-a/132542.txt:{line}", f"malformed line: time '00:00' or value '{raw}'")]
    row = stay(tables, "132542")   # the file name gives the id when RecordID is unusable
    column = {"Gender": "sex", "ICUType": "icu_type", "Age": "age", "RecordID": "stay_id"}[name]
    assert row[column] == ("132542" if name == "RecordID" else None)
    assert tables.stays.height == 4 and row["died"] == 0


@pytest.mark.parametrize("row", ["nan,1,1,1,-1,0", "inf,1,1,1,-1,0", "132541.5,1,1,1,-1,0",
                                 "132541,1,1,inf,-1,0", "132541,1,1,1,1e300,0"])
def test_a_non_finite_outcome_row_is_a_skip_naming_its_line(tmp_path, row):
    outcomes = [*OUTCOMES[:2], row, OUTCOMES[2]]
    tables = run(set_a(tmp_path / "in", outcomes=outcomes), tmp_path / "out")
    assert [(s["where"], s["reason"]) for s in tables.manifest["skipped"]["examples"]] == [
        ("Outcomes-a.txt:4", f"malformed outcome row: {row}")]
    assert tables.stays.height == 3 and stay(tables, "132541")["died"] == 1


STAMP = re.compile(r"\d+:\d+")  # any digits; minutes must be below 60


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="0123456789:x -", min_size=0, max_size=7),
       st.sampled_from(["73", "7e1", "abc", "", "-1"]))
def test_every_line_is_either_an_event_or_a_counted_skip(tmp_path_factory, stamp, value):
    path = tmp_path_factory.mktemp("rec") / "1.txt"
    path.write_text(physionet_record(1, lines=(f"{stamp},HR,{value}",)))
    skips = SkipLog()
    desc, cols = read_record(path, skips)
    assert desc["RecordID"] == 1.0
    clock = stamp.strip()
    valid = (bool(STAMP.fullmatch(clock)) and int(clock.split(":")[1]) < 60
             and value not in ("abc", ""))
    assert len(cols["time"]) == int(valid)
    assert len(skips) == int(not valid)
    if valid:
        h, m = stamp.strip().split(":")
        assert cols["time"][0] == ANCHOR + timedelta(hours=int(h), minutes=int(m))
    else:
        assert skips.items[0].where == f"{path.parent.name}/1.txt:{FIRST_EVENT_LINE}"
        assert skips.items[0].reason.startswith("malformed line")
