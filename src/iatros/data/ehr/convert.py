"""Incremental, cached conversion of a health-record source into the event format.

A source is cut into parts (a PhysioNet set, a MIMIC table, a FHIR bundle). Each part is
converted once into `OUT/parts/NAME.*.parquet`, keyed by a fingerprint of its input files (name,
size, modification time); a second run reads the cache, and adding a set or a bundle converts
only that part. Every file is written to a temporary name and renamed, and the manifest is
written last, so an interrupted conversion never leaves a half-written cache that looks valid:
the new tables are first written beside the old ones, then the old manifest is removed, the
tables are moved into place and the new manifest is written. A failure before that step leaves
the previous cache as it was; one during it leaves a folder without a manifest, converted again
on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from iatros.crypto import EncryptionError, KeyProvider, RotationReport, active_provider
from iatros.crypto import parquet as encrypted_parquet
from iatros.data.ehr.meds_format import meds_files
from iatros.data.ehr.schema import SkipLog, conform_events, drop_unit_mismatches
from iatros.data.home import file_digest
from iatros.errors import ConfigError, CorruptDataError, MissingDataError

FORMAT_VERSION = 5   # 2: FHIR parts hold raw patients/encounters, joined across files; 3: FHIR
#                      resources entered in error are skipped; 4: sha256 of every cached table;
#                      5: the folder is also a MEDS dataset (data/, metadata/)
MANIFEST = "manifest.json"


log = logging.getLogger("iatros")


@dataclass
class PartResult:
    """What converting one part gives: events, stays (if the part defines any), skips, notes."""

    events: pl.DataFrame
    stays: pl.DataFrame | None = None
    skips: SkipLog = field(default_factory=SkipLog)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Part:
    """A unit of conversion: its name, the files it reads, and how to convert them."""

    name: str
    inputs: tuple[Path, ...]
    convert: Callable[[], PartResult]

    def fingerprint(self, source: str) -> str:
        h = hashlib.sha256(f"{source}/{FORMAT_VERSION}/{self.name}".encode())
        for path in sorted(self.inputs):
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """A converter: how to cut a folder into parts and how to finish the merged tables."""

    name: str
    description: str
    parts: Callable[[Path], list[Part]]
    finish: Callable[[pl.DataFrame, pl.DataFrame, SkipLog], tuple[pl.DataFrame, pl.DataFrame]]
    # descriptions of the codes a conversion of `path` emits, for MEDS metadata/codes.parquet
    descriptions: Callable[[Path], dict[str, str]] | None = None
    # extra manifest keys computed from the manifest (e.g. FHIR's resource counts per type)
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None


@dataclass
class EventTables:
    """A converted dataset: events, stays and the manifest (counts, skips, timings)."""

    events: pl.DataFrame
    stays: pl.DataFrame
    manifest: dict[str, Any]
    path: Path

    def summary(self) -> str:
        m = self.manifest
        cached = "cached" if m.get("from_cache") else f"converted in {m['seconds']:.1f} s"
        return (f"{m['source']}: {m['n_subjects']} patients, {m['n_stays']} stays, "
                f"{m['n_events']} events, {m['skipped']['summary']} ({cached}) -> {self.path}")


def _tmp_name(path: Path) -> Path:
    return path.with_name(path.name + f".tmp{os.getpid()}")


STALE_TMP = re.compile(r"\.tmp\d+$")


def _remove_stale_temp_files(out: Path) -> None:
    """Temporary files a killed conversion left behind (any size, 0 bytes included)."""
    for path in [*out.glob("*"), *out.glob("parts/*")]:
        if path.is_file() and STALE_TMP.search(path.name):
            log.warning("%s: removed a temporary file left by an interrupted conversion", path)
            path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _intact(files: dict[str, Path], sums: dict[str, str] | None) -> bool:
    """Every cached file present with the checksum recorded when it was written."""
    return bool(sums) and all(path.exists() and sums.get(name) == _sha256(path)
                              for name, path in files.items())


def _read_cached(files: dict[str, Path], sums: dict[str, str] | None,
                 what: str) -> dict[str, pl.DataFrame] | None:
    """The cached tables, or None (with a warning) when one is damaged: then it is rebuilt."""
    if not _intact(files, sums):
        log.warning("%s: cached %s is damaged or incomplete (checksum differs); rebuilding it",
                    next(iter(files.values())).parent, what)
        return None
    try:
        return {name: read_parquet(path) for name, path in files.items()}
    except EncryptionError:
        raise  # no key, another key or a changed file: say so; never convert over it
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt, never trusted
        log.warning("%s: cached %s cannot be read (%s); rebuilding it",
                    next(iter(files.values())).parent, what, type(e).__name__)
        return None


def _write_tmp(path: Path, write: Callable[[Path], object]) -> Path:
    """Write `path`'s temporary sibling with `write`; on failure remove it and re-raise."""
    tmp = _tmp_name(path)
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def read_parquet(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A Parquet table written here, decrypted when it is encrypted (KeyMissingError naming the
    file and the variable to set when no key is configured)."""
    if not encrypted_parquet.is_encrypted_parquet(path):
        return pl.read_parquet(path, columns=columns)
    return pl.from_arrow(encrypted_parquet.read_table(path, columns=columns))  # type: ignore[return-value]


def read_arrow(path: Path, columns: list[str] | None = None) -> Any:
    """`read_parquet` as a pyarrow Table."""
    return encrypted_parquet.read_table(path, columns=columns)


def parquet_writer(frame: pl.DataFrame, provider: KeyProvider | None = None) -> Callable[[Path], object]:
    """How `frame` is written: as polars writes it, or encrypted when a key is configured."""
    provider = provider or active_provider()
    if provider is None:
        return frame.write_parquet
    return lambda where: encrypted_parquet.write_table(frame.to_arrow(), where, provider)


def _table_writer(table: Any) -> Callable[[Path], object]:
    """How a pyarrow table is written (encrypted when a key is configured)."""
    import pyarrow.parquet as pq

    provider = active_provider()
    if provider is None:
        return lambda where: pq.write_table(table, where)
    return lambda where: encrypted_parquet.write_table(table, where, provider)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write to a temporary name, then rename; a failed write leaves neither file behind."""
    _replace(_write_tmp(path, parquet_writer(frame)), path)


def write_json_atomic(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=2, default=str)
    _replace(_write_tmp(path, lambda tmp: tmp.write_text(text)), path)


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _invalidate(manifest: Path) -> None:
    """Remove a manifest before the files it describes are replaced."""
    manifest.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _convert_part(part: Part, source: str, folder: Path) -> tuple[PartResult, str, bool]:
    """The part's result, from the cache when its fingerprint matches."""
    fp = part.fingerprint(source)
    meta_path = folder / f"{part.name}.json"
    meta = _read_json(meta_path)
    ev_path, st_path = folder / f"{part.name}.events.parquet", folder / f"{part.name}.stays.parquet"
    files = {"events": ev_path, **({"stays": st_path} if meta and "stays" in
                                   (meta.get("sha256") or {}) else {})}
    cached = (_read_cached(files, meta.get("sha256"), f"part {part.name}")
              if meta and meta.get("fingerprint") == fp else None)
    if cached is not None:
        skips = SkipLog()
        for s in meta.get("skips", []):
            skips.add(s["where"], s["reason"])
        return PartResult(cached["events"], cached.get("stays"), skips, meta.get("notes", [])), fp, True
    result = part.convert()
    result.events = conform_events(result.events)
    _invalidate(meta_path)     # the part's files change below; its metadata goes first
    write_parquet(result.events, ev_path)
    if result.stays is not None:
        write_parquet(result.stays, st_path)
    else:
        st_path.unlink(missing_ok=True)
    sums = {"events": _sha256(ev_path), **({"stays": _sha256(st_path)}
                                           if result.stays is not None else {})}
    write_json_atomic({"fingerprint": fp, "sha256": sums,
                       "skips": [s.as_dict() for s in result.skips.items],
                       "notes": result.notes}, meta_path)
    return result, fp, False


def convert(source: Source, path: str | Path, out: str | Path, *, progress: bool = False,
            ) -> EventTables:
    """Convert `path` with `source` into `out` (events.parquet, stays.parquet, manifest.json)."""
    path, out = Path(path).expanduser(), Path(out).expanduser()
    if not path.exists():
        raise MissingDataError(f"{source.name}: {path} does not exist")
    if out.resolve() == path.resolve():
        raise ConfigError(f"{source.name}: --out {out} is the input itself; converting into it "
                          "would overwrite the source's files: choose another folder")
    parts = source.parts(path)
    if not parts:
        raise MissingDataError(f"{source.name}: nothing to convert in {path} "
                               f"({source.description})")
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source.name}: two parts share a name in {path}")
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out)
    fingerprints = {p.name: p.fingerprint(source.name) for p in parts}
    manifest = _read_json(out / MANIFEST)
    tables = {"events": out / "events.parquet", "stays": out / "stays.parquet"}
    if (manifest and manifest.get("parts") == fingerprints
            and manifest.get("format_version") == FORMAT_VERSION):
        cached = _read_cached(tables, manifest.get("sha256"), "event tables")
        if cached is not None:
            if not _intact(meds_files(out), manifest.get("meds")):
                log.warning("%s: the MEDS copy is missing or damaged; writing it again", out)
                manifest["meds"] = _write_meds(source, path, out, cached["events"], cached["stays"])
                write_json_atomic(manifest, out / MANIFEST)
            manifest["from_cache"] = True
            return EventTables(cached["events"], cached["stays"], manifest, out)
    t0 = time.perf_counter()
    results, reused = [], []
    iterator: Sequence[Part] = parts
    if progress:
        from tqdm import tqdm

        iterator = tqdm(parts, desc=f"converting {source.name}", unit="part")
    for part in iterator:
        result, _, cached = _convert_part(part, source.name, parts_dir)
        results.append((part.name, result))
        if cached:
            reused.append(part.name)
    skips = SkipLog()
    for _, r in results:
        skips.extend(r.skips)
    events = pl.concat([r.events.with_columns(pl.lit(n).alias("_part")) for n, r in results],
                       how="vertical")
    stay_frames = [r.stays.with_columns(pl.lit(n).alias("_part")) for n, r in results
                   if r.stays is not None]
    if not stay_frames:
        raise CorruptDataError(f"{source.name}: {path} defines no stays: no part gives "
                               f"patients/admissions ({source.description})")
    stays = pl.concat(stay_frames, how="diagonal_relaxed")
    events, stays = _drop_duplicate_stays(events, stays, skips, source.name)
    events = drop_unit_mismatches(events, skips, source.name)
    events, stays = source.finish(events, stays, skips)
    if stays.is_empty():
        raise CorruptDataError(f"{source.name}: {path} defines no stays: no usable "
                               f"patient/admission/encounter; {skips.summary()}")
    events = events.sort("subject_id", "stay_id", "time", "code")
    _publish(out, events, stays)
    meds_sums = _write_meds(source, path, out, events, stays)
    seconds = time.perf_counter() - t0
    manifest = {
        "format_version": FORMAT_VERSION, "source": source.name, "input": str(path),
        "parts": fingerprints, "reused_parts": reused, "seconds": round(seconds, 2),
        "n_subjects": stays["subject_id"].n_unique(), "n_stays": stays.height,
        "n_events": events.height, "notes": [n for _, r in results for n in r.notes],
        "skipped": {**skips.as_dict(), "summary": skips.summary()},
        "sha256": {name: _sha256(path) for name, path in tables.items()},
        "meds": meds_sums,
    }
    if source.summarize is not None:
        manifest.update(source.summarize(manifest))
    write_json_atomic(manifest, out / MANIFEST)
    return EventTables(events, stays, {**manifest, "from_cache": False}, out)


