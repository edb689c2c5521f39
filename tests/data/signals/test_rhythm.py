"""Rhythm episodes from WFDB rhythm marks, and the share of a window each rhythm covers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iatros.data.signals import Annotation, read_annotations
from iatros.data.signals.rhythm import (
    rhythm_episodes,
    rhythm_fraction,
    window_starts,
)


def test_each_mark_starts_a_rhythm_that_lasts_until_the_next():
    marks = [Annotation(100, "+", "(N"), Annotation(300, "N"), Annotation(500, "+", "(AFIB"),
             Annotation(800, "+", "(N\x00")]
    episodes = rhythm_episodes(marks, 1000)
    assert [(e.start, e.stop, e.rhythm) for e in episodes] == [
        (0, 100, ""), (100, 500, "N"), (500, 800, "AFIB"), (800, 1000, "N")]
    assert rhythm_fraction(episodes, 400, 600, "AFIB") == pytest.approx(0.5)
    assert rhythm_fraction(episodes, 0, 100, "AFIB") == 0.0


@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(["(N", "(AFIB", "(VT"])),
                max_size=10), st.integers(0, 900), st.integers(1, 100))
def test_rhythm_shares_of_a_window_add_up_to_one(marks, start, width):
    episodes = rhythm_episodes([Annotation(s, "+", r) for s, r in marks], 1000)
    total = sum(rhythm_fraction(episodes, start, start + width, r) for r in ("", "N", "AFIB", "VT"))
    assert total == pytest.approx(1.0)


def test_windows_are_whole_and_do_not_overlap():
    assert window_starts(100, 30).tolist() == [0, 30, 60]
    assert window_starts(20, 30).tolist() == []


def test_record_203_holds_atrial_fibrillation_and_flutter(shared_data: Path):
    header = shared_data / "mitbih_arrhythmia" / "mitdb" / "203.hea"
    if not header.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 203 absent: {header}")
    episodes = rhythm_episodes(read_annotations(header), 650000)
    rhythms = {e.rhythm for e in episodes}
    assert {"AFIB", "AFL", "VT"} <= rhythms
    assert sum(e.length for e in episodes) == 650000
