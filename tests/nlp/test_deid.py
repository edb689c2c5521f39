"""De-identification: the detector (`find_phi`), replacement (`deidentify`) and keys.

The tests named `test_defect_*` each reproduce one leak or flaw of the earlier rules (issue 17):
they fail on that code and pass on this one.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError
from iatros.nlp.deid import KEY_ENV, PHI_TYPES, PhiSpan, deidentify, find_phi, resolve_key, shift_days
from iatros.nlp.surrogates import shift_date

KEY = b"0123456789abcdef-test-key"


def removed(text: str, *values: str) -> tuple[str, list[str]]:
    """De-identified text (tags mode) and the values still in it."""
    out, _ = deidentify(text, "p1", KEY)
    return out, [v for v in values if v in out]


# -- one test per leak of the earlier rules ---------------------------------------------------
def test_defect_untitled_names_are_removed():
    _, left = removed("Jonathan Whitfield was admitted overnight. Whitfield denies pain.",
                      "Jonathan", "Whitfield")
    assert left == []


def test_defect_non_ascii_names_are_removed_whole():
    out, left = removed("Seen by Dr. José García and Dr. Zoë Øster today.", "José", "García", "é", "Øster")
    assert left == [] and "[NAME]é" not in out


def test_defect_lower_case_titles_are_recognised():
    _, left = removed("discussed with dr. smith and mrs jones this am.", "smith", "jones")
    assert left == []


def test_defect_account_numbers_with_hash_are_removed():
    _, left = removed("Account # 5567-221-A, Acct#: 99812, account no. 44120", "5567", "99812", "44120")
    assert left == []


def test_defect_month_year_and_dotted_dates_are_removed():
    _, left = removed("Diagnosed March 2019, seen 03.14.2021 and on the 4th of July 2020.",
                      "March 2019", "2019", "03.14.2021", "July 2020")
    assert left == []


def test_defect_spelled_out_ages_over_89_are_removed():
    _, left = removed("She is ninety-two years old; he is a ninety two year-old man.", "ninety")
    assert left == []


def test_defect_ssn_with_spaces_is_removed():
    _, left = removed("SSN 123 45 6789 and 987-65-4320 on file.", "123 45 6789", "6789", "4320")
    assert left == []


def test_defect_hospital_names_are_removed():
    _, left = removed("Transferred from Calvert Hospital to St. Agnes; followed at Kessler Memorial.",
                      "Calvert", "Agnes", "Kessler")
    assert left == []


def test_defect_urls_and_ip_addresses_are_removed():
    _, left = removed("Portal https://mychart.example.com/p?id=7 from 192.168.10.24 or www.clinic.org",
                      "mychart", "192.168", "clinic.org")
    assert left == []


def test_defect_dates_without_year_years_and_relatives_are_removed():
    _, left = removed("PMH: MI 1992, CABG '95. Admitted 7/22. Son Bill and daughter Mary visited.",
                      "1992", "95", "7/22", "Bill", "Mary")
    assert left == []


def test_defect_report_hides_the_date_shift_unless_asked():
    _, report = deidentify("Admitted 03/14/2021.", "p1", KEY)
    assert "date_shift_days" not in report and str(abs(shift_days("p1", KEY))) not in json.dumps(report)
    _, report = deidentify("Admitted 03/14/2021.", "p1", KEY, show_shift=True)
    assert report["date_shift_days"] == shift_days("p1", KEY)


def test_defect_patient_pseudonym_is_a_keyed_hmac_not_a_bare_hash():
    mrn = "00482913"
    _, a = deidentify("Note.", mrn, KEY)
    _, b = deidentify("Note.", mrn, KEY + b"-other")
    bare = hashlib.sha256(mrn.encode()).hexdigest()
    assert bare[:8] not in json.dumps(a) and a["patient_pseudonym"] != b["patient_pseudonym"]
    assert deidentify("Note.", mrn, KEY)[1]["patient_pseudonym"] == a["patient_pseudonym"]


def test_defect_missing_key_is_refused_not_replaced_by_a_random_one(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError):
        deidentify("Seen by Dr. Smith.", "p1")
    with pytest.raises(ConfigError, match="--key"):
        resolve_key(None)
    assert len(resolve_key(None, random_key=True)[0]) == 32


def test_short_keys_are_refused_and_the_environment_key_is_used(monkeypatch):
    with pytest.raises(ConfigError, match="16"):
        resolve_key("short")
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    assert resolve_key(None) == (b"x" * 20, f"from {KEY_ENV}")


# -- the 18 HIPAA Safe Harbor identifiers ------------------------------------------------------
SAFE_HARBOR = [
    ("NAME", "Patient Name: Jonathan Whitfield", "Jonathan Whitfield"),
    ("ADDRESS", "Lives at 42 Oak Street, Apt 4", "42 Oak Street"),
    ("LOCATION", "moved here from Towson last year", "Towson"),
    ("ZIP", "Springfield, IL 62704", "62704"),
    ("DATE", "Admitted on 03/14/2021", "03/14/2021"),
    ("AGE", "a 93-year-old man", "93"),
    ("PHONE", "call (217) 555-0134", "(217) 555-0134"),
    ("FAX", "Fax: 217-555-0199", "217-555-0199"),
    ("EMAIL", "mail j.whitfield@example.org", "j.whitfield@example.org"),
    ("SSN", "SSN 123-45-6789", "123-45-6789"),
    ("MRN", "MRN: 00482913", "00482913"),
    ("HEALTH_PLAN", "Medicaid ID: XK4481923", "XK4481923"),
    ("ACCOUNT", "Account #: 99812", "99812"),
    ("LICENSE", "DEA # AB1234563", "AB1234563"),
    ("VEHICLE", "license plate 7XYZ123", "7XYZ123"),
    ("DEVICE", "pacemaker serial: PM4471-22", "PM4471-22"),
    ("URL", "see https://portal.example.com/u/77", "https://portal.example.com/u/77"),
    ("IP", "logged in from 10.20.30.40", "10.20.30.40"),
    ("BIOMETRIC", "fingerprint id: FP-99812A", "FP-99812A"),
    ("PHOTO", "face photo attached: IMG_2041.jpg", "IMG_2041.jpg"),
    ("ID", "Study ID: STX-2291", "STX-2291"),
]


@pytest.mark.parametrize(("kind", "text", "value"), SAFE_HARBOR, ids=[k for k, _, _ in SAFE_HARBOR])
def test_each_safe_harbor_identifier_is_found_with_its_type(kind, text, value):
    start = text.index(value)
    spans = find_phi(text)
    assert any(s.start <= start and start + len(value) <= s.end and s.type == kind for s in spans), spans
    assert kind in PHI_TYPES


def test_find_phi_returns_sorted_non_overlapping_typed_spans():
    text = "Dr. Alice Marchetti saw Mr. Whitfield (MRN 00482913) on 3/14/2021; call 217-555-0134."
    spans = find_phi(text)
    assert all(isinstance(s, PhiSpan) for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert {"NAME", "MRN", "DATE", "PHONE"} <= {s.type for s in spans}
    assert find_phi(text, types=["DATE"]) == [s for s in spans if s.type == "DATE"]


def test_clinical_text_and_young_ages_are_kept():
    text = "A 45-year-old woman with hypertension on lisinopril 10 mg daily. BP 120/80, HR 72."
    out, report = deidentify(text, "p2", KEY)
    assert out == text and report["counts"] == {}


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=90, max_value=119), st.integers(min_value=18, max_value=89))
def test_only_ages_over_89_are_replaced(old, young):
    out, _ = deidentify(f"A {old}-year-old and a {young}-year-old.", "p", KEY, mode="surrogates")
    assert out == f"A 90+-year-old and a {young}-year-old."


# -- surrogates ------------------------------------------------------------------------------------
NOTE = ("Patient Name: Jonathan Whitfield   MRN: 00482913\nSeen on 03/14/2021 by Dr. Alice Marchetti. "
        "Mr. Whitfield lives at 42 Oak Street, Springfield, IL 62704. Phone (217) 555-0134.")


def test_tags_mode_writes_the_type_of_each_span():
    out, report = deidentify(NOTE, "p1", KEY)
    assert "[NAME]" in out and "[DATE]" in out and "[PHONE]" in out and "Whitfield" not in out
    assert all(r["original"] is None for r in report["replacements"])


def test_surrogates_are_consistent_per_patient_and_key_and_differ_across_keys():
    a, _ = deidentify(NOTE, "p1", KEY, mode="surrogates")
    b, _ = deidentify(NOTE, "p1", KEY, mode="surrogates")
    c, _ = deidentify(NOTE, "p1", KEY + b"2", mode="surrogates")
    assert a == b and a != c
    for value in ("Whitfield", "Jonathan", "Marchetti", "00482913", "555-0134", "03/14/2021"):
        assert value not in a
    surname = re.search(r"Mr\. (\w+)", a)[1]
    assert a.count(surname) >= 2  # "Jonathan Whitfield" and "Mr. Whitfield" get the same surname


def test_dates_shift_consistently_per_patient_and_keep_their_format():
    days = shift_days("p1", KEY)
    a, _ = deidentify("Admitted 03/14/2021.", "p1", KEY, mode="surrogates")
    b, _ = deidentify("Discharged 03/20/2021.", "p1", KEY, mode="surrogates")
    assert (date(2021, 3, 14) + timedelta(days=days)).strftime("%m/%d/%Y") in a
    assert (date(2021, 3, 20) + timedelta(days=days)).strftime("%m/%d/%Y") in b
    assert -365 <= days <= -1


@pytest.mark.parametrize(("text", "pattern"), [
    ("7/22", r"\d{1,2}/\d{1,2}"), ("03.14.2021", r"\d\d\.\d\d\.\d{4}"), ("2021-03-14", r"\d{4}-\d\d-\d\d"),
    ("March 14, 2021", r"[A-Z][a-z]+ \d{1,2}, \d{4}"), ("MARCH 2019", r"[A-Z]+ \d{4}"),
    ("14th of March 2021", r"\d{1,2}(st|nd|rd|th) of [A-Z][a-z]+ \d{4}"), ("'92", r"'\d\d"),
])
def test_shifted_dates_keep_their_layout(text, pattern):
    shifted = shift_date(text, -40)
    assert shifted is not None and re.fullmatch(pattern, shifted), shifted
    assert shifted != text or text == "'92"  # a year alone moves only when the shift crosses it


@settings(max_examples=50, deadline=None)
@given(st.dates(min_value=date(1950, 1, 1), max_value=date(2080, 12, 31)), st.integers(-365, -1))
def test_shift_date_moves_numeric_dates_by_exactly_the_shift(day, days):
    shifted = shift_date(day.strftime("%m/%d/%Y"), days)
    assert shifted == (day + timedelta(days=days)).strftime("%m/%d/%Y")
