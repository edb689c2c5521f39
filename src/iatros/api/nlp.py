"""Clinical NLP at the api level: batches of notes from files, folders or a CSV column, with a
trained tagger from a run folder when asked. One bad file never stops a batch: it becomes an
entry `{"source", "error"}` and the rest go on.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from iatros.errors import ConfigError, IatrosError
from iatros.nlp.deid import deidentify
from iatros.nlp.fhir import to_fhir_bundle
from iatros.nlp.io import Note, NoteError, decode_note, read_note
from iatros.nlp.patients import problem_and_medication_lists
from iatros.nlp.pipeline import ClinicalPipeline, Tagger
from iatros.nlp.radiology import (
    FindingSpec,
    parse_finding,
    read_findings_file,
    summarize_findings,
)
from iatros.nlp.radiology import (
    findings_csv as labels_csv,
)
from iatros.nlp.summarize import summarize as summarize_text
from iatros.nlp.terminology import UserTerm, read_terms

Item = tuple[str, str, Note | IatrosError]  # (source, patient id, note or the error)


def _csv_rows(path: Path, column: str, id_column: str | None) -> Iterator[Item]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as e:
        yield str(path), "unknown", NoteError(f"{path}: cannot read ({e})")
        return
    text = decode_note(data, str(path)).text
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(io.StringIO(text))
    if column not in (reader.fieldnames or []):
        raise ConfigError(f"{path} has no column {column!r}; columns: {reader.fieldnames}")
    if id_column and id_column not in (reader.fieldnames or []):
        raise ConfigError(f"{path} has no column {id_column!r}; columns: {reader.fieldnames}")
    for k, row in enumerate(reader, start=2):
        source = f"{path}:{k}"
        value = row.get(column) or ""
        patient = str(row.get(id_column) or source) if id_column else source
        if not value.strip():
            yield source, patient, NoteError(f"{source}: column {column!r} is empty")
        else:
            yield source, patient, Note(source, value)


def iter_notes(paths: Sequence[str | Path], column: str | None = None,
               id_column: str | None = None) -> Iterator[Item]:
    """Notes from files, folders (every non-hidden file, recursively, sorted) or CSV files
    (with `column`); unreadable ones come as errors in place of the note."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            files = [path]
        for f in files:
            if column and (f.suffix == ".csv" or f.name.endswith(".csv.gz")):
                yield from _csv_rows(f, column, id_column)
                continue
            try:
                yield str(f), f.stem, read_note(f)
            except IatrosError as e:
                yield str(f), f.stem, e


def terminology_cache() -> Path:
    """Where the concept dictionary built from the terminologies is cached (JSON)."""
    from iatros.settings import home_dir  # not get_settings: IATROS_THREADS would load torch

    return home_dir() / "cache" / "terminology"


def load_tagger(run: str | Path, device: str = "cpu") -> Tagger:
    """A trained token tagger (e.g. a `ner-ncbi-disease` run) as a callable for the pipeline."""
    from iatros.pipeline.scoring import tagger_for  # torch: loaded only when a tagger is asked for
    from iatros.run_folder import RunFolder
    from iatros.train.predictors import load_predictor

    folder = RunFolder(run)
    config = folder.require_complete()
    return tagger_for(config["target_kind"], load_predictor(folder.path, device),
                      list(config["classes"]), str(folder.path))


def _run(paths: Sequence[str | Path], work: Callable[[str, str, Note], Any], *, column: str | None,
         id_column: str | None, progress: bool, desc: str) -> list[dict[str, Any]]:
    results = []
    for source, patient, note in tqdm(list(iter_notes(paths, column, id_column)), desc=desc,
                                      unit="note", disable=not progress):
        if isinstance(note, IatrosError):
            results.append({"source": source, "error": str(note)})
            continue
        try:
            out = work(source, patient, note)
        except IatrosError as e:
            out = {"source": source, "error": str(e)}
        except Exception as e:  # a bug or an unforeseen input: report it, keep the batch going
            out = {"source": source, "error": f"{type(e).__name__}: {e}"}
        if note.warnings and "error" not in out:
            out["warnings"] = list(note.warnings)
        results.append(out)
    if not results:
        raise ConfigError(f"no notes found in {', '.join(map(str, paths))}")
    return results


def extract(paths: Sequence[str | Path], *, fhir: bool = False, tagger_run: str | Path | None = None,
            column: str | None = None, id_column: str | None = None,
            progress: bool = False, findings: bool | Sequence[str | FindingSpec] = False,
            findings_file: str | Path | None = None, findings_csv: str | Path | None = None,
            terms: str | Path | Sequence[UserTerm] | None = None) -> list[dict[str, Any]]:
    """One dict per input note: entities, sections (and `fhir`: a validated Bundle), or error.
    `findings` (True: every finding mentioned; names, "name|synonym|...": just those) adds the
    report-level labels `{"findings": {name: present | absent | uncertain | not mentioned}}`
    (rules in iatros.nlp.radiology); `findings_file` adds names from a file (one a line);
    `findings_csv` also writes the labels as a CSV without text.
    `terms`: a user's term list (CSV / TSV file: term, label[, concept_id, vocabulary]) matched
    before the terminologies."""
    specs = _finding_specs(findings, findings_file)
    labelled = bool(findings) or specs is not None or findings_csv is not None
    user_terms = read_terms(terms) if isinstance(terms, (str, Path)) else list(terms or [])
    pipeline = ClinicalPipeline(tagger=load_tagger(tagger_run) if tagger_run else None,
                                terms=user_terms, cache_dir=terminology_cache(),
                                radiology=labelled)

    def work(source: str, patient: str, note: Note) -> dict[str, Any]:
        doc = pipeline.extract(note.text, source)
        doc["patient_id"] = patient
        if labelled:
            doc["findings"] = summarize_findings(doc, specs)
        if fhir:
            doc["fhir"] = to_fhir_bundle(doc, patient)
        return doc
    results = _run(paths, work, column=column, id_column=id_column, progress=progress,
                   desc="extract")
    if findings_csv is not None:
        from iatros.run_folder import write_text_atomic  # pandas: loaded only when a CSV is asked for

        out = Path(findings_csv)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, labels_csv(results, [f.name for f in specs] if specs else None))
    return results


