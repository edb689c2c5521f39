"""R-peak scoring: one-to-one matching within 150 ms (EC57), reference beats from annotation symbols,
and a real MIT-BIH record scored end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.signals.record import Annotation
from iatros.data.signals.rpeaks import (
    BEAT_SYMBOLS,
    match_beats,
    pooled,
    reference_beats,
    score_record,
)
from iatros.errors import ConfigError

FS = 360.0


def test_exact_detections_are_all_true_positives():
    ref = [100, 400, 700]
    out = match_beats(ref, ref, FS)
    assert (out["tp"], out["fn"], out["fp"]) == (3, 0, 0)
    assert out["sensitivity"] == 1.0 and out["positive_predictivity"] == 1.0


def test_within_tolerance_matches_and_outside_does_not():
    tol = int(0.150 * FS)  # 54 samples
    out = match_beats([1000 + tol, 3000 - tol], [1000, 3000], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (2, 0, 0)
    out = match_beats([1000 + tol + 1], [1000], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (0, 1, 1)
    assert out["sensitivity"] == 0.0 and out["positive_predictivity"] == 0.0


def test_a_tighter_tolerance_turns_a_match_into_a_miss_and_a_false_detection():
    assert match_beats([1020], [1000], FS, tolerance_s=0.150)["tp"] == 1
    assert match_beats([1020], [1000], FS, tolerance_s=0.050)["tp"] == 0


def test_two_detections_near_one_beat_count_once_the_closer_matches():
    out = match_beats([995, 1010], [1000], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (1, 0, 1)
    assert out["positive_predictivity"] == 0.5


def test_duplicate_detections_and_duplicate_reference_beats_are_each_counted():
    out = match_beats([500, 500], [500], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (1, 0, 1)
    out = match_beats([500], [500, 500], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (1, 1, 0)


def test_nearest_pairs_first_does_not_steal_a_neighbours_beat():
    # detection 1040 lies within tolerance of both beats; it belongs to 1050 (10 samples away),
    # so the beat at 1000 is matched by the detection at 1002 and nothing is missed
    out = match_beats([1002, 1040], [1000, 1050], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (2, 0, 0)


def test_empty_inputs_give_counts_and_undefined_ratios():
    out = match_beats([], [], FS)
    assert (out["tp"], out["fn"], out["fp"]) == (0, 0, 0)
    assert out["sensitivity"] is None and out["positive_predictivity"] is None
    out = match_beats([], [10, 20], FS)
    assert (out["fn"], out["sensitivity"], out["positive_predictivity"]) == (2, 0.0, None)
    out = match_beats(np.array([10, 20]), np.array([], dtype=int), FS)
    assert (out["fp"], out["sensitivity"], out["positive_predictivity"]) == (2, None, 0.0)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ConfigError, match="fs > 0"):
        match_beats([1], [1], 0)
    with pytest.raises(ConfigError, match="reference: expected a 1-D"):
        match_beats([1], [[1, 2]], FS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=40), st.lists(st.integers(0, 5000), max_size=40),
       st.floats(0.0, 0.5))
def test_counts_add_up_and_ratios_lie_in_the_unit_interval(detected, reference, tolerance):
    out = match_beats(detected, reference, FS, tolerance_s=tolerance)
    assert out["tp"] + out["fn"] == len(reference)
    assert out["tp"] + out["fp"] == len(detected)
    assert out["tp"] <= min(len(detected), len(reference))
    for key in ("sensitivity", "positive_predictivity"):
        assert out[key] is None or 0.0 <= out[key] <= 1.0
    assert match_beats(reference, detected, FS, tolerance_s=tolerance)["tp"] == out["tp"]


def test_only_beat_symbols_are_reference_beats():
    notes = [Annotation(30, "+", "(N"), Annotation(10, "N"), Annotation(50, "V"), Annotation(70, "~"),
             Annotation(90, "|"), Annotation(110, "x"), Annotation(130, "/"), Annotation(150, "!"),
             Annotation(170, "Q")]
    assert reference_beats(notes).tolist() == [10, 50, 130, 170]
    assert {"N", "L", "R", "V", "/", "f", "Q", "?"} <= BEAT_SYMBOLS
    assert not {"+", "~", "|", "x", "!", "[", "]", '"'} & BEAT_SYMBOLS


def test_pooled_sums_counts_before_dividing():
    rows = [match_beats([0, 1000], [0, 1000], FS), match_beats([0], [0, 1000, 2000, 3000], FS)]
    out = pooled(rows)
    assert (out["records"], out["tp"], out["fn"], out["fp"], out["beats"]) == (2, 3, 3, 0, 6)
    assert out["sensitivity"] == 0.5 and out["positive_predictivity"] == 1.0


def _record_100(shared_data: Path) -> Path:
    path = shared_data / "mitbih_arrhythmia" / "record100_wfdb" / "100"
    if not path.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 100 with annotations is absent ({path}.atr)")
    return path


def test_record_100_is_detected_with_se_and_ppv_above_99_percent(shared_data):
    out = score_record(_record_100(shared_data), "neurokit")
    assert out["record"] == "100" and out["beats"] == 2273 and out["fs"] == 360.0
    assert out["sensitivity"] > 0.99 and out["positive_predictivity"] > 0.99
    assert out["seconds"] >= 0


def test_skipping_the_edges_drops_beats_there(shared_data):
    whole = score_record(_record_100(shared_data), "neurokit")
    trimmed = score_record(_record_100(shared_data), "neurokit", skip_s=10.0)
    assert 0 < whole["beats"] - trimmed["beats"] < 40


def test_vf_episodes_run_from_onset_to_offset_or_to_the_end():
    from iatros.data.signals import Annotation
    from iatros.data.signals.rpeaks import vf_episodes

    marks = [Annotation(100, "["), Annotation(150, "!"), Annotation(300, "]"), Annotation(900, "[")]
    assert vf_episodes(marks, 1000) == [(100, 300), (900, 999)]


def test_inside_vf_beats_and_unclaimed_detections_are_not_scored_but_a_pair_across_counts():
    # beats at 1000 (inside the episode 950..1100) and 2000; detections at 960 (unclaimed, inside),
    # 1090 (inside, pairs with nothing scored) and 1995 (outside, a match)
    out = match_beats([960, 1090, 1995], [1000, 2000], FS, unscored=[(950, 1100)])
    assert (out["tp"], out["fn"], out["fp"]) == (1, 0, 0)
    assert out["unscored_beats"] == 1 and out["unscored_detections"] == 2
    # a detection inside the episode that pairs with a scored beat just outside still counts
    near = match_beats([1102], [1150], FS, unscored=[(950, 1105)])
    assert near["tp"] == 1 and near["unscored_detections"] == 0
    scored = match_beats([960, 1090, 1995], [1000, 2000], FS)
    assert (scored["tp"], scored["fn"], scored["fp"]) == (2, 0, 1)


def test_record_207s_flutter_is_left_out_unless_asked(shared_data):
    from iatros.data.signals.rpeaks import score_record

    header = shared_data / "mitbih_arrhythmia" / "mitdb" / "207.hea"
    if not header.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 207 absent: {header}")
    ec57 = score_record(header, "neurokit")
    everything = score_record(header, "neurokit", score_vf=True)
    assert ec57["unscored_detections"] > 0 and ec57["fp"] < everything["fp"]
    assert everything["unscored_beats"] == 0 and everything["unscored_detections"] == 0


def test_searchback_fills_a_long_gap_with_the_second_detectors_beats_only():
    from iatros.data.signals.processing import searchback

    fs = 100.0
    primary = np.arange(0, 2000, 100)                  # one beat a second
    primary = primary[primary != 1000]                  # ... with one missed
    # in the gap 900-1100: a beat, its double 50 ms later, one 100 ms before the gap's end;
    # and one outside any gap
    secondary = np.array([1005, 1010, 1090, 1510])
    merged = searchback(primary, secondary, fs)
    assert sorted(set(merged) - set(primary)) == [1005]
    assert searchback(np.arange(0, 2000, 100), secondary, fs).tolist() == list(range(0, 2000, 100))


def test_searchback_finds_beats_manikandan_misses_on_record_114(shared_data):
    from iatros.data.signals.rpeaks import score_record

    header = shared_data / "mitbih_arrhythmia" / "mitdb" / "114.hea"
    if not header.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 114 absent: {header}")
    alone = score_record(header, "manikandan2012")
    both = score_record(header, "searchback")
    assert both["fn"] < alone["fn"] and both["fp"] <= alone["fp"] + 5
