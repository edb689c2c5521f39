"""Signal tasks: atrial fibrillation from a single-lead ECG (PhysioNet/CinC Challenge 2017)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.signals import read_signal, resample
from iatros.errors import ConfigError, CorruptDataError, IatrosError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.outcomes import PRIMARY_METRIC, class_labels, encode_target, infer_kind
from iatros.tasks.registry import register_family, register_task

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
    # chosen on validation challenge F1 (seed 0): class-weighted loss 0.811 vs 0.788 unweighted;
    # width 32 0.818 vs 16 (40 epochs instead of 24: 0.805)
    model_params={"fs": AF_FS, "length_s": 30.0, "width": 32,
                  "augment": {"crop": True, "scale": 0.2}},
    train_params={"batch_size": 32, "balance": True},
    extra={"fs": AF_FS},
))


# ---------------------------------------------------------------- signals:FOLDER

FOLDER_FS = AF_FS  # the rate resnet1d's window (`length_s` x `fs`) and hrv-gbm's features assume
FOLDER_MIN_S = 5.0  # shorter recordings hold too few beats for either model
FOLDER_METRIC = {**PRIMARY_METRIC, TargetKind.MULTICLASS: "f1"}  # macro F1 over the classes
SHOWN = 5


def _lines(lines: list[int]) -> str:
    more = f" and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:SHOWN]))}{more}"


@dataclass
class SignalFolderRows:
    """The rows of a signal folder's labels CSV that name a record inside the folder."""

    folder: Path
    csv_path: Path
    lines: list[int]  # file line of each row (header = line 1)
    names: list[str]
    paths: list[Path]
    labels: pd.Series  # index: row position in the file (0 = line 2)
    patient_ids: np.ndarray
    attributes: pd.DataFrame
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line, record, why)


def _signal_folder(argument: str, options: dict[str, Any], root: Path) -> Path:
    folder = Path(argument).expanduser()
    if not (folder.is_absolute() or folder.is_dir()):
        folder = Path(root) / folder
    folder = folder.absolute()
    if not folder.is_dir():
        raise MissingDataError(f"signal folder {folder} not found")
    return folder


def _labels_csv(folder: Path, labels: str | None) -> Path:
    given = Path(labels or "labels.csv").expanduser()
    for option in (given, folder / given):
        if option.is_file():
            return option.absolute()
    raise MissingDataError(f"labels CSV {str(given)!r} not found (looked at {given.absolute()} and "
                           f"{folder / given}); it needs columns record, label and patient_id")


def _record_files(path: Path) -> list[Path]:
    """The files a record path reads: itself, and for WFDB its header and signal files."""
    files = [path]
    if path.suffix.lower() in ("", ".hea", ".dat", ".mat"):
        stem = path.with_suffix("") if path.suffix else path
        files += [stem.with_name(stem.name + s) for s in (".hea", ".dat", ".mat")]
    return files


