"""NEWS2 (RCP 2017) for one observation set: every band of Chart 1 (values inside each band drawn
by hypothesis, every boundary in a table), both SpO2 scales with Scale 2's oxygen rule, the
single-parameter-3 (red score) rule, the risk bands of Charts 3 and 4, missing parameters as a
lower bound, and out-of-range values as errors naming the field and the range.

The chart below is transcribed here on its own (from RCP NEWS2 Chart 1, cross-checked with the
Thorax 2019 Table 1 for the SpO2 scales and github.com/kscarlett/news2), not read from the
module's tables, so a wrong band in the module fails these tests."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import CorruptDataError
from iatros.monitoring.news2 import (
    BANDS,
    LIMITS,
    PARAMETERS,
    SPO2_BANDS,
    ObservationError,
    Observations,
    news2,
)

# Chart 1 as printed: (band, points). Scale 2's 0 band is split by air / oxygen.
CHART = {
    "respiration_rate": [("<=8", 3), ("9-11", 1), ("12-20", 0), ("21-24", 2), (">=25", 3)],
    "spo2_scale1": [("<=91", 3), ("92-93", 2), ("94-95", 1), (">=96", 0)],
    "spo2_scale2_air": [("<=83", 3), ("84-85", 2), ("86-87", 1), ("88-92", 0), (">=93", 0)],
    "spo2_scale2_oxygen": [("<=83", 3), ("84-85", 2), ("86-87", 1), ("88-92", 0), ("93-94", 1),
                           ("95-96", 2), (">=97", 3)],
    "systolic_bp": [("<=90", 3), ("91-100", 2), ("101-110", 1), ("111-219", 0), (">=220", 3)],
    "pulse": [("<=40", 3), ("41-50", 1), ("51-90", 0), ("91-110", 1), ("111-130", 2), (">=131", 3)],
    "temperature": [("<=35.0", 3), ("35.1-36.0", 1), ("36.1-38.0", 0), ("38.1-39.0", 1), (">=39.1", 2)],
}
# which field and which extra observations each chart row is read with
ROWS = {"spo2_scale1": ("spo2", {"spo2_scale": 1}), "spo2_scale2_air": ("spo2", {"spo2_scale": 2,
                                                                                 "on_oxygen": False}),
        "spo2_scale2_oxygen": ("spo2", {"spo2_scale": 2, "on_oxygen": True})}
# a full set scoring 0 on everything
NORMAL = dict(respiration_rate=16, spo2=98, on_oxygen=False, systolic_bp=120, pulse=70,
              consciousness="A", temperature=37.0)


def _range(chart_band: str, field: str) -> tuple[float, float]:
    """'<=8' / '9-11' / '>=25' -> the closed range at the chart's resolution, within the limits."""
    low, high = LIMITS[field].low, LIMITS[field].high
    if m := re.fullmatch(r"<=([\d.]+)", chart_band):
        return low, float(m[1])
    if m := re.fullmatch(r">=([\d.]+)", chart_band):
        return float(m[1]), high
    a, b = chart_band.split("-")
    return float(a), float(b)


def _cases():
    for row, bands in CHART.items():
        field, extra = ROWS.get(row, (row, {}))
        for chart_band, points in bands:
            yield pytest.param(field, extra, chart_band, points, id=f"{row}[{chart_band}]={points}")


def _subscore(field: str, value: float, **extra) -> int | None:
    result = news2({**NORMAL, **extra, field: value})
    parameter = field if field != "on_oxygen" else "air_or_oxygen"
    return result.subscores[parameter]


@pytest.mark.parametrize(("field", "extra", "chart_band", "points"), list(_cases()))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_value_inside_a_chart_band_scores_that_bands_points(field, extra, chart_band, points, data):
    low, high = _range(chart_band, field)
    if field == "temperature":   # tenths of a degree, the chart's resolution
        value = data.draw(st.integers(round(low * 10), round(high * 10))) / 10
    else:
        value = float(data.draw(st.integers(int(low), int(high))))
    assert _subscore(field, value, **extra) == points


