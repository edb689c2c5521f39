"""De-identification of files beyond notes, keyed like `iatros nlp deid` (the same key gives the
same pseudonyms and the same per-patient date shift): DICOM files and FHIR Bundles. Each batch
writes its outputs into a folder that is never an input folder, goes on past a bad file, and
returns one report entry per file (what changed, never the values)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from iatros.errors import ConfigError, IatrosError
from iatros.nlp.deid import deidentify, resolve_key
from iatros.nlp.deid_output import check_out_dir
from iatros.nlp.surrogates import pseudonym, shift_days
from iatros.privacy.dicom import DicomDeidentifier
from iatros.privacy.fhir import FhirDeidentifier

DICOM_SUFFIXES = {".dcm", ".dicom", ""}


def _files(paths: Sequence[str | Path], suffixes: set[str] | None) -> Iterator[tuple[Path, Path]]:
    """(file, the input root it came from) for files and every file under folders."""
    for root in map(Path, paths):
        if root.is_dir():
            for f in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if suffixes is None or f.suffix.lower() in suffixes:
                    yield f, root
        else:
            yield root, root.parent


def _unique(target: Path, used: set[Path]) -> Path:
    k = 1
    while target in used or target.exists():
        k += 1
        target = target.with_name(f"{target.stem.split('~')[0]}~{k}{target.suffix}")
    used.add(target)
    return target


def dicom(paths: Sequence[str | Path], out_dir: str | Path, *, key: str | None = None,
          random_key: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """De-identify DICOM files (and folders of them) into `out_dir` as PSEUDONYMOUS_PATIENT/
    NEW_SOP_INSTANCE_UID.dcm (input paths often carry names; the report maps them)."""
    secret, key_source = resolve_key(key, random_key=random_key)
    out = check_out_dir(paths, out_dir)
    worker = DicomDeidentifier(lambda patient: pseudonym(secret, "dicom", patient))
    results, used = [], set()
    for file, _ in tqdm(list(_files(paths, DICOM_SUFFIXES)), desc="deid dicom", unit="file",
                           disable=not progress):
        entry: dict[str, Any] = {"source": str(file)}
        try:
            entry.update(worker.file(file, out, lambda t: _unique(t, used)), key=key_source)
        except (IatrosError, OSError) as e:
            entry["error"] = str(e)
        results.append(entry)
    if not results:
        raise ConfigError(f"no files found in {', '.join(map(str, paths))}")
    return results


def fhir(paths: Sequence[str | Path], out_dir: str | Path, *, key: str | None = None,
         random_key: bool = False, show_shift: bool = False, progress: bool = False
         ) -> list[dict[str, Any]]:
    """De-identify FHIR Bundles (.json) into `out_dir`; each output is validated as FHIR R4."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    secret, key_source = resolve_key(key, random_key=random_key)
    out = check_out_dir(paths, out_dir)
    worker = FhirDeidentifier(lambda s: pseudonym(secret, "fhir", s)[:32],
                              lambda patient: shift_days(patient, secret),
                              lambda text, patient: deidentify(text, patient, secret)[0])
    results, used = [], set()
    for file, _ in tqdm(list(_files(paths, {".json"})), desc="deid fhir", unit="file",
                           disable=not progress):
        entry: dict[str, Any] = {"source": str(file)}
        try:
            bundle = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise ConfigError(f"{file}: expected a FHIR Bundle (resourceType 'Bundle')")
            clean, report = worker.bundle(bundle)
            Bundle.model_validate(clean)
            # named by the patient's pseudonym: input names often carry the patient's name
            target = _unique(out / f"{report['patient_pseudonym']}.json", used)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(json.dumps(clean, indent=1), encoding="utf-8")
            tmp.replace(target)
            entry.update(report, output=str(target), key=key_source)
            if show_shift:
                patient = next((e["resource"]["id"] for e in bundle.get("entry", [])
                                if e.get("resource", {}).get("resourceType") == "Patient"), "unknown")
                entry["date_shift_days"] = shift_days(str(patient), secret)
        except (IatrosError, OSError, ValueError, ValidationError) as e:
            entry["error"] = str(e).splitlines()[0][:300] if isinstance(e, ValidationError) else str(e)
        results.append(entry)
    if not results:
        raise ConfigError(f"no .json files found in {', '.join(map(str, paths))}")
    return results
