"""De-identification: find PHI in a note, replace it, and report what was replaced.

Rule-based (HIPAA Safe Harbor categories that appear in notes): person names (after titles,
name labels, signature lines, and every later repeat of a found name), dates (shifted by a
per-patient number of days, the same for every note of that patient, keeping the format),
phone and fax numbers, e-mail addresses, street addresses and ZIP codes, record numbers (MRN,
account, SSN and similar labelled ids) and ages over 89 (which become "90+").

The shift comes from an HMAC of the patient id under a secret key: pass one (or set
IATROS_DEID_KEY) to keep shifts consistent across runs; without one a random key is drawn, so
shifts are consistent within the run only. The report lists types, offsets and replacements,
never the original text unless asked.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTH_RE = "|".join(sorted((m for m in MONTHS), key=len, reverse=True))
_NAME = r"[A-Z][a-zA-Z'\-]+(?:\s+[A-Z]\.)?(?:\s+[A-Z][a-zA-Z'\-]+)?"
_NAME_STOP = {"The", "This", "He", "She", "Patient", "History", "Physical", "Date", "No", "Is",
              "Was", "And", "Or", "Of", "In", "On", "At", "To", "For", "With", "Dictated"}

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("ID", re.compile(r"\b(?:MRN|MR#|MR\s*#|medical record(?: number| no\.?| #)?|record number|"
                      r"acct(?:ount)?\.?(?: number| no\.?| #)?|SSN|social security(?: number)?|"
                      r"patient id|pt id|ID|member id|policy(?: number)?)\s*[:#]?\s*"
                      r"(?P<phi>[A-Z]{0,3}-?\d[\d-]{3,})", re.IGNORECASE)),
    ("ID", re.compile(r"\b(?P<phi>\d{3}-\d{2}-\d{4})\b")),  # SSN shape
    ("PHONE", re.compile(r"(?<![\w-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])")),
    ("ADDRESS", re.compile(r"\b\d{1,6}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|"
                           r"Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|"
                           r"Highway|Hwy|Parkway)\b\.?(?:,?\s+(?:Apt|Suite|Unit)\.?\s*\w+)?"
                           r"(?:,\s*[A-Z][a-zA-Z ]+,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?")),
    ("ADDRESS", re.compile(r"\b[A-Z][a-zA-Z]+(?: [A-Z][a-zA-Z]+)?,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")),
    ("DATE", re.compile(rf"\b(?P<m>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b",
                        re.IGNORECASE)),
    ("DATE", re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<m>{_MONTH_RE})\.?,?\s+(?P<y>\d{{4}})\b",
                        re.IGNORECASE)),
    ("DATE", re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b")),
    ("DATE", re.compile(r"\b(?P<mo>\d{1,2})(?P<sep>[/-])(?P<d>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})\b")),
    ("AGE", re.compile(r"\b(?P<phi>(?:9\d|1[0-4]\d))(?=(?:\s*|-)(?:years?|yrs?|y/?o|year-old|-year-old)\b)",
                       re.IGNORECASE)),
    ("AGE", re.compile(r"\b(?:age|aged)\s*:?\s*(?P<phi>9\d|1[0-4]\d)\b", re.IGNORECASE)),
    ("NAME", re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+(?P<phi>{_NAME})")),
    ("NAME", re.compile(rf"\b(?:patient name|name|patient|pt|dictated by|signed by|attending|"
                        rf"physician|surgeon|referring physician|cc|provider|nurse)\s*:\s*(?P<phi>{_NAME})",
                        re.IGNORECASE)),
    ("NAME", re.compile(rf"(?P<phi>{_NAME}),\s*(?:M\.?D\.?|D\.?O\.?|R\.?N\.?|N\.?P\.?|P\.?A\.?)\b")),
]


@dataclass
class Replacement:
    """One replaced span: PHI type, offsets in the original note, replacement text."""

    type: str
    start: int
    end: int
    replacement: str
    original: str | None = None


def shift_days(patient_id: str, key: bytes) -> int:
    """Days to shift this patient's dates by: between -365 and -1, fixed by (key, patient)."""
    digest = hmac.new(key, patient_id.encode(), hashlib.sha256).digest()
    return -1 - int.from_bytes(digest[:4], "big") % 365


