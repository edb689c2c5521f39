"""The PhysioNet deid corpus reader and scoring, the deid-physionet token task, a tiny trained PHI
tagger used through `iatros nlp deid --tagger`, and the rules on a few real gold-standard notes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iatros.errors import MissingDataError
from iatros.nlp.deid_corpus import GoldPhrase, by_patients, covered, read_corpus, score_note
from iatros.nlp.phi import find_phi
from iatros.tasks.deid import CLASSES, note_rows
from tests.cli_run import run_cli

KEY = "corpus-test-key-0123456789"


def write_corpus(folder: Path, notes: dict[tuple[int, int], tuple[str, list[tuple[str, str]]]]) -> Path:
    """A corpus folder in the distribution's format: id.text and id-phi.phrase."""
    folder.mkdir(parents=True, exist_ok=True)
    records, phrases = [], []
    for (patient, note), (text, phi) in notes.items():
        records.append(f"START_OF_RECORD={patient}||||{note}||||\n{text}||||END_OF_RECORD\n")
        for kind, value in phi:
            start = text.index(value)
            phrases.append(f"{patient} {note} {start} {start + len(value)} {kind} {value}")
    (folder / "id.text").write_text("\n".join(records), encoding="utf-8")
    (folder / "id-phi.phrase").write_text("\n".join(phrases) + "\n", encoding="utf-8")
    return folder


def test_reader_reads_the_distribution_format_and_re_anchors_shifted_offsets(tmp_path):
    folder = write_corpus(tmp_path / "physionet_deid", {
        (1, 1): ("Seen by Dr. Healey on 7/22.\n", [("HCPName", "Healey"), ("Date", "7/22")])})
    phrases = (folder / "id-phi.phrase").read_text().splitlines()
    p, n, s, e, kind, text = phrases[0].split(" ", 5)
    phrases[0] = f"{p} {n} {int(s) + 1} {int(e) + 1} {kind} {text}"  # one character off
    (folder / "id-phi.phrase").write_text("\n".join(phrases) + "\n")
    [note] = read_corpus(tmp_path)
    assert note.key == "1-1" and [note.text[x.start:x.end] for x in note.phrases] == ["Healey", "7/22"]


def test_missing_corpus_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(MissingDataError, match=r"id\.text.*--data-root"):
        read_corpus(tmp_path)


def test_recall_needs_every_letter_covered_and_precision_counts_spans():
    text = "per Dr. Cole, co 4 acceptable"
    gold = GoldPhrase(8, 13, "HCPName", "Cole,")
    assert covered(text, gold, [(8, 12)])  # the annotated trailing comma need not be covered
    assert not covered(text, gold, [(8, 10)])
    from iatros.nlp.deid_corpus import GoldNote

    score = score_note(GoldNote(1, 1, text, [gold]), [(8, 12), (19, 29)])
    assert score.found == {"HCPName": 1} and score.predicted == 2 and score.true_spans == 1


def test_task_rows_tag_each_gold_phrase_with_bio_tags(tmp_path):
    write_corpus(tmp_path / "physionet_deid", {
        (1, 1): ("Son Bill Carlson visited.\nNo events.\n", [("RelativeProxyName", "Bill Carlson")])})
    [note] = read_corpus(tmp_path)
    rows = note_rows(note, "train")
    tokens, tags, patient, part = rows[0]
    names = [CLASSES[int(t)] for t in tags]
    assert tokens[:3] == ["Son", "Bill", "Carlson"] and names[:3] == ["O", "B-NAME", "I-NAME"]
    assert patient == "p1" and part == "train" and len(rows) == 2 and not np.any(rows[1][1])




NAMES = ["Quimby", "Zaltana", "Brodeur", "Okafor", "Vantreese", "Haldane", "Mirabal", "Stroud"]


def synthetic_corpus(root: Path) -> Path:
    """Patients 1 (train), 33 (validation) and 41 (test) of the deid-physionet split."""
    notes = {}
    for patient in (1, 33, 41):
        for k in range(8):
            doc, rel = NAMES[(patient + k) % 8], NAMES[(patient + 3 * k + 1) % 8]
            text = f"Seen by Dr. {doc} on {k + 1}/{k + 10}.\nWife {rel} called, stable.\n"
            notes[(patient, k + 1)] = (text, [("HCPName", doc), ("Date", f"{k + 1}/{k + 10}"),
                                              ("RelativeProxyName", rel)])
    return write_corpus(root / "physionet_deid", notes).parent


def test_a_tiny_trained_tagger_plugs_into_deid(capsys, tmp_path, monkeypatch):
    root = synthetic_corpus(tmp_path / "data")
    monkeypatch.setenv("IATROS_THREADS", "1")
    code, out, err = run_cli(capsys, "train", "deid-physionet", "--data-root", str(root), "--epochs", "1",
                             "--out", str(tmp_path / "run"), "--n-boot", "20", "--no-progress")
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    import torch

    assert torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)  # no pickle
    note = tmp_path / "in" / "n.txt"
    note.parent.mkdir()
    note.write_text("Seen by Dr. Quimby today.\n")
    code, out, err = run_cli(capsys, "nlp", "deid", str(note), "--key", KEY, "--tagger", str(run))
    assert code == 0, err
    assert "Quimby" not in json.loads(out)[0]["text"]


def test_rules_find_most_gold_phi_in_real_notes_of_development_patients(shared_data):
    if not (shared_data / "physionet_deid" / "id.text").is_file():
        pytest.skip(f"{shared_data}/physionet_deid is absent (the PhysioNet deid gold standard)")
    notes = read_corpus(shared_data)
    assert len(notes) == 1642 and sum(len(n.phrases) for n in notes) == 1251
    sample = by_patients(notes, 1, 3)  # development patients only: 41-81 are the held-out test
    found = total = 0
    for n in sample:
        spans = [(s.start, s.end) for s in find_phi(n.text)]
        score = score_note(n, spans)
        found += sum(score.found.values())
        total += sum(score.total.values())
    assert total > 30 and found / total >= 0.85
