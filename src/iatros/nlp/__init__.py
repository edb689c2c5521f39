"""Clinical NLP: reading notes, sentences, sections, entities with ConText attributes, FHIR,
extractive summaries, de-identification and per-patient problem / medication lists.

Built on spaCy (`spacy.blank("en")` plus our own components: no model download). This package
sits beside `models` and `data`: it imports neither tasks, train, evaluate nor api. A trained
sequence tagger plugs in as a plain callable (see `pipeline.Tagger`), loaded by the api layer.
"""

import sys

if "torch" not in sys.modules:  # spaCy's thinc imports torch (2-3 s) for layers iatros never uses
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes thinc's `import torch` fail fast
    try:
        import spacy  # noqa: F401
    finally:
        del sys.modules["torch"]  # a later `import torch` (a trained tagger) loads it as usual

from iatros.nlp.pipeline import ClinicalPipeline, Entity, extract_text  # noqa: E402

__all__ = ["ClinicalPipeline", "Entity", "extract_text"]
