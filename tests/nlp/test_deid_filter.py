"""The learned span filter on PHI candidates (`iatros.nlp.phi_filter`), the rules' candidate names,
and the rules added for wards, employers, pagers and local phone numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iatros.errors import ConfigError
from iatros.nlp import phi_lexicon
from iatros.nlp.phi import find_phi, rule_candidates
from iatros.nlp.phi_filter import FEATURES, SpanFilter, default_filter, misspelt


def synthetic(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(FEATURES)))
    return x, (x[:, 3] + x[:, 40] > 1).astype(int)


def test_span_filter_trees_score_exactly_like_scikit_learn():
    from sklearn.ensemble import GradientBoostingClassifier

    from iatros.nlp.phi_filter import FIT_PARAMS

    x, y = synthetic()
    weights = np.linspace(0.5, 1.5, len(y))
    ours = SpanFilter.fit(x, y, sample_weight=weights)
    theirs = GradientBoostingClassifier(**FIT_PARAMS).fit(x, y, sample_weight=weights)
    assert np.allclose([ours.score(row) for row in x], theirs.predict_proba(x)[:, 1], atol=1e-9)


def test_span_filter_round_trips_through_plain_json_numbers():
    x, y = synthetic()
    fitted = SpanFilter.fit(x, y, threshold=0.3)
    loaded = SpanFilter.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert [loaded.score(r) for r in x[:20]] == [fitted.score(r) for r in x[:20]]
    assert loaded.threshold == 0.3 and loaded.keep(x[0]) == (fitted.score(x[0]) >= 0.3)


def test_span_filter_refuses_weights_of_other_features_or_malformed_trees():
    x, y = synthetic()
    d = SpanFilter.fit(x, y).to_dict()
    with pytest.raises(ConfigError, match="other features"):
        SpanFilter.from_dict({**d, "features": d["features"][:-1]})
    bad = dict(d["trees"][0], feature=[len(FEATURES) + 5] * len(d["trees"][0]["feature"]))
    with pytest.raises(ConfigError, match="malformed"):
        SpanFilter.from_dict({**d, "trees": [bad]})


def test_shipped_filter_loads_from_the_package_as_plain_numbers():
    from iatros.nlp.phi_filter_weights import WEIGHTS

    shipped = default_filter()
    assert shipped is not None and 0 < shipped.threshold < 1 and tuple(WEIGHTS["features"]) == FEATURES
    json.dumps(WEIGHTS)  # plain numbers and strings only
    assert len(json.dumps(WEIGHTS)) < 400_000


def test_a_tagger_span_keeps_a_finding_that_the_filter_drops():
    text = "Seen by Dr. Whitfield today; wife Agatha called."
    drop_all = SpanFilter.from_dict({**default_filter().to_dict(), "threshold": 1.1})
    assert find_phi(text, span_filter=drop_all) == []

    def tagger(sentences: list[list[str]]) -> list[list[str]]:
        return [["B-NAME" if t == "Whitfield" else "O" for t in s] for s in sentences]

    spans = find_phi(text, tagger=tagger, span_filter=drop_all)
    assert [text[s.start:s.end] for s in spans] == ["Whitfield"]
    unfiltered = find_phi(text, filtered=False)
    assert {"Whitfield", "Agatha"} <= {text[s.start:s.end] for s in unfiltered}


def test_misspelt_common_words_are_told_from_unknown_names():
    assert misspelt("assymptomatic") and misspelt("protocal") and misspelt("gluccose")
    assert not misspelt("Bweighou") and not misspelt("asymptomatic")


def test_without_clinical_words_hides_the_list_and_restores_it():
    assert phi_lexicon.is_safe("foley")
    with phi_lexicon.without_clinical_words():
        assert not phi_lexicon.is_clinical("foley")
    assert phi_lexicon.is_safe("foley") and phi_lexicon.is_clinical("foley")


def test_rule_candidates_name_the_rule_that_found_them():
    rules = {(r, k) for _, _, k, r in rule_candidates("Seen by Dr. Whitfield on 7/22.")}
    assert ("name:title", "NAME") in rules and ("DATE15", "DATE") in rules


def found(text: str, kind: str) -> list[str]:
    return [text[s:e] for s, e, k, _ in rule_candidates(text) if k == kind]


def test_wards_after_a_preposition_are_places():
    text = "Pt admitted to MICU from Quartermain 3 for SOB; was on QUARTERMAIN 6."
    assert {"Quartermain", "QUARTERMAIN"} <= set(found(text, "LOCATION"))
    assert found("on propofol 20 and lasix 40", "LOCATION") == []


def test_employers_are_places():
    assert "Genentech" in found("He worries about his business, works at Genentech in sales.", "LOCATION")


def test_local_phone_numbers_and_pagers_but_not_ranges_of_values():
    assert sorted(found("call her at 555-1234 tonight, pager 4321", "PHONE")) == ["4321", "555-1234"]
    assert found("VT 800-1000, SVR 954-1183, tidal volumes 950-1000, 700-1250 cc", "PHONE") == []


def test_names_right_before_a_phone_label_or_number_are_names():
    text = "Family: Lopie Certusi cell# 410-322-1419. SON ROB 285-482-5518. Con't to work with PT."
    names = found(text, "NAME")
    assert "Lopie Certusi" in names and any("ROB" in n for n in names) and not any("work" in n for n in names)


def test_every_rule_feeds_a_feature_of_the_filter():
    from iatros.nlp.phi_filter import RULE_GROUPS, rule_group
    from iatros.nlp.phi_patterns import RULE_NAMES

    text = ("Dr. Whitfield, wife Agatha, per Smith, J. Brown, name: Okafor, Jane Roe RN, Toolis aware, "
            "Lopie Certusi cell# 410-322-1419, transferred to Kessler Hospital at St. Agnes, U of Maryland, "
            "sent to GH, from Quartermain 3, works at Genentech, lives in Towson; 7/22")
    rules = {r for *_, r in rule_candidates(text)} | set(RULE_NAMES)
    assert {rule_group(r) for r in rules} <= set(RULE_GROUPS)
