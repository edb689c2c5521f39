"""Clinical and biomedical text tasks.

- `ner-ncbi-disease`, `ner-bc5cdr`: named-entity recognition on the BioNLP corpora in IOB token
  format (`bioner/<set>/{train,devel,test}.tsv` under the data root), with the shipped split.
  Tags use the metrics module's BIO convention (0 = O, 2k+1 = B-type k, 2k+2 = I-type k).
  The IOB files carry no document ids, so each sentence is its own bootstrap unit.
- `mtsamples-specialty`: the medical specialty of a transcribed note (MTSamples). The label set
  keeps clinical specialties with at least 50 notes and drops the catch-all / document-type
  categories (`SPECIALTY_EXCLUDED`); MTSamples files one text under several specialties, so a
  text with two kept specialties is dropped as ambiguous. On the released table this leaves
  1,184 distinct notes in 9 specialties (Radiology, Neurosurgery, Nephrology, ... fall under 50
  once their shared notes are dropped).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.home import RemoteFile, locate
from iatros.errors import CorruptDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task

BIONER_HOME = "https://github.com/dmis-lab/biobert (datasets: NER)"
SPLIT_FILES = (("train", "train.tsv"), ("val", "devel.tsv"), ("test", "test.tsv"))


def object_array(items: list) -> np.ndarray:
    """A 1-D numpy object array holding `items` as they are (lists stay lists)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def bio_classes(types: tuple[str, ...]) -> tuple[str, ...]:
    """Tag names in id order: O, B-T0, I-T0, B-T1, I-T1, ..."""
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


def read_iob(path: Path, classes: tuple[str, ...]) -> tuple[list[list[str]], list[np.ndarray]]:
    """Sentences (token lists) and tag-id arrays from a token<TAB>tag file; blank lines split."""
    index = {name: i for i, name in enumerate(classes)}
    sentences: list[list[str]] = []
    tags: list[np.ndarray] = []
    tokens: list[str] = []
    ids: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorruptDataError(f"{path} is not UTF-8 text: {e}") from e
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip():
            if tokens:
                sentences.append(tokens)
                tags.append(np.asarray(ids, dtype=np.int64))
                tokens, ids = [], []
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2 or parts[-1] not in index:
            raise CorruptDataError(f"{path}, line {number}: expected TOKEN<TAB>TAG with a tag in "
                                   f"{list(classes)}, got {line[:80]!r}")
        tokens.append(parts[0])
        ids.append(index[parts[-1]])
    return sentences, tags


def _bioner_loader(folder: str, classes: tuple[str, ...]):
    def load(root: Path) -> TaskData:
        sentences, tags, parts = [], [], []
        for part, name in SPLIT_FILES:
            spec = RemoteFile(f"bioner/{folder}/{name}", homepage=BIONER_HOME,
                              note="The IOB files are the BioBERT preprocessed NER sets.")
            s, t = read_iob(locate(spec, root), classes)
            sentences += s
            tags += t
            parts += [part] * len(s)
        n = len(sentences)
        return TaskData(inputs=object_array(sentences), targets=object_array(tags),
                        patient_ids=np.array([f"sent{i}" for i in range(n)]),
                        attributes=pd.DataFrame(index=range(n)), split=np.array(parts),
                        source=f"bioner/{folder}")
    return load


_NER_COMMON = dict(modality=Modality.TEXT, target=TargetKind.TOKENS,
                   metrics=("entity_f1", "entity_precision", "entity_recall"),
                   primary_metric="entity_f1", default_model="bilstm-crf",
                   models=("bilstm-crf", "bilstm-crf-minilm"),
                   split_by="sentence")

register_task(Task(
    name="ner-ncbi-disease",
    description="Disease mentions in PubMed abstracts (NCBI-disease, BIO tags, shipped split)",
    loader=_bioner_loader("NCBI-disease-IOB", bio_classes(("Disease",))),
    classes=bio_classes(("Disease",)),
    source="NCBI-disease corpus (Dogan et al. 2014), BioBERT IOB version",
    intended_use="Research on biomedical disease-mention recognition; a building block of the "
                 "clinical NLP pipeline, not a clinical decision tool.",
    limitations=("Trained on PubMed abstracts, not clinical notes: expect lower recall on "
                 "abbreviations and shorthand in notes.",
                 "The IOB files carry no document ids: CIs resample sentences, not abstracts."),
    **_NER_COMMON,
))

register_task(Task(
    name="ner-bc5cdr",
    description="Chemical and disease mentions in PubMed abstracts (BC5CDR, BIO tags, shipped split)",
    loader=_bioner_loader("BC5CDR-IOB", bio_classes(("Chemical", "Disease"))),
    classes=bio_classes(("Chemical", "Disease")),
    source="BioCreative V CDR corpus (Li et al. 2016), BioBERT IOB version",
    intended_use="Research on chemical/disease mention recognition.",
    limitations=("Trained on PubMed abstracts, not clinical notes.",
                 "The IOB files carry no document ids: CIs resample sentences, not abstracts."),
    **_NER_COMMON,
))