@pytest.mark.parametrize(("field", "extra", "chart_band", "points"), list(_cases()))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_values_between_chart_steps_are_read_at_the_charts_resolution(field, extra, chart_band, points,
                                                                      data):
    """A value is recorded as the chart would: whole numbers (0.1 C), halves rounded up, so
    [low - 0.5, high + 0.5) of a whole-number band belongs to it."""
    low, high = _range(chart_band, field)
    half = 0.05 if field == "temperature" else 0.5
    limit = LIMITS[field]
    lo, hi = max(low - half, limit.low), min(high + half, limit.high)
    value = data.draw(st.floats(lo, hi, exclude_max=hi < limit.high, allow_nan=False))
    # keep clear of the exact half-way point, where binary floats cannot say which side they are
    step = 0.1 if field == "temperature" else 1.0
    frac = (value / step) % 1
    if abs(frac - 0.5) < 1e-6:
        return
    assert _subscore(field, value, **extra) == points


# every boundary of Chart 1: the last value of one band and the first of the next
BOUNDARIES = [
    ("respiration_rate", {}, 0, 3), ("respiration_rate", {}, 8, 3), ("respiration_rate", {}, 9, 1),
    ("respiration_rate", {}, 11, 1), ("respiration_rate", {}, 12, 0), ("respiration_rate", {}, 20, 0),
    ("respiration_rate", {}, 21, 2), ("respiration_rate", {}, 24, 2), ("respiration_rate", {}, 25, 3),
    ("respiration_rate", {}, 100, 3),
    ("spo2", {}, 0, 3), ("spo2", {}, 91, 3), ("spo2", {}, 92, 2), ("spo2", {}, 93, 2), ("spo2", {}, 94, 1),
    ("spo2", {}, 95, 1), ("spo2", {}, 96, 0), ("spo2", {}, 100, 0),
    *[("spo2", {"spo2_scale": 2, "on_oxygen": o2}, v, p) for o2 in (False, True)
      for v, p in [(0, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)]],
    ("spo2", {"spo2_scale": 2, "on_oxygen": False}, 93, 0),
    ("spo2", {"spo2_scale": 2, "on_oxygen": False}, 100, 0),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 93, 1),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 94, 1),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 95, 2),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 96, 2),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 97, 3),
    ("spo2", {"spo2_scale": 2, "on_oxygen": True}, 100, 3),
    ("on_oxygen", {}, False, 0), ("on_oxygen", {}, True, 2),
    ("systolic_bp", {}, 0, 3), ("systolic_bp", {}, 90, 3), ("systolic_bp", {}, 91, 2),
    ("systolic_bp", {}, 100, 2), ("systolic_bp", {}, 101, 1), ("systolic_bp", {}, 110, 1),
    ("systolic_bp", {}, 111, 0), ("systolic_bp", {}, 219, 0), ("systolic_bp", {}, 220, 3),
    ("systolic_bp", {}, 350, 3),
    ("pulse", {}, 0, 3), ("pulse", {}, 40, 3), ("pulse", {}, 41, 1), ("pulse", {}, 50, 1),
    ("pulse", {}, 51, 0), ("pulse", {}, 90, 0), ("pulse", {}, 91, 1), ("pulse", {}, 110, 1),
    ("pulse", {}, 111, 2), ("pulse", {}, 130, 2), ("pulse", {}, 131, 3), ("pulse", {}, 350, 3),
    ("consciousness", {}, "A", 0), ("consciousness", {}, "C", 3), ("consciousness", {}, "V", 3),
    ("consciousness", {}, "P", 3), ("consciousness", {}, "U", 3),
    ("temperature", {}, 25.0, 3), ("temperature", {}, 35.0, 3), ("temperature", {}, 35.1, 1),
    ("temperature", {}, 36.0, 1), ("temperature", {}, 36.1, 0), ("temperature", {}, 38.0, 0),
    ("temperature", {}, 38.1, 1), ("temperature", {}, 39.0, 1), ("temperature", {}, 39.1, 2),
    ("temperature", {}, 45.0, 2),
]


@pytest.mark.parametrize(("field", "extra", "value", "points"), BOUNDARIES,
                         ids=[f"{f}{'-' + str(e) if e else ''}={v}" for f, e, v, _ in BOUNDARIES])
def test_each_band_boundary_of_chart_1(field, extra, value, points):
    assert _subscore(field, value, **extra) == points


