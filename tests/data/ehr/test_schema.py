"""The event format itself: table layouts, skips, plausibility, units and readmission labels."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.ehr.schema import (
    EVENT_SCHEMA,
    PLAUSIBLE,
    STAY_SCHEMA,
    SkipLog,
    add_readmission,
    conform_events,
    drop_implausible,
    drop_unit_mismatches,
    events_frame,
    stays_frame,
)

T0 = datetime(2000, 1, 1)
EVENT_COLUMNS = ["subject_id", "stay_id", "time", "code", "numeric_value", "text_value", "unit"]
STAY_COLUMNS = ["subject_id", "stay_id", "site_id", "start_time", "end_time", "age", "sex",
                "ethnicity", "died", "death_time", "los_days"]


def events(rows: list[tuple]) -> pl.DataFrame:
    """(stay, minute, code, value, unit) rows as an events table."""
    return events_frame({
        "subject_id": [r[0] for r in rows], "stay_id": [r[0] for r in rows],
        "time": [T0 + timedelta(minutes=r[1]) for r in rows], "code": [r[2] for r in rows],
        "numeric_value": [r[3] for r in rows], "text_value": [None] * len(rows),
        "unit": [r[4] for r in rows]})


def test_events_frame_has_the_documented_columns_and_types():
    empty = events_frame()
    assert empty.columns == EVENT_COLUMNS
    assert empty.schema == EVENT_SCHEMA
    assert empty.height == 0
    assert dict(empty.schema) == {
        "subject_id": pl.Utf8, "stay_id": pl.Utf8, "time": pl.Datetime("us"), "code": pl.Utf8,
        "numeric_value": pl.Float64, "text_value": pl.Utf8, "unit": pl.Utf8}
    filled = events([("s1", 7, "X//HR", 73.0, "bpm")])
    assert filled.schema == EVENT_SCHEMA
    assert filled.row(0, named=True)["time"] == datetime(2000, 1, 1, 0, 7)


def test_stays_frame_puts_the_standard_columns_first_then_the_source_extras():
    frame = stays_frame([{"subject_id": "1", "stay_id": "10", "died": 1, "age": 70.5,
                          "icu_type": "Medical ICU", "ignored": "x"}], {"icu_type": pl.Utf8})
    assert frame.columns == [*STAY_COLUMNS, "icu_type"]
    assert {k: frame.schema[k] for k in STAY_SCHEMA} == STAY_SCHEMA
    assert frame.schema["died"] == pl.Int8
    row = frame.row(0, named=True)
    assert row["icu_type"] == "Medical ICU" and row["died"] == 1 and row["end_time"] is None


def test_conform_events_casts_and_adds_missing_optional_columns_as_null():
    raw = pl.DataFrame({"subject_id": [1], "stay_id": [2], "time": [T0], "code": ["C//1"],
                        "numeric_value": [3]})
    out = conform_events(raw)
    assert out.schema == EVENT_SCHEMA
    assert out.row(0) == ("1", "2", T0, "C//1", 3.0, None, None)


def test_drop_implausible_skips_impossible_values_and_names_stay_time_and_reason():
    frame = events([
        ("s1", 0, "HR", -5.0, "bpm"),      # negative heart rate: impossible
        ("s1", 1, "HR", 0.0, "bpm"),       # asystole: abnormal, not impossible
        ("s1", 2, "HR", 350.0, "bpm"),     # upper bound kept
        ("s2", 3, "HR", 351.0, "bpm"),
        ("s2", 4, "TEMP", 0.0, "degC"),    # temperature 0 C: impossible
        ("s2", 5, "TEMP", 35.1, "degC"),
        ("s2", 6, "TEMP", None, "degC"),   # no value: nothing to judge
        ("s2", 7, "OTHER", -1e9, None),    # code without a range: untouched
    ])
    skips = SkipLog()
    kept = drop_implausible(frame, {"HR": "heart_rate", "TEMP": "temperature_c"}, skips, "set-a")
    assert kept.columns == EVENT_COLUMNS
    assert kept.select("code", "numeric_value").rows() == [
        ("HR", 0.0), ("HR", 350.0), ("TEMP", 35.1), ("TEMP", None), ("OTHER", -1e9)]
    assert [(s.where, s.reason) for s in skips.items] == [
        ("set-a stay s1 2000-01-01 00:00:00", "impossible value: HR = -5.0"),
        ("set-a stay s2 2000-01-01 00:03:00", "impossible value: HR = 351.0"),
        ("set-a stay s2 2000-01-01 00:04:00", "impossible value: TEMP = 0.0"),
    ]
    assert skips.by_reason() == {"impossible value": 3}
    assert skips.summary() == "3 skipped (impossible value: 3)"
    assert skips.as_dict()["examples"][0] == {"where": "set-a stay s1 2000-01-01 00:00:00",
                                              "reason": "impossible value: HR = -5.0"}


def test_drop_implausible_without_ranges_or_rows_changes_nothing():
    skips = SkipLog()
    frame = events([("s1", 0, "HR", -5.0, "bpm")])
    assert drop_implausible(frame, {}, skips, "x").equals(frame)
    assert drop_implausible(events_frame(), {"HR": "heart_rate"}, skips, "x").height == 0
    assert len(skips) == 0 and skips.summary() == "0 skipped"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), max_size=30),
       st.sampled_from(sorted(k for k in PLAUSIBLE if k != "nonnegative")))
def test_drop_implausible_keeps_exactly_the_values_inside_the_physical_range(values, kind):
    lo, hi = PLAUSIBLE[kind]
    frame = events([("s", i, "V", v, "u") for i, v in enumerate(values)])
    skips = SkipLog()
    kept = drop_implausible(frame, {"V": kind}, skips, "t")
    assert kept["numeric_value"].to_list() == [v for v in values if lo <= v <= hi]
    assert len(skips) == len(values) - kept.height
    assert all(s.reason.startswith("impossible value: V = ") for s in skips.items)


def test_drop_unit_mismatches_keeps_each_code_in_its_most_common_unit():
    frame = events([
        ("s1", 0, "GLU", 5.5, "mmol/L"),
        ("s1", 1, "GLU", 100.0, "mg/dL"),
        ("s2", 2, "GLU", 110.0, "mg/dL"),
        ("s2", 3, "GLU", None, "mmol/L"),   # no value: not a numeric mismatch
        ("s2", 4, "GLU", 6.0, None),        # no unit: kept
        ("s2", 5, "NA", 140.0, "mEq/L"),
    ])
    skips = SkipLog()
    kept = drop_unit_mismatches(frame, skips, "mimic3")
    assert kept.columns == EVENT_COLUMNS
    assert kept.select("numeric_value", "unit").rows() == [
        (100.0, "mg/dL"), (110.0, "mg/dL"), (None, "mmol/L"), (6.0, None), (140.0, "mEq/L")]
    assert [(s.where, s.reason) for s in skips.items] == [
        ("mimic3 stay s1 2000-01-01 00:00:00",
         "unit mismatch: GLU in mmol/L where the rest are in mg/dL")]


def test_drop_unit_mismatches_breaks_ties_by_unit_name_deterministically():
    frame = events([("s1", 0, "X", 1.0, "b"), ("s1", 1, "X", 2.0, "a")])
    skips = SkipLog()
    assert drop_unit_mismatches(frame, skips, "t")["unit"].to_list() == ["a"]
    assert skips.by_reason() == {"unit mismatch": 1}


def stays(rows: list[tuple]) -> pl.DataFrame:
    """(subject, stay, start day, end day, died) rows as a stays table."""
    return stays_frame([{"subject_id": s, "stay_id": k, "start_time": T0 + timedelta(days=a),
                         "end_time": T0 + timedelta(days=b), "died": d} for s, k, a, b, d in rows])


def test_add_readmission_labels_a_30_day_window_on_a_hand_made_example():
    frame = stays([
        ("A", "a3", 70, 72, 0),     # listed out of order: sorted by start within a patient
        ("A", "a1", 0, 5, 0),       # a2 starts exactly 30 days after discharge: readmitted
        ("A", "a2", 35, 40, 0),     # a3 starts exactly 30 days after discharge: readmitted
        ("B", "b1", 0, 10, 0),      # next starts 31 days after discharge: not readmitted
        ("B", "b2", 41, 50, 0),     # last stay: 0
        ("C", "c1", 0, 3, None),    # unknown outcome, single stay: 0
    ])
    out = add_readmission(frame, days=30)
    labels = dict(zip(out["stay_id"], out["readmit_30d"], strict=True))
    assert labels == {"a1": 1, "a2": 1, "a3": 0, "b1": 0, "b2": 0, "c1": 0}
    assert out.schema["readmit_30d"] == pl.Int8
    assert out["subject_id"].to_list() == ["A", "A", "A", "B", "B", "C"]
    # a stay's own patient only: another patient's stay never counts
    assert add_readmission(stays([("X", "x", 0, 1, 0), ("Y", "y", 2, 3, 0)]), 30)[
        "readmit_30d"].to_list() == [0, 0]


def test_add_readmission_just_past_the_window_is_not_a_readmission():
    frame = stays_frame([
        {"subject_id": "A", "stay_id": "1", "start_time": T0, "end_time": T0 + timedelta(days=1),
         "died": 0},
        {"subject_id": "A", "stay_id": "2", "start_time": T0 + timedelta(days=31, seconds=1),
         "end_time": T0 + timedelta(days=32), "died": 0}])
    assert add_readmission(frame, 30)["readmit_30d"].to_list() == [0, 0]


def test_add_readmission_is_null_when_the_patient_died_during_the_stay():
    frame = stays([("A", "a1", 0, 5, 0), ("A", "a2", 10, 12, 1), ("B", "b1", 0, 2, 1)])
    out = add_readmission(frame, days=30)
    assert dict(zip(out["stay_id"], out["readmit_30d"], strict=True)) == {
        "a1": 1, "a2": None, "b1": None}


def test_add_readmission_replaces_an_existing_label_column():
    frame = stays([("A", "a1", 0, 5, 0), ("A", "a2", 10, 12, 0)]).with_columns(
        pl.lit(9, dtype=pl.Int8).alias("readmit_7d"))
    out = add_readmission(frame, days=7)
    assert out.columns.count("readmit_7d") == 1
    assert out["readmit_7d"].to_list() == [1, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("PQR"), st.integers(0, 2000), st.integers(0, 40),
                          st.sampled_from([0, 1, None])), max_size=12, unique_by=lambda t: (t[0], t[1])))
def test_add_readmission_matches_a_brute_force_reference(rows):
    frame = stays([(s, f"{s}{a}", a, a + n, d) for s, a, n, d in rows])
    out = add_readmission(frame, days=30)
    got = dict(zip(out["stay_id"], out["readmit_30d"], strict=True))
    for s, a, n, d in rows:
        later = [b for s2, b, _, _ in rows if s2 == s and b > a]
        expected = None if d == 1 else int(bool(later) and min(later) - (a + n) <= 30)
        assert got[f"{s}{a}"] == expected, (s, a, n, d)
