"""Clinical NLP: reading notes, sentences, sections, entities with ConText attributes, FHIR,
extractive summaries, de-identification and per-patient problem / medication lists.

Built on spaCy (`spacy.blank("en")` plus our own components: no model download). This package
sits beside `models` and `data`: it imports neither tasks, train, evaluate nor api. A trained
sequence tagger plugs in as a plain callable (see `pipeline.Tagger`), loaded by the api layer.
"""

from iatros.nlp.pipeline import ClinicalPipeline, Entity, extract_text

__all__ = ["ClinicalPipeline", "Entity", "extract_text"]