@pytest.mark.parametrize(("field", "value", "points"), [
    ("respiration_rate", 20.4, 0), ("respiration_rate", 20.5, 2), ("respiration_rate", 8.49, 3),
    ("respiration_rate", 8.5, 1), ("spo2", 95.5, 0), ("spo2", 91.4, 3), ("systolic_bp", 219.5, 3),
    ("pulse", 90.5, 1), ("temperature", 38.04, 0), ("temperature", 38.05, 1),
    ("temperature", 35.049, 3), ("temperature", 35.05, 1), ("temperature", 36.95, 0),
])
def test_values_are_rounded_half_up_to_the_charts_resolution(field, value, points):
    assert _subscore(field, value) == points


def test_the_band_tables_are_contiguous_and_ordered():
    tables = [*BANDS.values(), *SPO2_BANDS.values()]
    for bands in tables:
        uppers = [b.upper for b in bands]
        assert uppers == sorted(uppers) and len(set(uppers)) == len(uppers)
        assert math.isinf(uppers[-1])


# ---- SpO2: Scale 1, Scale 2 and oxygen

@settings(max_examples=60, deadline=None)
@given(spo2=st.integers(0, 100))
def test_on_scale_1_oxygen_changes_only_the_air_or_oxygen_points(spo2):
    on_air = news2({**NORMAL, "spo2": spo2, "on_oxygen": False})
    on_o2 = news2({**NORMAL, "spo2": spo2, "on_oxygen": True})
    assert on_air.subscores["spo2"] == on_o2.subscores["spo2"]
    assert on_o2.subscores["air_or_oxygen"] == 2 and on_air.subscores["air_or_oxygen"] == 0
    assert on_o2.score == on_air.score + 2


def test_scale_2_thorax_table_1():
    """Echevarria et al., Thorax 2019;74:941-6, Table 1: Scale 2 scores 88-92% and 93% or more on
    air 0; on oxygen 93-94 1, 95-96 2, 97 or more 3; 83 or less 3 (Scale 1: 91 or less 3, 96 or
    more 0). A hypercapnic patient at 89% on air is 0 on Scale 2 but 3 on Scale 1."""
    def sub(spo2, scale, oxygen):
        return news2({**NORMAL, "spo2": spo2, "spo2_scale": scale, "on_oxygen": oxygen}).subscores["spo2"]

    assert [sub(v, 2, False) for v in (83, 88, 92, 93, 97, 100)] == [3, 0, 0, 0, 0, 0]
    assert [sub(v, 2, True) for v in (83, 88, 92, 93, 94, 95, 96, 97, 100)] == [3, 0, 0, 1, 1, 2, 2, 3, 3]
    assert [sub(v, 1, False) for v in (91, 96)] == [3, 0]
    assert sub(89, 2, False) == 0 and sub(89, 1, False) == 3


def test_scale_2_at_93_or_more_without_air_or_oxygen_is_not_scored():
    result = news2({**NORMAL, "spo2": 95, "spo2_scale": 2, "on_oxygen": None})
    assert result.subscores["spo2"] is None and result.subscores["air_or_oxygen"] is None
    assert result.missing == ("spo2", "air_or_oxygen") and not result.complete
    assert "0 on air and 2 on oxygen" in result.reasons["spo2"]
    assert result.score == 0 and result.max_score == 2 + 2


@pytest.mark.parametrize(("spo2", "points"), [(83, 3), (85, 2), (87, 1), (90, 0), (92, 0)])
def test_scale_2_below_93_is_scored_without_air_or_oxygen(spo2, points):
    """Below 93% both Scale 2 columns agree, so the SpO2 points do not wait for air or oxygen."""
    result = news2({**NORMAL, "spo2": spo2, "spo2_scale": 2, "on_oxygen": None})
    assert result.subscores["spo2"] == points and result.missing == ("air_or_oxygen",)


def test_scale_2_high_saturation_on_oxygen_is_a_red_score():
    result = news2({**NORMAL, "spo2": 98, "spo2_scale": 2, "on_oxygen": True})
    assert result.subscores["spo2"] == 3 and result.subscores["air_or_oxygen"] == 2
    assert result.score == 5 and result.red_score and result.red_parameters == ("spo2",)
    assert result.risk == "medium"


