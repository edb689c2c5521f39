"""Radiology reports: numbered impression items, "XXXX" placeholders, and report-level finding
labels (present / absent / uncertain / not mentioned) for labelling image collections.

The labels come from the extracted entities and their ConText attributes, in the spirit of the
CheXpert / NegBio labellers:

- a mention is **absent** when negated, **uncertain** when uncertain or hypothetical (also when
  both negated and uncertain: "cannot be excluded", "no definite" are uncertain, as in
  CheXpert's pre-negation uncertainty), **present** otherwise; a mention about someone else
  (family or other experiencer) is ignored;
- a **historical** affirmed mention ("history of", "prior", "old") counts as present, since a
  radiology report's findings describe what the image still shows (old fractures, granulomas,
  sternotomy wires), but it is the weakest kind of mention: any current mention decides over it
  ("Prior pneumothorax. No pneumothorax." is absent);
- in a report with FINDINGS or IMPRESSION sections only those sections (and text before the
  first header) count: INDICATION, HISTORY, COMPARISON and TECHNIQUE say why the image was taken
  ("rule out pneumonia"), not what it shows. A note without them counts everywhere;
- **IMPRESSION overrides FINDINGS**: when a finding is mentioned in the impression, the
  impression's mentions alone decide it (the radiologist's conclusion); otherwise the findings'
  (and unsectioned) mentions do;
- among the deciding mentions: present > uncertain > absent > historical present (CheXpert's
  aggregation: one positive mention makes the finding positive, else one uncertain makes it
  uncertain, else it is negative);
- a requested finding with no counted mention is **not mentioned** (distinct from absent,
  which needs a negated mention).

Findings are grouped by concept: an entity's `preferred_name` when the vocabulary gave one (in
lower case, without ICD-10-CM's ", unspecified" / ", not elsewhere classified" qualifiers, so
HPO's and ICD-10-CM's "Pleural effusion" are one finding), else its lower-cased text without
"XXXX" and without leading laterality / size / acuity words ("small left pleural effusion" ->
"pleural effusion"); a mention without a concept joins a concept of the same report whose name
or text it matches. Medications and labs are no findings; procedures ("CT", "biopsy") count only
when asked for by name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from iatros.errors import ConfigError
from iatros.nlp.sections import is_placeholder

STATUSES = ("present", "absent", "uncertain", "not mentioned")
NOT_FINDINGS = {"MEDICATION", "LAB"}
ASKED_ONLY = {"PROCEDURE"}  # counted for a finding asked for by name ("sternotomy"), not listed
# sections whose mentions count when a report has findings or impression sections
REPORT_SECTIONS = {"findings", "impression", "imaging", None}
_RANK = {"present": 3, "uncertain": 2, "absent": 1, "historical": 0}
_MODIFIERS = {"left", "right", "bilateral", "small", "large", "tiny", "trace", "minimal", "mild",
              "moderate", "severe", "stable", "new", "acute", "chronic", "old", "slight",
              "subtle", "focal", "diffuse", "patchy", "basilar", "bibasilar", "apical", "upper",
              "lower", "lobe", "persistent", "residual", "unchanged", "increased", "decreased",
              "worsening", "improving", "improved", "developing", "early", "possible", "probable",
              "likely", "definite", "significant", "xxxx"}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# ICD-10-CM qualifiers that say nothing about what an image shows
_QUALIFIER = re.compile(r",?\s*\b(?:unspecified|not elsewhere classified|nec|nos|"
                        r"not otherwise specified)\s*$", re.IGNORECASE)


# -- tokens: numbered items and placeholders (used by the sentence splitter and the pipeline) ---
def list_item_number(doc: Doc, i: int) -> int:
    """The number of a list item marker "N." / "N)" at token i (1 to 30), else 0."""
    tok = doc[i]
    if not (tok.text.isdigit() and len(tok.text) <= 2 and i + 2 < len(doc)):
        return 0
    if doc[i + 1].text not in (".", ")") or doc[i + 2].like_num:
        return 0
    n = int(tok.text)
    return n if 1 <= n <= 30 else 0


def trim_placeholders(doc: Doc, spans: list[Any]) -> list[Any]:
    """Spans without "XXXX" placeholders at either end; spans made only of placeholders (and
    punctuation) are dropped: a placeholder hides a word, it is no entity."""
    out = []
    for span in spans:
        start, end = span[0], span[1]
        while start < end and (is_placeholder(doc[start].text) or doc[start].is_punct):
            start += 1
        while end > start and (is_placeholder(doc[end - 1].text) or doc[end - 1].is_punct):
            end -= 1
        if end > start and any(not t.is_punct for t in doc[start:end]):
            out.append((start, end, *span[2:]) if (start, end) != (span[0], span[1]) else span)
    return out


# -- report-level finding labels ----------------------------------------------------------------
def normalise(text: str) -> str:
    """A finding's key from free text: lower case, words only, no placeholders, no leading
    laterality / size / acuity words ("Small LEFT pleural effusion" -> "pleural effusion")."""
    words = [w for w in _WORD.findall(text.lower()) if w != "xxxx"]
    while len(words) > 1 and words[0] in _MODIFIERS:
        words = words[1:]
    return " ".join(words)


def concept_name(preferred_name: str) -> str:
    """A concept's finding name: its preferred name in lower case without ICD-10-CM qualifiers
    ("Pneumothorax, unspecified" -> "pneumothorax")."""
    name = preferred_name.strip()
    while True:
        shorter = _QUALIFIER.sub("", name).strip(" ,")
        if shorter == name or not shorter:
            return re.sub(r"\s+", " ", name.lower())
        name = shorter


def _keys(entities: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each entity's finding name: its concept's, else its normalised text, or the concept of
    the same report whose name or text that text matches."""
    concepts: dict[str, str] = {}
    for e in entities:
        if e.get("preferred_name"):
            name = concept_name(str(e["preferred_name"]))
            for form in (name, normalise(name), normalise(str(e.get("text") or "")),
                         " ".join(_WORD.findall(str(e.get("text") or "").lower()))):
                concepts.setdefault(form, name)
    keys = []
    for e in entities:
        if e.get("observation"):  # a chest finding: its CheXpert observation
            keys.append(str(e["observation"]).lower())
            continue
        if e.get("preferred_name"):
            keys.append(concept_name(str(e["preferred_name"])))
            continue
        text = str(e.get("text") or "")
        words = " ".join(w for w in _WORD.findall(text.lower()) if w != "xxxx")
        key = normalise(text)
        keys.append(concepts.get(words) or concepts.get(key) or key)
    return keys


