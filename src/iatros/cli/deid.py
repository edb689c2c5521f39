"""`iatros deid dicom|fhir|text`: de-identification by kind of file, one key for all of them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from iatros.cli.nlp import deid_cmd as text_cmd
from iatros.cli.output import progress_flag as _progress
from iatros.cli.output import report_failures as _report_failures

deid_app = typer.Typer(
    help="De-identify files: DICOM (PS3.15 basic confidentiality profile), FHIR Bundles "
         "(identifiers to keyed pseudonyms, dates shifted per patient, names and contacts "
         "removed) and notes (`deid text`, the same as `iatros nlp deid`). The same key gives the "
         "same pseudonyms and date shifts across all three. Outputs go to --out, never into an "
         "input folder; a report (what changed, never the values) is printed as JSON.",
    no_args_is_help=True)
Paths = Annotated[list[Path], typer.Argument(help="Files or folders.")]
OutDir = Annotated[Path, typer.Option("--out", help="Folder for the de-identified files (refused "
                                                    "when it is an input folder or inside one).")]
Key = Annotated[str | None, typer.Option(help="Secret (16+ characters); default $IATROS_DEID_KEY. "
                                              "Required unless --random-key. Never printed.")]
RandomKey = Annotated[bool, typer.Option("--random-key", help="A random key for this run only.")]
Progress = Annotated[bool | None, typer.Option("--progress/--no-progress",
                                               help="Progress bar (default: on a terminal).")]


def _emit(results: list[dict]) -> None:
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    _report_failures(results)


@deid_app.command("dicom")
def dicom_cmd(paths: Paths, out: OutDir, key: Key = None, random_key: RandomKey = False,
              progress: Progress = None) -> None:
    """DICOM files: names, ids, UIDs, dates, institutions to consistent pseudonyms (dicognito,
    seeded per patient by the key), private tags removed, free text emptied, marked as
    de-identified; files with possible burned-in text are warned about. Written as
    OUT/PATIENT_PSEUDONYM/NEW_SOP_INSTANCE_UID.dcm."""
    from iatros.api import deid

    _emit(deid.dicom(paths, out, key=key, random_key=random_key, progress=_progress(progress)))


@deid_app.command("fhir")
def fhir_cmd(paths: Paths, out: OutDir, key: Key = None, random_key: RandomKey = False,
             show_shift: Annotated[bool, typer.Option("--show-shift", help="Put each patient's day "
                                                      "shift in the report.")] = False,
             progress: Progress = None) -> None:
    """FHIR R4 Bundles (.json): ids and identifiers to keyed pseudonyms (references kept
    linked), names / telecom / photos / contacts removed, addresses to state and country,
    full dates shifted by the patient's days (as in their notes), notes and text attachments
    de-identified; each output validated as FHIR R4 and named OUT/PATIENT_PSEUDONYM.json."""
    from iatros.api import deid

    _emit(deid.fhir(paths, out, key=key, random_key=random_key, show_shift=show_shift,
                    progress=_progress(progress)))


deid_app.command("text")(text_cmd)