@pytest.mark.parametrize("scale", [0, 3, "2", True, None])
def test_only_scale_1_or_2_exists(scale):
    with pytest.raises(ObservationError, match="spo2_scale.*88-92%"):
        news2({**NORMAL, "spo2_scale": scale})


@pytest.mark.parametrize(("value", "oxygen"), [(True, True), (False, False), (1, True), (0.0, False),
                                               ("oxygen", True), ("Room air", False),
                                               (np.bool_(True), True)])
def test_air_or_oxygen_spellings(value, oxygen):
    assert news2({**NORMAL, "on_oxygen": value}).subscores["air_or_oxygen"] == (2 if oxygen else 0)


# ---- consciousness

@pytest.mark.parametrize(("value", "points"), [("alert", 0), ("a", 0), ("New confusion", 3),
                                               ("confusion", 3), ("c", 3), ("voice", 3), ("Pain", 3),
                                               ("unresponsive", 3)])
def test_acvpu_words_and_letters(value, points):
    assert news2({**NORMAL, "consciousness": value}).subscores["consciousness"] == points


# ---- the single-parameter-3 rule and the risk bands (Charts 3 and 4)

RED = {"respiration_rate": 25, "spo2": 91, "systolic_bp": 90, "pulse": 131, "consciousness": "V",
       "temperature": 35.0}


@pytest.mark.parametrize("field", list(RED))
def test_a_single_parameter_scoring_3_is_low_medium_risk(field):
    result = news2({**NORMAL, field: RED[field]})
    assert result.score == 3 and result.red_score and result.red_parameters == (field,)
    assert (result.risk, result.response, result.monitoring) == (
        "low-medium", "Urgent ward-based response", "minimum 1 hourly")
    assert "3 in a single parameter" in result.summary()


def test_oxygen_scores_2_and_is_never_a_red_score():
    result = news2({**NORMAL, "on_oxygen": True})
    assert result.score == 2 and not result.red_score and result.risk == "low"


# totals built from parameters that score 1 or 2 (no red score), then with a red score
ONES = {"respiration_rate": 10, "spo2": 94, "systolic_bp": 105, "pulse": 45, "temperature": 38.5}


def _total(points: int, red: bool = False) -> dict:
    obs = dict(NORMAL)
    if red:
        obs["respiration_rate"], points = 25, points - 3
    if points >= 2:
        obs["on_oxygen"], points = True, points - 2
    for field in list(ONES)[int(red):][:points]:
        obs[field] = ONES[field]
    return obs


@pytest.mark.parametrize(("total", "red", "risk", "response", "monitoring"), [
    (0, False, "low", "Ward-based response", "minimum 12 hourly"),
    (1, False, "low", "Ward-based response", "minimum 4-6 hourly"),
    (4, False, "low", "Ward-based response", "minimum 4-6 hourly"),
    (5, False, "medium", "Key threshold for urgent response", "minimum 1 hourly"),
    (6, False, "medium", "Key threshold for urgent response", "minimum 1 hourly"),
    (7, False, "high", "Urgent or emergency response", "continuous monitoring of vital signs"),
    (3, True, "low-medium", "Urgent ward-based response", "minimum 1 hourly"),
    (4, True, "low-medium", "Urgent ward-based response", "minimum 1 hourly"),
    (5, True, "medium", "Key threshold for urgent response", "minimum 1 hourly"),
    (6, True, "medium", "Key threshold for urgent response", "minimum 1 hourly"),
    (7, True, "high", "Urgent or emergency response", "continuous monitoring of vital signs"),
])
def test_risk_bands_at_the_thresholds(total, red, risk, response, monitoring):
    result = news2(_total(total, red))
    assert result.score == total and result.red_score is red and result.complete
    assert (result.risk, result.response, result.monitoring) == (risk, response, monitoring)


@settings(max_examples=80, deadline=None)
@given(rr=st.integers(0, 100), spo2=st.integers(0, 100), o2=st.booleans(), sbp=st.integers(0, 350),
       pulse=st.integers(0, 350), acvpu=st.sampled_from("ACVPU"), temp=st.integers(250, 450),
       scale=st.sampled_from([1, 2]))
