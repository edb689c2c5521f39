"""What a piece of PHI becomes: a type tag ("[NAME]") or a surrogate of the same type.

Surrogates are chosen by a keyed HMAC of (patient, type, original), never by a bare hash or a
random draw, so the same key gives the same surrogate for the same patient in every note and
run, and nobody without the key can map a surrogate back. Names become Faker en_US first or
last names (word by word, keeping case and initials: "Dr. SMITH" -> "Dr. GARCIA", "J." -> "K.");
dates move by the patient's shift (`shift_days`: -1 to -365 days) and keep their layout
("7/22" -> "3/9", "March 2019" -> "October 2018"); ages over 89 become "90+"; places become
Faker-style towns (keeping words such as Hospital, Memorial, St.); numbers keep their layout
with other digits (phones, records, SSNs start with 9, never a real SSN); e-mails, URLs and IP
addresses become documentation values (example.org, 192.0.2.0/24).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
from datetime import date, timedelta
from functools import lru_cache

MODES = ("tags", "surrogates")
MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
MONTHS.update({"sept": 9})
_KEEP_WORDS = {"hospital", "hosp", "medical", "center", "centre", "ctr", "memorial", "clinic",
               "health", "rehab", "rehabilitation", "nursing", "home", "assisted", "living", "manor",
               "hospice", "va", "vamc", "university", "univ", "of", "the", "st", "saint", "holy",
               "sacred", "mount", "mt", "regional", "campus", "general", "street", "avenue", "road",
               "apt", "suite", "unit", "and"}


def pseudonym(key: bytes, *parts: str) -> str:
    """Hex HMAC-SHA256 of the parts under `key` (parts joined by a separator byte)."""
    return hmac.new(key, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def _number(key: bytes, *parts: str) -> int:
    return int(pseudonym(key, *parts)[:15], 16)


def shift_days(patient_id: str, key: bytes) -> int:
    """Days to move this patient's dates by: -1 to -365, fixed by (key, patient)."""
    return -1 - _number(key, "date-shift", patient_id) % 365


