"""De-identification on notes with planted PHI."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.nlp.deid import deidentify, shift_days

PLANTED = {
    "name": "Jonathan Whitfield",
    "mrn": "00482913",
    "phone": "(217) 555-0134",
    "email": "j.whitfield@example.org",
    "address": "42 Oak Street",
    "ssn": "123-45-6789",
}
NOTE = (f"Patient Name: {PLANTED['name']}   MRN: {PLANTED['mrn']}\n"
        f"Seen on 03/14/2021 by Dr. Alice Marchetti. Mr. Whitfield is a 93-year-old man who lives "
        f"at {PLANTED['address']}, Springfield, IL 62704. Phone {PLANTED['phone']}, e-mail "
        f"{PLANTED['email']}, SSN {PLANTED['ssn']}. Follow-up on March 28, 2021. Whitfield agrees.")


def test_planted_phi_is_gone():
    text, report = deidentify(NOTE, "p1", key=b"k")
    for value in [*PLANTED.values(), "Whitfield", "Marchetti", "93-year-old", "03/14/2021",
                  "March 28, 2021", "62704"]:
        assert value not in text, value
    assert "90+-year-old" in text
    assert {"NAME", "ID", "PHONE", "EMAIL", "ADDRESS", "DATE", "AGE"} <= set(report["counts"])


def test_report_omits_originals_unless_asked():
    _, report = deidentify(NOTE, "p1", key=b"k")
    assert all(r["original"] is None for r in report["replacements"])
    _, report = deidentify(NOTE, "p1", key=b"k", include_originals=True)
    assert any(r["original"] == PLANTED["email"] for r in report["replacements"])


def test_dates_shift_consistently_per_patient():
    days = shift_days("p1", b"k")
    a, _ = deidentify("Admitted 03/14/2021.", "p1", key=b"k")
    b, _ = deidentify("Discharged 03/20/2021.", "p1", key=b"k")
    expect_a = date(2021, 3, 14) + timedelta(days=days)
    expect_b = date(2021, 3, 20) + timedelta(days=days)
    assert expect_a.strftime("%m/%d/%Y") in a and expect_b.strftime("%m/%d/%Y") in b
    assert -365 <= days <= -1


def test_clinical_text_and_young_ages_are_kept():
    text = "A 45-year-old woman with hypertension on lisinopril 10 mg daily."
    out, report = deidentify(text, "p2", key=b"k")
    assert out == text and report["counts"] == {}


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=90, max_value=119), st.integers(min_value=18, max_value=89))
def test_only_ages_over_89_are_replaced(old, young):
    out, _ = deidentify(f"A {old}-year-old and a {young}-year-old.", "p", key=b"k")
    assert out == f"A 90+-year-old and a {young}-year-old."
