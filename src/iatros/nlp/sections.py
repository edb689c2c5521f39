"""Section detection: headers such as "HISTORY OF PRESENT ILLNESS:" or "Medications:" at the
start of a line (or after a period, as MTSamples runs sections together), mapped to canonical
names. Radiology reports have their own names (findings, impression, comparison, indication,
technique); their known ALL-CAPS headers also count alone on a line without a colon
("IMPRESSION" then the items on the next lines). De-identification placeholders ("XXXX", as in
the Indiana / OpenI chest X-ray reports) never open a section."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# canonical name -> header variants (lower case, without the colon)
SECTION_NAMES: dict[str, tuple[str, ...]] = {
    "chief_complaint": ("chief complaint", "cc", "reason for visit", "reason for consultation",
                        "reason for referral"),
    "history_of_present_illness": ("history of present illness", "hpi", "history",
                                   "present illness", "subjective", "history of the present illness"),
    "past_medical_history": ("past medical history", "pmh", "medical history", "past history",
                             "past medical and surgical history"),
    "past_surgical_history": ("past surgical history", "psh", "surgical history"),
    "family_history": ("family history", "fh", "family medical history"),
    "social_history": ("social history", "sh", "habits"),
    "medications": ("medications", "current medications", "meds", "medications on admission",
                    "home medications", "discharge medications", "outpatient medications"),
    "allergies": ("allergies", "drug allergies", "allergy"),
    "review_of_systems": ("review of systems", "ros"),
    "physical_exam": ("physical examination", "physical exam", "exam", "examination",
                      "vital signs", "vitals", "general", "heent", "neck", "lungs", "heart",
                      "abdomen", "extremities", "neurological", "skin", "objective"),
    "labs": ("laboratory data", "labs", "laboratory", "laboratory studies", "lab results",
             "diagnostic data", "studies"),
    "imaging": ("imaging", "radiology", "impression of imaging"),
    # radiology report sections (the report-level finding labels read findings and impression)
    "findings": ("findings", "finding", "findings and impression"),
    "impression": ("impression", "impressions", "conclusion", "conclusions", "opinion"),
    "comparison": ("comparison", "comparisons", "comparison studies", "prior studies", "prior"),
    "indication": ("indication", "indications", "clinical indication", "reason for exam",
                   "reason for examination", "reason for study", "clinical history",
                   "clinical information"),
    "technique": ("technique", "procedure technique", "views"),
    "assessment": ("assessment", "assessment and plan", "diagnosis",
                   "diagnoses", "preoperative diagnosis", "postoperative diagnosis",
                   "final diagnosis", "discharge diagnosis", "admitting diagnosis"),
    "plan": ("plan", "recommendations", "disposition", "follow-up", "follow up"),
    "procedure": ("procedure", "procedure performed", "procedures", "operation",
                  "description of procedure", "operative procedure", "procedure in detail",
                  "name of procedure", "title of operation"),
    "hospital_course": ("hospital course", "course", "summary of hospital course"),
}
RADIOLOGY_SECTIONS = ("findings", "impression", "comparison", "indication", "technique")
_VARIANT_TO_NAME = {v: k for k, vs in SECTION_NAMES.items() for v in vs}
_HEADER = re.compile(r"(?:(?<=^)|(?<=\n)|(?<=[.:,]\s)|(?<=[.:,]))\s*([A-Za-z][A-Za-z /&-]{1,60}?)\s*:",
                     re.MULTILINE)
# a known radiology header alone on its line, without a colon: "IMPRESSION" / "FINDINGS"
_BARE_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&-]{2,40}?)[ \t]*$", re.MULTILINE)
# de-identification placeholders: "XXXX" (OpenI), any run of three or more capital X
PLACEHOLDER = re.compile(r"X{3,}")


def is_placeholder(word: str) -> bool:
    """Whether a token is a de-identification placeholder ("XXXX"): opaque, never a header,
    an entity, a cue or a sentence boundary."""
    return PLACEHOLDER.fullmatch(word) is not None


@dataclass
class Section:
    """A section: canonical name, header text as written, and character span of its body."""

    name: str
    header: str
    start: int
    end: int
    body_start: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _canonical(header: str) -> str | None:
    if all(is_placeholder(w) for w in re.split(r"[\s/&-]+", header.strip()) if w):
        return None  # "XXXX:" hides a word; it is no header
    key = re.sub(r"\s+", " ", header.strip().lower())
    if key in _VARIANT_TO_NAME:
        return _VARIANT_TO_NAME[key]
    if header.isupper() and len(key) > 3:  # an unknown ALL-CAPS header still opens a section
        return re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    return None


def find_sections(text: str) -> list[Section]:
    """Sections in order; text before the first header belongs to none."""
    found: list[tuple[int, int, str, str]] = []
    for m in _HEADER.finditer(text):
        header = m.group(1)
        name = _canonical(header)
        if name is None:
            continue
        if found and m.start(1) < found[-1][1]:
            continue
        found.append((m.start(1), m.end(), name, header.strip()))
    for m in _BARE_HEADER.finditer(text):
        name = _VARIANT_TO_NAME.get(re.sub(r"\s+", " ", m.group(1).lower()))
        if name in RADIOLOGY_SECTIONS and not any(s <= m.start(1) < b for s, b, _, _ in found):
            found.append((m.start(1), m.end(), name, m.group(1).strip()))
    found.sort()
    sections = []
    for i, (start, body, name, header) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        sections.append(Section(name, header, start, end, body))
    return sections


def section_at(sections: list[Section], offset: int) -> Section | None:
    """The section containing character `offset`, if any."""
    for s in sections:
        if s.start <= offset < s.end:
            return s
    return None
