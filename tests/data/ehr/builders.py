"""Small, hand-made inputs for the EHR converters, written into a test's tmp_path."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- PhysioNet 2012


def physionet_record(record_id: int, *, age: float = 54, gender: int = 0, height: float = -1,
                     icu_type: int = 4, weight: float = -1,
                     lines: Sequence[str] = ("00:07,HR,73", "00:07,Temp,35.1", "01:07,HR,80")) -> str:
    """The text of one record file: descriptors at 00:00, then `HH:MM,Parameter,Value` lines."""
    head = [f"00:00,RecordID,{record_id}", f"00:00,Age,{age:g}", f"00:00,Gender,{gender}",
            f"00:00,Height,{height:g}", f"00:00,ICUType,{icu_type}", f"00:00,Weight,{weight:g}"]
    return "\n".join(["Time,Parameter,Value", *head, *lines]) + "\n"


def write_physionet_set(root: Path, letter: str, records: dict[int, str],
                        outcomes: Iterable[str] | None) -> Path:
    """`root/set-LETTER/ID.txt` files and (unless None) `root/Outcomes-LETTER.txt` rows."""
    folder = root / f"set-{letter}"
    folder.mkdir(parents=True, exist_ok=True)
    for rid, text in records.items():
        (folder / f"{rid}.txt").write_text(text)
    if outcomes is not None:
        (root / f"Outcomes-{letter}.txt").write_text(
            "\n".join(["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death",
                       *outcomes]) + "\n")
    return folder


# ---------------------------------------------------------------- CSV tables (MIMIC, eICU)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    text = csv_text(header, rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


ADMISSIONS_HEADER = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME",
                     "ADMISSION_TYPE", "INSURANCE", "ETHNICITY", "DIAGNOSIS",
                     "HOSPITAL_EXPIRE_FLAG")
PATIENTS_HEADER = ("ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "EXPIRE_FLAG")


def write_mimic(folder: Path, admissions: Sequence[Sequence[Any]],
                patients: Sequence[Sequence[Any]]) -> Path:
    """ADMISSIONS.csv and PATIENTS.csv (upper-case headers, as MIMIC-III ships them).

    admissions: (subject, hadm, admit, discharge, death, expire_flag); patients: (subject,
    gender, dob).
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "ADMISSIONS.csv", ADMISSIONS_HEADER,
              [(i, s, h, a, d, death, "EMERGENCY", "Medicare", "WHITE", "SEPSIS", flag)
               for i, (s, h, a, d, death, flag) in enumerate(admissions)])
    write_csv(folder / "PATIENTS.csv", PATIENTS_HEADER,
              [(i, s, g, dob, None, 0) for i, (s, g, dob) in enumerate(patients)])
    return folder


EICU_PATIENT_HEADER = ("patientunitstayid", "patienthealthsystemstayid", "gender", "age",
                       "ethnicity", "hospitalid", "wardid", "apacheadmissiondx",
                       "hospitaldischargeoffset", "hospitaldischargestatus", "unittype",
                       "unitdischargeoffset", "uniquepid")


def eicu_patient(stay: int, pid: str, hospital: int, *, age: str = "70", gender: str = "Female",
                 status: str = "Alive", unit_discharge: Any = 1440, hosp_discharge: Any = 2880,
                 health_stay: int | None = None) -> tuple[Any, ...]:
    return (stay, health_stay or stay + 1000, gender, age, "Caucasian", hospital, 1,
            "Sepsis, pulmonary", hosp_discharge, status, "Med-Surg ICU", unit_discharge, pid)


# ---------------------------------------------------------------- FHIR R4


def patient(pid: str, *, gender: str = "female", birth: str = "1950-06-01",
            deceased: str | None = None, race: str | None = "White") -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth}
    if deceased:
        r["deceasedDateTime"] = deceased
    if race:
        r["extension"] = [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "text", "valueString": race}]}]
    return r


def encounter(eid: str, pid: str, start: str, end: str | None, *, klass: str = "IMP",
              org: str | None = "org1") -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "32485007",
                              "display": "Hospital admission"}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, **({"end": end} if end else {})}}
    if org:
        r["serviceProvider"] = {"reference": f"Organization/{org}"}
    return r


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]}


def heart_rate(oid: str, pid: str, eid: str, when: str, value: float,
               status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": status,
            "code": _loinc("8867-4", "Heart rate"), "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def blood_pressure(oid: str, pid: str, eid: str, when: str, sbp: float,
                   dbp: float) -> dict[str, Any]:
    def comp(code: str, name: str, v: float) -> dict[str, Any]:
        return {"code": _loinc(code, name),
                "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}

    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": _loinc("85354-9", "Blood pressure panel"),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"}, "effectiveDateTime": when,
            "component": [comp("8480-6", "Systolic blood pressure", sbp),
                          comp("8462-4", "Diastolic blood pressure", dbp)]}


