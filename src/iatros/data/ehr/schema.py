"""The one event format every health-record source converts into.

Two tables, stored as Parquet (MEDS-like; see docs/ehr_format.md):

* events: one row per measurement or code, `subject_id, stay_id, time, code, numeric_value,
  text_value, unit`. Codes are namespaced `VOCAB//CODE` (e.g. `PHYSIONET2012//HR`, `ICD9CM//4280`,
  `LOINC//8867-4`), as in MEDS.
* stays: one row per stay (ICU stay, admission or encounter): `subject_id, stay_id, site_id,
  start_time, end_time, age, sex, ethnicity, died, death_time, los_days` plus columns a source
  adds (outcomes such as `readmit_30d`, descriptors such as `icu_type`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

Frame = pl.DataFrame | pl.LazyFrame   # events in memory, or read from disk as they are consumed

EVENT_SCHEMA: dict[str, Any] = {
    "subject_id": pl.Utf8, "stay_id": pl.Utf8, "time": pl.Datetime("us"), "code": pl.Utf8,
    "numeric_value": pl.Float64, "text_value": pl.Utf8, "unit": pl.Utf8,
}
STAY_SCHEMA: dict[str, Any] = {
    "subject_id": pl.Utf8, "stay_id": pl.Utf8, "site_id": pl.Utf8, "start_time": pl.Datetime("us"),
    "end_time": pl.Datetime("us"), "age": pl.Float64, "sex": pl.Utf8, "ethnicity": pl.Utf8,
    "died": pl.Int8, "death_time": pl.Datetime("us"), "los_days": pl.Float64,
}

# Values outside these ranges are physically impossible (not merely abnormal) and are skipped.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "heart_rate": (0.0, 350.0), "resp_rate": (0.0, 150.0), "temperature_c": (10.0, 46.0),
    "sbp": (0.0, 350.0), "dbp": (0.0, 300.0), "map": (0.0, 300.0), "spo2": (0.0, 100.0),
    "gcs": (3.0, 15.0), "ph": (6.0, 8.0), "fio2": (0.21, 1.0), "weight_kg": (0.3, 500.0),
    "height_cm": (20.0, 280.0), "nonnegative": (0.0, float("inf")),
}


@dataclass
class Skip:
    """One record left out of a conversion, and why."""

    where: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "reason": self.reason}


@dataclass
class SkipLog:
    """Counted, reported skips: nothing is dropped silently."""

    items: list[Skip] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.items.append(Skip(where, reason))

    def extend(self, other: SkipLog) -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(s.reason.split(":")[0] for s in self.items).most_common())

    def summary(self) -> str:
        if not self.items:
            return "0 skipped"
        parts = ", ".join(f"{reason}: {n}" for reason, n in self.by_reason().items())
        return f"{len(self.items)} skipped ({parts})"

    def as_dict(self, examples: int = 200) -> dict[str, Any]:
        return {"n": len(self.items), "by_reason": self.by_reason(),
                "examples": [s.as_dict() for s in self.items[:examples]]}


def events_frame(rows: dict[str, list[Any]] | None = None) -> pl.DataFrame:
    """An events table with the standard columns and types (empty when no rows)."""
    rows = rows or {name: [] for name in EVENT_SCHEMA}
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)


def stays_frame(rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> pl.DataFrame:
    """A stays table: the standard columns first, then the source's own (`extra` types)."""
    schema = {**STAY_SCHEMA, **(extra or {})}
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


def conform_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a source's events to the standard columns, adding missing optional ones as null."""
    cols = [pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
            for c, t in EVENT_SCHEMA.items()]
    return frame.select(cols)


def drop_implausible(events: pl.DataFrame, ranges: dict[str, str], skips: SkipLog,
                     label: str) -> pl.DataFrame:
    """Skip numeric values outside the physical range of their code (`code -> PLAUSIBLE key`)."""
    if not ranges or events.is_empty():
        return events
    lo_hi = {code: PLAUSIBLE[key] for code, key in ranges.items()}
    lo = pl.col("code").replace_strict({c: v[0] for c, v in lo_hi.items()}, default=None,
                                       return_dtype=pl.Float64)
    hi = pl.col("code").replace_strict({c: v[1] for c, v in lo_hi.items()}, default=None,
                                       return_dtype=pl.Float64)
    bad = (pl.col("numeric_value") < lo) | (pl.col("numeric_value") > hi)
    flagged = events.with_columns(bad.fill_null(False).alias("_bad"))
    for row in flagged.filter(pl.col("_bad")).iter_rows(named=True):
        skips.add(f"{label} stay {row['stay_id']} {row['time']}",
                  f"impossible value: {row['code']} = {row['numeric_value']}")
    return flagged.filter(~pl.col("_bad")).drop("_bad")


def drop_unit_mismatches(events: Frame, skips: SkipLog, label: str) -> Frame:
    """Keep each numeric code in its most common unit; rows in another unit are skipped, counted.

    Works on a lazy frame too (returned lazy): only the units per code and the skipped rows are
    collected, so the events can stay on disk."""
    lazy = events.lazy()
    numeric = lazy.filter(pl.col("numeric_value").is_not_null() & pl.col("unit").is_not_null())
    dominant = (numeric.group_by("code", "unit").len()
                .sort(["code", "len", "unit"], descending=[False, True, False])
                .group_by("code", maintain_order=True).first()
                .select("code", pl.col("unit").alias("_unit"))).collect()
    if dominant.is_empty():
        return events
    joined = lazy.join(dominant.lazy(), on="code", how="left", maintain_order="left")
    mismatch = (pl.col("numeric_value").is_not_null() & pl.col("unit").is_not_null()
                & pl.col("_unit").is_not_null() & (pl.col("unit") != pl.col("_unit")))
    skipped = joined.filter(mismatch).select("stay_id", "time", "code", "unit", "_unit").collect()
    for row in skipped.iter_rows(named=True):
        skips.add(f"{label} stay {row['stay_id']} {row['time']}",
                  f"unit mismatch: {row['code']} in {row['unit']} where the rest are in {row['_unit']}")
    kept = joined.filter(~mismatch).drop("_unit")
    return kept if isinstance(events, pl.LazyFrame) else kept.collect()


def add_readmission(stays: pl.DataFrame, days: int) -> pl.DataFrame:
    """`readmit_{days}d`: another stay of the patient starts within `days` of this one's end.

    Null when the patient died during the stay (they cannot be readmitted).
    """
    ordered = stays.sort("subject_id", "start_time").with_columns(
        pl.col("start_time").shift(-1).over("subject_id").alias("_next"))
    gap = (pl.col("_next") - pl.col("end_time")).dt.total_seconds() / 86400
    label = (pl.when(pl.col("died") == 1).then(None)
             .when(pl.col("_next").is_not_null() & (gap <= days)).then(1).otherwise(0))
    name = f"readmit_{days}d"
    return ordered.drop(name, strict=False).with_columns(label.cast(pl.Int8).alias(name)).drop("_next")
