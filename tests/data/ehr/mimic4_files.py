"""A small MIMIC-IV release written by us, in MIMIC-IV v2.2/v3.1's exact column layout.

No MIMIC-IV data is available here, so these files stand in for it: 6 patients, 9 admissions,
3 ICU stays, with values as MIMIC-IV holds them (8-digit ids, shifted years, MetaVision item ids,
`EW EMER.` admissions, ICD-9 and ICD-10 codes). Tables go to ROOT/hosp and ROOT/icu, gzipped
unless `gz=False`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.data.ehr.builders import write_csv

HEADERS: dict[str, tuple[str, ...]] = {
    "hosp/patients": ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    "hosp/admissions": ("subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                        "admission_type", "admit_provider_id", "admission_location",
                        "discharge_location", "insurance", "language", "marital_status", "race",
                        "edregtime", "edouttime", "hospital_expire_flag"),
    "hosp/transfers": ("subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime",
                       "outtime"),
    "icu/icustays": ("subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime",
                     "outtime", "los"),
    "icu/chartevents": ("subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime",
                        "itemid", "value", "valuenum", "valueuom", "warning"),
    "hosp/labevents": ("labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid",
                       "order_provider_id", "charttime", "storetime", "value", "valuenum", "valueuom",
                       "ref_range_lower", "ref_range_upper", "flag", "priority", "comments"),
    "hosp/d_labitems": ("itemid", "label", "fluid", "category"),
    "icu/d_items": ("itemid", "label", "abbreviation", "linksto", "category", "unitname",
                    "param_type", "lownormalvalue", "highnormalvalue"),
    "icu/inputevents": ("subject_id", "hadm_id", "stay_id", "caregiver_id", "starttime", "endtime",
                        "storetime", "itemid", "amount", "amountuom", "rate", "rateuom", "orderid",
                        "linkorderid", "ordercategoryname", "secondaryordercategoryname",
                        "ordercomponenttypedescription", "ordercategorydescription", "patientweight",
                        "totalamount", "totalamountuom", "isopenbag", "continueinnextdept",
                        "statusdescription", "originalamount", "originalrate"),
    "icu/outputevents": ("subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime",
                         "itemid", "value", "valueuom"),
    "icu/procedureevents": ("subject_id", "hadm_id", "stay_id", "caregiver_id", "starttime", "endtime",
                            "storetime", "itemid", "value", "valueuom", "location", "locationcategory",
                            "orderid", "linkorderid", "ordercategoryname", "ordercategorydescription",
                            "patientweight", "isopenbag", "continueinnextdept", "statusdescription",
                            "originalamount", "originalrate"),
    "hosp/prescriptions": ("subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq",
                           "order_provider_id", "starttime", "stoptime", "drug_type", "drug",
                           "formulary_drug_cd", "gsn", "ndc", "prod_strength", "form_rx", "dose_val_rx",
                           "dose_unit_rx", "form_val_disp", "form_unit_disp", "doses_per_24_hrs", "route"),
    "hosp/emar": ("subject_id", "hadm_id", "emar_id", "emar_seq", "poe_id", "pharmacy_id",
                  "enter_provider_id", "charttime", "medication", "event_txt", "scheduletime",
                  "storetime"),
    "hosp/diagnoses_icd": ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"),
    "hosp/procedures_icd": ("subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"),
    "hosp/microbiologyevents": ("microevent_id", "subject_id", "hadm_id", "micro_specimen_id",
                                "order_provider_id", "chartdate", "charttime", "spec_itemid",
                                "spec_type_desc", "test_seq", "storedate", "storetime", "test_itemid",
                                "test_name", "org_itemid", "org_name", "isolate_num", "quantity",
                                "ab_itemid", "ab_name", "dilution_text", "dilution_comparison",
                                "dilution_value", "interpretation", "comments"),
    # MIMIC-IV-Note v2.2 (its own PhysioNet module: note/discharge.csv.gz, note/radiology.csv.gz)
    "note/discharge": ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                       "storetime", "text"),
    "note/radiology": ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                       "storetime", "text"),
}

# subject, gender, anchor_age, anchor_year, anchor_year_group, dod
PATIENTS = [
    (10000032, "F", 52, 2180, "2014 - 2016", "2180-09-09"),
    (10001217, "F", 55, 2157, "2011 - 2013", None),
    (10002428, "F", 80, 2156, "2011 - 2013", None),
    (10003400, "F", 72, 2134, "2011 - 2013", "2137-09-02"),   # dies on the day of discharge
    (10004235, "M", 47, 2196, "2014 - 2016", "2196-02-27"),
    (10005817, "M", 91, 2132, "2014 - 2016", None),           # older than 89: de-identified as 91
]
# subject, hadm, admit, discharge, death, type, location, discharge location, insurance, race, flag
ADMISSIONS = [
    (10000032, 22595853, "2180-05-06 22:23:00", "2180-05-07 17:15:00", None, "URGENT",
     "TRANSFER FROM HOSPITAL", "HOME", "Other", "WHITE", 0),
    (10000032, 22841357, "2180-06-26 18:27:00", "2180-06-27 18:49:00", None, "EW EMER.",
     "EMERGENCY ROOM", "HOME", "Medicaid", "WHITE", 0),
    (10000032, 29079034, "2180-07-23 12:35:00", "2180-07-25 17:55:00", None, "EW EMER.",
     "EMERGENCY ROOM", "HOME", "Medicaid", "WHITE", 0),       # 25.7 days after the one before
    (10001217, 24597018, "2157-11-18 22:56:00", "2157-11-25 18:00:00", None, "EW EMER.",
     "EMERGENCY ROOM", "HOME HEALTH CARE", "Other", "WHITE", 0),
    (10001217, 27703517, "2157-12-18 16:58:00", "2157-12-24 14:55:00", None, "DIRECT EMER.",
     "PHYSICIAN REFERRAL", "HOME HEALTH CARE", "Other", "WHITE", 0),
    (10002428, 28662225, "2156-04-12 14:16:00", "2156-04-29 16:26:00", None, "EW EMER.",
     "EMERGENCY ROOM", "CHRONIC/LONG TERM ACUTE CARE", "Medicare", "WHITE", 0),
    (10003400, 23559586, "2137-08-04 00:07:00", "2137-09-02 17:05:00", None, "OBSERVATION ADMIT",
     "EMERGENCY ROOM", "HOSPICE", "Medicare", "BLACK/AFRICAN AMERICAN", 0),
    (10004235, 24181354, "2196-02-24 14:38:00", "2196-02-27 12:00:00", "2196-02-27 12:00:00",
     "URGENT", "TRANSFER FROM HOSPITAL", "DIED", "Medicaid", "BLACK/CAPE VERDEAN", 1),
    (10005817, 20626031, "2132-12-12 01:43:00", "2132-12-20 15:04:00", None, "EW EMER.",
     "EMERGENCY ROOM", "HOME HEALTH CARE", "Medicare", "WHITE", 0),
]
ICUSTAYS = [
    (10000032, 29079034, 39553978, "Medical Intensive Care Unit (MICU)",
     "Medical Intensive Care Unit (MICU)", "2180-07-23 14:00:00", "2180-07-23 23:50:47", 0.4102),
    (10002428, 28662225, 33987268, "Medical Intensive Care Unit (MICU)",
     "Medical Intensive Care Unit (MICU)", "2156-04-12 16:24:18", "2156-04-17 15:57:08", 4.9811),
    (10004235, 24181354, 34100191, "Surgical Intensive Care Unit (SICU)",
     "Surgical Intensive Care Unit (SICU)", "2196-02-24 16:17:25", "2196-02-27 12:00:00", 2.8213),
]
TRANSFERS = [
    (10002428, 28662225, 36231445, "ED", "Emergency Department", "2156-04-12 09:56:00",
     "2156-04-12 16:24:18"),
    (10002428, 28662225, 33987268, "admit", "Medical Intensive Care Unit (MICU)",
     "2156-04-12 16:24:18", "2156-04-17 15:57:08"),
    (10002428, 28662225, 38875437, "transfer", "Medicine", "2156-04-17 15:57:08",
     "2156-04-29 16:26:00"),
    (10002428, 28662225, 34703856, "discharge", None, "2156-04-29 16:26:00", None),
    (10000032, None, 35223874, "ED", "Emergency Department", "2180-08-05 20:58:00",
     "2180-08-06 01:44:00"),                                   # an ED visit without admission
]


def chart(subject: int, hadm: int, stay: int, time: str, itemid: int, value: Any,
          valuenum: Any, uom: str | None, warning: int = 0) -> tuple:
    """One chartevents row (caregiver and storetime as MIMIC-IV fills them)."""
    return (subject, hadm, stay, 18524, time, time, itemid, value, valuenum, uom, warning)


CHARTEVENTS = [
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220045, "92", 92, "bpm"),
    chart(10002428, 28662225, 33987268, "2156-04-12 18:00:00", 220045, "400", 400, "bpm"),  # impossible
    chart(10002428, 28662225, 33987268, "2156-04-12 19:00:00", 220045, "151", 151, "bpm", 1),  # warning
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220210, "22", 22, "insp/min"),
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220277, "96", 96, "%"),
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220179, "118", 118, "mmHg"),
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 223762, "37.2", 37.2, "°C"),
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220739, "Spontaneously", 4, None),
    chart(10002428, 28662225, 33987268, "2156-04-12 17:00:00", 220048, "SR (Sinus Rhythm)", None, None),
    chart(10004235, 24181354, 34100191, "2196-02-24 17:00:00", 220045, "105", 105, "bpm"),
]


def lab(labevent_id: int, subject: int, hadm: int | None, itemid: int, time: str, value: str,
        valuenum: float | None, uom: str | None, low: float | None = None,
        high: float | None = None, flag: str | None = None) -> tuple:
    """One labevents row."""
    return (labevent_id, subject, hadm, labevent_id * 7, itemid, "P23SAM", time, time, value,
            valuenum, uom, low, high, flag, "ROUTINE", None)


LABEVENTS = [
    lab(1001, 10002428, 28662225, 50912, "2156-04-12 15:10:00", "1.1", 1.1, "mg/dL", 0.4, 1.1),
    lab(1002, 10002428, 28662225, 50813, "2156-04-12 15:10:00", "2.8", 2.8, "mmol/L", 0.5, 2.0,
        "abnormal"),
    lab(1003, 10002428, 28662225, 51508, "2156-04-13 08:02:00", "Yellow", None, None),
    lab(1004, 10000032, None, 50971, "2180-03-23 11:51:00", "4.1", 4.1, "mEq/L", 3.3, 5.1),  # outpatient
]
D_LABITEMS = [(50912, "Creatinine", "Blood", "Chemistry"), (50813, "Lactate", "Blood", "Blood Gas"),
              (50971, "Potassium", "Blood", "Chemistry"), (51508, "Urine Color", "Urine", "Hematology")]
D_ITEMS = [
    (220045, "Heart Rate", "HR", "chartevents", "Routine Vital Signs", "bpm", "Numeric", None, None),
    (220210, "Respiratory Rate", "RR", "chartevents", "Respiratory", "insp/min", "Numeric", None, None),
    (220048, "Heart Rhythm", "Heart Rhythm", "chartevents", "Routine Vital Signs", None, "Text", None,
     None),
    (225158, "NaCl 0.9%", "NaCl 0.9%", "inputevents", "Fluids/Intake", "mL", "Solution", None, None),
]
INPUTEVENTS = [
    (10002428, 28662225, 33987268, 18524, "2156-04-12 17:30:00", "2156-04-12 18:30:00",
     "2156-04-12 17:35:00", 225158, 500, "ml", 500, "mL/hour", 4445123, 4445123,
     "02-Fluids (Crystalloids)", None, "Main order parameter", "Continuous IV", 62.5, 500, "ml", 0, 0,
     "FinishedRunning", 500, 500),
]
OUTPUTEVENTS = [(10002428, 28662225, 33987268, 18524, "2156-04-12 20:00:00", "2156-04-12 20:05:00",
                 226559, 350, "ml")]
PROCEDUREEVENTS = [
    (10004235, 24181354, 34100191, 18524, "2196-02-24 16:30:00", "2196-02-25 16:30:00",
     "2196-02-24 16:45:00", 225792, 1440, "min", None, None, 7005642, 7005642, "Ventilation",
     "Task", 81.0, 0, 0, "FinishedRunning", 1440, 0),
]


def prescription(hadm: int, pharmacy_id: int, time: str, drug: str, ndc: str | None,
                 dose: str, unit: str, route: str) -> tuple:
    """One prescriptions row of patient 10002428."""
    return (10002428, hadm, pharmacy_id, f"10002428-{pharmacy_id % 100}", pharmacy_id % 100, "P23SAM",
            time, "2156-04-20 12:00:00", "MAIN", drug, "HEPA5I", "006549", ndc, "1 Vial", "VIAL",
            dose, unit, "1", "VIAL", 3, route)


PRESCRIPTIONS = [
    prescription(28662225, 4011, "2156-04-12 18:00:00", "Heparin", "63323026201", "5000", "UNIT", "SC"),
    prescription(28662225, 4012, "2156-04-12 18:00:00", "Sodium Chloride 0.9%  Flush", "0", "3",
                 "mL", "IV"),
    prescription(28662225, 4013, "2156-04-12 19:00:00", "0.9% Sodium Chloride", "00338004904",
                 "1000", "mL", "IV"),
]
EMAR = [
    (10002428, 28662225, "10002428-101", 101, "10002428-11", 4011, "P23SAM", "2156-04-12 21:07:00",
     "Heparin", "Administered", "2156-04-12 21:00:00", "2156-04-12 21:07:00"),
    (10002428, 28662225, "10002428-102", 102, "10002428-11", 4011, "P23SAM", "2156-04-13 05:02:00",
     "Heparin", "Not Given", "2156-04-13 05:00:00", "2156-04-13 05:02:00"),
]
DIAGNOSES = [
    (10000032, 22595853, 1, "5723", 9), (10000032, 22595853, 2, "78959", 9),
    (10002428, 28662225, 1, "A419", 10), (10002428, 28662225, 2, "N179", 10),
    (10004235, 24181354, 1, "I214", 10),
]
PROCEDURES = [(10000032, 22595853, 1, "2180-05-07", "5491", 9),
              (10002428, 28662225, 1, "2156-04-13", "5A1955Z", 10)]


def micro(microevent_id: int, subject: int, hadm: int | None, chartdate: str, charttime: str | None,
          spec: str, org: str | None, antibiotic: str | None) -> tuple:
    """One microbiologyevents row: MIMIC-IV repeats the organism once per antibiotic tested."""
    return (microevent_id, subject, hadm, 7001, "P23SAM", chartdate, charttime, 70012, spec, 1,
            chartdate, charttime, 90201, "Blood Culture, Routine", 80002 if org else None, org,
            1 if org else None, None, 90 if antibiotic else None, antibiotic, "<=1",
            "<=" if antibiotic else None, 1 if antibiotic else None, "S" if antibiotic else None, None)


MICROBIOLOGY = [
    micro(1, 10002428, 28662225, "2156-04-12 00:00:00", "2156-04-12 10:15:00", "BLOOD CULTURE",
          "ESCHERICHIA COLI", "CEFTRIAXONE"),
    micro(2, 10002428, 28662225, "2156-04-12 00:00:00", "2156-04-12 10:15:00", "BLOOD CULTURE",
          "ESCHERICHIA COLI", "GENTAMICIN"),
    micro(3, 10004235, 24181354, "2196-02-24 00:00:00", None, "URINE", None, None),
]
DISCHARGE_NOTES = [
    ("10002428-DS-12", 10002428, 28662225, "DS", 12, "2156-04-29 00:00:00", "2156-04-29 17:45:00",
     "Name: ___ Unit No: ___\nDischarge Diagnosis: urosepsis, acute kidney injury.\n"
     "No pneumonia on chest film. Discharged to long term acute care."),
]
RADIOLOGY_NOTES = [
    ("10002428-RR-7", 10002428, 28662225, "RR", 7, "2156-04-12 11:20:00", "2156-04-12 12:02:00",
     "FINDINGS: Small left pleural effusion. No pneumothorax."),
    ("10000032-RR-3", 10000032, None, "RR", 3, "2180-03-23 10:05:00", "2180-03-23 10:40:00",
     "IMPRESSION: No acute cardiopulmonary process."),          # outpatient: no admission
]

TABLES: dict[str, list[tuple]] = {
    "hosp/patients": PATIENTS,
    "hosp/admissions": [(s, h, a, d, death, kind, "P49AFC", loc, dloc, ins, "ENGLISH", "WIDOWED", race,
                         None, None, flag)
                        for s, h, a, d, death, kind, loc, dloc, ins, race, flag in ADMISSIONS],
    "hosp/transfers": TRANSFERS, "icu/icustays": ICUSTAYS, "icu/chartevents": CHARTEVENTS,
    "hosp/labevents": LABEVENTS, "hosp/d_labitems": D_LABITEMS, "icu/d_items": D_ITEMS,
    "icu/inputevents": INPUTEVENTS, "icu/outputevents": OUTPUTEVENTS,
    "icu/procedureevents": PROCEDUREEVENTS, "hosp/prescriptions": PRESCRIPTIONS, "hosp/emar": EMAR,
    "hosp/diagnoses_icd": DIAGNOSES, "hosp/procedures_icd": PROCEDURES,
    "hosp/microbiologyevents": MICROBIOLOGY,
    "note/discharge": DISCHARGE_NOTES, "note/radiology": RADIOLOGY_NOTES,
}


def write_table(root: Path, table: str, rows: Iterable[Sequence[Any]], *, gz: bool = True,
                header: Sequence[str] | None = None) -> Path:
    """ROOT/MODULE/NAME.csv.gz (or .csv) for `MODULE/NAME`, with MIMIC-IV's header unless given."""
    path = root / f"{table}.csv{'.gz' if gz else ''}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, header or HEADERS[table], rows)


def write_mimic4(root: Path, *, gz: bool = True, tables: Iterable[str] | None = None) -> Path:
    """Write the release (all tables, or the named ones) into ROOT/hosp, ROOT/icu and ROOT/note."""
    for table in tables or TABLES:
        write_table(root, table, TABLES[table], gz=gz)
    return root
