"""`iatros deid dicom|fhir`: real DICOM test files and real Synthea FHIR bundles lose their
identifiers, keep their links and validity, use the key like `nlp deid`, and never overwrite
the inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iatros.api import deid
from iatros.cli import app as cli
from iatros.errors import ConfigError

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("dicognito", reason="DICOM de-identification needs dicognito")
KEY = "k" * 32
DATA = Path(os.environ.get("IATROS_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@pytest.fixture
def dicoms(tmp_path):
    from pydicom.data import get_testdata_file

    folder = tmp_path / "in" / "Smith_John"
    folder.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)
        if path is None:
            pytest.skip(f"pydicom's {name} is not available offline")
        shutil.copy(path, folder / name)
    (folder / "broken.dcm").write_bytes(b"DICM" + b"\0" * 64)
    return tmp_path / "in"


def test_dicom_loses_identifiers_keeps_images_and_warns_about_burned_in_text(dicoms, tmp_path):
    results = deid.dicom([dicoms], tmp_path / "out", key=KEY)
    good = [r for r in results if "error" not in r]
    bad = [r for r in results if "error" in r]
    assert len(good) == 2 and len(bad) == 1 and "broken.dcm" in bad[0]["error"]
    for r in good:
        original = pydicom.dcmread(r["source"])
        clean = pydicom.dcmread(r["output"])
        assert str(clean.PatientName) != str(original.PatientName)
        assert clean.PatientID != original.PatientID
        assert clean.SOPInstanceUID != original.SOPInstanceUID
        assert clean.PatientIdentityRemoved == "YES"
        assert clean.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert not any(e.tag.is_private for e in clean.iterall())
        assert clean.pixel_array.shape == original.pixel_array.shape
        assert {"PatientName", "PatientID"} <= set(r["changed"])
        assert any("burned" in w.lower() for w in r["warnings"])
        assert "Smith" not in r["output"] and str(original.PatientName) not in json.dumps(r["changed"])


def test_the_same_key_gives_the_same_pseudonyms_and_another_key_others(dicoms, tmp_path):
    first = deid.dicom([dicoms], tmp_path / "a", key=KEY)
    again = deid.dicom([dicoms], tmp_path / "b", key=KEY)
    other = deid.dicom([dicoms], tmp_path / "c", key="z" * 32)
    ids = [[pydicom.dcmread(r["output"]).PatientID for r in rs if "error" not in r]
           for rs in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]


def test_no_key_no_run_and_never_into_the_input(dicoms, tmp_path, monkeypatch):
    monkeypatch.delenv("IATROS_DEID_KEY", raising=False)
    with pytest.raises(ConfigError, match="key"):
        deid.dicom([dicoms], tmp_path / "out")
    with pytest.raises(ConfigError, match="input"):
        deid.dicom([dicoms], dicoms / "inside", key=KEY)


@pytest.fixture
def bundles(tmp_path):
    source = DATA / "synthea_sample" / "fhir"
    if not source.is_dir():
        pytest.skip(f"{source} is absent (set IATROS_DATA)")
    folder = tmp_path / "fhir"
    shutil.copytree(source, folder)
    return folder


def _patient(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


def test_fhir_bundles_lose_identifiers_stay_linked_and_valid(bundles, tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    results = deid.fhir([bundles], tmp_path / "out", key=KEY, show_shift=True)
    assert len(results) == 5 and not any("error" in r for r in results)
    for r in results:
        original = json.loads(Path(r["source"]).read_text())
        clean = json.loads(Path(r["output"]).read_text())
        Bundle.model_validate(clean)
        patient = _patient(original)
        text = json.dumps(clean)
        secrets = [patient["id"], patient["name"][0]["family"], patient["name"][0]["given"][0],
                   patient["telecom"][0]["value"], patient["address"][0]["line"][0],
                   patient["address"][0].get("city", "-"), patient["birthDate"]]
        assert not [s for s in secrets if s in text]
        assert patient["name"][0]["family"] not in r["output"]
        ids = {e["resource"]["id"] for e in clean["entry"]}
        refs = [e["resource"]["subject"]["reference"] for e in clean["entry"]
                if "subject" in e["resource"]]
        assert refs and all(ref.rsplit(":", 1)[-1].rsplit("/", 1)[-1] in ids for ref in refs)
        assert _patient(clean).get("address", [{}])[0].get("state") == patient["address"][0]["state"]
        shifted = _patient(clean)["birthDate"]
        from datetime import date
        days = (date.fromisoformat(shifted) - date.fromisoformat(patient["birthDate"])).days
        assert days == r["date_shift_days"] and -365 <= days <= -1


def test_fhir_date_shift_matches_the_notes_of_the_same_patient(bundles, tmp_path):
    from iatros.api import nlp as nlp_api

    (r,) = deid.fhir([sorted(bundles.glob("*.json"))[0]], tmp_path / "out", key=KEY, show_shift=True)
    patient = _patient(json.loads(Path(r["source"]).read_text()))["id"]
    notes = tmp_path / "notes.csv"
    notes.write_text(f"pid,text\n{patient},Seen on 03/14/2024.\n")
    (note,) = nlp_api.deid([notes], column="text", id_column="pid", key=KEY, show_shift=True)
    assert note["report"]["date_shift_days"] == r["date_shift_days"]


def test_cli_runs_each_kind_and_reports_json(bundles, dicoms, tmp_path, monkeypatch):
    monkeypatch.setenv("IATROS_DEID_KEY", KEY)
    runner = CliRunner()
    result = runner.invoke(cli, ["deid", "fhir", str(bundles), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 5
    result = runner.invoke(cli, ["deid", "dicom", str(dicoms), "--out", str(tmp_path / "d")])
    assert result.exit_code == 0 and "1 of 3 input(s) failed" in result.output