def default_key() -> tuple[bytes, bool]:
    """(key, persistent): IATROS_DEID_KEY when set, else a random key for this run only."""
    env = os.environ.get("IATROS_DEID_KEY")
    return (env.encode(), True) if env else (secrets.token_bytes(32), False)


def _shift_date(m: re.Match[str], days: int) -> str | None:
    """The matched date moved by `days`, in the same layout; None when it is not a real date."""
    g = m.groupdict()
    try:
        year = int(g["y"])
        if len(g["y"]) == 2:
            year += 2000 if year < 50 else 1900
        month = int(g["mo"]) if g.get("mo") else MONTHS[g["m"].lower().rstrip(".")]
        day = int(g["d"])
        new = date(year, month, day) + timedelta(days=days)
    except (ValueError, KeyError):
        return None
    text = m.group(0)
    if g.get("m"):
        name = calendar.month_name[new.month] if len(g["m"]) > 3 else calendar.month_abbr[new.month]
        if g["m"].isupper():
            name = name.upper()
        return (f"{name} {new.day}, {new.year}" if text[0].isalpha()
                else f"{new.day} {name} {new.year}")
    if "-" in text and text.index("-") == 4:
        return new.isoformat()
    sep = g.get("sep") or "/"
    y = str(new.year) if len(g["y"]) == 4 else f"{new.year % 100:02d}"
    return f"{new.month:02d}{sep}{new.day:02d}{sep}{y}"


def find_phi(text: str, days: int) -> list[Replacement]:
    """PHI spans (non-overlapping, in order) with their replacements."""
    found: list[Replacement] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span("phi") if "phi" in pattern.groupindex else m.span()
            value = text[start:end]
            if kind == "NAME":
                parts = [p for p in value.split() if p not in _NAME_STOP]
                if not parts:
                    continue
                first = value.find(parts[0])
                start, end = start + first, start + first + len(" ".join(value[first:].split()))
                value = text[start:end]
                replacement = "[NAME]"
            elif kind == "DATE":
                shifted = _shift_date(m, days)
                if shifted is None:
                    continue
                replacement = shifted
            elif kind == "AGE":
                replacement = "90+"
            else:
                replacement = f"[{kind}]"
            found.append(Replacement(kind, start, end, replacement))
    # every later mention of a found name's words (surnames repeated without a title)
    names = {w for r in found if r.type == "NAME" for w in text[r.start:r.end].split()
             if len(w) > 2 and w[0].isupper() and w.rstrip(".") not in _NAME_STOP}
    for word in names:
        for m in re.finditer(rf"\b{re.escape(word)}\b", text):
            found.append(Replacement("NAME", m.start(), m.end(), "[NAME]"))
    found.sort(key=lambda r: (r.start, -(r.end - r.start)))
    kept: list[Replacement] = []
    for r in found:
        if kept and r.start < kept[-1].end:
            continue
        kept.append(r)
    return kept


def deidentify(text: str, patient_id: str = "unknown", key: bytes | None = None,
               include_originals: bool = False) -> tuple[str, dict[str, Any]]:
    """(de-identified text, report). The report counts replacements per type and lists each
    (type, offsets in the original, replacement; the original text only when asked)."""
    persistent = key is not None
    if key is None:
        key, persistent = default_key()
    days = shift_days(patient_id, key)
    spans = find_phi(text, days)
    out, last = [], 0
    for r in spans:
        if include_originals:
            r.original = text[r.start:r.end]
        out.append(text[last:r.start])
        out.append(r.replacement)
        last = r.end
    out.append(text[last:])
    counts: dict[str, int] = {}
    for r in spans:
        counts[r.type] = counts.get(r.type, 0) + 1
    report = {"patient_id_hash": hashlib.sha256(patient_id.encode()).hexdigest()[:12],
              "date_shift_days": days, "date_shift_key": "persistent" if persistent else
              "random for this run (set IATROS_DEID_KEY for shifts that repeat across runs)",
              "counts": counts, "replacements": [asdict(r) for r in spans]}
    return "".join(out), report