def _write_meds(source: Source, path: Path, out: Path, events: pl.DataFrame,
                stays: pl.DataFrame) -> dict[str, str]:
    """Write the MEDS copy (validated tables, each atomically); return its files' sha256."""
    from iatros.data.ehr import meds_format as mf

    files = mf.meds_files(out)
    data = mf.data_table(events, stays)
    descriptions = source.descriptions(path) if source.descriptions else {}
    tables = dict(zip(list(files)[:3], (data, mf.codes_table(data, descriptions), mf.splits_table(data)),
                      strict=True))
    for name, table in tables.items():
        files[name].parent.mkdir(parents=True, exist_ok=True)
        _replace(_write_tmp(files[name], _table_writer(table)), files[name])
    meta_name = list(files)[3]
    write_json_atomic(mf.dataset_metadata(source.name, str(path)), files[meta_name])
    return {name: _sha256(p) for name, p in files.items()}


def _publish(out: Path, events: pl.DataFrame, stays: pl.DataFrame) -> None:
    """Write both tables beside the old ones, then swap them in with no manifest in place.

    A failure while writing leaves the previous cache (tables and manifest) untouched; one while
    swapping leaves no manifest, so the folder is converted again rather than read as valid.
    The caller writes the new manifest last.
    """
    targets = (out / "events.parquet", out / "stays.parquet")
    written: list[Path] = []
    try:
        for frame, target in zip((events, stays), targets, strict=True):
            written.append(_write_tmp(target, parquet_writer(frame)))
        _invalidate(out / MANIFEST)
        for tmp, target in zip(written, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in written:
            tmp.unlink(missing_ok=True)


def _drop_duplicate_stays(events: pl.DataFrame, stays: pl.DataFrame, skips: SkipLog,
                          label: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A stay defined by two parts keeps the first part's records; the rest are skipped."""
    first = stays.group_by("stay_id", maintain_order=True).agg(pl.col("_part").first().alias("_keep"))
    dupes = stays.join(first, on="stay_id").filter(pl.col("_part") != pl.col("_keep"))
    for row in dupes.iter_rows(named=True):
        skips.add(f"{label} {row['_part']} stay {row['stay_id']}",
                  f"duplicate stay: already defined in {row['_keep']}")
    stays = stays.join(first, on="stay_id").filter(pl.col("_part") == pl.col("_keep"))
    events = events.join(dupes.select("stay_id", "_part"), on=["stay_id", "_part"], how="anti")
    return events.drop("_part"), stays.drop("_part", "_keep")


def no_finish(events: pl.DataFrame, stays: pl.DataFrame,
              skips: SkipLog) -> tuple[pl.DataFrame, pl.DataFrame]:
    return events, stays


def is_event_folder(path: Path) -> bool:
    """Whether `path` is a folder `convert` wrote (its manifest and parts/)."""
    return (Path(path) / MANIFEST).is_file() and (Path(path) / "parts").is_dir()


def rotate_cache(out: Path, old: KeyProvider, new: KeyProvider) -> RotationReport:
    """Re-encrypt every encrypted table of a converted folder from `old` to `new` (each
    atomically; the rows stay the same) and keep its manifests' checksums true: a table that
    matched its recorded checksum gets the new one, one that did not keeps failing (and is
    rebuilt on the next conversion). A table `old` does not open is reported and left as it
    was; one already under `new` is skipped."""
    out = Path(out)
    report = RotationReport()
    records: dict[Path, tuple[Path, str, str]] = {}   # table -> (json file, section, name)
    documents: dict[Path, dict[str, Any]] = {}
    manifest = _read_json(out / MANIFEST)
    if manifest:
        documents[out / MANIFEST] = manifest
        for name in manifest.get("sha256") or {}:
            records[out / f"{name}.parquet"] = (out / MANIFEST, "sha256", name)
        for name, path in meds_files(out).items():
            if name in (manifest.get("meds") or {}):
                records[path] = (out / MANIFEST, "meds", name)
    for meta_path in sorted((out / "parts").glob("*.json")):
        meta = _read_json(meta_path)
        if not meta:
            continue
        documents[meta_path] = meta
        for name in meta.get("sha256") or {}:
            records[out / "parts" / f"{meta_path.stem}.{name}.parquet"] = (meta_path, "sha256", name)
    changed: set[Path] = set()
    for table in sorted(p for p in out.rglob("*.parquet") if p.is_file()):
        if not encrypted_parquet.is_encrypted_parquet(table):
            report.skipped.append((str(table), "not encrypted"))
            continue
        before = _sha256(table)
        try:
            encrypted_parquet.rotate_parquet(table, old, new)
        except EncryptionError as e:
            try:
                encrypted_parquet.read_table(table, new, columns=[])
            except Exception:  # noqa: BLE001 - not under the new key either: report the first error
                report.failed.append((str(table), str(e)))
                continue
            report.skipped.append((str(table), "already under the new key"))
            continue
        except OSError as e:
            report.failed.append((str(table), f"cannot be read or written ({type(e).__name__})"))
            continue
        report.rewrapped.append(str(table))
        record = records.get(table)
        if record is not None:
            document, section, name = record
            sums = documents[document][section]
            if sums.get(name) == before:
                sums[name] = _sha256(table)
                changed.add(document)
    for document in changed:
        write_json_atomic(documents[document], document)
    return report
