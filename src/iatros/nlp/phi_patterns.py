"""Patterns for the PHI with a shape: dates, ages over 89, phone / fax numbers, e-mail, URLs,
IP addresses, SSNs, labelled record / account / plan / licence / vehicle / device / biometric
numbers, street addresses and ZIP codes, photo files.

Every pattern is case-insensitive and Unicode-aware (`\\w` and letters match accented ones).
`pattern_spans(text)` yields (start, end, type) for each match; overlaps are resolved by
`iatros.nlp.phi`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

I = re.IGNORECASE  # noqa: E741
MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
         r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:(?:19|20)\d\d|'\d\d)"
_NB = r"(?<![\w/.-])"  # not inside a longer token
_NA = r"(?![\w/]|[.-]\d)"  # not followed by more of it

# fractions and scores that look like month/day and are not dates
NOT_DATES = frozenset({"1/2", "1/3", "1/4", "2/3", "3/4", "1/5", "2/5", "3/5", "4/5", "5/5",
                       "2/4", "1/6", "2/6", "3/6", "4/6", "0/0"})
_UNIT_AFTER = re.compile(r"\s*(?:mg|mcg|ml|cc|g|gm|kg|l|units?|u|meq|mmol|cal|kcal|%|x|"
                         r"hours?|hrs?|min|minutes?|times|patients?)\b", I)
_VENT_BEFORE = re.compile(r"(?:\b(?:peep|ps|psv|cpap|bipap|bi-pap|ipap|epap|flowby|simv|strength|motor|"
                          r"murmur|scale|score|grade)\b[^.;,\n\d]{0,8}|\dx)$", I)
_VENT_AFTER = re.compile(r"\s?(?:%|/\d+%|\W{0,3}(?:bipap|bi-pap|cpap|peep|psv|ps|fio2)\b)", I)
_HISTORY = (r"(?:mi|nqwmi|cabg|ptca|pci|avr|mvr|cva|tia|stent|ppm|pacer|dvt|pe|surgery|redo|repair|"
            r"ablation|cath|resection|nephrectomy|cholecystectomy|appendectomy|turp|ca|cancer|"
            r"dx|diagnosed|smoking|quit)")

# (type, pattern): the whole match, or group "phi" when there is one, is the PHI
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}", I)),
    ("URL", re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"')\]]+[^\s<>\"'.,;:!?)\]]", I)),
    ("URL", re.compile(r"(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|io|us|info|health|biz)"
                       r"(?:/[^\s<>\"')\]]*[^\s<>\"'.,;:!?)\]])?(?![\w@])", I)),
    ("IP", re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
                      r"(?![\d.]|\.\d)")),
    ("IP", re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])|(?<![\w:])"
                      r"(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}(?![\w:])", I)),
    ("SSN", re.compile(r"(?<![\w-])\d{3}([- .])\d{2}\1\d{4}(?![\w-])")),
    ("SSN", re.compile(r"\b(?:ssn|social security(?:\s+(?:number|no\.?|#))?|ss#)\s*[:#]?\s*"
                       r"(?P<phi>\d[\d -]{7,10}\d)\b", I)),
    ("FAX", re.compile(r"\bfax(?:\s*(?:number|no\.?|#))?\s*[:#]?\s*(?P<phi>\+?[\d(][\d\s().-]{5,}\d)", I)),
    ("PHONE", re.compile(r"(?<![\w/.-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}\s?[\s./-]\s?)\d{3}\s?[\s./-]"
                         r"\s?\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?![\w-]|[./]\d)", I)),
    ("PHONE", re.compile(r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\w)")),
    ("PHONE", re.compile(r"\b(?:phone|tel|telephone|cell|mobile|pager|beeper|pg|page|home|work|"
                         r"office|contact|call(?:ed)?|number|ph|ext\.?|extension)\s*(?:#|no\.?|number)?"
                         r"\s*[:#]?\s*#?\s*(?P<phi>\(?\d[\d\s().-]{3,14}\d)(?![\w/]|\.\d)", I)),
    ("PHONE", re.compile(r"\b(?:pager|beeper|pg|page|ext\.?|extension)\s*(?:#|no\.?|number)?\s*[:#]?\s*#?\s*"
                         r"(?P<phi>\d{4})(?![\w/:%]|[.-]\d)", I)),
    # a local number without area code (555-1234), not a range of values (500-1000, SVR 954-1183)
    ("PHONE", re.compile(r"(?<![\w/.-])[2-9]\d{2}-\d{4}(?![\w-]|[./]\d)")),
    ("MRN", re.compile(r"\b(?:mrn|mr\s*#|mr\s*no\.?|medical record(?:\s+(?:number|no\.?|#))?|"
                       r"record\s+(?:number|no\.?|#)|unit\s+(?:number|no\.?)|hospital\s+(?:number|no\.?|#)|"
                       r"chart\s+(?:number|no\.?|#))\s*[:#]?\s*(?P<phi>[a-z]{0,3}[-#]?\d[\w-]{2,})", I)),
    ("ACCOUNT", re.compile(r"\b(?:acct|account|billing|invoice|encounter|visit|fin|csn|har)\.?"
                           r"\s*(?:number|no\.?|#|id)?\s*[:#]?\s*#?\s*"
                           r"(?P<phi>[a-z]{0,3}[-#]?\d[\w-]{2,})", I)),
    ("HEALTH_PLAN", re.compile(r"\b(?:health\s*plan|insurance|insurer|policy|member|subscriber|"
                               r"beneficiary|medicare|medicaid|group|hicn|mbi)(?:\s+(?:id|number|no\.?|#))?"
                               r"\s*[:#]?\s*(?P<phi>[a-z]{0,4}[-#]?\d[\w-]{3,})", I)),
    ("LICENSE", re.compile(r"\b(?:licen[cs]e|lic\.?|certificate|cert\.?|dea|npi|board\s+cert\w*)"
                           r"(?:\s+(?:id|number|no\.?|#))?\s*[:#]?\s*"
                           r"(?P<phi>[a-z]{0,3}[-#]?\d[\w-]{3,})", I)),
    ("VEHICLE", re.compile(r"\b(?:vin|license\s+plate|plate|tag|vehicle(?:\s+id)?)(?:\s+(?:number|no\.?|#))?"
                           r"\s*[:#]?\s*(?P<phi>(?=[\w-]*\d)[a-z0-9][\w-]{3,})", I)),
    ("VEHICLE", re.compile(r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b")),
    ("DEVICE", re.compile(r"\b(?:serial|s/n|sn|device|udi|imei|model|lot|implant|pacemaker|"
                          r"icd|pump)(?:\s+(?:id|number|no\.?|#))?\s*[:#]\s*(?P<phi>[a-z0-9][\w/-]{3,})", I)),
    ("DEVICE", re.compile(r"\b(?:serial|udi|imei)\s+(?:number|no\.?|#)\s*(?P<phi>[a-z0-9][\w/-]{3,})", I)),
    ("BIOMETRIC", re.compile(r"\b(?:fingerprint|voiceprint|voice print|retina(?:l)? scan|iris scan|"
                             r"biometric|palm ?print|dna)(?:\s+(?:id|template|hash|sample))?\s*"
                             r"(?:id|number|no\.?|#)?\s*[:#]\s*(?P<phi>[\w/+=-]{4,})", I)),
    ("PHOTO", re.compile(r"(?<![\w-])[\w-]+\.(?:jpe?g|png|heic|tiff?|bmp|gif)\b", I)),
    ("ID", re.compile(r"\b(?:patient|pt|person|study|subject|employee|staff|case|specimen|accession|"
                      r"passport|driver'?s?\s+licen[cs]e|id)\s*(?:id|number|no\.?|#)\s*[:#]?\s*"
                      r"(?P<phi>[a-z]{0,4}[-#]?\d[\w-]{2,})", I)),
    ("ID", re.compile(r"\b(?:id|identifier)\s*[:#]\s*(?P<phi>[a-z]{0,4}[-#]?\d[\w-]{2,})", I)),
    # addresses: number + street name + suffix, optional unit, city, state ZIP
    ("ADDRESS", re.compile(r"\b\d{1,6}(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+)?"
                           r"(?:(?!(?:in|on|at|to|of|the|and|with|for|by|x|way|place|cc|ml|mg)\b)"
                           r"[^\W\d_][\w'.-]*\s+){1,4}"
                           r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|"
                           r"way|place|pl|terrace|ter|circle|cir|highway|hwy|parkway|pkwy|square|sq|"
                           r"trail|trl|alley|row|pike|turnpike)\b\.?"
                           r"(?:,?\s+(?:apt|apartment|suite|ste|unit|#|room|rm)\.?\s*#?\s*\w+)?", I)),
    ("ADDRESS", re.compile(r"\b(?:p\.?\s?o\.?\s+box|post office box)\s+\d+", I)),
    ("ZIP", re.compile(r"(?-i:\b[A-Z]{2}),?\s+(?P<phi>\d{5}(?:-\d{4})?)\b|\b(?:zip(?:\s*code)?|postal code)"
                       r"\s*[:#]?\s*(?P<zip>\d{5}(?:-\d{4})?)\b", I)),
    # ages over 89, in digits or words
    ("AGE", re.compile(r"\b(?P<phi>(?:9\d|1[0-4]\d))(?=\s*-?\s*(?:years?|yrs?|y\.?\s?o\.?\b|y/o|yo|"
                       r"yr-old|year-old|-year-old|y\b|yom|yof|m\b|f\b))", I)),
    ("AGE", re.compile(r"\b(?:age[ds]?|aged)\s*:?\s*(?P<phi>9\d|1[0-4]\d)\b", I)),
    ("AGE", re.compile(r"\b(?P<phi>(?:ninety|one hundred(?:\s+and)?)(?:[\s-]+(?:one|two|three|four|five|"
                       r"six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
                       r"seventeen|eighteen|nineteen|twenty))?)(?=[\s-]+(?:years?|yrs?)[\s-]+old|"
                       r"[\s-]+year-old)", I)),
    # dates
    ("DATE", re.compile(rf"\b{MONTH}\.?\s+\d{{1,2}}{_ORD},?\s+(?:of\s+)?{_YEAR}\b", I)),
    ("DATE", re.compile(rf"\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{MONTH}\.?,?\s+{_YEAR}\b", I)),
    ("DATE", re.compile(rf"\b{MONTH}\.?,?\s+(?:of\s+)?{_YEAR}\b", I)),
    ("DATE", re.compile(rf"\b(?<!')(?!may\b){MONTH}\.?\s+\d{{1,2}}{_ORD}(?![\d:])\b", I)),
    ("DATE", re.compile(rf"\bMay\s+\d{{1,2}}{_ORD}(?![\d:])\b")),
    ("DATE", re.compile(rf"\b\d{{1,2}}{_ORD}\s+(?:of\s+)?(?!may\b){MONTH}\b\.?", I)),
    ("DATE", re.compile(r"\b(?:the\s+)\d{1,2}(?:st|nd|rd|th)\b(?!\s*(?:of\s+)?(?:day|week|month|year|"
                        r"percentile|time|dose|cycle|floor|rib|ics|intercostal|grade|degree|ventricle|"
                        r"toe|finger|digit|nerve|metacarpal|metatarsal|lumbar|cervical|thoracic|space|"
                        r"attempt|try|generation|trimester|stage))", I)),
    ("DATE", re.compile(rf"\b(?:in|since|until|during|early|late|mid|end of|beginning of)[\s-]+"
                        rf"(?P<phi>(?!may\b|mar\b|jun\b|dec\b){MONTH}\b\.?)", I)),
    ("DATE", re.compile(r"\b(?:christmas|xmas|thanksgiving|easter|hanukkah|new year'?s(?:\s+(?:day|eve))?|"
                        r"independence day|memorial day|labor day|veterans day|halloween)\b", I)),
    ("DATE", re.compile(rf"{_NB}\d{{1,2}}/\d{{1,2}}/\d{{1,2}}/\d{{1,2}}{_NA}")),
    ("DATE", re.compile(rf"{_NB}\d{{4}}([-/.])\d{{1,2}}\1\d{{1,2}}{_NA}")),
    ("DATE", re.compile(rf"(?<![\d/.])\d{{1,2}}/\d{{1,2}}/(?:\d{{4}}|\d{{2}}){_NA}")),
    ("DATE", re.compile(rf"{_NB}\d{{1,2}}([-.])\d{{1,2}}\1(?:\d{{4}}|\d{{2}}){_NA}")),
    ("DATE", re.compile(rf"{_NB}\d{{1,2}}/\d{{1,2}}[.]\d{{2}}(?!\d)")),
    ("DATE", re.compile(rf"{_NB}(?:0?[1-9]|1[0-2])/(?:19|20)\d\d{_NA}")),
    ("DATE", re.compile(rf"(?<![\d/.])(?:0?[1-9]|1[0-2])/\d{{1,2}}{_NA}")),
    # years: an apostrophe year, a 4-digit year that cannot be a clock time, or after history
    ("DATE", re.compile(r"(?<![\d'])'(?P<phi>\d\d)(?![\w'])|(?<!\bx )(?<!\bq )(?<!\bat )(?<!\bhob )(?<![\w'])"
                        r"(?P<y>[4-9]\d|0\d)'(?!\w)", I)),
    ("DATE", re.compile(r"(?<![\w.:/-])(?:19[6-9]\d|20[6-9]\d)(?![\w:/-]|\.\d)")),
    ("DATE", re.compile(r"\b(?:in|since|year|born|dob|circa|ca\.?)\s+(?P<phi>(?:19|20)\d\d)\b", I)),
    ("DATE", re.compile(r"\b(?:of|from|until)\s+(?P<phi>19[6-9]\d|20[6-9]\d)\b", I)),
    ("DATE", re.compile(rf"\b{_HISTORY}\s+(?:x\s?\d\s+)?(?P<phi>(?:19|20)\d\d|[4-9]\d|0\d|1[0-9])"
                        rf"(?:,\s+(?P<y2>(?:19|20)\d\d|[4-9]\d))?(?![\w%/:-]|\.\d)", I)),
]


def _rule_names() -> list[str]:
    """A name per pattern: its type and its number among that type's patterns (DATE0 ...)."""
    seen: dict[str, int] = {}
    names = []
    for kind, _ in PATTERNS:
        names.append(f"{kind}{seen.get(kind, 0)}")
        seen[kind] = seen.get(kind, 0) + 1
    return names


