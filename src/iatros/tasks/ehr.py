"""Health-record and ICU tasks: PhysioNet 2012, MIMIC-III, eICU, and `ehr:PATH` for any source.

Every task reads the event format (converted once into the workspace cache), keeps the events
inside its observation window, and predicts an outcome known only after the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from iatros.data.ehr import cached_events, get_source
from iatros.data.ehr.convert import EventTables, convert
from iatros.data.ehr.mimic4 import is_mimic4
from iatros.data.ehr.tensors import build_inputs, choose_vocabulary, vocabulary_of
from iatros.errors import ConfigError, CorruptDataError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.settings import get_settings
from iatros.tasks.attributes import age_groups
from iatros.tasks.base import Task, TaskData
from iatros.tasks.ehr_notes import with_note_concepts
from iatros.tasks.outcomes import PRIMARY_METRIC
from iatros.tasks.registry import register_family, register_task

EHR_MODELS = ("grud", "event-transformer", "gbm", "gbm-bag", "logreg", "logreg-cv", "mlp")
# what `--model auto` (the default) cross-validates on the training data
EHR_SELECTION = ("gbm", "gbm-bag", "logreg-cv", "grud")
AGE_BANDS = (50, 65, 80)
SOURCE_HINTS = {"physionet2012": "https://physionet.org/content/challenge-2012/1.0.0/",
                "mimic4": "https://physionet.org/content/mimiciv/ (credentialed) or "
                          "https://physionet.org/content/mimic-iv-demo/ (demo)",
                "mimic3": "https://physionet.org/content/mimiciii-demo/1.4/ (demo) or "
                          "https://physionet.org/content/mimiciii/ (credentialed)",
                "eicu": "https://physionet.org/content/eicu-crd-demo/2.0.1/"}


@dataclass(frozen=True)
class Cohort:
    """Which stays a task keeps, its window, its label and its static features."""

    hours: float
    anchor: str
    label: Callable[[pl.DataFrame], pl.Series]
    keep: Callable[[pl.DataFrame], pl.Series] | None = None
    static: Callable[[pl.DataFrame], tuple[np.ndarray, list[str]]] | None = None
    max_variables: int = 64
    max_codes: int = 128
    # only these codes, renamed (source code -> input code; two sources may share one input)
    codes: dict[str, str] | None = None


def _only(events: pl.DataFrame, codes: dict[str, str] | None) -> pl.DataFrame:
    if codes is None:
        return events
    return (events.filter(pl.col("code").is_in(list(codes)))
            .with_columns(pl.col("code").replace_strict(codes, return_dtype=pl.Utf8)))


def _events(source: str, path: Path, out: str | None = None) -> EventTables:
    """The source's event tables: converted into `out` when given (new records to score,
    kept out of the cache), else once into the workspace cache."""
    if out:
        return convert(get_source(source), path, Path(out))
    return cached_events(source, path, get_settings().cache_dir)


def _first_existing(root: Path, names: tuple[str, ...], source: str) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    raise MissingDataError(f"{source} data not found: expected {' or '.join(str(root / n) for n in names)}. "
                           f"Get it from {SOURCE_HINTS.get(source, 'its publisher')} and put it there, "
                           f"or pass --data-root")


def base_static(stays: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Age and sex (1 = male), the descriptors every source has."""
    age = stays["age"].cast(pl.Float64).to_numpy()
    sex = stays["sex"].replace_strict({"M": 1.0, "F": 0.0}, default=None,
                                      return_dtype=pl.Float64).to_numpy()
    return np.stack([age, sex], axis=1), ["static:age", "static:sex_male"]


def one_hot(stays: pl.DataFrame, column: str, levels: list[str]) -> tuple[np.ndarray, list[str]]:
    values = stays[column].to_list()
    return (np.array([[float(v == lv) for lv in levels] for v in values], np.float32),
            [f"static:{column}={lv}" for lv in levels])


