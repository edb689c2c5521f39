"""Any MEDS dataset as a source: `iatros data convert meds ROOT` or `ehr:ROOT`.

ROOT holds `data/**/*.parquet` (MEDS data shards; a patient lives in one shard) and optionally
`metadata/`. Each shard is a part, validated with the `meds` DataSchema; a shard that fails is
skipped with the reason, the others convert. Codes, values and times are kept as they are.

Stays: a folder iatros wrote (its `stays.parquet` beside `data/`) keeps its stays and outcomes,
and the rows iatros derived for MEDS tools (`iatros_derived`) are dropped, so the round trip gives
the original events. Any other MEDS dataset gets one stay per patient, from their first to their
last timed event (birth aside): sex from `GENDER//`/`SEX//` codes, age from `MEDS_BIRTH`, death from
`MEDS_DEATH` (died = 1 when the death falls within the stay, at its end or up to a day after).
A `stay_id` (or `hadm_id`) column, when present, splits a patient's events into those stays.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from iatros.crypto import EncryptionError
from iatros.data.ehr.convert import Part, PartResult, Source, read_arrow, read_parquet
from iatros.data.ehr.schema import STAY_SCHEMA, Frame, SkipLog, add_readmission, events_frame
from iatros.errors import MissingDataError

NAME = "meds"
STAY_COLUMNS = ("stay_id", "hadm_id")


def shards(root: Path) -> list[Path]:
    """The data shards under ROOT/data (or ROOT itself when it holds the parquet files)."""
    base = root / "data" if (root / "data").is_dir() else root
    return sorted(p for p in base.rglob("*.parquet") if p.is_file() and ".tmp" not in p.name)


def read_shard(path: Path, skips: SkipLog) -> pl.DataFrame | None:
    """A shard validated against the MEDS data schema, or None (a skip naming the file). An
    encrypted shard (a folder iatros wrote with a master key) is decrypted; without its key it
    is an error, not a skip."""
    import meds

    try:
        table = read_arrow(path)
        meds.DataSchema.validate(table)
    except EncryptionError:
        raise
    except Exception as e:  # noqa: BLE001 - unreadable or invalid: named, the rest converts
        skips.add(path.name, f"not a valid MEDS data shard: {str(e).splitlines()[0][:300]}")
        return None
    return pl.from_arrow(table)  # type: ignore[return-value]


def _events(frame: pl.DataFrame, stay_column: str | None) -> pl.DataFrame:
    """MEDS rows as iatros events (subject ids as text)."""
    subject = (pl.col("iatros_subject_id") if "iatros_subject_id" in frame.columns
               else pl.col("subject_id").cast(pl.Utf8))
    stay = (pl.col(stay_column).cast(pl.Utf8) if stay_column
            else subject)
    return frame.select(subject.alias("subject_id"), stay.alias("stay_id"),
                        pl.col("time").cast(pl.Datetime("us")), pl.col("code"),
                        pl.col("numeric_value").cast(pl.Float64) if "numeric_value" in frame.columns
                        else pl.lit(None, pl.Float64).alias("numeric_value"),
                        pl.col("text_value").cast(pl.Utf8) if "text_value" in frame.columns
                        else pl.lit(None, pl.Utf8).alias("text_value"),
                        pl.col("unit").cast(pl.Utf8) if "unit" in frame.columns
                        else pl.lit(None, pl.Utf8).alias("unit"))


def derive_stays(events: pl.DataFrame) -> pl.DataFrame:
    """One stay per (patient, stay id): first to last timed event, with sex, age and death."""
    timed = events.filter(pl.col("time").is_not_null() & pl.col("stay_id").is_not_null()
                          & (pl.col("code") != "MEDS_BIRTH"))
    stays = timed.group_by("subject_id", "stay_id").agg(pl.col("time").min().alias("start_time"),
                                                        pl.col("time").max().alias("end_time"))
    sex = (events.filter(pl.col("code").str.contains(r"^(?i:GENDER|SEX)//"))
           .select("subject_id", pl.col("code").str.split("//").list.last().str.to_uppercase()
                   .str.slice(0, 1).alias("sex"))
           .unique("subject_id", keep="first", maintain_order=True))
    birth = (events.filter(pl.col("code") == "MEDS_BIRTH").group_by("subject_id")
             .agg(pl.col("time").min().alias("_birth")))
    death = (events.filter(pl.col("code") == "MEDS_DEATH").group_by("subject_id")
             .agg(pl.col("time").min().alias("_death")))
    died = (pl.col("_death").is_not_null() & (pl.col("_death") >= pl.col("start_time"))
            & (pl.col("_death") <= pl.col("end_time") + pl.duration(days=1)))
    out = (stays.join(sex, on="subject_id", how="left").join(birth, on="subject_id", how="left")
           .join(death, on="subject_id", how="left")
           .with_columns(pl.lit(None, pl.Utf8).alias("site_id"), pl.lit(None, pl.Utf8).alias("ethnicity"),
                         ((pl.col("start_time") - pl.col("_birth")).dt.total_days() / 365.25)
                         .alias("age"),
                         died.cast(pl.Int8).alias("died"),
                         pl.when(died).then(pl.col("_death")).otherwise(None).alias("death_time"),
                         ((pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 86400)
                         .alias("los_days")))
    return out.select([pl.col(c).cast(t) for c, t in STAY_SCHEMA.items()])


def convert_shard(path: Path, root: Path) -> PartResult:
    """One shard's events and stays (iatros' own stays when ROOT is an iatros folder)."""
    skips = SkipLog()
    frame = read_shard(path, skips)
    if frame is None:
        return PartResult(events_frame(), None, skips)
    ours = root / "stays.parquet"
    if ours.is_file() and "iatros_derived" in frame.columns:
        stay_column = "stay_id" if "stay_id" in frame.columns else None
        subjects = _events(frame, stay_column)["subject_id"].unique()  # stays without events too
        events = _events(frame.filter(~pl.col("iatros_derived").fill_null(False)), stay_column)
        stays = read_parquet(ours).filter(pl.col("subject_id").is_in(subjects.implode()))
        return PartResult(events, stays, skips)
    stay_column = next((c for c in STAY_COLUMNS if c in frame.columns), None)
    events = _events(frame, stay_column)
    if stay_column:  # events outside any stay (static rows, ...) stay with the patient
        events = events.with_columns(pl.col("stay_id").fill_null(pl.col("subject_id")))
    stays = derive_stays(events)
    return PartResult(events.filter(pl.col("time").is_not_null()), stays, skips,
                      notes=[f"{path.name}: stays derived from event times "
                             f"({'by ' + stay_column if stay_column else 'one per patient'})"])


def finish(events: Frame, stays: pl.DataFrame, skips: SkipLog) -> tuple[Frame, pl.DataFrame]:
    """Readmission within 30 days where the stays do not say it already."""
    if "readmit_30d" not in stays.columns:
        stays = add_readmission(stays, days=30)
    return events, stays


def parts(root: Path) -> list[Part]:
    files = shards(root)
    if not files:
        raise MissingDataError(f"meds: no data shards (*.parquet) under {root / 'data'}; a MEDS "
                               "dataset keeps its events in data/*.parquet")
    extra = tuple(p for p in (root / "stays.parquet",) if p.is_file())
    return [Part(f"{p.stem[:60]}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}", (p, *extra),
                 lambda p=p: convert_shard(p, root)) for p in files]


def descriptions(root: Path) -> dict[str, str]:
    """The dataset's own code descriptions (metadata/codes.parquet), where it has them."""
    path = root / "metadata" / "codes.parquet"
    if not path.is_file():
        return {}
    try:
        codes = read_parquet(path, columns=["code", "description"])
    except EncryptionError:
        raise
    except Exception:  # noqa: BLE001 - descriptions are optional; an unreadable file gives none
        return {}
    return {c: d for c, d in codes.iter_rows() if c and d}


SOURCE = Source(NAME, "a MEDS dataset (data/*.parquet, metadata/)", parts, finish, descriptions)
