"""Fuzzing the note reader and the de-identifier: any input gives a result or a clear error,
never a traceback or a hang, and every span's offsets index the input."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iatros.nlp.deid import deidentify, find_phi
from iatros.nlp.io import Note, NoteError, chunks, decode_note

KEY = b"fuzz-key-0123456789abcdef"
FAST = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# text that looks like notes: words, numbers, PHI-like pieces, punctuation, accents, newlines
PIECES = st.sampled_from(["Dr.", "dr", "Mr", "MRS", "son", "Bill", "José", "García", "O'Brien", "7/22",
                          "03.14.2021", "'92", "1992", "March", "MRN:", "#", "123-45-6789", "(217)",
                          "555-0134", "@", "example.org", "http://", "10.0.0.1", "Hospital", "St.",
                          "ninety-two", "years", "old", ",", ".", "\n", "  ", "ZIP", "62704", "IL"])
NOTE_TEXT = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=60).map(" ".join)


@pytest.fixture(scope="module", autouse=True)
def word_lists_loaded() -> None:
    """Load the word lists once, so the first example's time is not counted against its deadline."""
    find_phi("Dr. Smith")


def check_spans(text: str) -> None:
    spans = find_phi(text)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


@FAST
@given(st.binary(max_size=3000))
def test_decode_note_gives_a_note_or_a_note_error_for_any_bytes(data):
    try:
        note = decode_note(data, "fuzz.txt")
    except NoteError as e:
        assert "fuzz.txt" in str(e)
        return
    assert isinstance(note, Note) and note.text.strip()


@FAST
@given(st.text(max_size=3000), st.integers(min_value=20, max_value=400))
def test_chunks_cover_the_text_exactly_in_order(text, size):
    parts = chunks(text, size)
    assert "".join(p for _, p in parts) == text
    assert [o for o, _ in parts] == [sum(len(p) for _, p in parts[:k]) for k in range(len(parts))]


@FAST
@given(NOTE_TEXT)
def test_find_phi_offsets_are_valid_and_ordered_on_note_like_text(text):
    check_spans(text)


@FAST
@given(st.text(max_size=500))
def test_find_phi_offsets_are_valid_on_any_unicode(text):
    check_spans(text)


@FAST
@given(NOTE_TEXT, st.sampled_from(["tags", "surrogates"]))
def test_deidentify_rebuilds_the_text_around_its_replacements(text, mode):
    out, report = deidentify(text, "p", KEY, mode=mode, include_originals=True)
    rebuilt, last = [], 0
    for r in report["replacements"]:
        assert text[r["start"]:r["end"]] == r["original"]
        rebuilt += [text[last:r["start"]], r["replacement"]]
        last = r["end"]
    assert "".join([*rebuilt, text[last:]]) == out


@pytest.mark.parametrize("text", ["Dr. " * 3000, "1/" * 5000, "a " * 20000, "Hospital " * 3000,
                                  "x" * 60000, "son " * 4000, "'9" * 5000, "@." * 5000,
                                  "1.2.3.4." * 2000, "St. " * 3000])
def test_deidentify_stays_fast_on_pathological_text(text):
    start = time.perf_counter()
    deidentify(text, "p", KEY)
    assert time.perf_counter() - start < 10
