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
from iatros.data.ehr.schema import Frame, SkipLog, conform_events, drop_unit_mismatches
from iatros.data.ehr.sorting import write_sorted
from iatros.data.home import file_digest
from iatros.errors import ConfigError, CorruptDataError, MissingDataError

FORMAT_VERSION = 5   # 2: FHIR parts hold raw patients/encounters, joined across files; 3: FHIR
#                      resources entered in error are skipped; 4: sha256 of every cached table;
#                      5: the folder is also a MEDS dataset (data/, metadata/)
MANIFEST = "manifest.json"
EVENT_ORDER = ("subject_id", "stay_id", "time", "code")


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
    # merged events (a lazy frame read from the parts on disk), stays and skips -> final tables
    finish: Callable[[Frame, pl.DataFrame, SkipLog], tuple[Frame, pl.DataFrame]]
    # descriptions of the codes a conversion of `path` emits, for MEDS metadata/codes.parquet
    descriptions: Callable[[Path], dict[str, str]] | None = None
    # extra manifest keys computed from the manifest (e.g. FHIR's resource counts per type)
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class EventTables:
    """A converted dataset: events, stays and the manifest (counts, skips, timings).

    A conversion does not hold the events in memory: they are read from `path/events.parquet`
    on first use of `events` (a later conversion into the same folder is what a first use
    after it reads).
    """

    def __init__(self, events: pl.DataFrame | None, stays: pl.DataFrame, manifest: dict[str, Any],
                 path: Path) -> None:
        self._events, self.stays, self.manifest, self.path = events, stays, manifest, Path(path)

    @property
    def events(self) -> pl.DataFrame:
        if self._events is None:
            self._events = read_parquet(self.path / "events.parquet")
        return self._events

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


def _read_tables(files: dict[str, Path], what: str) -> dict[str, pl.DataFrame] | None:
    """Tables whose checksums were verified, or None (with a warning) when one cannot be read."""
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


def scan_parquet(path: Path) -> pl.LazyFrame:
    """A Parquet table written here as a lazy frame; an encrypted one is decrypted into memory
    (its plaintext never goes to disk)."""
    if not encrypted_parquet.is_encrypted_parquet(path):
        return pl.scan_parquet(path)
    return read_parquet(path).lazy()


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


def _convert_part(part: Part, source: str, folder: Path) -> tuple[PartResult, bool]:
    """The part's stays, skips and notes, from the cache when its fingerprint matches; its events
    are on disk (`folder/NAME.events.parquet`), not in the result, so parts are merged from disk."""
    fp = part.fingerprint(source)
    meta_path = folder / f"{part.name}.json"
    meta = _read_json(meta_path)
    ev_path, st_path = folder / f"{part.name}.events.parquet", folder / f"{part.name}.stays.parquet"
    has_stays = bool(meta and "stays" in (meta.get("sha256") or {}))
    files = {"events": ev_path, **({"stays": st_path} if has_stays else {})}
    if meta and meta.get("fingerprint") == fp and _intact(files, meta.get("sha256")):
        stays = _read_tables({"stays": st_path}, f"part {part.name}") if has_stays else {}
        if stays is not None:
            skips = SkipLog()
            for s in meta.get("skips", []):
                skips.add(s["where"], s["reason"])
            return PartResult(pl.DataFrame(), stays.get("stays"), skips, meta.get("notes", [])), True
    elif meta and meta.get("fingerprint") == fp:
        log.warning("%s: cached part %s is damaged or incomplete (checksum differs); rebuilding it",
                    folder, part.name)
    result = part.convert()
    _invalidate(meta_path)     # the part's files change below; its metadata goes first
    write_parquet(conform_events(result.events), ev_path)
    result.events = pl.DataFrame()   # on disk now: the merge reads it from there
    if result.stays is not None:
        write_parquet(result.stays, st_path)
    else:
        st_path.unlink(missing_ok=True)
    sums = {"events": _sha256(ev_path), **({"stays": _sha256(st_path)}
                                           if result.stays is not None else {})}
    write_json_atomic({"fingerprint": fp, "sha256": sums,
                       "skips": [s.as_dict() for s in result.skips.items],
                       "notes": result.notes}, meta_path)
    return result, False


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
        intact = _intact(tables, manifest.get("sha256"))
        if not intact:
            log.warning("%s: cached event tables are damaged or incomplete (checksum differs); "
                        "rebuilding them", out)
        cached = _read_tables({"stays": tables["stays"]}, "event tables") if intact else None
        if cached is not None:
            if not _intact(meds_files(out), manifest.get("meds")):
                log.warning("%s: the MEDS copy is missing or damaged; writing it again", out)
                manifest["meds"] = _write_meds(source, path, out, cached["stays"])
                write_json_atomic(manifest, out / MANIFEST)
            manifest["from_cache"] = True
            return EventTables(None, cached["stays"], manifest, out)
    t0 = time.perf_counter()
    reused: list[str] = []
    skips, notes, stay_frames = SkipLog(), [], []
    iterator: Sequence[Part] = parts
    if progress:
        from tqdm import tqdm

        iterator = tqdm(parts, desc=f"converting {source.name}", unit="part")
    for part in iterator:   # one part in memory at a time; its events go to parts/ on disk
        result, from_cache = _convert_part(part, source.name, parts_dir)
        if from_cache:
            reused.append(part.name)
        skips.extend(result.skips)
        notes.extend(result.notes)
        if result.stays is not None:
            stay_frames.append(result.stays.with_columns(pl.lit(part.name).alias("_part")))
    if not stay_frames:
        raise CorruptDataError(f"{source.name}: {path} defines no stays: no part gives "
                               f"patients/admissions ({source.description})")
    events = pl.concat([scan_parquet(parts_dir / f"{p.name}.events.parquet")
                        .with_columns(pl.lit(p.name).alias("_part")) for p in parts], how="vertical")
    stays = pl.concat(stay_frames, how="diagonal_relaxed")
    events, stays = _drop_duplicate_stays(events, stays, skips, source.name)
    events = drop_unit_mismatches(events, skips, source.name)
    events, stays = source.finish(events, stays, skips)
    if stays.is_empty():
        raise CorruptDataError(f"{source.name}: {path} defines no stays: no usable "
                               f"patient/admission/encounter; {skips.summary()}")
    _publish(out, events.lazy(), stays)
    meds_sums = _write_meds(source, path, out, stays)
    seconds = time.perf_counter() - t0
    manifest = {
        "format_version": FORMAT_VERSION, "source": source.name, "input": str(path),
        "parts": fingerprints, "reused_parts": reused, "seconds": round(seconds, 2),
        "n_subjects": stays["subject_id"].n_unique(), "n_stays": stays.height,
        "n_events": _count(tables["events"]), "notes": notes,
        "skipped": {**skips.as_dict(), "summary": skips.summary()},
        "sha256": {name: _sha256(path) for name, path in tables.items()},
        "meds": meds_sums,
    }
    if source.summarize is not None:
        manifest.update(source.summarize(manifest))
    write_json_atomic(manifest, out / MANIFEST)
    return EventTables(None, stays, {**manifest, "from_cache": False}, out)