RULE_NAMES = _rule_names()


def pattern_candidates(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, type, rule) of every pattern match, before overlaps are resolved; `rule`
    names the pattern (RULE_NAMES)."""
    for (kind, pattern), rule in zip(PATTERNS, RULE_NAMES, strict=True):
        for m in pattern.finditer(text):
            for start, end in _phi_groups(m):
                value = text[start:end]
                if kind == "DATE" and not _plausible_date(text, start, end, value):
                    continue
                if rule == "PHONE4" and not _plausible_local_phone(text, start, end, value):
                    continue
                if start < end:
                    yield start, end, kind, rule


def pattern_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, type) of every pattern match, before overlaps are resolved."""
    for start, end, kind, _ in pattern_candidates(text):
        yield start, end, kind


def _phi_groups(m: re.Match[str]) -> list[tuple[int, int]]:
    """The spans of the PHI groups that matched (phi, zip, y, y2), else of the whole match."""
    spans = [m.span(g) for g in ("phi", "zip", "y", "y2") if g in m.re.groupindex and m.group(g)]
    return spans or [m.span()]


def _plausible_date(text: str, start: int, end: int, value: str) -> bool:
    """Drop fractions, scores and numbers followed by a unit."""
    if value in NOT_DATES:
        return False
    parts = re.split(r"[/.-]", value)
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        numbers = [int(p) for p in parts]
        if len(parts[0]) == 4:
            return 1 <= numbers[1] <= 12 and 1 <= numbers[2] <= 31
        month, day = numbers[0], numbers[1]
        day_first = len(parts) == 3 and len(parts[2]) == 4 and 1 <= day <= 12 and 1 <= month <= 31
        if not (1 <= month <= 12 and (len(parts) == 2 or 1 <= day <= 31)) and not day_first:
            return False
        if _VENT_BEFORE.search(text, max(0, start - 40), start) or _VENT_AFTER.match(text, end):
            return False
    return not (value.isdigit() and _UNIT_AFTER.match(text, end))


_MEASURED = re.compile(r"\b(?:svr|pvr|svri|pvri|tv|vt|stv|vte|vti|tidal|volumes?|plt|plts|platelets?|wbc|"
                       r"uo|urine|output|intake|cc|ml|range|ranging|between|from|in\s+the|ci|co|glucose|bs|"
                       r"fs|fsbs|cpk|ck|ldh|peak|pip|mv)\b[^\n\d]{0,12}$", I)


def _plausible_local_phone(text: str, start: int, end: int, value: str) -> bool:
    """A 7-digit local number, not a range of values: its last four digits are not a round
    number (1000, 1250) and no measurement word comes right before it."""
    return int(value[-4:]) % 50 != 0 and not _MEASURED.search(text, max(0, start - 24), start) \
        and not _UNIT_AFTER.match(text, end)