def test_score_is_the_sum_of_the_subscores_and_the_band_follows_charts_3_and_4(
        rr, spo2, o2, sbp, pulse, acvpu, temp, scale):
    result = news2(Observations(rr, spo2, o2, sbp, pulse, acvpu, temp / 10, spo2_scale=scale))
    assert result.complete and result.score == sum(result.subscores.values()) == result.max_score
    assert 0 <= result.score <= 20
    assert result.red_score == (3 in result.subscores.values())
    expected = ("high" if result.score >= 7 else "medium" if result.score >= 5
                else "low-medium" if result.red_score else "low")
    assert result.risk == expected


# ---- missing parameters: never normal, a lower bound, and said so

def test_nothing_recorded_is_not_a_score_of_zero_but_a_lower_bound():
    result = news2({})
    assert result.score == 0 and not result.complete and result.is_lower_bound
    assert result.missing == PARAMETERS and all(v is None for v in result.subscores.values())
    assert set(result.reasons.values()) == {"not recorded"}
    assert result.max_score == 20
    assert "at least 0" in result.summary() and "lower bound" in result.summary()


@pytest.mark.parametrize("absent", [None, float("nan"), np.nan, pd.NA, pd.NaT])
@pytest.mark.parametrize("field", ["respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse",
                                   "consciousness", "temperature"])
def test_a_missing_parameter_is_listed_and_not_scored_as_normal(field, absent):
    result = news2({**NORMAL, "pulse": 115, field: absent})   # pulse 115: 2 points
    parameter = "air_or_oxygen" if field == "on_oxygen" else field
    assert result.subscores[parameter] is None and result.missing == (parameter,)
    assert not result.complete and result.reasons == {parameter: "not recorded"}
    assert result.score == (0 if field == "pulse" else 2)
    assert result.max_score == result.score + (2 if field == "on_oxygen" else 3)
    assert "incomplete" in result.summary() and "at least" in result.summary()


def test_an_incomplete_score_already_high_stays_high():
    result = news2({"respiration_rate": 25, "systolic_bp": 85, "pulse": 120})
    assert result.score == 8 and result.risk == "high" and not result.complete
    assert "NEWS2 at least 8" in result.summary() and "at least high" not in result.summary()


def test_result_is_json_ready():
    data = json.loads(json.dumps(news2({**NORMAL, "temperature": None}).to_dict()))
    assert data["is_lower_bound"] is True and data["missing"] == ["temperature"]
    assert data["subscores"]["temperature"] is None and data["values"]["pulse"] == 70


# ---- out of physiological limits, wrong types, wrong units: errors naming field and range

@pytest.mark.parametrize(("field", "value", "expected"), [
    ("spo2", 101, "0-100 %"), ("spo2", -1, "0-100 %"), ("spo2", 100.6, "0-100 %"),
    ("respiration_rate", -1, "0-100 breaths/min"), ("respiration_rate", 101, "0-100 breaths/min"),
    ("systolic_bp", -5, "0-350 mmHg"), ("systolic_bp", 400, "0-350 mmHg"),
    ("pulse", -1, "0-350 beats/min"), ("pulse", 351, "0-350 beats/min"),
    ("temperature", 24.9, "25-45 C"), ("temperature", 45.1, "25-45 C"),
    ("temperature", float("inf"), "25-45 C"), ("pulse", float("-inf"), "0-350 beats/min"),
])
def test_out_of_range_values_are_errors_naming_field_and_range(field, value, expected):
    with pytest.raises(ObservationError) as caught:
        news2({**NORMAL, field: value})
    assert caught.value.field == field and expected in caught.value.expected
    assert str(caught.value).startswith(f"{field}: ") and expected in str(caught.value)
    assert isinstance(caught.value, CorruptDataError)


def test_a_fahrenheit_reading_given_as_celsius_says_how_to_flag_it():
    with pytest.raises(ObservationError, match=r"temperature: 98.6 .*25-45 C.*temperature_unit='F'"):
        news2({**NORMAL, "temperature": 98.6})


