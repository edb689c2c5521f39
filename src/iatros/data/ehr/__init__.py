"""Health records and ICU time series: one event format, sources that convert into it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from iatros.data.ehr.convert import EventTables, Source, convert
from iatros.errors import ConfigError


def sources() -> dict[str, Source]:
    """The converters by name: physionet2012, mimic3, mimic4, eicu, fhir, meds, omop."""
    from iatros.data.ehr import eicu, fhir, meds, mimic3, mimic4, omop, physionet2012

    return {m.SOURCE.name: m.SOURCE
            for m in (physionet2012, mimic3, mimic4, eicu, fhir, meds, omop)}


def get_source(name: str) -> Source:
    known = sources()
    if name not in known:
        raise ConfigError(f"unknown EHR source {name!r}; known: {', '.join(known)}")
    return known[name]


def cached_events(source: str, path: Path, cache_root: Path, *, progress: bool = False,
                  ) -> EventTables:
    """Convert `path` into the workspace cache (once; later calls read the cache)."""
    key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return convert(get_source(source), path, Path(cache_root) / "events" / f"{source}-{key}",
                   progress=progress)
