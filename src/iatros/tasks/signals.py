"""Signal tasks: atrial fibrillation from a single-lead ECG (PhysioNet/CinC Challenge 2017)."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.signals import read_signal
from iatros.errors import CorruptDataError, IatrosError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task

log = logging.getLogger("iatros")

AF_FOLDER = "physionet2017_af"
AF_PARTS = ("training2017", "validation")  # read in this order; a record seen twice keeps its first copy
AF_LABELS = {"N": 0, "A": 1, "O": 2, "~": 3}
AF_CLASSES = ("Normal", "AF", "Other", "Noisy")
AF_FS = 300.0
AF_URL = "https://physionet.org/content/challenge-2017/1.0.0/"


@dataclass
class AfRecords:
    """Readable records of the challenge layout, and every record left out with its reason."""

    names: list[str] = field(default_factory=list)
    signals: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(AF_CLASSES))
        text = (f"{len(self.names)} records (" +
                ", ".join(f"{c} {n}" for c, n in zip(AF_CLASSES, counts, strict=True)) + ")")
        if self.duplicates:
            text += f"; {len(self.duplicates)} duplicate record name(s) kept once"
        if self.skipped:
            shown = "; ".join(f"{name}: {why}" for name, why in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            text += f"; {len(self.skipped)} skipped ({shown}{more})"
        return text


def _references(path: Path) -> list[tuple[int, str, str]]:
    """(line, record, label) rows of a challenge REFERENCE.csv."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(k, [c.strip() for c in row]) for k, row in enumerate(csv.reader(f), start=1)]
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptDataError(f"{path}: cannot read the reference labels ({e})") from e
    out = []
    for line, row in rows:
        if not any(row):
            continue
        if len(row) < 2:
            raise CorruptDataError(f"{path} line {line}: expected 'record,label', got {','.join(row)!r}")
        out.append((line, row[0], row[1]))
    return out


def read_af_records(base: Path, *, limit: int | None = None) -> AfRecords:
    """Records of `base/training2017` then `base/validation` (each with its REFERENCE.csv).

    The challenge's validation set is a subset of its training set: a record name already read
    is kept once (counted in `duplicates`; a label that differs is a skip naming both). A record
    that cannot be read, is not at 300 Hz, has no usable samples or carries an unknown label is
    skipped and named with its reason, never dropped silently. `limit` reads the first N labels
    of each part (tests)."""
    parts = [base / p for p in AF_PARTS if (base / p / "REFERENCE.csv").is_file()]
    if not parts:
        raise MissingDataError(
            f"PhysioNet/CinC 2017 AF data not found: expected {base / AF_PARTS[0] / 'REFERENCE.csv'} "
            f"beside the records (A00001.hea + A00001.mat, ...); download training2017.zip from "
            f"{AF_URL} and unpack it into {base}")
    records = AfRecords()
    seen: dict[str, int] = {}
    for folder in parts:
        references = _references(folder / "REFERENCE.csv")
        for line, name, label in references[:limit]:
            where = f"{folder.name}/{name}"
            if label not in AF_LABELS:
                records.skipped.append((where, f"REFERENCE.csv line {line}: label {label!r} is not one "
                                               f"of {', '.join(AF_LABELS)}"))
                continue
            if name in seen:
                records.duplicates.append(where)
                first = records.labels[seen[name]]
                if first != AF_LABELS[label]:
                    records.skipped.append((where, f"duplicate of {records.parts[seen[name]]}/{name} "
                                                   f"with a different label ({label} vs "
                                                   f"{list(AF_LABELS)[first]}); the first is kept"))
                continue
            try:
                signal = read_signal(folder / f"{name}.hea")
            except IatrosError as e:
                records.skipped.append((where, str(e)))
                continue
            problem = _problem(signal)
            if problem:
                records.skipped.append((where, problem))
                continue
            seen[name] = len(records.names)
            records.names.append(name)
            records.signals.append(signal.data[:, 0].astype(np.float32))
            records.labels.append(AF_LABELS[label])
            records.parts.append(folder.name)
    for where, why in records.skipped:
        log.warning("af-ecg: skipped %s: %s", where, why)
    return records


def _problem(signal) -> str:
    """Why a readable recording is still unusable here, or ''."""
    if signal.n_channels != 1:
        return f"expected one ECG lead, found {signal.n_channels} channels {signal.channels}"
    if abs(signal.fs - AF_FS) > 1e-6:
        return f"sampled at {signal.fs:g} Hz, not {AF_FS:g} Hz"
    problems = signal.problems()
    return "; ".join(problems)


def _load_af(root: Path) -> TaskData:
    base = Path(root) / AF_FOLDER
    records = read_af_records(base)
    if not records.names:
        raise CorruptDataError(f"{base}: no readable records ({records.summary()})")
    inputs = np.empty(len(records.signals), dtype=object)
    inputs[:] = records.signals
    return TaskData(inputs=inputs, targets=np.asarray(records.labels, dtype=np.int64),
                    patient_ids=np.asarray(records.names),
                    attributes=pd.DataFrame(index=range(len(records.names))),
                    source=f"physionet2017_af:{base}: {records.summary()}")


AF_ECG = register_task(Task(
    name="af-ecg",
    description="Normal rhythm, atrial fibrillation, other rhythm or too noisy, from a 9-61 s "
                "single-lead ECG at 300 Hz (PhysioNet/CinC Challenge 2017)",
    modality=Modality.SIGNAL, target=TargetKind.MULTICLASS, loader=_load_af, classes=AF_CLASSES,
    metrics=("challenge_f1", "f1", "auroc", "auprc", "accuracy", "balanced_accuracy", "kappa",
             "brier", "ece"),
    primary_metric="challenge_f1", default_model="resnet1d", models=("resnet1d", "hrv-gbm"),
    split_by="recording (one per patient: the challenge publishes no patient ids)",
    source=f"PhysioNet/CinC Challenge 2017 training set (AliveCor single-lead ECGs; ODC-BY 1.0): "
           f"{AF_URL}",
    intended_use="Research: rhythm class of a short single-lead handheld ECG; not a diagnostic "
                 "device.",
    limitations=(
        "The challenge publishes no patient ids: each recording is treated as its own patient, so "
        "two recordings of one person may fall on both sides of the split and flatter the scores.",
        "Labels are the challenge's (one cardiologist-reviewed label per recording); the hidden "
        "test set is not public, so scores are on a split of the training records and are not "
        "comparable one to one with challenge entries.",
        "Networks see the first 30 s (a random 30 s window when training); longer recordings are "
        "cut, shorter ones zero-padded.",
        "AliveCor handheld recordings (lead I equivalent); 12-lead or Holter ECGs differ.",
    ),
    model_params={"fs": AF_FS, "length_s": 30.0, "augment": {"crop": True, "scale": 0.2}},
    train_params={"batch_size": 32},
    extra={"fs": AF_FS},
))
