"""Heartbeat rows: AAMI grouping of MIT-BIH labels, RR features, beat windows, and the DS1 counts
of de Chazal et al. (2004) reproduced from the real annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.signals import Annotation, read_annotations
from iatros.data.signals.beats import (
    AAMI_CLASSES,
    RR_FEATURES,
    aami_beats,
    beat_feature_names,
    beat_length,
    beat_rows,
    beat_windows,
    rr_features,
)

FS = 360.0


def test_aami_grouping_keeps_beats_and_drops_rhythm_and_noise_marks():
    marks = [Annotation(10, "N"), Annotation(5, "+", aux="(AFIB"), Annotation(30, "A"),
             Annotation(40, "V"), Annotation(50, "~"), Annotation(60, "F"), Annotation(70, "L"),
             Annotation(80, "/"), Annotation(90, "|")]
    beats = aami_beats(marks)
    assert beats.samples.tolist() == [10, 30, 40, 60, 70, 80]
    assert [AAMI_CLASSES[k] for k in beats.labels] == ["N", "S", "V", "F", "N", "Q"]


def test_a_premature_beat_has_a_short_pre_rr_and_a_long_compensatory_post_rr():
    r = np.arange(30) * FS  # one beat per second
    r[15] = r[14] + 0.6 * FS  # premature by 0.4 s
    features = rr_features(r.astype(np.int64), FS)
    col = {name: k for k, name in enumerate(RR_FEATURES)}
    assert features[15, col["rr_pre_s"]] == pytest.approx(0.6)
    assert features[15, col["rr_post_s"]] == pytest.approx(1.4)
    assert features[15, col["rr_pre_local"]] < 0.7 < features[14, col["rr_pre_local"]]
    assert features[15, col["rr_post_pre"]] > 2
    assert features[0, col["rr_pre_s"]] == features[0, col["rr_post_s"]]  # first beat borrows


def test_fewer_than_two_beats_give_undefined_rr_not_an_error():
    assert np.isnan(rr_features(np.array([100]), FS)).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3599), min_size=1, max_size=20))
def test_beat_windows_have_one_width_and_put_the_peak_at_the_same_offset(peaks):
    x = 1e-3 * np.sin(np.arange(3600.0))  # a spread to scale by
    samples = np.array(sorted(set(peaks)))
    x[samples] = 1.0
    windows = beat_windows(x, samples, FS)
    assert windows.shape == (len(samples), beat_length(FS))
    before = round(0.25 * FS)
    assert np.all(windows[:, before] == windows.max(axis=1))


def test_rows_are_rr_features_then_the_window_and_are_named_so():
    x = np.sin(np.arange(7200) / 20.0)
    rows = beat_rows(x, np.array([400, 800, 1200]), FS)
    names = beat_feature_names(FS)
    assert rows.shape == (3, len(names)) and names[:len(RR_FEATURES)] == list(RR_FEATURES)
    assert names[len(RR_FEATURES)] == "ecg_-250ms" and "ecg_+0ms" in names


def test_ds1_beat_counts_match_de_chazal_2004(shared_data: Path):
    base = shared_data / "mitbih_arrhythmia" / "mitdb"
    from iatros.tasks.mitbih import DS1

    if not all((base / f"{r}.atr").is_file() for r in DS1):
        pytest.skip(f"MIT-BIH DS1 annotations absent under {base}")
    counts = np.zeros(len(AAMI_CLASSES), dtype=int)
    for record in DS1:
        counts += np.bincount(aami_beats(read_annotations(base / f"{record}.hea")).labels,
                              minlength=len(AAMI_CLASSES))
    # de Chazal et al. 2004, table I (DS1): N 45,866, S 944, V 3,788, F 415, Q 8
    assert counts.tolist() == [45866, 944, 3788, 415, 8]
