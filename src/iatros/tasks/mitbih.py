"""Heartbeat classes (AAMI N, S, V, F, Q) on the MIT-BIH Arrhythmia Database, inter-patient.

de Chazal et al. (2004) split the 44 non-paced records into DS1 (training) and DS2 (test) so that
no patient's beats train and test one model. The loader reads every DS1 and DS2 record present in
`DATA_ROOT/mitbih_arrhythmia/mitdb/` (PhysioNet's layout: 100.hea, 100.dat, 100.atr, ...):
- with both sets present (a full copy) the split is theirs: DS1 trains (validation carved from it
  by record), DS2 is the test set, and `iatros evaluate RUN --data-root FULL` scores DS2;
- with DS1 only (the shared data) records are split by patient inside DS1 as for any task; use
  `train --cv K` for record-level cross-validation over DS1.
Paced records (102, 104, 107, 217) are left out, as in the protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.signals import clean_ecg, read_annotations, read_signal, resample
from iatros.data.signals.beats import AAMI_CLASSES, aami_beats, beat_feature_names, beat_rows
from iatros.errors import CorruptDataError, IatrosError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.attributes import age_groups
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task

log = logging.getLogger("iatros")

MITDB = Path("mitbih_arrhythmia") / "mitdb"
MITDB_URL = "https://physionet.org/content/mitdb/1.0.0/"
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201",
       "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213",
       "214", "219", "221", "222", "228", "231", "232", "233", "234")
PACED = ("102", "104", "107", "217")
SAME_PATIENT = {"202": "201"}  # records 201 and 202 come from one man (the database's notes)
BEATS_FS = 360.0
LEAD = "MLII"


@dataclass
class BeatRecords:
    """Rows of every usable record, and each record left out with its reason."""

    rows: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)
    sexes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.int64)
        counts = np.bincount(labels, minlength=len(AAMI_CLASSES))
        sets = [f"{name} {sum(r in ids for r in self.records)}" for name, ids in
                (("DS1", DS1), ("DS2", DS2)) if any(r in ids for r in self.records)]
        text = (f"{len(labels)} beats of {len(self.records)} records ({', '.join(sets) or 'none'}; "
                + ", ".join(f"{c} {n}" for c, n in zip(AAMI_CLASSES, counts, strict=True)) + ")")
        if self.skipped:
            text += "; skipped " + "; ".join(f"{r}: {why}" for r, why in self.skipped)
        return text


def header_age_sex(header: Path) -> tuple[float, str]:
    """Age and sex from the first comment line of an MIT-BIH header ("# 69 M 1085 1629 x1")."""
    for line in header.read_text(errors="replace").splitlines():
        if line.startswith("#"):
            tokens = line[1:].split()
            age = float(tokens[0]) if tokens and tokens[0].isdigit() else float("nan")
            sex = tokens[1] if len(tokens) > 1 and tokens[1] in ("M", "F") else "unknown"
            return age, sex
    return float("nan"), "unknown"


def record_beat_rows(header: Path) -> tuple[np.ndarray, np.ndarray]:
    """(rows, AAMI labels) of one annotated record: lead MLII at 360 Hz, reference beat positions."""
    signal = read_signal(header, channels=[LEAD])
    if abs(signal.fs - BEATS_FS) > 1e-6:
        scale = BEATS_FS / signal.fs
        signal = resample(signal, BEATS_FS)
    else:
        scale = 1.0
    problems = signal.problems()
    if problems:
        raise CorruptDataError(f"{header}: {'; '.join(problems)}")
    beats = aami_beats(read_annotations(header, "atr"))
    if len(beats) < 2:
        raise CorruptDataError(f"{header}: {len(beats)} labelled beat(s) in its .atr; need 2 or more")
    samples = np.round(beats.samples * scale).astype(np.int64)
    cleaned = clean_ecg(signal.data[:, 0], BEATS_FS)
    return beat_rows(cleaned, samples, BEATS_FS), beats.labels


def read_beat_records(base: Path, names: tuple[str, ...] = DS1 + DS2) -> BeatRecords:
    """Every record of `names` with a header and reference annotations under `base`; a record
    that cannot be read is skipped and named with its reason, never dropped silently."""
    out = BeatRecords()
    for name in names:
        header = base / f"{name}.hea"
        if not header.is_file():
            continue
        if not (base / f"{name}.atr").is_file():
            out.skipped.append((name, "no reference annotations (.atr)"))
            continue
        try:
            rows, labels = record_beat_rows(header)
        except IatrosError as e:
            out.skipped.append((name, str(e)))
            continue
        age, sex = header_age_sex(header)
        out.rows.append(rows)
        out.labels.append(labels)
        out.records.append(name)
        out.ages.append(age)
        out.sexes.append(sex)
    for name, why in out.skipped:
        log.warning("mitbih-beats: skipped record %s: %s", name, why)
    return out


def _load_beats(root: Path) -> TaskData:
    base = Path(root) / MITDB
    records = read_beat_records(base)
    if not records.records:
        raise MissingDataError(
            f"MIT-BIH Arrhythmia records not found: expected {base / '101.hea'} with 101.dat and "
            f"101.atr (de Chazal's DS1 and/or DS2 records); download them from {MITDB_URL} into "
            f"{base}" + (f" ({records.summary()})" if records.skipped else ""))
    sizes = [len(labels) for labels in records.labels]
    per_beat = {key: np.repeat(np.asarray(values, dtype=object), sizes) for key, values in
                (("record", records.records), ("sex", records.sexes))}
    ages = np.repeat(np.asarray(records.ages, dtype=float), sizes)
    in_ds2 = np.isin(per_beat["record"], DS2)
    has_both = in_ds2.any() and (~in_ds2).any()
    patients = np.array([SAME_PATIENT.get(r, r) for r in per_beat["record"]], dtype=object)
    attributes = pd.DataFrame({"sex": per_beat["sex"].astype(str),
                               "age_group": age_groups(pd.Series(ages)).to_numpy()})
    return TaskData(
        inputs=np.vstack(records.rows), targets=np.concatenate(records.labels),
        patient_ids=patients, attributes=attributes,
        feature_names=beat_feature_names(BEATS_FS),
        split=np.where(in_ds2, "test", "train") if has_both else None,
        source=f"mitbih:{base}: {records.summary()}")


MITBIH_BEATS = register_task(Task(
    name="mitbih-beats",
    description="AAMI class of each heartbeat (N normal/bundle branch, S supraventricular ectopic, "
                "V ventricular ectopic, F fusion, Q unclassifiable) from lead MLII and RR "
                "intervals (MIT-BIH Arrhythmia Database, inter-patient)",
    modality=Modality.SIGNAL, target=TargetKind.MULTICLASS, loader=_load_beats,
    classes=AAMI_CLASSES, sensitive_attributes=("sex", "age_group"),
    metrics=("f1", "balanced_accuracy", "accuracy", "auroc", "auprc", "kappa", "brier", "ece"),
    primary_metric="f1", default_model="beat-logreg", models=("beat-logreg", "beat-gbm", "beat-cnn"),
    split_by="record (one patient each; 201 and 202 are one man and share an id); DS1 / DS2 "
             "when both are present",
    source=f"MIT-BIH Arrhythmia Database (Moody & Mark 2001; ODC-BY 1.0): {MITDB_URL}; AAMI "
           f"EC57 classes, de Chazal et al. 2004 inter-patient DS1 / DS2",
    intended_use="Research: beat-by-beat class of a two-lead ambulatory ECG at known beat "
                 "positions; not a diagnostic device.",
    limitations=(
        "48 half-hour Holter records of 47 patients from 1975-79; 22 records per set, so scores "
        "move a lot with which records are held out.",
        "Beat positions are the reference annotations (as in the protocol); on a new recording "
        "they would come from an R-peak detector, which misses or adds a few beats.",
        "Q (unclassifiable) beats are very rare outside paced records (a handful in DS1): its "
        "scores mean little.",
        "Only lead MLII is used; records without it are skipped and named.",
    ),
    train_params={"balance": True, "batch_size": 256},
    extra={"fs": BEATS_FS},
))
