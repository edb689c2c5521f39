"""NEWS2 over time per patient: the score of each reading, the change from the previous complete
score and from the lowest complete score of the trailing window, the rising flag; sorted
whatever order the readings came in, duplicates by (patient, time) keeping the last one and
reported; incomplete scores never used as a baseline; bad readings named by row."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError
from iatros.monitoring.news2 import ObservationError
from iatros.monitoring.trend import news2_trend

NORMAL = dict(respiration_rate=16, spo2=98, on_oxygen=False, systolic_bp=120, pulse=70,
              consciousness="A", temperature=37.0)
# observation sets with known totals (none has a single parameter at 3 unless said)
SCORE = {0: {}, 1: {"pulse": 95}, 2: {"pulse": 115}, 3: {"pulse": 115, "temperature": 38.5},
         4: {"pulse": 115, "on_oxygen": True}, 5: {"pulse": 115, "on_oxygen": True, "temperature": 38.5}}


def reading(patient, time, score=0, **changes):
    return {"patient_id": patient, "time": time, **NORMAL, **SCORE[score], **changes}


def _series(trend, patient="p1"):
    rows = trend.scores[trend.scores["patient_id"] == patient]
    return rows.set_index("time")


def test_score_over_time_and_the_changes():
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0), reading("p1", "2024-03-01T12:00", 1),
                         reading("p1", "2024-03-01T16:00", 3), reading("p1", "2024-03-01T20:00", 2)])
    s = trend.scores
    assert s["score"].tolist() == [0, 1, 3, 2]
    assert s["previous_complete_score"].tolist()[1:] == [0, 1, 3]
    assert pd.isna(s["previous_complete_score"].iloc[0]) and pd.isna(s["change_from_previous"].iloc[0])
    assert s["change_from_previous"].tolist()[1:] == [1, 2, -1]
    assert s["window_min"].tolist()[1:] == [0, 0, 0]
    assert s["change_from_window_min"].tolist()[1:] == [1, 3, 2]
    assert s["rising"].tolist() == [False, False, True, True]
    assert s["previous_complete_time"].iloc[2] == pd.Timestamp("2024-03-01T12:00")
    assert s["points_pulse"].tolist() == [0, 1, 2, 2] and s["risk"].tolist() == ["low"] * 4
    assert not trend.reordered and trend.duplicates.empty and trend.notes() == []


@pytest.mark.parametrize(("rise", "flags"), [(1, [False, True, True]), (2, [False, False, True]),
                                             (3, [False, False, False])])
def test_the_rise_that_counts_is_configurable(rise, flags):
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0), reading("p1", "2024-03-01T09:00", 1),
                         reading("p1", "2024-03-01T10:00", 2)], rise=rise)
    assert trend.scores["rising"].tolist() == flags and trend.rise == rise


def test_the_window_includes_a_reading_exactly_one_window_earlier_and_no_earlier():
    trend = news2_trend([reading("p1", "2024-03-01T08:00:00", 0), reading("p1", "2024-03-01T08:00:01", 2),
                         reading("p1", "2024-03-02T08:00:00", 2), reading("p1", "2024-03-02T08:00:02", 2)])
    s = trend.scores
    assert s["window_min"].tolist()[1:] == [0, 0, 2]   # 24 h exactly: in; 24 h 2 s: out
    assert s["rising"].tolist() == [False, True, True, False]


def test_a_shorter_window():
    readings = [reading("p1", "2024-03-01T00:00", 0), reading("p1", "2024-03-01T03:00", 2),
                reading("p1", "2024-03-01T05:00", 2)]   # at 05:00, 00:00 is 5 h back
    assert news2_trend(readings, window="6h").scores["rising"].tolist() == [False, True, True]
    assert news2_trend(readings, window="4h").scores["rising"].tolist() == [False, True, False]
    assert news2_trend(readings, window=pd.Timedelta(hours=4)).window == pd.Timedelta(hours=4)


def test_a_fall_is_not_rising():
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 5), reading("p1", "2024-03-01T10:00", 1)])
    assert trend.scores["change_from_previous"].tolist()[1] == -4
    assert trend.scores["rising"].tolist() == [False, False]


def test_patients_are_followed_separately():
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0), reading("p2", "2024-03-01T09:00", 4),
                         reading("p1", "2024-03-01T10:00", 2), reading("p2", "2024-03-01T11:00", 4)])
    assert _series(trend, "p1")["rising"].tolist() == [False, True]
    assert _series(trend, "p2")["rising"].tolist() == [False, False]
    assert _series(trend, "p2")["previous_complete_score"].tolist()[1] == 4


def test_out_of_order_readings_are_sorted_and_said_so():
    in_order = [reading("p1", f"2024-03-01T{h:02d}:00", s) for h, s in [(8, 0), (9, 1), (10, 3), (11, 2)]]
    shuffled = [in_order[i] for i in (2, 0, 3, 1)]
    trend = news2_trend(shuffled)
    assert trend.reordered and "sorted" in trend.notes()[0]
    assert trend.scores["time"].is_monotonic_increasing
    assert trend.scores["input_row"].tolist() == [1, 3, 0, 2]
    expected = news2_trend(in_order).scores.drop(columns="input_row")
    pd.testing.assert_frame_equal(trend.scores.drop(columns="input_row"), expected)


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(6)))
def test_any_input_order_gives_the_same_trend(order):
    readings = [reading("p1", "2024-03-01T08:00", 0), reading("p2", "2024-03-01T08:30", 2),
                reading("p1", "2024-03-01T09:00", 2), reading("p1", "2024-03-01T10:00", 3, temperature=None),
                reading("p2", "2024-03-01T11:00", 5), reading("p1", "2024-03-02T09:30", 1)]
    reference = news2_trend(readings).scores.drop(columns="input_row").reset_index(drop=True)
    shuffled = news2_trend([readings[i] for i in order]).scores.drop(columns="input_row")
    pd.testing.assert_frame_equal(shuffled.reset_index(drop=True), reference)


def test_duplicates_keep_the_last_reading_and_are_reported():
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0), reading("p1", "2024-03-01T09:00", 1),
                         reading("p2", "2024-03-01T09:00", 0),
                         reading("p1", "2024-03-01T09:00", 3),       # same patient and time: replaces row 1
                         reading("p1", "2024-03-01T08:00", 0)])      # and row 0
    s = trend.scores
    assert len(s) == 3 and _series(trend)["score"].tolist() == [0, 3]
    assert _series(trend)["input_row"].tolist() == [4, 3]
    d = trend.duplicates
    assert d["input_row"].tolist() == [0, 1] and d["kept_row"].tolist() == [4, 3]
    assert d["patient_id"].tolist() == ["p1", "p1"]
    assert "2 reading(s) had the same patient and time" in trend.notes()[-1]


def test_the_same_instant_in_two_time_zones_is_a_duplicate():
    trend = news2_trend([reading("p1", "2024-03-01T08:00Z", 0), reading("p1", "2024-03-01T09:00+01:00", 2)])
    assert len(trend.scores) == 1 and trend.scores["score"].tolist() == [2]
    assert str(trend.scores["time"].dt.tz) == "UTC"


def test_an_incomplete_score_is_never_a_baseline():
    """A reading without a temperature scores a lower bound (here 0): taken as the window's lowest
    it would make the next complete 2 look like a rise of 2 in a patient steady at 2."""
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 2),
                         reading("p1", "2024-03-01T09:00", 0, pulse=None),
                         reading("p1", "2024-03-01T10:00", 2)])
    s = trend.scores
    assert s["complete"].tolist() == [True, False, True] and s["missing"].tolist()[1] == "pulse"
    assert s["previous_complete_score"].tolist()[1:] == [2, 2]
    assert s["window_min"].tolist()[1:] == [2, 2]
    assert s["rising"].tolist() == [False, False, False]


def test_an_incomplete_reading_that_already_rose_is_rising():
    """Its score is a lower bound, so a rise it shows is at least that large."""
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0),
                         reading("p1", "2024-03-01T09:00", 4, temperature=None)])
    last = trend.scores.iloc[-1]
    assert not last["complete"] and last["score"] == 4 and last["max_score"] == 7
    assert last["change_from_window_min"] == 4 and last["rising"]


def test_no_complete_reading_in_the_window_means_no_rise():
    trend = news2_trend([reading("p1", "2024-03-01T08:00", 0), reading("p1", "2024-03-03T08:00", 5)])
    assert pd.isna(trend.scores["window_min"].iloc[1]) and not trend.scores["rising"].iloc[1]
    assert trend.scores["change_from_previous"].iloc[1] == 5   # the previous complete score, 2 days old


def test_columns_a_frame_and_units():
    frame = pd.DataFrame([reading("p1", "2024-03-01T08:00", 0), reading("p1", "2024-03-01T09:00", 0)])
    frame["temperature"] = [98.6, 101.0]     # F: 37.0 C, 38.3 C
    frame["device"] = "monitor-7"            # other columns are carried over
    trend = news2_trend(frame, temperature_unit="F")
    assert trend.scores["points_temperature"].tolist() == [0, 1]
    assert trend.scores["device"].tolist() == ["monitor-7"] * 2
    frame["temperature_unit"] = ["F", "C"]
    frame["temperature"] = [98.6, 38.3]
    assert news2_trend(frame).scores["points_temperature"].tolist() == [0, 1]


def test_scale_2_per_reading():
    frame = pd.DataFrame([reading("p1", "2024-03-01T08:00", 0, spo2=89, spo2_scale=2),
                          reading("p1", "2024-03-01T09:00", 0, spo2=89)])
    assert news2_trend(frame).scores["points_spo2"].tolist() == [0, 3]


def test_other_column_names():
    trend = news2_trend([{"bed": "b1", "at": "2024-03-01T08:00", **NORMAL}], patient="bed", time="at")
    assert trend.scores[["bed", "score"]].values.tolist() == [["b1", 0]]


def test_no_readings():
    trend = news2_trend([])
    assert trend.scores.empty and trend.duplicates.empty and "rising" in trend.scores.columns


def test_a_bad_reading_is_named_by_row_patient_and_time():
    with pytest.raises(ObservationError, match=r"row 1 \(patient p1, time 2024-03-01 09:00:00\): "
                                               r"spo2: 105 cannot be scored; expected 0-100 %"):
        news2_trend([reading("p1", "2024-03-01T08:00"), reading("p1", "2024-03-01T09:00", spo2=105)])


@pytest.mark.parametrize(("rows", "match"), [
    ([{"time": "2024-03-01T08:00", **NORMAL}], "patient_id: None .*a 'patient_id' column"),
    ([{"patient_id": "p1", **NORMAL}], "time: None .*a 'time' column"),
    ([{"patient_id": "p1", "time": "2024-03-01T08:00", "heart_rate": 80}], "at least one of the observation"),
    ([reading("p1", "2024-03-01T08:00"), reading(None, "2024-03-01T09:00")], r"row 1: patient_id"),
    ([reading("p1", "2024-03-01T08:00"), reading("p1", "yesterday at 9")], r"row 1 \(patient p1\): time"),
    ([reading("p1", "2024-03-01T08:00"), reading("p1", "2024-03-01T09:00Z")],
     r"row 1 \(patient p1\): time: .*all with a UTC offset or all without"),
    ([reading("p1", 1709280000)], r"row 0 \(patient p1\): time: 1709280000"),
])
def test_unusable_readings_are_errors(rows, match):
    with pytest.raises(ObservationError, match=match):
        news2_trend(rows)


@pytest.mark.parametrize(("window", "rise", "match"), [
    ("soon", 2, "window: 'soon' is not a duration"), ("-1h", 2, "positive duration"),
    ("0h", 2, "positive duration"), ("24h", 0, "rise: 0"), ("24h", 1.5, "rise: 1.5"),
    ("24h", True, "rise: True"),
])
def test_bad_settings(window, rise, match):
    with pytest.raises(ConfigError, match=match):
        news2_trend([reading("p1", "2024-03-01T08:00")], window=window, rise=rise)
