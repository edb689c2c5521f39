"""The last check before a report is shared: does its visible text hold an identifier value from
the run's data (a patient or stay id, a value of a free-text feature column, or PHI the
de-identification detector finds in a note the report quotes)? Such a report is removed and the
run fails, rather than a model card leaking who was in the data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np

from iatros.errors import RunError
from iatros.run_folder import EXPLANATIONS, REPORT, RunFolder
from iatros.tasks import TaskData

MIN_LENGTH = 4  # shorter values ("12", "F") are everywhere in a report and identify no one
TOKEN = re.compile(r"[\w.@/\-]+")


class _VisibleText(HTMLParser):
    """What a reader of the HTML (and of the folder it links to) sees: text, alt and title
    attributes, and the names of linked files."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts += [v for k, v in attrs if k in ("alt", "title", "src", "href") and v]


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


def _identifying(value: Any) -> bool:
    text = str(value).strip()
    return len(text) >= MIN_LENGTH and not (text.isdigit() and len(text) < 6)


def identifier_values(data: TaskData) -> set[str]:
    """Values that name a patient: ids, stay ids and the levels of free-text feature columns."""
    values = {str(v) for v in data.patient_ids}
    if "stay_id" in data.attributes.columns:
        values |= {str(v) for v in data.attributes["stay_id"]}
    for levels in ((data.encoding or {}).get("opaque") or {}).values():
        values |= {str(v) for v in levels}
    return {v.strip() for v in values if _identifying(v)}


def quoted_note_phi(run: RunFolder, data: TaskData) -> set[str]:
    """PHI found by the detector in the notes whose words the report quotes."""
    from iatros.nlp.phi import find_phi

    explained = run.explanations()
    if not isinstance(explained, dict):
        return set()
    found: set[str] = set()
    for example in explained.get("examples") or []:
        note = str(data.inputs[int(example["row"])])
        found |= {note[s.start:s.end].strip() for s in find_phi(note)}
    return {f for f in found if _identifying(f)}


def leaks(text: str, identifiers: set[str]) -> list[str]:
    """The identifiers that occur in `text` as whole words (case-insensitive)."""
    tokens = {t.lower() for t in TOKEN.findall(text)}
    lowered = text.lower()
    hits = []
    for value in identifiers:
        low = value.lower()
        if (" " not in low and low in tokens) or (" " in low and re.search(
                rf"(?<!\w){re.escape(low)}(?!\w)", lowered)):
            hits.append(value)
    return sorted(hits)


def _masked(value: str) -> str:
    return value[:1] + "*" * (len(value) - 2) + value[-1:] if len(value) > 2 else "**"


def check_report(run: RunFolder, data: TaskData) -> None:
    """Fail the run (and remove its report) if the report shows an identifier from the data."""
    path = run.file(REPORT)
    identifiers = identifier_values(data)
    if run.file(EXPLANATIONS).is_file() and isinstance(data.inputs, np.ndarray) \
            and data.inputs.dtype == object:
        identifiers |= quoted_note_phi(run, data)
    found = leaks(visible_text(path.read_text(encoding="utf-8")), identifiers)
    if found:
        path.unlink(missing_ok=True)
        raise RunError(f"{path} would show {len(found)} identifier value(s) from the data "
                       f"({', '.join(_masked(v) for v in found[:3])}); the report was removed. "
                       f"Check the task's text that reaches the report (description, class or "
                       f"attribute names) and keep identifiers out of it")
