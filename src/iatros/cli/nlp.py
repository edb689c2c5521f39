"""`iatros nlp`: clinical text from the command line (extract, summarize, deid)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from iatros.cli.output import progress_flag as _progress
from iatros.cli.output import report_failures as _report_failures

nlp_app = typer.Typer(
    help="Clinical text: extract problems, symptoms, medications (dose, route, frequency), labs "
         "(value, unit) and procedures with context (negated, uncertain, historical, family, "
         "hypothetical) and character offsets; FHIR R4 output; extractive summaries with "
         "per-patient problem and medication lists; de-identification.\n\n"
         "Inputs are note files, folders (every file inside, recursively) or CSV files with "
         "--column. A file that cannot be read (empty, binary, ...) is reported with the reason "
         "and the batch goes on.",
    no_args_is_help=True,
)

Paths = Annotated[list[Path], typer.Argument(help="Note files, folders, or CSV files (with "
                                                  "--column).")]
Column = Annotated[str | None, typer.Option(help="CSV inputs: the column holding the note text.")]
IdColumn = Annotated[str | None, typer.Option(
    "--id-column", help="CSV inputs: the column holding the patient id (default: one id per row; "
                        "files: the file name).")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the JSON here instead of stdout.")]
Progress = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).")]


def _emit(payload: Any, out: Path | None) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    if out is None:
        sys.stdout.write(text + "\n")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(out)
    typer.echo(f"wrote {out}", err=True)


@nlp_app.command("extract")
def extract_cmd(
    paths: Paths,
    out: Out = None,
    fhir: Annotated[bool, typer.Option("--fhir", help="Add a validated FHIR R4 Bundle per note "
                                                      "(Condition, MedicationStatement, Observation "
                                                      "derived from a DocumentReference).")] = False,
    tagger: Annotated[Path | None, typer.Option(
        help="Run folder of a trained tagger (e.g. from `iatros train ner-ncbi-disease`) whose "
             "disease / chemical mentions complement the term lists.")] = None,
    column: Column = None,
    id_column: IdColumn = None,
    progress: Progress = None,
    findings: Annotated[bool, typer.Option(
        "--findings", help="Add report-level labels per finding: \"findings\": {name: present | "
                           "absent | uncertain}, IMPRESSION over FINDINGS, INDICATION / HISTORY "
                           "ignored (for labelling radiology reports of an image collection).")
    ] = False,
    finding: Annotated[list[str] | None, typer.Option(
        "--finding", help="Label only this finding (repeatable; \"name|synonym|...\"); one not "
                          "found is \"not mentioned\" (\"absent\" needs a negated mention). "
                          "Implies --findings.")] = None,
    findings_file: Annotated[Path | None, typer.Option(
        "--findings-file", help="Findings to label, one a line (\"name|synonym|...\", # "
                                "comments). Implies --findings.")] = None,
    findings_csv: Annotated[Path | None, typer.Option(
        "--findings-csv", help="Also write the labels as CSV: one row per report (source, id, "
                               "status), one column per finding, no report text. Implies "
                               "--findings.")] = None,
    terms: Annotated[Path | None, typer.Option(
        "--terms", help="Your own term list, matched before the terminologies (HPO, ICD-10-CM, "
                        "DrugBank names): CSV or TSV with columns term, label (PROBLEM, SYMPTOM, "
                        "MEDICATION, LAB, PROCEDURE) and optionally concept_id, vocabulary.")
    ] = None,
) -> None:
    """Entities with context and offsets: a JSON list, one object per note:
    {"source", "entities": [{"text", "label", "start", "end", "negated", "uncertain",
    "historical", "family", "hypothetical", "section", ...}], "sections": [...]}; with
    --findings also {"findings": {name: "present" | "absent" | "uncertain" | "not mentioned"}}."""
    from iatros.api import nlp as nlp_api

    results = nlp_api.extract(paths, fhir=fhir, tagger_run=tagger, column=column,
                              id_column=id_column, progress=_progress(progress),
                              findings=list(finding or []) or findings,
                              findings_file=findings_file, findings_csv=findings_csv, terms=terms)
    if findings_csv is not None:
        typer.echo(f"wrote {findings_csv}", err=True)
    _emit(results, out)
    _report_failures(results)


@nlp_app.command("summarize")
def summarize_cmd(
    paths: Paths,
    out: Out = None,
    sentences: Annotated[int, typer.Option(min=1, help="Sentences in each summary.")] = 4,
    column: Column = None,
    id_column: IdColumn = None,
    progress: Progress = None,
) -> None:
    """Extractive summary of each note (key sentences, problems, medications, findings, plan)
    and, per patient, the problem and medication lists across all their notes."""
    from iatros.api import nlp as nlp_api

    result = nlp_api.summarize(paths, max_sentences=sentences, column=column, id_column=id_column,
                               progress=_progress(progress))
    _emit(result, out)
    _report_failures(result["notes"])


@nlp_app.command("deid")
def deid_cmd(
    paths: Paths,
    out: Out = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Write each de-identified note here as a .txt file (the JSON then holds "
                          "only the reports). Refused when it is an input folder or inside one.")] = None,
    key: Annotated[str | None, typer.Option(
        help="Secret (16+ characters) behind the pseudonyms, surrogates and per-patient date "
             "shifts: the same key gives the same ones in every run. Default: $IATROS_DEID_KEY. "
             "Required unless --random-key. Never printed.")] = None,
    random_key: Annotated[bool, typer.Option(
        "--random-key", help="Run without a key: a random one for this run only (pseudonyms and "
                             "shifts will not match any other run).")] = False,
    mode: Annotated[str, typer.Option(
        help="tags: replace PHI by its type ([NAME], [DATE] ...); surrogates: by a realistic "
             "value of the same type (fake names, dates shifted per patient keeping the "
             "format, 90+ for ages over 89).")] = "tags",
    tagger: Annotated[Path | None, typer.Option(
        help="Run folder of a trained PHI tagger (`iatros train deid-physionet`) whose spans are "
             "added to the rules.")] = None,
    show_shift: Annotated[bool, typer.Option(
        "--show-shift", help="Put each patient's date shift (days) in the report; without it the "
                             "shift is never shown (it would undo the shifting).")] = False,
    show_originals: Annotated[bool, typer.Option(
        help="Put the original PHI text in the report (do not share such a report).")] = False,
    column: Column = None,
    id_column: IdColumn = None,
    progress: Progress = None,
) -> None:
    """Remove the 18 HIPAA Safe Harbor identifiers (names, places smaller than a state, dates,
    ages over 89, phone / fax, e-mail, SSN, record / plan / account / licence / vehicle / device
    numbers, URLs, IP addresses, biometric ids, photo files, other ids); print the text (or
    write it with --out-dir) and a report of every replacement."""
    from iatros.api import nlp as nlp_api

    results = nlp_api.deid(paths, out_dir=out_dir, key=key, random_key=random_key, mode=mode,
                           tagger_run=tagger, column=column, id_column=id_column,
                           include_originals=show_originals, show_shift=show_shift,
                           progress=_progress(progress))
    _emit(results, out)
    _report_failures(results)
