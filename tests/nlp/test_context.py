"""ConText attributes on single sentences."""

from __future__ import annotations

import pytest

from iatros.nlp import extract_text


def _attrs(text: str, term: str) -> dict:
    ents = [e for e in extract_text(text)["entities"] if e["text"].lower() == term]
    assert ents, f"{term!r} not extracted from {text!r}"
    return ents[0]


@pytest.mark.parametrize(("text", "term", "attribute"), [
    ("The patient denies chest pain.", "chest pain", "negated"),
    ("No fever, chills, or cough.", "cough", "negated"),
    ("Pneumonia was ruled out.", "pneumonia", "negated"),
    ("Possible pneumonia in the right lower lobe.", "pneumonia", "uncertain"),
    ("Findings are concerning for appendicitis.", "appendicitis", "uncertain"),
    ("She has a history of asthma.", "asthma", "historical"),
    ("Status post appendectomy.", "appendectomy", "historical"),
    ("Her mother had breast cancer.", "breast cancer", "family"),
    ("Return to the clinic if fever develops.", "fever", "hypothetical"),
])
def test_cue_sets_attribute(text, term, attribute):
    assert _attrs(text, term)[attribute] is True


def test_affirmed_mention_has_no_attributes():
    e = _attrs("The patient reports chest pain radiating to the left arm.", "chest pain")
    assert not any(e[a] for a in ("negated", "uncertain", "historical", "family", "hypothetical"))


def test_terminator_ends_negation_scope():
    text = "He denies fever but reports cough."
    assert _attrs(text, "fever")["negated"] is True
    assert _attrs(text, "cough")["negated"] is False


def test_pseudo_cue_does_not_negate():
    assert _attrs("No change in his hypertension.", "hypertension")["negated"] is False


def test_negation_does_not_cross_sentences():
    text = "No fever. Severe abdominal pain since yesterday."
    # ICD-10-CM lists "severe abdominal pain" (R10.0), so the whole phrase is the mention
    assert _attrs(text, "severe abdominal pain")["negated"] is False


def test_family_history_section_marks_family():
    text = "FAMILY HISTORY: Diabetes and hypertension.\nSOCIAL HISTORY: No tobacco."
    assert _attrs(text, "diabetes")["family"] is True


# -- the ConText module on its own: entity spans given by the test, cues from the cue file ------

@pytest.fixture(scope="module")
def context():
    from iatros.nlp.context import ConText
    from iatros.nlp.pipeline import make_nlp

    nlp = make_nlp()
    return nlp, ConText(nlp)


def _flags(context, text: str, term: str, others: tuple[str, ...] = ()) -> dict[str, bool]:
    """ConText attributes of `term` in `text`, with `others` marked as entities too (list items)."""
    nlp, ctx = context
    doc = nlp(text)

    def span_of(word: str):
        start = text.lower().index(word.lower())
        return doc.char_span(start, start + len(word), alignment_mode="expand")

    span = span_of(term)
    inside = {i for w in (term, *others) for s in [span_of(w)] for i in range(s.start, s.end)}
    return ctx.attributes(doc, span, ctx.cues(doc), inside)[0]


@pytest.mark.parametrize("term", ["focal airspace disease", "pneumothorax", "pleural effusion"])
def test_clear_of_negates_every_item_of_a_coordinated_list(context, term):
    text = "The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion."
    others = ("focal airspace disease", "pneumothorax", "pleural effusion")
    assert _flags(context, text, term, others)["negated"] is True


def test_list_scope_holds_without_other_entities_marked(context):
    text = "No focal airspace disease, pneumothorax, or pleural effusion."
    assert _flags(context, text, "pleural effusion")["negated"] is True


def test_backward_not_visualized_negates_a_previously_seen_finding(context):
    flags = _flags(context, "Previously identified pneumothorax is not visualized.", "pneumothorax")
    assert flags["negated"] is True


