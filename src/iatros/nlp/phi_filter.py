"""A learned filter on PHI candidates: the rules propose spans, small gradient-boosted trees over
span features keep or drop each one (precision), with a threshold chosen for recall first.

Features of a merged span (`span_features`): its type; which rules found it (grouped: name after
a title, a relative, a label, before a credential, a listed name, a repeat; facility, saint,
acronym, place after "transferred to", gazetteer; dates with a month name, numeric dates,
month/day, years; phones, addresses, other patterns) and how many; its length in words and
characters, digits; whether its words are in the name lists, the safe-word list, or one edit away
from a safe word (a misspelt common word: "assymptomatic", "protocal"); casing against the note's
(Title, CAPS or lower case in a mixed-case note); how often the word occurs in the note and in
lower case there; the words around it (title, relative, preposition, credential, label colon).

The trees (`iatros.nlp.phi_filter_weights`, plain numbers in a Python module: no pickle) were
fitted on the PhysioNet deid notes of patients 1-40 only, the threshold chosen on patient-grouped
cross-validation there (benchmarks/deid.py --part cv). `SpanFilter.fit` refits them from
(features, label) pairs with scikit-learn; scoring needs only the numbers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from iatros.errors import ConfigError
from iatros.nlp.phi_lexicon import is_name, is_safe, safe_words
from iatros.nlp.phi_names import CREDENTIALS, RELATIVES, TITLES, WORD, mixed_case

# pattern rules (iatros.nlp.phi_patterns.RULE_NAMES) -> feature groups; other rules keep their name
_DATE_GROUPS = {**{f"DATE{i}": "date:month" for i in (0, 1, 2, 3, 4, 5, 7)}, "DATE6": "date:nth",
                "DATE8": "date:holiday", **{f"DATE{i}": "date:full" for i in range(9, 15)},
                "DATE15": "date:md", **{f"DATE{i}": "date:year" for i in range(16, 21)}}
RULE_GROUPS = ("name:title", "name:relative", "name:context", "name:initial", "name:label",
               "name:credential", "name:after", "name:contact", "name:listed", "name:repeat",
               "place:facility", "place:saint", "place:university", "place:acronym", "place:moved",
               "place:ward", "place:employer", "place:gazetteer",
               "date:month", "date:nth", "date:holiday", "date:full", "date:md", "date:year", "phone",
               "address", "age", "other", "tagger")
TYPE_GROUPS = ("NAME", "LOCATION", "DATE", "PHONE", "AGE", "OTHER")
_PREPOSITIONS = frozenset(["to", "from", "at", "in", "of", "on", "into", "@"])
FEATURES = (*(f"type={t}" for t in TYPE_GROUPS), *(f"rule={r}" for r in RULE_GROUPS),
            "n_rules", "n_words", "log_chars", "has_digit", "frac_name", "frac_safe", "frac_unknown",
            "misspelt", "short_word", "note_cased", "title_case", "caps_in_cased", "lower_in_cased",
            "log_count", "lower_elsewhere", "prev_title", "prev_relative", "prev_preposition",
            "next_credential", "after_colon", "line_start", "next_digit", "measure_before", "unit_after",
            "month_agrees")
_MEASURE = re.compile(r"\b(?:peep|ps|psv|cpap|bipap|ipap|epap|tv|vt|rr|fio2|ratio|x|sbp|dbp|bp|map|cvp|pap|"
                      r"hr|abg|gtt|drip|rate|settings?|vent|vs|imv|simv|ac|pcv|cmv)\b[^\n\d]{0,6}$", re.I)
_UNIT = re.compile(r"\s?(?:%|cm|mm|mmhg|mg|mcg|ml|cc|l\b|u\b|units?|/\d|bpm|h2o|x\b)", re.I)
_MONTH_DAY = re.compile(r"(?<![\d/.])(\d{1,2})/\d{1,2}(?:/\d{2,4})?(?![\d/])")


def rule_group(rule: str) -> str:
    """The feature group of a rule name (name:title ..., DATE3 -> date:month, PHONE1 -> phone)."""
    if ":" in rule or rule == "tagger":
        return rule
    if rule.startswith("DATE"):
        return _DATE_GROUPS.get(rule, "date:full")
    for prefix, group in (("PHONE", "phone"), ("FAX", "phone"), ("ADDRESS", "address"), ("ZIP", "address"),
                          ("AGE", "age")):
        if rule.startswith(prefix):
            return group
    return "other"


def type_group(kind: str) -> str:
    return kind if kind in TYPE_GROUPS else "OTHER"


@dataclass
class Group:
    """A merged span and the candidates (start, end, type, rule) that made it."""

    start: int
    end: int
    type: str
    members: list[tuple[int, int, str, str]] = field(default_factory=list)


def group_candidates(found: Iterable[tuple[int, int, str, str]], rank: dict[str, int]) -> list[Group]:
    """Overlapping candidates merged into their union (typed by the most specific member, by
    `rank`), each with its members."""
    out: list[Group] = []
    for s, e, t, r in sorted(c for c in found if 0 <= c[0] < c[1]):
        if out and s < out[-1].end:
            last = out[-1]
            last.end = max(last.end, e)
            if rank.get(t, len(rank)) < rank.get(last.type, len(rank)):
                last.type = t
            last.members.append((s, e, t, r))
        else:
            out.append(Group(s, e, t, [(s, e, t, r)]))
    return out


def misspelt(word: str) -> bool:
    """A word that is no safe word but one edit (drop, swap, change or add a letter) from one."""
    return _misspelt(word.lower(), safe_words())


@lru_cache(maxsize=50_000)
def _misspelt(w: str, safe: frozenset[str]) -> bool:
    if len(w) < 4 or is_safe(w):
        return False
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
    for a, b in splits:
        if b and len(a + b[1:]) >= 3 and a + b[1:] in safe:
            return True
        if len(b) > 1 and a + b[1] + b[0] + b[2:] in safe:
            return True
        for c in letters:
            if b and c != b[0] and a + c + b[1:] in safe:
                return True
            if a + c + b in safe:
                return True
    return False


class NoteContext:
    """What the features need of the whole note: its words, casing and word counts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.cased = mixed_case(text)
        self.words = [(m.start(), m.end(), m[0]) for m in WORD.finditer(text)]
        self.starts = [s for s, _, _ in self.words]
        self.count = Counter(w.lower() for _, _, w in self.words)
        self.lower = Counter(w for _, _, w in self.words if w.islower())
        self.months = Counter(int(m[1]) for m in _MONTH_DAY.finditer(text) if 1 <= int(m[1]) <= 12)

    def _index(self, pos: int) -> int:
        """Index of the first word starting at or after `pos`."""
        lo, hi = 0, len(self.starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.starts[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo


def span_features(ctx: NoteContext, group: Group) -> list[float]:
    """The feature vector (FEATURES order) of one merged span."""
    text, start, end = ctx.text, group.start, group.end
    f = dict.fromkeys(FEATURES, 0.0)
    f[f"type={type_group(group.type)}"] = 1.0
    rules = {rule_group(r) for *_, r in group.members}
    for r in rules:
        f[f"rule={r if r in RULE_GROUPS else 'other'}"] = 1.0
    f["n_rules"] = float(len(rules))
    value = text[start:end]
    words = [m[0] for m in WORD.finditer(value)]
    f["n_words"] = float(len(words))
    f["log_chars"] = math.log1p(end - start)
    f["has_digit"] = float(any(c.isdigit() for c in value))
    if words:
        n = len(words)
        f["frac_name"] = sum(is_name(w) for w in words) / n
        f["frac_safe"] = sum(is_safe(w) for w in words) / n
        f["frac_unknown"] = sum(not is_name(w) and not is_safe(w) for w in words) / n
        f["misspelt"] = float(any(misspelt(w) for w in words if not is_name(w)))
        f["short_word"] = float(max(len(w) for w in words) <= 3)
        main = max(words, key=len)
        f["log_count"] = math.log1p(ctx.count[main.lower()])
        if ctx.cased:
            f["title_case"] = float(all(w[0].isupper() and not w.isupper() for w in words))
            f["caps_in_cased"] = float(any(w.isupper() and len(w) > 1 for w in words))
            f["lower_in_cased"] = float(all(w.islower() for w in words))
            f["lower_elsewhere"] = math.log1p(ctx.lower[main.lower()] - (main.islower()))
    f["note_cased"] = float(ctx.cased)
    k = ctx._index(start)
    if k > 0:
        prev = ctx.words[k - 1][2].lower()
        f["prev_title"] = float(prev in TITLES)
        f["prev_relative"] = float(prev in RELATIVES)
        f["prev_preposition"] = float(prev in _PREPOSITIONS)
    j = ctx._index(end)
    if j < len(ctx.words):
        f["next_credential"] = float(ctx.words[j][2].lower() in CREDENTIALS
                                     and re.fullmatch(r"[\s,]{1,3}", text[end:ctx.words[j][0]]) is not None)
    before = text[max(0, start - 3):start]
    f["after_colon"] = float(":" in before)
    f["line_start"] = float(start == 0 or not text[text.rfind("\n", 0, start) + 1:start].strip())
    f["next_digit"] = float(re.match(r"\s?\d", text[end:end + 2]) is not None)
    f["measure_before"] = float(_MEASURE.search(text, max(0, start - 16), start) is not None)
    f["unit_after"] = float(_UNIT.match(text, end) is not None)
    m = _MONTH_DAY.fullmatch(value)
    if m and 1 <= int(m[1]) <= 12:
        month = int(m[1])
        others = sum(n for k, n in ctx.months.items() if abs(k - month) <= 1 or abs(k - month) == 11) - 1
        f["month_agrees"] = math.log1p(max(0, others))
    return [f[name] for name in FEATURES]


@dataclass
class SpanFilter:
    """Gradient-boosted trees over span features: keep a span when its score (the probability
    that it is PHI) reaches `threshold`. `trees` are (feature, threshold, left, right, value)
    arrays per tree (a leaf has feature -1); score = sigmoid(init + rate * sum of leaf values)."""

    trees: list[dict[str, list[float]]]
    init: float
    rate: float
    threshold: float
    features: tuple[str, ...] = FEATURES
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.features) != FEATURES:
            raise ConfigError("the PHI filter's weights were fitted on other features than this "
                              "version computes; refit them (benchmarks/deid.py --fit-filter)")
        for t in self.trees:
            n = len(t["feature"])
            if any(len(t[k]) != n for k in ("threshold", "left", "right", "value")) \
                    or any(not -1 <= int(f) < len(FEATURES) for f in t["feature"]):
                raise ConfigError("the PHI filter's trees are malformed")

    def score(self, x: Sequence[float]) -> float:
        z = self.init
        for t in self.trees:
            node = 0
            while int(t["feature"][node]) >= 0:
                node = int(t["left"][node] if x[int(t["feature"][node])] <= t["threshold"][node]
                           else t["right"][node])
            z += self.rate * t["value"][node]
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def keep(self, x: Sequence[float]) -> bool:
        return self.score(x) >= self.threshold

    @classmethod
    def fit(cls, x: Sequence[Sequence[float]], y: Sequence[int], *, threshold: float = 0.5,
            sample_weight: Sequence[float] | None = None, info: dict[str, Any] | None = None,
            **params: Any) -> SpanFilter:
        """Fit the trees with scikit-learn's gradient boosting (`params` passed on)."""
        import numpy as np
        from sklearn.ensemble import GradientBoostingClassifier

        settings = {**FIT_PARAMS, **params}
        model = GradientBoostingClassifier(**settings)
        xa = np.asarray(x, dtype=float)
        weight = None if sample_weight is None else np.asarray(sample_weight)
        model.fit(xa, np.asarray(y), sample_weight=weight)
        init = float(model._raw_predict_init(xa[:1])[0, 0])
        trees = []
        for est in model.estimators_[:, 0]:
            t = est.tree_
            features = [-1 if lo < 0 else int(f) for f, lo in zip(t.feature, t.children_left, strict=True)]
            trees.append({"feature": features,
                          "threshold": [float(v) for v in t.threshold],
                          "left": [int(v) for v in t.children_left],
                          "right": [int(v) for v in t.children_right],
                          "value": [float(v) for v in t.value[:, 0, 0]]})
        return cls(trees, init, float(settings["learning_rate"]), threshold, FEATURES,
                   {**(info or {}), "params": settings})

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "trees": self.trees, "init": self.init, "rate": self.rate,
                "threshold": self.threshold, "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpanFilter:
        return cls(list(d["trees"]), float(d["init"]), float(d["rate"]), float(d["threshold"]),
                   tuple(d["features"]), dict(d.get("info") or {}))


FIT_PARAMS: dict[str, Any] = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
                              "random_state": 0}


@lru_cache(maxsize=1)
def default_filter() -> SpanFilter | None:
    """The shipped filter (fitted on PhysioNet deid patients 1-40), or None when none ships."""
    from iatros.nlp.phi_filter_weights import WEIGHTS

    return SpanFilter.from_dict(WEIGHTS) if WEIGHTS else None