def _count(path: Path) -> int:
    return int(scan_parquet(path).select(pl.len()).collect().item())


def _write_meds(source: Source, path: Path, out: Path, stays: pl.DataFrame) -> dict[str, str]:
    """Write the MEDS copy from the published events (validated, each file atomically, the data
    sorted out of core); return its files' sha256."""
    from iatros.data.ehr import meds_format as mf

    files = mf.meds_files(out)
    names = list(files)
    data_path = files[names[0]]
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data = mf.data_frame(scan_parquet(out / "events.parquet"), stays)
    def write(tmp: Path) -> None:
        write_sorted(data, tmp, mf.DATA_ORDER, batches=mf.write_validated)

    if active_provider() is not None:   # encrypted: sorted and validated in memory, never on disk
        write = _table_writer(mf.sorted_table(data))  # type: ignore[assignment]
    _replace(_write_tmp(data_path, write), data_path)
    written = scan_parquet(data_path)
    codes, subjects = pl.collect_all([written.select(pl.col("code").unique()),
                                      written.select(pl.col("subject_id").unique())])
    codes, subjects = codes["code"].to_list(), subjects["subject_id"].to_numpy()
    descriptions = source.descriptions(path) if source.descriptions else {}
    for name, table in ((names[1], mf.codes_table(codes, descriptions)),
                        (names[2], mf.splits_table(subjects))):
        files[name].parent.mkdir(parents=True, exist_ok=True)
        _replace(_write_tmp(files[name], _table_writer(table)), files[name])
    write_json_atomic(mf.dataset_metadata(source.name, str(path)), files[names[3]])
    return {name: _sha256(p) for name, p in files.items()}


def _publish(out: Path, events: pl.LazyFrame, stays: pl.DataFrame) -> None:
    """Write both tables beside the old ones, then swap them in with no manifest in place.

    The events are sorted out of core as they are written. A failure while writing leaves the
    previous cache (tables and manifest) untouched; one while swapping leaves no manifest, so the
    folder is converted again rather than read as valid. The caller writes the new manifest last.
    """
    targets = (out / "events.parquet", out / "stays.parquet")
    written: list[Path] = []
    try:
        written.append(_write_tmp(targets[0], lambda tmp: write_sorted(events, tmp, EVENT_ORDER)))
        written.append(_write_tmp(targets[1], parquet_writer(stays)))
        _invalidate(out / MANIFEST)
        for tmp, target in zip(written, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in written:
            tmp.unlink(missing_ok=True)


def _drop_duplicate_stays(events: Frame, stays: pl.DataFrame, skips: SkipLog,
                          label: str) -> tuple[Frame, pl.DataFrame]:
    """A stay defined by two parts keeps the first part's records; the rest are skipped."""
    first = stays.group_by("stay_id", maintain_order=True).agg(pl.col("_part").first().alias("_keep"))
    dupes = stays.join(first, on="stay_id").filter(pl.col("_part") != pl.col("_keep"))
    for row in dupes.iter_rows(named=True):
        skips.add(f"{label} {row['_part']} stay {row['stay_id']}",
                  f"duplicate stay: already defined in {row['_keep']}")
    stays = stays.join(first, on="stay_id").filter(pl.col("_part") == pl.col("_keep"))
    if not dupes.is_empty():
        events = events.join(dupes.select("stay_id", "_part").lazy() if isinstance(
            events, pl.LazyFrame) else dupes.select("stay_id", "_part"),
            on=["stay_id", "_part"], how="anti")
    return events.drop("_part"), stays.drop("_part", "_keep")


def no_finish(events: Frame, stays: pl.DataFrame, skips: SkipLog) -> tuple[Frame, pl.DataFrame]:
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