def read_signal_folder_rows(folder: Path, options: dict[str, Any]) -> SignalFolderRows:
    """The labels CSV of `folder`, checked without reading any recording: columns present,
    every record path inside the folder (else an error naming the lines). Rows without a record
    or a label, and a record listed twice, are skipped and named with their line."""
    csv_path = _labels_csv(folder, options.get("labels"))
    record_col = options.get("record_column", "record")
    label_col = options.get("target") or "label"
    patient_col = options.get("patient_id") or "patient_id"
    try:
        frame = pd.read_csv(csv_path, dtype={record_col: str, patient_col: str})
    except pd.errors.EmptyDataError as e:
        raise CorruptDataError(f"{csv_path}: the labels CSV is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CorruptDataError(f"{csv_path}: cannot parse as CSV ({e})") from e
    attributes = list(options.get("attributes") or ())
    required = [record_col, label_col, *attributes]
    if options.get("patient_id"):
        required.append(patient_col)
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise CorruptDataError(f"{csv_path}: column(s) {absent} not found; columns are "
                               f"{', '.join(map(str, frame.columns))}")
    if frame.empty:
        raise CorruptDataError(f"{csv_path}: the labels CSV has a header but no rows")
    has_patients = patient_col in frame.columns
    if not has_patients:
        log.warning("%s: no %r column: each record counts as its own patient, so two records of "
                    "one person may fall on both sides of the split", csv_path, patient_col)
    elif frame[patient_col].isna().any():
        rows = [int(i) + 2 for i in np.flatnonzero(frame[patient_col].isna().to_numpy())]
        raise CorruptDataError(f"{csv_path}: {len(rows)} row(s) have no {patient_col!r} value "
                               f"({_lines(rows)}); patient ids keep a patient's records in one split")
    real_root = Path(os.path.realpath(folder))
    outside: list[tuple[int, str]] = []
    kept: list[int] = []
    paths: list[Path] = []
    names: list[str] = []
    skipped: list[tuple[int, str, str]] = []
    first: dict[str, int] = {}
    for pos, (value, label) in enumerate(zip(frame[record_col], frame[label_col], strict=True)):
        line = pos + 2
        name = "" if pd.isna(value) else str(value).strip()
        if not name:
            skipped.append((line, "", f"no {record_col!r} value"))
            continue
        text = name.replace("\\", "/") if os.sep == "/" else name
        candidate = Path(text).expanduser()
        path = Path(os.path.normpath(candidate if candidate.is_absolute() else folder / candidate))
        if candidate.is_absolute() or any(
                not Path(os.path.realpath(f)).is_relative_to(real_root) for f in _record_files(path)):
            outside.append((line, name))
            continue
        if pd.isna(label) or not str(label).strip():
            skipped.append((line, name, f"no {label_col!r} value"))
            continue
        key = os.path.normcase(str(path.with_suffix("") if path.suffix.lower() in (".hea", ".dat", ".mat")
                                   else path))
        if key in first:
            skipped.append((line, name, f"listed again (first on line {first[key]}); the first is kept"))
            continue
        first[key] = line
        kept.append(pos)
        paths.append(path)
        names.append(name)
    if outside:
        raise CorruptDataError(
            f"{csv_path}: {len(outside)} record(s) lie outside {folder}: "
            f"{', '.join(n for _, n in outside[:SHOWN])} ({_lines([k for k, _ in outside])}); records "
            f"must be inside the folder (no '..', absolute paths or links leading out)")
    rows = frame.iloc[kept]
    patient_ids = (rows[patient_col].astype(str).str.strip().to_numpy() if has_patients
                   else np.asarray(names, dtype=object))
    return SignalFolderRows(folder=folder, csv_path=csv_path, lines=[k + 2 for k in kept], names=names,
                            paths=paths, labels=rows[label_col].astype(str).str.strip(),
                            patient_ids=patient_ids,
                            attributes=rows[attributes].astype(str).reset_index(drop=True),
                            skipped=skipped)


def _read_folder_record(path: Path, channel: Any, min_s: float) -> tuple[np.ndarray | None, str, float]:
    """(samples at FOLDER_FS, why it is unusable or '', the file's rate)."""
    try:
        signal = read_signal(path).select([channel])
        fs = signal.fs
        if abs(fs - FOLDER_FS) > 1e-6:
            signal = resample(signal, FOLDER_FS)
    except IatrosError as e:
        return None, str(e), float("nan")
    problems = signal.problems()
    if problems:
        return None, "; ".join(problems), fs
    if signal.duration_s < min_s:
        return None, f"{signal.duration_s:.1f} s long, shorter than {min_s:g} s", fs
    return signal.data[:, 0].astype(np.float32), "", fs


def _folder_summary(n: int, counts: dict[str, int], resampled: dict[float, int],
                    skipped: list[tuple[int, str, str]], csv_name: str) -> str:
    text = f"{n} records (" + ", ".join(f"{c} {k}" for c, k in counts.items()) + ")"
    if resampled:
        text += "; resampled to 300 Hz: " + ", ".join(f"{k} from {fs:g} Hz" for fs, k in resampled.items())
    if skipped:  # line numbers only: file names and reader messages may name a patient
        shown = ", ".join(str(line) for line, _, _ in skipped[:SHOWN])
        more = f" and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
        text += (f"; {len(skipped)} skipped ({csv_name} lines {shown}{more}; the training log "
                 "says why)")
    return text


def _signal_folder_loader(argument: str, options: dict[str, Any]) -> Any:
    def load(root: Path) -> TaskData:
        folder = _signal_folder(argument, options, root)
        rows = read_signal_folder_rows(folder, options)
        channel = options.get("channel", 0)
        min_s = float(options.get("min_seconds", FOLDER_MIN_S))
        skipped = list(rows.skipped)
        signals, keep = [], []
        resampled: dict[float, int] = {}
        for i, (line, name, path) in enumerate(zip(rows.lines, rows.names, rows.paths, strict=True)):
            x, why, fs = _read_folder_record(path, channel, min_s)
            if x is None:
                skipped.append((line, name, why))
                continue
            if abs(fs - FOLDER_FS) > 1e-6:
                resampled[fs] = resampled.get(fs, 0) + 1
            signals.append(x)
            keep.append(i)
        skipped.sort()
        for line, name, why in skipped:
            log.warning("signals:%s: skipped %s line %d %s: %s", argument, rows.csv_path.name, line,
                        name, why)
        labels = rows.labels.iloc[keep]
        counts = {c: int((labels == c).sum()) for c in options["classes"]}
        summary = _folder_summary(len(keep), counts, resampled, skipped, rows.csv_path.name)
        if not keep:
            raise CorruptDataError(f"{rows.csv_path}: no listed record could be used ({summary})")
        if sum(k > 0 for k in counts.values()) < 2:
            raise CorruptDataError(f"{rows.csv_path}: the readable records hold fewer than two classes "
                                   f"({summary}); nothing to predict")
        inputs = np.empty(len(signals), dtype=object)
        inputs[:] = signals
        return TaskData(inputs=inputs,
                        targets=encode_target(labels, TargetKind(options["kind"]),
                                              tuple(options["classes"]), rows.csv_path),
                        patient_ids=rows.patient_ids[keep],
                        attributes=rows.attributes.iloc[keep].reset_index(drop=True),
                        source=f"signals:{folder}: {summary}")
    return load


def _channel_words(channel: Any) -> str:
    return f"channel {channel!r}" if not isinstance(channel, int) else (
        "the first channel" if channel == 0 else f"channel {channel} (from 0)")


def signals_task(argument: str, options: dict[str, Any]) -> Task:
    """`signals:FOLDER`: a user's own recordings with a labels CSV (record, label, patient_id).

    `record` is a path inside FOLDER that `read_signal` reads (WFDB .hea or record name, EDF,
    CSV with a time column, DICOM waveform). Options: labels (CSV, default FOLDER/labels.csv),
    target (label column), patient_id (column; absent: each record its own patient, with a
    warning), kind and positive (as for images:FOLDER), channel (name or position, default the
    first), min_seconds (default 5), attributes (audited CSV columns). Every record is resampled
    to 300 Hz, the rate the signal models assume; unreadable, flat or too short records are
    skipped and named with their CSV line."""
    resolved = dict(options)
    root = Path(resolved.pop("data_root", "."))
    folder = _signal_folder(argument, resolved, root)
    if "kind" not in resolved or "classes" not in resolved:
        rows = read_signal_folder_rows(folder, resolved)
        where = str(rows.csv_path)
        if rows.labels.empty:
            raise CorruptDataError(f"{where}: no row names a record with a label")
        kind = TargetKind(resolved["kind"]) if resolved.get("kind") else infer_kind(rows.labels, where)
        if not kind.stratified:
            raise ConfigError(f"signal folder tasks support binary, multiclass or ordinal labels; "
                              f"{where} looks like {kind.value}: pass --kind")
        resolved["kind"] = kind.value
        resolved["classes"] = list(class_labels(rows.labels, kind, resolved.get("positive"), where))
    kind = TargetKind(resolved["kind"])
    return Task(
        name=f"signals:{argument}",
        description=f"{resolved.get('target') or 'label'} from the recordings in {folder.name} "
                    f"({_channel_words(resolved.get('channel', 0))}, resampled to "
                    f"{FOLDER_FS:g} Hz)",
        modality=Modality.SIGNAL, target=kind, loader=_signal_folder_loader(argument, resolved),
        classes=tuple(resolved["classes"]), sensitive_attributes=tuple(resolved.get("attributes") or ()),
        primary_metric=FOLDER_METRIC.get(kind, "auroc"),
        default_model="resnet1d", models=("resnet1d", "hrv-gbm"),
        source=f"user signal folder {argument}",
        intended_use="Defined by the user who supplied the recordings.",
        limitations=(
            "User-supplied recordings: acquisition, labelling and cohort are not checked by iatros.",
            f"One channel is used ({_channel_words(resolved.get('channel', 0))}), resampled to "
            f"{FOLDER_FS:g} Hz; `predict` on new files reads the same channel.",
            "Networks see the first 30 s (a random 30 s window when training); longer recordings "
            "are cut, shorter ones zero-padded.",
        ),
        model_params={"fs": FOLDER_FS, "length_s": 30.0, "augment": {"crop": True, "scale": 0.2}},
        train_params={"batch_size": 32},
        extra={"options": resolved, "fs": FOLDER_FS},
    )


register_family("signals", signals_task)
