"""The PhysioNet de-identification gold standard (Neamatullah et al. 2008) and how a PHI detector
is scored on it.

Files (under `DATA_ROOT/physionet_deid/`, see PROVENANCE.md there): `id.text` holds the notes,
each `START_OF_RECORD=PATIENT||||NOTE||||` + newline + text + `||||END_OF_RECORD`; `id-phi.phrase`
holds the gold PHI phrases, one a line: `PATIENT NOTE START END TYPE TEXT` with START/END
character offsets into the note's text (the part after the header line).

Scoring, per gold phrase and per predicted span:
- recall: a gold phrase counts as removed when predicted spans cover every one of its letters
  and digits (annotators sometimes included a trailing comma, colon or parenthesis). The corpus
  documents a few offsets off by a character or two, so the gold span is first re-anchored:
  when its TEXT is not at START..END, the nearest copy within `SLACK` characters is used (on
  the copy checked here every offset matched its text exactly).
- precision: a predicted span is a true positive when it overlaps at least one gold phrase
  (after re-anchoring, widened by `SLACK` on each side); every other predicted span is a false
  positive. Precision = true-positive spans / predicted spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iatros.errors import CorruptDataError, MissingDataError

NOTES_FILE = "id.text"
PHRASES_FILE = "id-phi.phrase"
SLACK = 2  # characters a gold offset may be off by
_RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD", re.S)

# the corpus' types -> the detector's types (iatros.nlp.phi)
GOLD_TYPES = {"HCPName": "NAME", "PTName": "NAME", "PTNameInitial": "NAME",
              "RelativeProxyName": "NAME", "Date": "DATE", "DateYear": "DATE",
              "Location": "LOCATION", "Phone": "PHONE", "Age": "AGE", "Other": "ID"}


@dataclass(frozen=True)
class GoldPhrase:
    """One gold PHI phrase: offsets into its note's text, the corpus type and text."""

    start: int
    end: int
    type: str
    text: str


@dataclass
class GoldNote:
    """A note of the corpus with its gold phrases."""

    patient: int
    note: int
    text: str
    phrases: list[GoldPhrase] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.patient}-{self.note}"


def _folder(root: str | Path) -> Path:
    """The corpus folder: `root` itself when it holds id.text, else root/physionet_deid."""
    root = Path(root)
    folder = root if (root / NOTES_FILE).is_file() else root / "physionet_deid"
    for name in (NOTES_FILE, PHRASES_FILE):
        if not (folder / name).is_file():
            raise MissingDataError(
                f"{folder / name} not found: expected the PhysioNet deid gold standard ({NOTES_FILE} "
                f"and {PHRASES_FILE} from the deid software distribution) there; pass --data-root "
                f"or set IATROS_DATA to the folder that holds physionet_deid/")
    return folder


def read_corpus(root: str | Path) -> list[GoldNote]:
    """Every note of the corpus under `root`, in file order, with its gold phrases."""
    folder = _folder(root)
    raw = (folder / NOTES_FILE).read_text(encoding="utf-8", errors="replace")
    notes: dict[tuple[int, int], GoldNote] = {}
    for m in _RECORD.finditer(raw):
        notes[(int(m[1]), int(m[2]))] = GoldNote(int(m[1]), int(m[2]), m[3])
    if not notes:
        raise CorruptDataError(f"{folder / NOTES_FILE}: no START_OF_RECORD=...||||END_OF_RECORD "
                               f"records found")
    path = folder / PHRASES_FILE
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(" ", 5)
        try:
            patient, note, start, end = (int(p) for p in parts[:4])
            kind, text = parts[4], parts[5] if len(parts) > 5 else ""
        except (ValueError, IndexError) as e:
            raise CorruptDataError(f"{path}, line {number}: expected 'PATIENT NOTE START END TYPE "
                                   f"TEXT', got {line[:80]!r}") from e
        if (patient, note) not in notes:
            raise CorruptDataError(f"{path}, line {number}: note {patient}-{note} is not in "
                                   f"{NOTES_FILE}")
        gold = notes[(patient, note)]
        start, end = anchor(gold.text, start, end, text)
        gold.phrases.append(GoldPhrase(start, end, kind, text))
    return list(notes.values())


def anchor(text: str, start: int, end: int, phrase: str) -> tuple[int, int]:
    """(start, end) moved to the copy of `phrase` nearest the given offsets, within SLACK."""
    if text[start:end] == phrase or not phrase:
        return start, end
    for delta in sorted(range(-SLACK, SLACK + 1), key=abs):
        s = start + delta
        if s >= 0 and text[s:s + len(phrase)] == phrase:
            return s, s + len(phrase)
    return start, end


def by_patients(notes: Iterable[GoldNote], low: int, high: int) -> list[GoldNote]:
    """The notes of patients low..high (inclusive)."""
    return [n for n in notes if low <= n.patient <= high]


@dataclass
class NoteScore:
    """One note's counts: gold phrases found / total by corpus type, predicted spans and hits."""

    found: dict[str, int]
    total: dict[str, int]
    predicted: int
    true_spans: int


def covered(text: str, phrase: GoldPhrase, spans: Sequence[tuple[int, int]]) -> bool:
    """Every letter and digit of the phrase lies inside some predicted span (spaces and
    punctuation that the annotators sometimes included, as in "Cole," or "(201-223-4567)",
    need not be covered)."""
    mask = bytearray(phrase.end - phrase.start)
    for s, e in spans:
        lo, hi = max(s, phrase.start), min(e, phrase.end)
        for i in range(lo, hi):
            mask[i - phrase.start] = 1
    return all(mask[i] or not text[phrase.start + i].isalnum() for i in range(len(mask)))


def score_note(note: GoldNote, spans: Sequence[tuple[int, int]]) -> NoteScore:
    """Recall counts per gold type and span-level precision counts for one note."""
    found: dict[str, int] = {}
    total: dict[str, int] = {}
    for p in note.phrases:
        total[p.type] = total.get(p.type, 0) + 1
        found[p.type] = found.get(p.type, 0) + int(covered(note.text, p, spans))
    hits = sum(1 for s, e in spans
               if any(s < p.end + SLACK and p.start - SLACK < e for p in note.phrases))
    return NoteScore(found, total, len(spans), hits)