@pytest.mark.parametrize(("fahrenheit", "points"), [
    (95.0, 3), (95.2, 1), (96.8, 1), (97.0, 0), (100.4, 0), (100.6, 1), (102.2, 1), (102.4, 2),
])
def test_fahrenheit_only_when_flagged(fahrenheit, points):
    """95 F = 35.0 C, 96.8 F = 36.0 C, 100.4 F = 38.0 C, 102.2 F = 39.0 C: the boundaries hold
    after conversion (no float noise pushes 100.4 F over 38.0 C)."""
    result = news2({**NORMAL, "temperature": fahrenheit, "temperature_unit": "F"})
    assert result.subscores["temperature"] == points


@pytest.mark.parametrize(("temperature", "unit", "match"), [
    (120.0, "F", r"77-113 F \(25-45 C\)"), (60.0, "F", "77-113 F"), (37.0, "K", "'C' or 'F'"),
])
def test_fahrenheit_and_unit_errors(temperature, unit, match):
    with pytest.raises(ObservationError, match=match):
        news2({**NORMAL, "temperature": temperature, "temperature_unit": unit})


@pytest.mark.parametrize(("field", "value", "match"), [
    ("pulse", "80", "a number in beats/min"), ("respiration_rate", True, "a number"),
    ("consciousness", "drowsy", "ACVPU"), ("consciousness", 3, "ACVPU"),
    ("on_oxygen", "nasal", "True .supplemental oxygen. or False .air."),
    ("on_oxygen", 2, "True"),
])
def test_wrong_types_and_codes_are_errors_naming_the_field(field, value, match):
    with pytest.raises(ObservationError, match=f"{field}: .*{match}"):
        news2({**NORMAL, field: value})


def test_an_unknown_observation_name_is_an_error():
    with pytest.raises(ObservationError, match="sp02: .*one of the observation names"):
        news2({**NORMAL, "sp02": 95})


# ---- worked examples

def test_worked_examples_of_an_independent_implementation():
    """github.com/kscarlett/news2 (Go, MIT) documents these sets and totals in example_test.go and
    news2_test.go; RCP's charts give the bands but no numeric worked example."""
    first = news2(dict(respiration_rate=22, spo2=93, systolic_bp=98, pulse=112, temperature=38.4,
                       consciousness="A", on_oxygen=False))
    assert (first.score, first.risk, first.red_score) == (9, "high", False)
    second = news2(dict(respiration_rate=24, spo2=92, systolic_bp=100, pulse=115, temperature=38.5,
                        consciousness="A", on_oxygen=True))
    assert second.risk == "high" and second.monitoring == "continuous monitoring of vital signs"
    third = news2(dict(respiration_rate=18, spo2=95, systolic_bp=120, pulse=80, temperature=36.8,
                       consciousness="A", on_oxygen=False))
    assert third.score == 1
    fourth = news2(dict(respiration_rate=22, spo2=94, systolic_bp=105, pulse=45, temperature=35.5,
                        consciousness="C", on_oxygen=True))
    assert fourth.subscores == {"respiration_rate": 2, "spo2": 1, "air_or_oxygen": 2, "systolic_bp": 1,
                                "pulse": 1, "consciousness": 3, "temperature": 1}
    assert (fourth.score, fourth.red_score, fourth.risk) == (11, True, "high")
    scale_2 = news2(dict(NORMAL, spo2=100, on_oxygen=True, spo2_scale=2))
    assert scale_2.score == 3 + 2


def test_a_published_fhir_example_whose_total_disagrees_with_chart_1():
    """SynaneticsLtd/emergency-department-ig (FHIR examples, 'Carol Test'): RR 21, pulse 95, SpO2
    93% on room air, 37.5 C, systolic 120, alert, recorded as NEWS2 6 with a temperature score of
    1. Chart 1 puts 37.5 C in 36.1-38.0 (0): every other component agrees, the total is 5."""
    result = news2(dict(respiration_rate=21, pulse=95, spo2=93, on_oxygen=False, temperature=37.5,
                        systolic_bp=120, consciousness="A"))
    assert result.subscores == {"respiration_rate": 2, "spo2": 2, "air_or_oxygen": 0, "systolic_bp": 0,
                                "pulse": 1, "consciousness": 0, "temperature": 0}
    assert result.score == 5 and result.risk == "medium"
