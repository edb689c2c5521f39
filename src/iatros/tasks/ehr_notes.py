"""Clinical notes beside structured data: the NLP pipeline's coded concepts as events.

A note is an event whose code starts with `NOTE//` and whose `text_value` holds its text (FHIR
DocumentReference / DiagnosticReport text, OMOP NOTE). Each coded entity the extraction pipeline
finds in it (`iatros.nlp`: terminology concepts with ConText attributes) becomes an event at the
note's time and stay, coded `NOTE_CONCEPT//VOCABULARY//ID`, with `//negated` or `//uncertain`
appended when the note says so ("no pneumonia" -> `NOTE_CONCEPT//ICD-10-CM//J18.9//negated`).
Mentions about family members or others are left out. The concepts then reach the model like any
other code (counted per stay and window), so it sees what the note said beside the lab values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

NOTE_PREFIX = "NOTE//"
CONCEPT_PREFIX = "NOTE_CONCEPT//"


def concept_code(entity: Mapping[str, Any]) -> str | None:
    """An entity's event code, or None when it has no concept or is about someone else."""
    if not entity.get("concept_id") or entity.get("family"):
        return None
    experiencer = entity.get("experiencer")
    if experiencer not in (None, "", "patient"):
        return None
    code = f"{CONCEPT_PREFIX}{entity.get('vocabulary') or 'CODE'}//{entity['concept_id']}"
    if entity.get("negated"):
        return code + "//negated"
    if entity.get("uncertain") or entity.get("hypothetical"):
        return code + "//uncertain"
    return code


def note_events(events: pl.DataFrame) -> pl.DataFrame:
    """The note events of an events table (text present)."""
    return events.filter(pl.col("code").str.starts_with(NOTE_PREFIX)
                         & pl.col("text_value").is_not_null())


def concept_events(notes: pl.DataFrame, extract: Any = None) -> pl.DataFrame:
    """One event per coded concept mention of each note (`extract`: text -> extraction dict;
    the shared rule pipeline by default)."""
    if extract is None:
        from iatros.nlp import extract_text as extract
    rows: dict[str, list[Any]] = {k: [] for k in ("subject_id", "stay_id", "time", "code")}
    for subject, stay, time, text in notes.select("subject_id", "stay_id", "time",
                                                  "text_value").iter_rows():
        for code in _codes(extract(text).get("entities") or []):
            for key, value in zip(rows, (subject, stay, time, code), strict=True):
                rows[key].append(value)
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Utf8, "stay_id": pl.Utf8,
                                       "time": pl.Datetime("us"), "code": pl.Utf8})
    return frame.with_columns(pl.lit(None, pl.Float64).alias("numeric_value"),
                              pl.lit(None, pl.Utf8).alias("text_value"),
                              pl.lit(None, pl.Utf8).alias("unit"))


def _codes(entities: Iterable[Mapping[str, Any]]) -> list[str]:
    return [c for c in (concept_code(e) for e in entities) if c is not None]


def with_note_concepts(events: pl.DataFrame, extract: Any = None) -> pl.DataFrame:
    """The events plus the concepts of their notes (same columns and types)."""
    notes = note_events(events)
    if notes.is_empty():
        return events
    concepts = concept_events(notes, extract).select(events.columns).cast(dict(events.schema))
    return pl.concat([events, concepts], how="vertical")
