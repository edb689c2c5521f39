"""`iatros nlp deid` end to end: keys, pseudonyms, the date shift, output folders, batches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from iatros.nlp.deid import KEY_ENV, shift_days
from tests.cli_run import run_cli

KEY = "cli-test-key-0123456789"
NOTE = "Patient Name: Jonathan Whitfield\nSeen 03/14/2021 by Dr. Alice Marchetti. MRN: 00482913.\n"




@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mrn00482913.txt").write_text(NOTE, encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_deid_refuses_to_run_without_a_key(capsys, notes):
    code, out, err = run_cli(capsys, "nlp", "deid", str(notes))
    assert code != 0 and "--key" in err and "IATROS_DEID_KEY" in err and "Whitfield" not in out


def test_deid_runs_with_a_random_key_only_when_asked(capsys, notes):
    code, out, err = run_cli(capsys, "nlp", "deid", str(notes), "--random-key")
    assert code == 0, err
    report = json.loads(out)[0]["report"]
    assert report["key"].startswith("random for this run")


def test_deid_takes_the_key_from_the_environment_and_never_prints_it(capsys, notes, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    code, out, err = run_cli(capsys, "nlp", "deid", str(notes), "--mode", "surrogates", "--show-shift")
    assert code == 0, err
    assert KEY not in out and KEY not in err
    result = json.loads(out)[0]
    assert result["report"]["key"] == f"from {KEY_ENV}" and "Whitfield" not in result["text"]


def test_patient_pseudonym_is_an_hmac_stable_under_the_key(capsys, notes):
    def pseudonym(key: str) -> str:
        code, out, err = run_cli(capsys, "nlp", "deid", str(notes), "--key", key)
        assert code == 0, err
        return json.loads(out)[0]["report"]["patient_pseudonym"]
    first, again, other = pseudonym(KEY), pseudonym(KEY), pseudonym(KEY + "-other")
    assert first == again and first != other
    assert first not in hashlib.sha256(b"mrn00482913").hexdigest()


def test_date_shift_is_reported_only_with_show_shift(capsys, notes):
    code, out, _ = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY, "--mode", "surrogates")
    assert code == 0 and "date_shift_days" not in json.loads(out)[0]["report"]
    code, out, _ = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY, "--mode", "surrogates",
                           "--show-shift")
    assert code == 0
    assert json.loads(out)[0]["report"]["date_shift_days"] == shift_days("mrn00482913", KEY.encode())


def test_defect_out_dir_equal_to_the_input_folder_is_refused_and_notes_survive(capsys, notes):
    code, _, err = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY, "--out-dir", str(notes))
    assert code != 0 and "input folder" in err
    assert (notes / "mrn00482913.txt").read_text(encoding="utf-8") == NOTE


def test_out_dir_inside_an_input_folder_is_refused(capsys, notes):
    code, _, err = run_cli(capsys, "nlp", "deid", str(notes / "mrn00482913.txt"), "--key", KEY,
                           "--out-dir", str(notes / "clean"))
    assert code != 0 and "input folder" in err and not (notes / "clean").exists()


def test_out_dir_elsewhere_gets_one_clean_file_per_note(capsys, notes, tmp_path):
    code, out, err = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY, "--out-dir",
                             str(tmp_path / "clean"))
    assert code == 0, err
    written = (tmp_path / "clean" / "mrn00482913.txt").read_text(encoding="utf-8")
    assert "Whitfield" not in written and "[NAME]" in written and "text" not in json.loads(out)[0]


def test_a_bad_note_becomes_an_error_entry_and_the_batch_goes_on(capsys, notes):
    (notes / "scan.bin").write_bytes(b"\x00\x01\x02binary")
    code, out, err = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY)
    results = json.loads(out)
    assert code == 0 and len(results) == 2
    bad = next(r for r in results if r["source"].endswith("scan.bin"))
    assert set(bad) == {"source", "error"} and "binary" in bad["error"]
    assert "failed" in err


def test_unknown_mode_is_refused(capsys, notes):
    code, _, err = run_cli(capsys, "nlp", "deid", str(notes), "--key", KEY, "--mode", "blur")
    assert code != 0 and "tags" in err