@pytest.mark.parametrize(("text", "term"), [
    ("Lungs are free of consolidation.", "consolidation"),
    ("No evidence of pneumothorax.", "pneumothorax"),
    ("Pleural effusion has resolved.", "pleural effusion"),
    ("The chest tube has been removed.", "chest tube"),
    ("Blood cultures negative for bacteremia.", "bacteremia"),
    ("A nodule is not seen on this study.", "nodule"),
])
def test_radiology_negation_phrasing(context, text, term):
    assert _flags(context, text, term)["negated"] is True


@pytest.mark.parametrize("text", [
    "Family  history of colon cancer.",  # two spaces inside the cue
    "Family\nhistory of colon cancer.",  # a line break inside the cue
])
def test_cue_words_split_by_extra_whitespace_still_match(context, text):
    assert _flags(context, text, "colon cancer")["family"] is True


def test_cue_offsets_point_into_the_original_text(context):
    nlp, ctx = context
    doc = nlp("Family   history of colon cancer.")
    cue = next(c for c in ctx.cues(doc) if c.text.lower() == "family history of")
    assert doc[cue.start:cue.end].text == "Family   history of"


def test_relative_marks_experiencer_other(context):
    mi = "myocardial infarction"
    assert _flags(context, "His father had a myocardial infarction.", mi)["family"] is True
    assert _flags(context, "He had a myocardial infarction.", "myocardial infarction")["family"] is False


def test_history_cue_marks_historical(context):
    assert _flags(context, "Past history of pulmonary embolism.", "pulmonary embolism")["historical"] is True


def test_hypothetical_cue_marks_hypothetical(context):
    flags = _flags(context, "Return to the emergency room should chest pain recur.", "chest pain")
    assert flags["hypothetical"] is True and flags["negated"] is False


def test_pseudo_cue_blocks_the_negation_inside_it(context):
    text = "No significant change in the pleural effusion."
    assert _flags(context, text, "pleural effusion")["negated"] is False
    assert _flags(context, "Gram negative bacteremia.", "bacteremia")["negated"] is False


def test_terminator_ends_scope_before_the_entity(context):
    text = "No pneumothorax, however a small pleural effusion is present."
    flags = _flags(context, text, "pleural effusion")
    assert flags["negated"] is False


def test_uncertain_cue_is_not_negation(context):
    flags = _flags(context, "Rule out pneumonia.", "pneumonia")
    assert flags["uncertain"] is True and flags["negated"] is False


def test_cue_file_loads_with_valid_rows():
    from iatros.nlp.context import CATEGORIES, DIRECTIONS, SOURCES, load_cues

    rules = load_cues()
    assert len(rules) > 500
    for r in rules:
        assert r.cue == " ".join(r.cue.split()) == r.cue.lower()
        assert r.direction in DIRECTIONS
        assert r.category in CATEGORIES or (r.category == "all" and r.direction in ("pseudo", "terminate"))
        assert r.source and set(r.source.split(";")) <= set(SOURCES)
    cues = {(r.cue, r.category, r.direction) for r in rules}
    for cue, direction in [("clear of", "forward"), ("free of", "forward"), ("no evidence of", "forward"),
                           ("without", "forward"), ("negative for", "forward"),
                           ("not visualized", "backward"), ("not seen", "backward"),
                           ("resolved", "backward"), ("removed", "backward")]:
        assert (cue, "negated", direction) in cues


def test_a_bad_cue_row_names_its_line(tmp_path):
    from iatros.nlp.context import load_cues

    path = tmp_path / "cues.tsv"
    path.write_text("# header\ncue\tcategory\tdirection\tmax_scope\tsource\nno\tnegated\tforward\t\tnegex\n"
                    "maybe\tdoubtful\tforward\t\tnegex\n")
    with pytest.raises(ValueError, match=r"cues.tsv:4: bad cue row"):
        load_cues(path)