def with_columns(*extra: Callable[[pl.DataFrame], tuple[np.ndarray, list[str]]],
                 ) -> Callable[[pl.DataFrame], tuple[np.ndarray, list[str]]]:
    def build(stays: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
        parts = [base_static(stays), *(f(stays) for f in extra)]
        return (np.concatenate([p[0] for p in parts], axis=1).astype(np.float32),
                [n for p in parts for n in p[1]])
    return build


def numeric(*columns: str) -> Callable[[pl.DataFrame], tuple[np.ndarray, list[str]]]:
    return lambda s: (np.stack([s[c].cast(pl.Float64).to_numpy() for c in columns], axis=1),
                      [f"static:{c}" for c in columns])


def categories(column: str) -> Callable[[pl.DataFrame], tuple[np.ndarray, list[str]]]:
    return lambda s: one_hot(s, column, sorted(v for v in s[column].unique().to_list() if v))


def cohort_data(tables: EventTables, cohort: Cohort, target: TargetKind, label: str,
                features: list[str] | None = None) -> TaskData:
    """Stays of the cohort with their labels and inputs; unlabeled stays are left out, counted.

    `features` (a trained model's feature names): score new records instead. Every stay of
    the cohort is kept, with or without an outcome (targets NaN), and the inputs use the
    model's variables and codes rather than ones chosen from these stays."""
    stays = tables.stays
    if cohort.keep is not None:
        stays = stays.filter(cohort.keep(stays))
    if features is not None:
        if not stays.height:
            raise CorruptDataError(f"{tables.manifest['input']}: no stay (encounter) to score "
                                   f"for {label!r}")
        events = _only(tables.events.join(stays.select("stay_id"), on="stay_id", how="semi"),
                       cohort.codes)
        variables, codes, _ = vocabulary_of(features)
        return _cohort_inputs(tables, cohort, stays, events, variables, codes,
                              np.full(stays.height, np.nan))
    y = cohort.label(stays)
    labeled = y.is_not_null() if not isinstance(y, pl.DataFrame) else y.select(
        pl.all_horizontal(pl.all().is_not_null())).to_series()
    if not labeled.any():
        raise CorruptDataError(f"{tables.manifest['source']} at {tables.manifest['input']}: no stay "
                               f"has the outcome {label!r} (missing outcome file or column?)")
    stays, y = stays.filter(labeled), y.filter(labeled)
    events = _only(tables.events.join(stays.select("stay_id"), on="stay_id", how="semi"),
                   cohort.codes)
    variables, codes = choose_vocabulary(events, stays.height, max_variables=cohort.max_variables,
                                         max_codes=cohort.max_codes)
    targets = y.to_numpy().astype(np.int64 if target.class_indices or target.stratified
                                  else np.float64)
    return _cohort_inputs(tables, cohort, stays, events, variables, codes, targets)


SITE_DESCRIPTORS = ("icu_type", "unit_type", "region")


def _cohort_inputs(tables: EventTables, cohort: Cohort, stays: pl.DataFrame, events: pl.DataFrame,
                   variables: list[str], codes: list[str], targets: np.ndarray) -> TaskData:
    static, static_names = (cohort.static or base_static)(stays)
    inputs = build_inputs(events, stays, variables=variables, codes=codes, static=static,
                          static_names=static_names, hours=cohort.hours, anchor=cohort.anchor)
    attributes = pd.DataFrame({
        "sex": stays["sex"].fill_null("unknown").to_list(),
        "age_group": age_groups(pd.Series(stays["age"].to_numpy()), AGE_BANDS).to_list(),
        "ethnicity": stays["ethnicity"].fill_null("unknown").to_list(),
        "site": stays["site_id"].fill_null("unknown").to_list(),
        "stay_id": stays["stay_id"].to_list(),
        # descriptors a federated run can name as its sites (`iatros federate --sites icu_type`)
        **{name: stays[name].fill_null("unknown").to_list() for name in SITE_DESCRIPTORS
           if name in stays.columns},
    })
    return TaskData(inputs=inputs, targets=targets, patient_ids=stays["subject_id"].to_numpy(),
                    attributes=attributes, feature_names=inputs.feature_names,
                    source=f"{tables.manifest['source']}:{tables.manifest['input']}")


# --------------------------------------------------------------------------------------------
# PhysioNet 2012
# --------------------------------------------------------------------------------------------
ICU_STATIC = with_columns(numeric("height_cm", "weight_kg"),
                          lambda s: one_hot(s, "icu_type", ["Coronary care", "Cardiac surgery recovery",
                                                            "Medical ICU", "Surgical ICU"]))


def _physionet(cohort: Cohort, target: TargetKind, label: str) -> Callable[[Path], TaskData]:
    def load(root: Path) -> TaskData:
        path = _first_existing(root, ("physionet2012",), "physionet2012")
        return cohort_data(_events("physionet2012", path), cohort, target, label)
    return load


def _days_to_death_or_discharge() -> pl.Expr:
    died = pl.col("survival_days").is_not_null() & (pl.col("survival_days") >= 0)
    return pl.when(died).then(pl.col("survival_days")).otherwise(pl.col("los_days"))


def _icu_survival(stays: pl.DataFrame) -> pl.DataFrame:
    """Days from the end of the 48 h window (the landmark) to death; survivors censored at
    hospital discharge."""
    died = pl.col("survival_days").is_not_null() & (pl.col("survival_days") >= 0)
    return stays.select((_days_to_death_or_discharge() - 2.0).alias("time"),
                        died.cast(pl.Float64).alias("event"))


def _alive_after_window(stays: pl.DataFrame) -> pl.Series:
    """Stays whose death or discharge comes after the 48 h window (integer days > 2)."""
    return stays.select(_days_to_death_or_discharge() > 2.0).to_series()


PHYSIONET_COMMON = dict(
    modality=Modality.EHR, sensitive_attributes=("sex", "age_group"), models=EHR_MODELS,
    selection=EHR_SELECTION,
    source="PhysioNet/CinC Challenge 2012 (set-a/b/c under DATA_ROOT/physionet2012)",
    limitations=("Sets A/B/C are samples of four ICU types in one US health system (MIMIC-II era); "
                 "ethnicity is not recorded, so no ethnicity audit is possible.",
                 "Times are relative to ICU admission; the 48 h record is all the model sees."),
)
register_task(Task(
    name="icu-mortality", target=TargetKind.BINARY, classes=("survived", "died"),
    description="PhysioNet 2012: in-hospital death from the first 48 h of an ICU stay",
    loader=_physionet(Cohort(48, "start", lambda s: s["died"], static=ICU_STATIC),
                      TargetKind.BINARY, "died"),
    default_model="grud", intended_use="Research on early ICU mortality risk from irregular vitals "
                                       "and labs; not a validated clinical score.",
    **PHYSIONET_COMMON))
# what a bedside monitor sends (monitoring.readings), as PhysioNet 2012 codes: systolic pressure
# from an arterial line or a cuff is one input, as the monitor's systolic_bp is
BEDSIDE_VITALS = {f"PHYSIONET2012//{source}": f"PHYSIONET2012//{name}" for source, name in (
    ("HR", "HR"), ("RespRate", "RespRate"), ("SaO2", "SaO2"), ("SysABP", "SysABP"),
    ("NISysABP", "SysABP"), ("Temp", "Temp"), ("GCS", "GCS"))}
register_task(Task(
    name="icu-mortality-vitals", target=TargetKind.BINARY, classes=("survived", "died"),
    description="PhysioNet 2012: in-hospital death from the bedside vital signs of the first 48 h "
                "(heart rate, respiratory rate, SaO2, systolic pressure, temperature, GCS; no "
                "labs, no demographics): the deterioration model of the monitor",
    loader=_physionet(Cohort(48, "start", lambda s: s["died"], static=lambda s: (
        np.zeros((s.height, 0), np.float32), []), codes=BEDSIDE_VITALS),
                      TargetKind.BINARY, "died"),
    default_model="gbm", intended_use="Research: a deterioration alert in remote or bedside "
                                      "monitoring (`iatros serve --monitor-config`), scored on the "
                                      "readings a monitor holds; not a validated clinical score.",
    **PHYSIONET_COMMON))
register_task(Task(
    name="icu-los-3d", target=TargetKind.BINARY, classes=("<=3 days", ">3 days"),
    description="PhysioNet 2012: hospital stay longer than 3 days, from the first 48 h in the ICU",
    loader=_physionet(Cohort(48, "start", lambda s: (s["los_days"] > 3).cast(pl.Int8),
                             static=ICU_STATIC), TargetKind.BINARY, "los_days"),
    default_model="grud", **PHYSIONET_COMMON))
register_task(Task(
    name="icu-survival", target=TargetKind.SURVIVAL, primary_metric="c_index",
    description="PhysioNet 2012: days to death after the first 48 h in the ICU (censored at "
                "hospital discharge), for stays alive and in hospital after day 2; a Cox head on "
                "the sequence encoder",
    loader=_physionet(Cohort(48, "start", _icu_survival, keep=_alive_after_window,
                             static=ICU_STATIC),
                      TargetKind.SURVIVAL, "survival_days"),
    default_model="grud", **{**PHYSIONET_COMMON, "models": ("grud", "event-transformer", "coxph"),
                             "selection": ("grud", "coxph")}))


# --------------------------------------------------------------------------------------------
# MIMIC-III and eICU
# --------------------------------------------------------------------------------------------
def _at_least(hours: float) -> Callable[[pl.DataFrame], pl.Series]:
    """Stays still in hospital (and alive) when the window closes."""
    return lambda s: (s["los_days"] >= hours / 24) & (
        s["death_time"].is_null() | (s["death_time"] >= s["start_time"] + pl.duration(hours=hours)))


def _mimic_source(root: Path) -> tuple[str, Path]:
    """MIMIC-IV when DATA_ROOT/mimic4 (or mimiciv) exists, else MIMIC-III (full, then the demo)."""
    for name in ("mimic4", "mimiciv"):
        if (root / name).exists():
            return "mimic4", root / name
    return "mimic3", _first_existing(root, ("mimic3", "mimic3_demo"), "mimic3")


def _mimic(cohort: Cohort, target: TargetKind, label: str) -> Callable[[Path], TaskData]:
    def load(root: Path) -> TaskData:
        source, path = _mimic_source(root)
        return cohort_data(_events(source, path), cohort, target, label)
    return load


MIMIC_STATIC = with_columns(categories("admission_type"))
MIMIC_COMMON = dict(
    modality=Modality.EHR, sensitive_attributes=("sex", "age_group", "ethnicity"),
    models=EHR_MODELS, selection=EHR_SELECTION,
    source="MIMIC-IV (DATA_ROOT/mimic4 or DATA_ROOT/mimiciv) when present, else MIMIC-III "
           "(DATA_ROOT/mimic3, else the demo in DATA_ROOT/mimic3_demo)",
    limitations=("The public demo has 100 patients (129 admissions): results on it check the "
                 "pipeline, they do not estimate performance.",
                 "Without CHARTEVENTS/LABEVENTS (absent from the demo) the model sees inputs, "
                 "outputs, prescriptions, procedures and microbiology only."),
)
register_task(Task(
    name="mimic-mortality", target=TargetKind.BINARY, classes=("survived", "died"),
    description="MIMIC-IV or -III: in-hospital death from the first 48 h of an admission (admissions "
                "still in hospital at 48 h)",
    loader=_mimic(Cohort(48, "start", lambda s: s["died"], keep=_at_least(48), static=MIMIC_STATIC),
                  TargetKind.BINARY, "died"),
    default_model="gbm", **MIMIC_COMMON))
register_task(Task(
    name="mimic-los-7d", target=TargetKind.BINARY, classes=("<=7 days", ">7 days"),
    description="MIMIC-IV or -III: admission longer than 7 days, from its first 48 h",
    loader=_mimic(Cohort(48, "start", lambda s: (s["los_days"] > 7).cast(pl.Int8),
                         keep=_at_least(48), static=MIMIC_STATIC), TargetKind.BINARY, "los_days"),
    default_model="gbm", **MIMIC_COMMON))
register_task(Task(
    name="mimic-readmission-30d", target=TargetKind.BINARY, classes=("no", "readmitted"),
    description="MIMIC-IV or -III: another admission within 30 days of discharge, from the whole "
                "admission's codes and events (survivors only)",
    loader=_mimic(Cohort(48, "end", lambda s: s["readmit_30d"], static=MIMIC_STATIC),
                  TargetKind.BINARY, "readmit_30d"),
    default_model="gbm", **MIMIC_COMMON))


def _eicu(root: Path) -> TaskData:
    path = _first_existing(root, ("eicu", "eicu_demo"), "eicu")
    cohort = Cohort(24, "start", lambda s: s["died"], keep=_at_least(24),
                    static=with_columns(categories("unit_type")))
    return cohort_data(_events("eicu", path), cohort, TargetKind.BINARY, "died")


register_task(Task(
    name="eicu-mortality", target=TargetKind.BINARY, classes=("survived", "died"),
    description="eICU: in-hospital death from the first 24 h of an ICU unit stay (stays of at "
                "least 24 h); the hospital id is kept as `site` for site-level analyses",
    loader=_eicu, modality=Modality.EHR, models=EHR_MODELS, default_model="gbm",
    selection=EHR_SELECTION,
    sensitive_attributes=("sex", "age_group", "ethnicity"),
    source="eICU-CRD (DATA_ROOT/eicu, else the demo in DATA_ROOT/eicu_demo)",
    limitations=("The demo lacks the lab and periodic vital-sign tables; the model sees APACHE "
                 "first-day variables, non-invasive blood pressure, charting, drugs and "
                 "diagnoses.",)))


# --------------------------------------------------------------------------------------------
# ehr:PATH -- any source, any outcome
# --------------------------------------------------------------------------------------------
def detect_source(path: Path) -> str:
    """Which converter reads `path`, from the files in it."""
    if path.is_file() and path.suffix in (".json", ".ndjson"):
        return "fhir"
    if path.is_file() and path.suffix == ".zip":
        return "omop"
    if not path.is_dir():
        raise MissingDataError(f"{path} does not exist")
    names = {p.name.lower() for p in path.iterdir()}
    if (path / "data").is_dir() and any((path / "data").rglob("*.parquet")):
        return "meds"
    stems = {n.split(".")[0] for n in names}
    if {"person", "visit_occurrence"} <= stems:
        return "omop"
    if path.name.startswith("set-") or any(n.startswith("set-") for n in names):
        return "physionet2012"
    if is_mimic4(path):
        return "mimic4"
    if {"admissions.csv", "admissions.csv.gz"} & names:
        return "mimic3"
    if {"patient.csv", "patient.csv.gz"} & names:
        return "eicu"
    if any(n.endswith((".json", ".ndjson")) for n in names):
        return "fhir"
    inside = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    hint = f" (its subfolders: {', '.join(inside[:6])}; point ehr: at the one with the records)" \
        if inside else ""
    raise ConfigError(f"cannot tell which source {path} holds{hint}; pass --source physionet2012, "
                      f"mimic3, mimic4, eicu, fhir, meds or omop")


def _code_outcome(spec: str) -> tuple[str, float]:
    """`code:PREFIX[@DAYS]` -> (prefix, horizon in days, default 365)."""
    body = spec[len("code:"):]
    prefix, _, days = body.partition("@")
    try:
        return prefix, float(days) if days else 365.0
    except ValueError as e:
        raise ConfigError(f"--target {spec!r}: the horizon after @ must be a number of days") from e


def _code_label(events: pl.DataFrame, stays: pl.DataFrame, prefix: str, days: float,
                hours: float | None) -> pl.DataFrame:
    """1 when an event whose code starts with `prefix` follows the window within `days`."""
    t0 = (pl.col("start_time") + pl.duration(hours=hours)) if hours else pl.col("end_time")
    frame = stays.select("stay_id", "subject_id", t0.alias("_t0"))
    hits = (events.filter(pl.col("code").str.starts_with(prefix)).select("subject_id", "time")
            .join(frame, on="subject_id")
            .filter((pl.col("time") > pl.col("_t0"))
                    & (pl.col("time") <= pl.col("_t0") + pl.duration(days=days)))
            .select("stay_id").unique())
    return stays.with_columns(pl.col("stay_id").is_in(hits["stay_id"].implode())
                              .cast(pl.Int8).alias("_label"))


def ehr_task(arg: str, options: dict[str, Any]) -> Task:
    """`ehr:PATH --target COLUMN|code:PREFIX[@DAYS] [--window HOURS] [--notes]` on any EHR source;
    `--notes` adds the coded concepts of the source's notes as events (`tasks.ehr_notes`)."""
    root = Path(options.get("data_root") or ".")
    path = Path(arg).expanduser()
    path = path if path.is_absolute() or path.exists() else root / arg
    target_spec = options.get("target")
    if not target_spec:
        raise ConfigError("ehr:PATH needs --target: a stays column (died, los_days, readmit_30d, "
                          "...) or code:PREFIX[@DAYS] for an event after the window")
    hours = float(options["window"]) if options.get("window") else None
    source = options.get("source") or detect_source(path)

    features = options.get("score_features")

    def load(_root: Path) -> TaskData:
        tables = _events(source, path, options.get("events_out"))
        if options.get("notes"):
            tables = EventTables(with_note_concepts(tables.events), tables.stays, tables.manifest,
                                 tables.path)
        if features is not None:  # new records to score: no outcome needed
            cohort = Cohort(hours or 48.0, "start" if hours else "end", lambda s: s["stay_id"],
                            keep=_at_least(hours) if hours else None)
            return cohort_data(tables, cohort, probe, target_spec, features=list(features))
        if target_spec.startswith("code:"):
            prefix, days = _code_outcome(target_spec)
            tables = EventTables(tables.events, _code_label(tables.events, tables.stays, prefix,
                                                            days, hours), tables.manifest, tables.path)
            column = "_label"
        else:
            column = target_spec
            if column not in tables.stays.columns:
                raise ConfigError(f"--target {column!r} is not a stays column of {path}; "
                                  f"columns: {', '.join(tables.stays.columns)}")
        kind = _kind(tables.stays[column])
        if kind is not probe:
            raise ConfigError(f"--target {target_spec!r} holds {kind.value} values but the task was "
                              f"set up as {probe.value}; pass --kind {kind.value}")
        cohort = Cohort(hours or 48.0, "start" if hours else "end", lambda s: s[column],
                        keep=_at_least(hours) if hours else None)
        return cohort_data(tables, cohort, kind, column)

    probe = _kind_from_options(options)
    when = f"from the first {hours:g} h" if hours else "at the end of each stay"
    return Task(
        name=f"ehr:{arg}", description=f"{source} data at {path}: predict {target_spec} {when}",
        modality=Modality.EHR, target=probe, loader=load,
        classes=EHR_CLASSES.get(probe, ()), primary_metric=PRIMARY_METRIC[probe],
        models=EHR_MODELS, default_model="gbm", selection=EHR_SELECTION,
        sensitive_attributes=("sex", "age_group"),
        source=f"{source}: {path}", extra={"options": {k: v for k, v in options.items()
                                                        if k not in ("data_root", "score_features",
                                                                     "events_out")}},
    )


EHR_CLASSES = {TargetKind.BINARY: ("no", "yes")}


def _kind(values: pl.Series) -> TargetKind:
    distinct = set(values.drop_nulls().unique().to_list())
    return TargetKind.BINARY if distinct <= {0, 1} else TargetKind.REGRESSION


def _kind_from_options(options: dict[str, Any]) -> TargetKind:
    """Binary for code outcomes and 0/1 columns; `--kind regression` for numeric columns."""
    kind = options.get("kind")
    if kind:
        return TargetKind(kind)
    target = str(options.get("target"))
    if target.startswith("code:") or target in ("died",) or target.startswith("readmit"):
        return TargetKind.BINARY
    return TargetKind.REGRESSION


register_family("ehr", ehr_task)