# --------------------------------------------------------------------------------------------
# MTSamples specialty
# --------------------------------------------------------------------------------------------
MTSAMPLES = RemoteFile("mtsamples/mtsamples_from_rda.csv.gz",
                       homepage="https://www.kaggle.com/datasets/tboyle10/medicaltranscriptions "
                                "(or the clinspacy R package's data/mtsamples.rda)")
SPECIALTY_EXCLUDED = (
    # document types and catch-alls: a note filed here also belongs to a real specialty
    "Consult - History and Phy.", "SOAP / Chart / Progress Notes", "Discharge Summary",
    "Emergency Room Reports", "Office Notes", "Letters", "IME-QME-Work Comp etc.",
    "General Medicine", "Surgery",
)
SPECIALTY_MIN_NOTES = 50


def read_mtsamples(root: Path) -> pd.DataFrame:
    """The MTSamples table (note_id, description, medical_specialty, transcription, ...)."""
    path = locate(MTSAMPLES, root)
    try:
        frame = pd.read_csv(path)
    except Exception as e:
        raise CorruptDataError(f"cannot read {path}: {e}") from e
    missing = {"medical_specialty", "transcription", "description"} - set(frame.columns)
    if missing:
        raise CorruptDataError(f"{path} lacks columns {sorted(missing)}")
    return frame


def specialty_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Notes of the kept specialties, one row per distinct text.

    MTSamples files the same transcription under several specialties; texts with more than one
    kept specialty are dropped as ambiguous, and the text's hash is the grouping id, so a note
    can never sit in two split parts.
    """
    frame = frame.dropna(subset=["transcription", "medical_specialty"]).copy()
    frame["medical_specialty"] = frame["medical_specialty"].str.strip()
    frame["transcription"] = frame["transcription"].astype(str)
    frame = frame[frame["transcription"].str.strip().str.len() > 0]
    frame = frame[~frame["medical_specialty"].isin(SPECIALTY_EXCLUDED)]
    frame["text_id"] = [hashlib.sha1(t.strip().encode()).hexdigest()[:16]
                        for t in frame["transcription"]]
    labels_per_text = frame.groupby("text_id")["medical_specialty"].nunique()
    frame = frame[frame["text_id"].map(labels_per_text) == 1]
    frame = frame.drop_duplicates("text_id")
    counts = frame["medical_specialty"].value_counts()
    keep = counts[counts >= SPECIALTY_MIN_NOTES].index
    return frame[frame["medical_specialty"].isin(keep)].reset_index(drop=True)


# Fixed label set (the result of `specialty_frame` on the released table, sorted); the loader
# checks the data against it so a different copy of MTSamples fails loudly.
SPECIALTY_CLASSES = (
    "Cardiovascular / Pulmonary", "ENT - Otolaryngology", "Gastroenterology",
    "Hematology - Oncology", "Neurology", "Obstetrics / Gynecology", "Ophthalmology",
    "Orthopedic", "Urology",
)


def _load_specialty(root: Path) -> TaskData:
    frame = specialty_frame(read_mtsamples(root))
    found = tuple(sorted(frame["medical_specialty"].unique()))
    if found != SPECIALTY_CLASSES:
        raise CorruptDataError(f"MTSamples at {root / MTSAMPLES.relpath} yields specialties "
                               f"{list(found)}, expected {list(SPECIALTY_CLASSES)}")
    index = {c: i for i, c in enumerate(SPECIALTY_CLASSES)}
    return TaskData(inputs=object_array(frame["transcription"].tolist()),
                    targets=frame["medical_specialty"].map(index).to_numpy(np.int64),
                    patient_ids=frame["text_id"].to_numpy(),
                    attributes=pd.DataFrame(index=range(len(frame))),
                    source=MTSAMPLES.relpath)


register_task(Task(
    name="mtsamples-specialty",
    description="Medical specialty of a transcribed note (MTSamples, 9 specialties)",
    modality=Modality.TEXT,
    target=TargetKind.MULTICLASS,
    loader=_load_specialty,
    classes=SPECIALTY_CLASSES,
    metrics=("f1", "accuracy", "balanced_accuracy", "auroc"),
    primary_metric="f1",
    default_model="tfidf-logreg",
    models=("tfidf-logreg",),
    split_by="note text",
    source="MTSamples transcriptions (mtsamples.com via Kaggle / clinspacy)",
    intended_use="Routing or indexing transcribed notes by specialty; research use.",
    limitations=("Catch-all categories (Surgery, General Medicine, consults, SOAP notes, discharge "
                 "summaries, letters, ...) are excluded; notes filed under two kept specialties "
                 "are dropped.",
                 "Transcription samples, not real patients; no patient ids (grouped by text)."),
))