def _stem(word: str) -> str:
    """A crude singular, for matching requested names: effusions -> effusion, opacities ->
    opacity (atelectasis, pneumothorax stay)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def mention_status(entity: Mapping[str, Any]) -> str | None:
    """One mention's status: present, absent, uncertain, historical (affirmed but past), or
    None when it is about someone other than the patient."""
    experiencer = entity.get("experiencer")
    if entity.get("family") or experiencer not in (None, "", "patient"):
        return None
    if entity.get("uncertain") or entity.get("hypothetical"):
        return "uncertain"
    if entity.get("negated"):
        return "absent"
    if entity.get("historical") or entity.get("temporality") == "historical":
        return "historical"
    return "present"


class FindingSpec:
    """A finding a user asks for: its column name and the spellings that match it."""

    def __init__(self, name: str, synonyms: Sequence[str] = ()) -> None:
        self.name = name.strip()
        if not self.name:
            raise ConfigError("a finding name is empty")
        forms = [self.name, *synonyms]
        self.keys = {f.strip().lower() for f in forms if f.strip()}
        self.keys |= {" ".join(_WORD.findall(f.lower())) for f in forms if f.strip()}
        self.words = [[_stem(w) for w in _WORD.findall(f.lower())] for f in forms if f.strip()]

    def matches(self, entity: Mapping[str, Any]) -> bool:
        """Whether an entity mentions this finding: same concept id or preferred name, or the
        finding's words in order inside the entity's text or preferred name."""
        ids = {str(entity.get(k) or "").strip().lower()
               for k in ("concept_id", "preferred_name", "observation")}
        ids |= {" ".join(_WORD.findall(i)) for i in ids}
        if self.keys & ids:
            return True
        for text in (entity.get("text") or "", entity.get("preferred_name") or ""):
            words = [_stem(w) for w in _WORD.findall(str(text).lower())]
            for want in self.words:
                if want and any(words[k:k + len(want)] == want
                                for k in range(len(words) - len(want) + 1)):
                    return True
        return False


def parse_finding(line: str) -> FindingSpec:
    """"pleural effusion|effusion" -> the finding "pleural effusion", also matched by "effusion"."""
    name, *synonyms = [part.strip() for part in line.split("|")]
    return FindingSpec(name, [s for s in synonyms if s])


def read_findings_file(path: str | Path) -> list[FindingSpec]:
    """Findings from a text file: one a line ("name" or "name|synonym|..."), # comments."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the findings file ({e}); expected UTF-8 text, one "
                          "finding a line") from e
    specs = [parse_finding(line) for line in (raw.split("#", 1)[0].strip() for raw in lines)
             if line]
    if not specs:
        raise ConfigError(f"{p}: no findings in it; expected one finding name a line")
    return specs