def condition(cid: str, pid: str, eid: str, when: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid,
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                                 "display": "Diabetes mellitus type 2"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"}, "onsetDateTime": when}


def medication_request(mid: str, pid: str, eid: str, when: str) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975",
                "display": "metformin 500 MG"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"}, "authoredOn": when}


def procedure(prid: str, pid: str, eid: str, when: str) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": prid, "status": "completed",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "430193006",
                                 "display": "Medication reconciliation"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"}, "performedDateTime": when}


def immunization(iid: str, pid: str, eid: str, when: str, *, cvx: str = "140",
                 status: str = "completed") -> dict[str, Any]:
    return {"resourceType": "Immunization", "id": iid, "status": status,
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": cvx,
                                        "display": "Influenza, seasonal, injectable"}]},
            "patient": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "occurrenceDateTime": when}


def allergy(aid: str, pid: str, when: str, *, eid: str | None = None,
            verification: str = "confirmed") -> dict[str, Any]:
    """A penicillin allergy, recorded at `when` (in encounter `eid`, when given)."""
    system = "http://terminology.hl7.org/CodeSystem/allergyintolerance-"
    return {"resourceType": "AllergyIntolerance", "id": aid,
            **({"encounter": {"reference": f"Encounter/{eid}"}} if eid else {}),
            "clinicalStatus": {"coding": [{"system": system + "clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": system + "verification", "code": verification}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005",
                                 "display": "Allergy to penicillin"}]},
            "patient": {"reference": f"Patient/{pid}"}, "recordedDate": when}


def care_plan(cid: str, pid: str, eid: str, start: str) -> dict[str, Any]:
    def snomed(code: str, display: str) -> dict[str, Any]:
        return {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}

    return {"resourceType": "CarePlan", "id": cid, "status": "active", "intent": "order",
            "category": [snomed("53950000", "Respiratory therapy")],
            "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "period": {"start": start},
            "activity": [{"detail": {"status": "in-progress",
                                     "code": snomed("304510005", "Recommendation to avoid exercise")}},
                         {"detail": {"status": "in-progress",
                                     "code": snomed("304510005", "Recommendation to avoid exercise")}}]}


def medication_administration(mid: str, pid: str, eid: str, when: str, dose: float,
                              status: str = "completed") -> dict[str, Any]:
    return {"resourceType": "MedicationAdministration", "id": mid, "status": status,
            "medicationCodeableConcept": {"coding": [{
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1719",
                "display": "cefazolin"}]},
            "subject": {"reference": f"Patient/{pid}"}, "context": {"reference": f"Encounter/{eid}"},
            "effectiveDateTime": when,
            "dosage": {"dose": {"value": dose, "unit": "mg", "system": "http://unitsofmeasure.org",
                                "code": "mg"}}}


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def text_attachment(data: bytes | str, content_type: str = "text/plain; charset=utf-8") -> dict[str, Any]:
    return {"contentType": content_type, "data": b64(data)}


def diagnostic_report(rid: str, pid: str, eid: str, effective: str, issued: str,
                      texts: Sequence[bytes | str] = ()) -> dict[str, Any]:
    """A History and physical note report; each text a plain-text `presentedForm`."""
    r: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": rid, "status": "final",
                         "code": _loinc("34117-2", "History and physical note"),
                         "subject": {"reference": f"Patient/{pid}"},
                         "encounter": {"reference": f"Encounter/{eid}"},
                         "effectiveDateTime": effective, "issued": issued}
    if texts:
        r["presentedForm"] = [text_attachment(t) for t in texts]
    return r


def document_reference(did: str, pid: str, eid: str, date: str,
                       attachments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A History and physical note (LOINC 34117-2) with these attachments."""
    return {"resourceType": "DocumentReference", "id": did, "status": "current",
            "type": _loinc("34117-2", "History and physical note"),
            "subject": {"reference": f"Patient/{pid}"}, "date": date,
            "content": [{"attachment": a} for a in attachments],
            "context": {"encounter": [{"reference": f"Encounter/{eid}"}]}}


def one_patient(pid: str = "p1", eid: str = "e1", *, start: str = "2020-03-01T08:00:00Z",
                end: str = "2020-03-04T08:00:00Z", **patient_args: Any) -> list[dict[str, Any]]:
    """A patient, one encounter and one resource of each event type (6 events: BP has two)."""
    return [
        patient(pid, **patient_args), encounter(eid, pid, start, end),
        heart_rate(f"{eid}-hr", pid, eid, "2020-03-01T09:00:00Z", 88),
        blood_pressure(f"{eid}-bp", pid, eid, "2020-03-01T09:00:00Z", 120, 80),
        condition(f"{eid}-dx", pid, eid, "2020-03-01T10:00:00Z"),
        medication_request(f"{eid}-rx", pid, eid, "2020-03-01T11:00:00Z"),
        procedure(f"{eid}-px", pid, eid, "2020-03-02T11:00:00Z"),
    ]


def bundle(resources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r.get('id')}", "resource": r} for r in resources]}


def write_bundle(path: Path, resources: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle(resources), indent=1))
    return path


def write_ndjson(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    """One resource a line; a str is written as is (for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


# ---------------------------------------------------------------- test helpers


def record_calls(monkeypatch, module, name: str) -> list:
    """Wrap `module.name` to record the first argument of each call."""
    calls, original = [], getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls
