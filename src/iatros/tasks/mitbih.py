"""MIT-BIH Arrhythmia Database tasks, inter-patient: heartbeat classes (AAMI N, S, V, F, Q) and
atrial fibrillation in 30-second windows (from the rhythm annotations).

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

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.signals import clean_ecg, read_annotations, read_signal, resample
from iatros.data.signals.beats import (
    AAMI_CLASSES,
    BEAT_LEAD,
    BEATS_FS,
    aami_beats,
    beat_feature_names,
    beat_rows,
)
from iatros.data.signals.record import Signal
from iatros.data.signals.rhythm import rhythm_episodes, rhythm_fraction, window_starts
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
AF_WINDOW_S = 30.0
AF_WINDOW_FS = 300.0  # the rate af-ecg's models and signals:FOLDER use
AF_MIN_FRACTION = 0.5
AF_CLASSES = ("non-AF", "AF")


@dataclass
class MitbihRows:
    """Rows of every usable record, and each record left out with its reason."""

    classes: tuple[str, ...]
    unit: str
    rows: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)
    sexes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.int64)
        counts = np.bincount(labels, minlength=len(self.classes))
        sets = [f"{name} {sum(r in ids for r in self.records)}" for name, ids in
                (("DS1", DS1), ("DS2", DS2)) if any(r in ids for r in self.records)]
        text = (f"{len(labels)} {self.unit} of {len(self.records)} records "
                f"({', '.join(sets) or 'none'}; "
                + ", ".join(f"{c} {n}" for c, n in zip(self.classes, counts, strict=True)) + ")")
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


def read_lead(header: Path, fs: float) -> tuple[Signal, float]:
    """Lead MLII of a record at `fs` Hz (resampled when stored otherwise), and the factor that
    takes the record's annotation samples to the returned rate."""
    signal = read_signal(header, channels=[BEAT_LEAD])
    scale = fs / signal.fs
    if abs(signal.fs - fs) > 1e-6:
        signal = resample(signal, fs)
    problems = signal.problems()
    if problems:
        raise CorruptDataError(f"{header}: {'; '.join(problems)}")
    return signal, scale


def record_beat_rows(header: Path) -> tuple[np.ndarray, np.ndarray]:
    """(rows, AAMI labels) of one annotated record: lead MLII at 360 Hz, reference beat positions."""
    signal, scale = read_lead(header, BEATS_FS)
    beats = aami_beats(read_annotations(header, "atr"))
    if len(beats) < 2:
        raise CorruptDataError(f"{header}: {len(beats)} labelled beat(s) in its .atr; need 2 or more")
    samples = np.round(beats.samples * scale).astype(np.int64)
    cleaned = clean_ecg(signal.data[:, 0], BEATS_FS)
    return beat_rows(cleaned, samples, BEATS_FS), beats.labels


def record_af_windows(header: Path) -> tuple[np.ndarray, np.ndarray]:
    """(30 s windows at 300 Hz, 1 where atrial fibrillation covers at least half the window) of
    one record, from lead MLII and the rhythm annotations ("(AFIB")."""
    signal, scale = read_lead(header, AF_WINDOW_FS)
    x = signal.data[:, 0].astype(np.float32)
    annotations = read_annotations(header, "atr")
    episodes = rhythm_episodes([dataclasses.replace(a, sample=int(round(a.sample * scale)))
                                for a in annotations], len(x))
    length = int(round(AF_WINDOW_S * AF_WINDOW_FS))
    starts = window_starts(len(x), length)
    if not len(starts):
        raise CorruptDataError(f"{header}: shorter than one {AF_WINDOW_S:g} s window")
    windows = np.stack([x[s:s + length] for s in starts])
    labels = np.array([rhythm_fraction(episodes, s, s + length, "AFIB") >= AF_MIN_FRACTION
                       for s in starts], dtype=np.int64)
    return windows, labels


def read_mitbih(base: Path, read: Callable[[Path], tuple[np.ndarray, np.ndarray]],
                classes: tuple[str, ...], unit: str,
                names: tuple[str, ...] = DS1 + DS2) -> MitbihRows:
    """`read(header)` of every record of `names` with a header and reference annotations under
    `base`; a record that cannot be read is skipped and named with its reason, never dropped
    silently."""
    out = MitbihRows(classes=classes, unit=unit)
    for name in names:
        header = base / f"{name}.hea"
        if not header.is_file():
            continue
        if not (base / f"{name}.atr").is_file():
            out.skipped.append((name, "no reference annotations (.atr)"))
            continue
        try:
            rows, labels = read(header)
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
        log.warning("MIT-BIH: skipped record %s: %s", name, why)
    return out


def read_beat_records(base: Path, names: tuple[str, ...] = DS1 + DS2) -> MitbihRows:
    """The beat rows of every DS1 / DS2 record under `base` (see `read_mitbih`)."""
    return read_mitbih(base, record_beat_rows, AAMI_CLASSES, "beats", names)


def _one_side_per_patient(records: MitbihRows) -> MitbihRows:
    """With both sets present, a DS2 record of a DS1 patient (202, the man of 201) is left out
    and named: otherwise one patient would train and test the same model."""
    if not (set(records.records) & set(DS1) and set(records.records) & set(DS2)):
        return records
    for k in reversed(range(len(records.records))):
        name = records.records[k]
        first = SAME_PATIENT.get(name)
        if name in DS2 and first in records.records and first in DS1:
            for column in (records.rows, records.labels, records.records, records.ages,
                           records.sexes):
                del column[k]
            records.skipped.append((name, f"the same patient as DS1 record {first}, which trains; "
                                          f"left out of the test set so no patient is on both sides"))
    return records


def _task_data(base: Path, records: MitbihRows, feature_names: list[str] | None) -> TaskData:
    """One row per beat or window: patient = record, DS2 the test set when DS1 is there too."""
    records = _one_side_per_patient(records)
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
        patient_ids=patients, attributes=attributes, feature_names=feature_names,
        split=np.where(in_ds2, "test", "train") if has_both else None,
        source=f"mitbih:{base}: {records.summary()}")


def _load_beats(root: Path) -> TaskData:
    base = Path(root) / MITDB
    return _task_data(base, read_beat_records(base), beat_feature_names(BEATS_FS))


def _load_af_windows(root: Path) -> TaskData:
    base = Path(root) / MITDB
    return _task_data(base, read_mitbih(base, record_af_windows, AF_CLASSES, "windows"), None)


MITBIH_BEATS = register_task(Task(
    name="mitbih-beats",
    description="AAMI class of each heartbeat (N normal/bundle branch, S supraventricular ectopic, "
                "V ventricular ectopic, F fusion, Q unclassifiable) from lead MLII and RR "
                "intervals (MIT-BIH Arrhythmia Database, inter-patient)",
    modality=Modality.BEATS, target=TargetKind.MULTICLASS, loader=_load_beats,
    classes=AAMI_CLASSES, sensitive_attributes=("sex", "age_group"),
    metrics=("f1", "balanced_accuracy", "accuracy", "auroc", "auprc", "kappa", "brier", "ece"),
    primary_metric="f1", default_model="beat-cnn", models=("beat-cnn", "beat-logreg", "beat-gbm"),
    split_by="record (one patient each; 201 and 202 are one man and share an id, 202 left out "
             "when 201 trains); DS1 / DS2 when both are present",
    source=f"MIT-BIH Arrhythmia Database (Moody & Mark 2001; ODC-BY 1.0): {MITDB_URL}; AAMI "
           f"EC57 classes, de Chazal et al. 2004 inter-patient DS1 / DS2",
    intended_use="Research: beat-by-beat class of a two-lead ambulatory ECG at known beat "
                 "positions; not a diagnostic device.",
    limitations=(
        "48 half-hour Holter records of 47 patients from 1975-79; 22 records per set, so scores "
        "move a lot with which records are held out.",
        "Beat positions are the reference annotations (as in the protocol); on a new recording "
        "(`predict`) they come from an R-peak detector, which misses or adds a few beats.",
        "Q (unclassifiable) beats are very rare outside paced records (a handful in DS1): its "
        "scores mean little.",
        "Only lead MLII is used; records without it are skipped and named.",
    ),
    train_params={"balance": True, "batch_size": 256},
    extra={"fs": BEATS_FS},
))


MITBIH_AF = register_task(Task(
    name="mitbih-af",
    description="Atrial fibrillation in 30-second windows of a Holter ECG (lead MLII resampled to "
                "300 Hz; AF when the rhythm annotations mark AFIB over at least half the window), "
                "MIT-BIH Arrhythmia Database, inter-patient",
    modality=Modality.SIGNAL, target=TargetKind.BINARY, loader=_load_af_windows,
    classes=AF_CLASSES, sensitive_attributes=("sex", "age_group"),
    metrics=("auroc", "auprc", "sensitivity", "specificity", "f1", "balanced_accuracy", "brier",
             "ece"),
    primary_metric="auroc", default_model="hrv-gbm", models=("hrv-gbm", "resnet1d"),
    split_by="record (one patient each; 201 and 202 share an id); DS1 / DS2 when both are present",
    source=f"MIT-BIH Arrhythmia Database rhythm annotations (Moody & Mark 2001; ODC-BY 1.0): "
           f"{MITDB_URL}",
    intended_use="Research: flagging atrial fibrillation episodes in ambulatory ECG, 30 s at a "
                 "time; not a diagnostic device.",
    limitations=(
        "DS1 holds atrial fibrillation in two patients (records 201 and 203): a model trained on "
        "DS1 alone has seen AF in one or two people, and a split or fold with no AF record "
        "cannot score sensitivity. A full copy adds DS2's AF records as the test set.",
        "Atrial flutter (AFL) windows count as non-AF, as the rhythm annotations separate them.",
        "Windows are whole 30 s stretches; an episode shorter than 15 s inside one window is "
        "labelled by the rhythm covering most of it.",
    ),
    model_params={"fs": AF_WINDOW_FS, "length_s": AF_WINDOW_S, "augment": {"crop": False,
                                                                          "scale": 0.2}},
    train_params={"balance": True, "batch_size": 32},
    extra={"fs": AF_WINDOW_FS},
))