def _counted(entity: Mapping[str, Any], radiology: bool, asked: bool) -> bool:
    label = entity.get("label")
    return (label not in NOT_FINDINGS and (asked or label not in ASKED_ONLY)
            and (not radiology or entity.get("section") in REPORT_SECTIONS))


def _decide(mentions: Iterable[tuple[str | None, str]]) -> str | None:
    """The status of one finding from its (section, mention status) pairs, or None."""
    mentions = list(mentions)
    if not mentions:
        return None
    impression = [m for m in mentions if m[0] == "impression"]
    best = max((m[1] for m in impression or mentions), key=_RANK.__getitem__)
    return "present" if best == "historical" else best


def summarize_findings(extraction: Mapping[str, Any],
                       findings: Sequence[FindingSpec] | None = None) -> dict[str, str]:
    """Report-level labels from one `extract` result (its "entities" and "sections"):
    {finding: present | absent | uncertain} for every finding mentioned, or, with `findings`,
    exactly those, "not mentioned" where no counted mention names them (module docstring)."""
    section_names = {s.get("name") for s in extraction.get("sections") or []}
    radiology = bool(section_names & {"findings", "impression"})
    mentions: dict[str, list[tuple[str | None, str]]] = {}
    counted = [e for e in extraction.get("entities") or []
               if _counted(e, radiology, findings is not None)]
    for entity, key in zip(counted, _keys(counted), strict=True):
        status = mention_status(entity)
        if status is None:
            continue
        names = [key] if findings is None else [f.name for f in findings if f.matches(entity)]
        for name in names:
            if name:
                mentions.setdefault(name, []).append((entity.get("section"), status))
    if findings is None:
        return {k: s for k in sorted(mentions) if (s := _decide(mentions[k])) is not None}
    return {f.name: _decide(mentions.get(f.name, ())) or "not mentioned" for f in findings}


def findings_csv(results: Sequence[Mapping[str, Any]], findings: Sequence[str] | None = None) -> str:
    """Labels as CSV text: one row per report (source, id, status "ok" / "error"), one column
    per finding; never the report's text, so the file can be shared with an image collection."""
    names = list(findings) if findings is not None else sorted(
        {k for r in results for k in r.get("findings") or {}})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "id", "status", *names])
    for r in results:
        labels = r.get("findings") or {}
        ok = "error" not in r
        writer.writerow([r.get("source", ""), r.get("patient_id", ""), "ok" if ok else "error",
                         *[(labels.get(n, "not mentioned") if ok else "") for n in names]])
    return buffer.getvalue()
