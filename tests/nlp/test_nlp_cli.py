"""`iatros nlp` from the command line: folders with bad files, FHIR, CSV, summaries, de-id."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from iatros.cli import app

NOTE = ("HISTORY: 70-year-old man with hypertension. Denies chest pain.\n"
        "MEDICATIONS: Metoprolol 25 mg p.o. b.i.d.\nPLAN: Seen by Dr. Alan Grant on 01/02/2020.")


def _runner() -> CliRunner:
    return CliRunner()


def test_extract_folder_reports_bad_files_and_keeps_the_rest(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_text(NOTE)
    (tmp_path / "in" / "empty.txt").write_text("")
    (tmp_path / "in" / "blob.bin").write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "out.json"
    result = _runner().invoke(app, ["nlp", "extract", str(tmp_path / "in"), "--out", str(out),
                                    "--fhir"])
    assert result.exit_code == 0, result.output
    docs = {d["source"].rsplit("/", 1)[-1]: d for d in json.loads(out.read_text())}
    assert "empty" in docs["empty.txt"]["error"] and "binary" in docs["blob.bin"]["error"]
    good = docs["good.txt"]
    pain = next(e for e in good["entities"] if e["text"] == "chest pain")
    assert pain["negated"] and NOTE[pain["start"]:pain["end"]] == "chest pain"
    assert good["fhir"]["resourceType"] == "Bundle"
    assert "2 of 3 input(s) failed" in result.output


def test_extract_all_failed_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    result = _runner().invoke(app, ["nlp", "extract", str(tmp_path / "empty.txt")])
    assert result.exit_code != 0


def test_deid_csv_column(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('mrn,text\n1,"Mr. Holloway called 555-123-4567 on 01/02/2020."\n2,"No PHI here."\n')
    result = _runner().invoke(app, ["nlp", "deid", str(path), "--column", "text",
                                    "--id-column", "mrn", "--key", "a-long-enough-secret-key"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert "Holloway" not in rows[0]["text"] and "555-123-4567" not in rows[0]["text"]
    assert rows[0]["report"]["counts"] == {"NAME": 1, "PHONE": 1, "DATE": 1}
    assert rows[1]["text"] == "No PHI here."


def test_summarize_gives_patient_lists(tmp_path):
    (tmp_path / "n.txt").write_text(NOTE)
    result = _runner().invoke(app, ["nlp", "summarize", str(tmp_path / "n.txt")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["notes"][0]["summary"]
    meds = payload["patients"]["n"]["medications"]
    assert meds[0]["name"] == "metoprolol" and meds[0]["dose"] == "25 mg"


def test_help_explains_the_commands():
    result = _runner().invoke(app, ["nlp", "--help"])
    assert result.exit_code == 0
    for word in ("extract", "summarize", "deid", "negated"):
        assert word in result.output
