"""Fuzzing the readers of files users hand us (CSV tables, FHIR bundles, DICOM): any input either
reads or fails with an iatros error naming the file; never a traceback, never a hang."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iatros.data.ehr import convert, get_source
from iatros.data.formats.image import read_image
from iatros.data.sources.csv_table import load_csv_table, read_table
from iatros.errors import IatrosError

FUZZ = settings(max_examples=int(os.environ.get("IATROS_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@contextmanager
def no_hang(seconds: int = 20):
    """Fail instead of hanging: one example may take at most `seconds`."""
    def stop(*_):
        raise TimeoutError(f"a reader took more than {seconds} s on one input")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _cells() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=8), st.integers(-1000, 1000).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(str),
                     st.sampled_from(["", "n/a", "NA", "12,5", '"', "\n", "a,b", "\x00", "é"]))


@FUZZ
@given(header=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5),
       rows=st.lists(st.lists(_cells(), min_size=0, max_size=6), max_size=30),
       raw=st.binary(max_size=300), use_raw=st.booleans())
def test_any_csv_reads_or_fails_with_an_error_naming_the_file(tmp_path, header, rows, raw, use_raw):
    path = tmp_path / "table.csv"
    if use_raw:
        path.write_bytes(raw)
    else:
        lines = [",".join(header)] + [",".join(r) for r in rows]
        path.write_text("\n".join(lines), encoding="utf-8", errors="replace")
    with no_hang():
        try:
            frame = read_table(path)
            load_csv_table(path, str(frame.columns[0]))
        except IatrosError as e:
            assert "table.csv" in str(e) or "target" in str(e)


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                               st.text(max_size=10)),
                     lambda children: st.one_of(st.lists(children, max_size=4),
                                                st.dictionaries(st.text(max_size=8), children,
                                                                max_size=4)),
                     max_leaves=20)
_resource = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Encounter", "Observation", "Condition",
                                      "MedicationRequest", "Procedure", "Immunization", "Bogus"])},
    optional={"id": st.text(max_size=6), "subject": _json, "period": _json, "code": _json,
              "effectiveDateTime": st.text(max_size=25), "valueQuantity": _json,
              "gender": st.text(max_size=8), "birthDate": st.text(max_size=12)})


@FUZZ
@given(entries=st.lists(_resource, max_size=8), raw=st.binary(max_size=200), use_raw=st.booleans())
def test_any_fhir_bundle_converts_or_fails_with_an_error(tmp_path, entries, raw, use_raw):
    folder = tmp_path / "fhir"
    folder.mkdir(exist_ok=True)
    bundle = folder / "bundle.json"
    if use_raw:
        bundle.write_bytes(raw)
    else:
        bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": r} for r in entries]}))
    with no_hang(), suppress(IatrosError):
        convert(get_source("fhir"), folder, tmp_path / "out")


@pytest.fixture(scope="module")
def dicom_bytes() -> bytes:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's test file CT_small.dcm is not available offline")
    return Path(path).read_bytes()


@FUZZ
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                max_size=12))
def test_any_damaged_dicom_reads_or_fails_with_an_error_naming_the_file(tmp_path, dicom_bytes, cut,
                                                                       flips):
    data = bytearray(dicom_bytes[: max(cut, 132)] if cut < len(dicom_bytes) else dicom_bytes)
    for position, value in flips:
        if 132 <= position < len(data):
            data[position] = value
    path = tmp_path / "scan.dcm"
    path.write_bytes(bytes(data))
    with no_hang():
        try:
            image = read_image(path)
            assert image.array.size > 0
        except IatrosError as e:
            assert "scan.dcm" in str(e)