@lru_cache(maxsize=1)
def _faker_lists() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Faker en_US first names, last names and city suffixes (a short built-in list when
    Faker is not installed)."""
    try:
        from faker.providers.address.en_US import Provider as Address
        from faker.providers.person.en_US import Provider as Person
    except ImportError:
        return (("Alex", "Sam", "Jordan", "Taylor"), ("Smith", "Jones", "Brown", "Lee"),
                ("ville", "town", "port"))
    first = tuple(sorted({*Person.first_names_male, *Person.first_names_female}))
    return first, tuple(sorted(Person.last_names)), tuple(Address.city_suffixes)


class Surrogates:
    """Replacements for one patient under one key (tags or consistent surrogates)."""

    def __init__(self, key: bytes, patient_id: str, mode: str = "tags") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.key, self.patient, self.mode = key, patient_id, mode
        self.days = shift_days(patient_id, key)

    def replace(self, kind: str, original: str) -> str:
        """The text that stands for `original` (PHI of type `kind`)."""
        if self.mode == "tags":
            return f"[{kind}]"
        method = getattr(self, f"_{kind.lower()}", None)
        out = method(original) if method else self._shape(kind, original)
        return out if out is not None else f"[{kind}]"

    # -- helpers ---------------------------------------------------------------------------
    def _pick(self, options: tuple[str, ...], *parts: str) -> str:
        return options[_number(self.key, self.patient, *parts) % len(options)]

    def _shape(self, kind: str, original: str) -> str:
        """Same layout, other characters: digits -> digits, letters -> letters (case kept)."""
        digest = pseudonym(self.key, self.patient, kind, original.lower())
        stream = iter(int(c, 16) for c in digest * (1 + len(original) // 32))
        out = []
        for c in original:
            if c.isdigit():
                out.append(str(next(stream) % 10))
            elif c.isalpha():
                letter = chr(ord("a") + next(stream) % 26)
                out.append(letter.upper() if c.isupper() else letter)
            else:
                out.append(c)
        return "".join(out)

    @staticmethod
    def _cased(word: str, like: str) -> str:
        if like.isupper() and len(like) > 1:
            return word.upper()
        if like.islower():
            return word.lower()
        return word[:1].upper() + word[1:]

    # -- by type ---------------------------------------------------------------------------
    def _name(self, original: str) -> str:
        first, last, _ = _faker_lists()
        from iatros.nlp.phi_lexicon import _faker_names

        first_set = _faker_names()[0]

        def word(m: re.Match[str]) -> str:
            w = m[0]
            if len(w) == 1:
                return self._cased(self._pick(tuple("ABCDEFGHJKLMNPRSTW"), "initial", w.lower()), w)
            pool = first if w.lower() in first_set else last
            return self._cased(self._pick(pool, "name", w.lower()), w)
        return re.sub(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*", word, original)

    def _location(self, original: str) -> str:
        _, last, suffixes = _faker_lists()

        def word(m: re.Match[str]) -> str:
            w = m[0]
            if w.lower().rstrip(".") in _KEEP_WORDS:
                return w
            town = self._pick(last, "place", w.lower()) + self._pick(suffixes, "suffix", w.lower())
            return self._cased(town, w)
        return re.sub(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*", word, original)

    def _address(self, original: str) -> str:
        digits = iter(self._shape("ADDRESS", re.sub(r"\D", "", original)))
        return self._location(re.sub(r"\d", lambda _: next(digits), original))

    def _age(self, original: str) -> str:
        return "90+"

    def _email(self, original: str) -> str:
        return f"user{pseudonym(self.key, self.patient, 'email', original.lower())[:8]}@example.org"

    def _url(self, original: str) -> str:
        return f"https://example.org/{pseudonym(self.key, self.patient, 'url', original)[:8]}"

    def _ip(self, original: str) -> str:
        if ":" in original:
            return f"2001:db8::{pseudonym(self.key, self.patient, 'ip', original)[:4]}"
        return f"192.0.2.{1 + _number(self.key, self.patient, 'ip', original) % 254}"

    def _ssn(self, original: str) -> str:
        shaped = self._shape("SSN", original)
        return "9" + shaped[1:] if shaped[:1].isdigit() else shaped

    def _photo(self, original: str) -> str:
        extension = original[original.rfind("."):]
        return f"photo-{pseudonym(self.key, self.patient, 'photo', original)[:8]}{extension}"

    def _date(self, original: str) -> str | None:
        return shift_date(original, self.days)


# -- dates ---------------------------------------------------------------------------------
_NUMERIC = re.compile(r"(?P<a>\d{1,4})(?P<s1>[/.-])(?P<b>\d{1,2})(?:(?P<s2>[/.-])(?P<c>\d{2,4}))?$")
_WORDY = re.compile(r"(?P<pre>.*?)(?P<month>[a-z]+)(?P<dot>\.?)(?P<rest>.*)$", re.I | re.S)


def _year(text: str) -> int:
    value = int(text.strip("'"))
    if len(text.strip("'")) == 2:
        value += 2000 if value < 30 else 1900
    return value


def shift_date(text: str, days: int) -> str | None:
    """`text` (a date in a layout the patterns find) moved by `days`, same layout; None when
    it cannot be read as a date."""
    stripped = text.strip()
    try:
        pair = re.fullmatch(r"(\d{1,2}/\d{1,2})/(\d{1,2}/\d{1,2})", stripped)
        if pair:
            first, second = shift_date(pair[1], days), shift_date(pair[2], days)
            return f"{first}/{second}" if first and second else None
        m = _NUMERIC.match(stripped)
        if m:
            return _shift_numeric(m, days)
        if re.fullmatch(r"'?\d{2,4}'?", stripped):
            return _shift_year(stripped, days)
        return _shift_wordy(stripped, days)
    except (ValueError, OverflowError):
        return None


def _shift_year(text: str, days: int) -> str:
    digits = text.strip("'")
    moved = date(_year(digits), 7, 1) + timedelta(days=days)
    new = str(moved.year) if len(digits) == 4 else f"{moved.year % 100:02d}"
    return text.replace(digits, new)


def _shift_numeric(m: re.Match[str], days: int) -> str:
    a, b, c = m["a"], m["b"], m["c"]
    if len(a) == 4:  # ISO year-month-day
        new = date(int(a), int(b), int(c or 1)) + timedelta(days=days)
        return f"{new.year}{m['s1']}{new.month:02d}{m['s1']}{new.day:02d}"
    if c is None and len(b) == 2 and int(b) > 31:  # month/year
        new = date(_year(b), int(a), 15) + timedelta(days=days)
        return f"{new.month}{m['s1']}{new.year % 100:02d}"
    if c is None:  # month/day: shifted within a leap year so 2/29 stays valid
        new = date(2000, int(a), int(b)) + timedelta(days=days)
        return f"{new.month:0{len(a)}d}{m['s1']}{new.day:0{len(b)}d}"
    new = date(_year(c), int(a), int(b)) + timedelta(days=days)
    year = str(new.year) if len(c) == 4 else f"{new.year % 100:02d}"
    return f"{new.month:0{len(a)}d}{m['s1']}{new.day:0{len(b)}d}{m['s2']}{year}"


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _shift_wordy(text: str, days: int) -> str | None:
    """Dates with a month name: "March 14, 2021", "14th of March", "March 2019", "sept."."""
    month_m = next((m for m in re.finditer(r"[^\W\d_]+", text) if m[0].lower() in MONTHS), None)
    if month_m is None:
        return None
    year_m = re.search(r"(?<!\d)(?:(?:19|20)\d\d|'\d\d)(?!\d)", text)
    day_m = next((m for m in re.finditer(r"(?<!\d)(\d{1,2})(st|nd|rd|th)?(?!\d)", text)
                  if not (year_m and year_m.start() <= m.start() < year_m.end())), None)
    new = date(_year(year_m[0]) if year_m else 2000, MONTHS[month_m[0].lower()],
               int(day_m[1]) if day_m else 15) + timedelta(days=days)
    word = month_m[0]
    name = calendar.month_name[new.month] if len(word) > 3 and word.lower() != "sept" \
        else calendar.month_abbr[new.month]
    pieces = [(month_m.start(), month_m.end(), Surrogates._cased(name, word))]
    if day_m:
        suffix = _ordinal(new.day) if day_m[2] else ""
        pieces.append((day_m.start(), day_m.end(), f"{new.day}{Surrogates._cased(suffix, day_m[2] or 'x')}"))
    if year_m:
        pieces.append((year_m.start(), year_m.end(),
                       str(new.year) if len(year_m[0]) == 4 else f"'{new.year % 100:02d}"))
    for start, end, new_text in sorted(pieces, reverse=True):
        text = text[:start] + new_text + text[end:]
    return text