def _finding_specs(findings: bool | Sequence[str | FindingSpec],
                   file: str | Path | None = None) -> list[FindingSpec] | None:
    """The findings a user named ("name" or "name|synonym|...", and those of `file`), or None
    for all found."""
    if isinstance(findings, str):
        findings = [findings]
    specs = [] if isinstance(findings, bool) else [
        f if isinstance(f, FindingSpec) else parse_finding(f) for f in findings]
    if file is not None:
        specs += read_findings_file(file)
    names = [f.name.lower() for f in specs]
    if len(set(names)) < len(names):
        raise ConfigError(f"findings named twice: {sorted({n for n in names if names.count(n) > 1})}")
    return specs or None


def summarize(paths: Sequence[str | Path], *, max_sentences: int = 4, column: str | None = None,
              id_column: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Summaries per note, and per patient the problem and medication lists across notes."""
    pipeline = ClinicalPipeline(cache_dir=terminology_cache())
    extracted: list[tuple[str, dict[str, Any]]] = []

    def work(source: str, patient: str, note: Note) -> dict[str, Any]:
        doc = pipeline.extract(note.text, source)
        extracted.append((patient, doc))
        return {"source": source, "patient_id": patient,
                **summarize_text(note.text, max_sentences, pipeline, extraction=doc)}
    notes = _run(paths, work, column=column, id_column=id_column, progress=progress,
                 desc="summarize")
    return {"notes": notes, "patients": problem_and_medication_lists(extracted)}


def deid(paths: Sequence[str | Path], *, out_dir: str | Path | None = None, key: str | None = None,
         random_key: bool = False, mode: str = "tags", tagger_run: str | Path | None = None,
         column: str | None = None, id_column: str | None = None, include_originals: bool = False,
         show_shift: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """De-identify notes (iatros.nlp.deid): `mode` "tags" or "surrogates"; `tagger_run` adds a
    trained PHI tagger (`iatros train deid-physionet`) to the rules. A key is required (`key`,
    else IATROS_DEID_KEY) unless `random_key`. With `out_dir` (never an input folder or inside
    one) each note's text is written there as .txt; the returned list holds each note's report
    and, without `out_dir`, its text. The key is never returned; the date shift only with
    `show_shift`."""
    from iatros.nlp.deid import MODES, resolve_key
    from iatros.nlp.deid_output import NoteWriter, check_out_dir

    secret, key_source = resolve_key(key, random_key=random_key)
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if out_dir is not None:
        check_out_dir(paths, out_dir)
    writer = NoteWriter(paths, out_dir) if out_dir is not None else None
    tagger = load_tagger(tagger_run) if tagger_run else None

    def work(source: str, patient: str, note: Note) -> dict[str, Any]:
        text, report = deidentify(note.text, patient, secret, mode=mode, tagger=tagger,
                                  include_originals=include_originals, show_shift=show_shift)
        report["key"] = key_source
        out: dict[str, Any] = {"source": source, "report": report}
        if writer is None:
            out["text"] = text
        else:
            out["output"] = str(writer.write(source, text))
        return out
    return _run(paths, work, column=column, id_column=id_column, progress=progress, desc="deid")


class NoteExtractor:
    """The extraction pipeline built once (terminologies loaded once) for many single notes,
    as a service needs: entities with context and coded concepts, and a FHIR Bundle."""

    def __init__(self, tagger_run: str | Path | None = None) -> None:
        self.pipeline = ClinicalPipeline(tagger=load_tagger(tagger_run) if tagger_run else None,
                                         cache_dir=terminology_cache())

    def extract(self, text: str, source: str = "note", patient_id: str = "unknown", *,
                fhir: bool = True) -> dict[str, Any]:
        doc = self.pipeline.extract(text, source)
        doc["patient_id"] = patient_id
        if fhir:
            doc["fhir"] = to_fhir_bundle(doc, patient_id)
        return doc


def deid_text(text: str, *, patient_id: str = "unknown", key: str | None = None,
              mode: str = "tags") -> dict[str, Any]:
    """One note de-identified with the rules and span filter: {"text", "report"}; the key as
    in `deid` (required: `key` or IATROS_DEID_KEY), never returned."""
    from iatros.nlp.deid import MODES, resolve_key

    secret, _ = resolve_key(key)
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    out, report = deidentify(text, patient_id, secret, mode=mode)
    return {"text": out, "report": report}
