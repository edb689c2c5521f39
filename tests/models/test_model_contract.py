"""The contract every registered model keeps, like scikit-learn's estimator checks: on a tiny task
of each modality it declares it trains through the pipeline, predicts, loads back from its run
folder and predicts identically, and (torch models) resumes an interrupted training from its
last checkpoint. A new model is covered by being registered; it cannot skip a step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import list_models
from iatros.run_folder import RunFolder
from iatros.tasks import Task, TaskData, get_task
from iatros.train.predictors import load_predictor
from iatros.train.trainer import Callback
from tests.nlp.test_ner_pipeline import _write_iob
from tests.tasks.ehr_fixture import write_physionet_root

FAST = api.EvalOptions(n_boot=10)
# Small versions of the slow estimators: the contract is about the steps, not the fit.
SMALL = {"gbm": {"max_iter": 30}, "gbm-bag": {"bags": 2, "max_iter": 30},
         "rsf": {"n_estimators": 10}, "logreg-cv": {"folds": 3}, "hrv-gbm": {"max_iter": 30},
         "resnet1d": {"width": 8},
         "beat-gbm": {"max_iter": 30}, "beat-cnn": {"width": 8},
         "dmpnn": {"hidden": 16, "ffn_hidden": 16}, "gin": {"hidden": 16, "layers": 2},
         "ecfp-mlp": {"hidden": (16,)}, "ecfp-rf": {"n_estimators": 10, "n_jobs": 1},
         "ecfp-gbm": {"max_iter": 20}, "omics-fusion": {"hidden": 8, "latent": 4},
         "omics-gbm": {"max_iter": 20}, "drug-response-net": {"hidden": 16, "latent": 4},
         "drug-enet": {"min_lines": 5, "n_alphas": 5}, "drug-mixed": {"min_lines": 5},
         "densenet121": {"stem": "standard", "size": 32, "tta": False},
         "resnet50": {"tta": False}, "resnet18": {"tta": False}}
MOLECULES = ("CCO", "CCN", "CCCO", "CCCN", "c1ccccc1O", "c1ccccc1N", "CC(=O)O", "CC(=O)N",
             "OCCO", "NCCN", "c1ccncc1", "c1ccoc1", "CC(C)O", "CC(C)N", "OC1CCCCC1", "NC1CCCCC1",
             "COc1ccccc1", "CNc1ccccc1", "OCc1ccccc1", "NCc1ccccc1", "CCCCO", "CCCCN",
             "O=C(O)c1ccccc1", "NC(=O)c1ccccc1", "OC1CCNCC1", "CC1CCCCC1O", "CC1CCCCC1N",
             "Oc1ccc2ccccc2c1", "Nc1ccc2ccccc2c1", "OCC(O)CO")
KIND_ORDER = (TargetKind.BINARY, TargetKind.SURVIVAL, TargetKind.MULTICLASS, TargetKind.TOKENS,
              TargetKind.REGRESSION)
NOTES = {"cardiology": "chest pain troponin echocardiogram ejection fraction stent angina",
         "orthopedics": "knee fracture cast femur ligament arthroscopy tibia bone"}


def _tabular(kind: TargetKind) -> Task:
    def load(_root: Path) -> TaskData:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 4)).astype(np.float32)
        if kind is TargetKind.SURVIVAL:
            time = np.exp(1.0 - x[:, 0] + 0.3 * rng.normal(size=120))
            y = np.column_stack([time, (rng.random(120) < 0.7).astype(float)])
        else:
            y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(np.int64)
        return TaskData(x, y, np.arange(120), pd.DataFrame(index=range(120)),
                        feature_names=[f"f{j}" for j in range(4)])
    return Task(name=f"contract-tabular-{kind.value}", description="contract", target=kind,
                modality=Modality.TABULAR, loader=load, classes=("no", "yes"),
                primary_metric="c_index" if kind is TargetKind.SURVIVAL else "auroc")


def _images(_root: Path) -> TaskData:
    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    x = rng.integers(0, 60, size=(24, 16, 16)).astype(np.uint8)
    x[y == 1, :6, :6] = 255
    return TaskData(x, y, np.arange(24), pd.DataFrame(index=range(24)))


def _notes(_root: Path) -> TaskData:
    texts = [f"{NOTES[c]} note {i}" for i in range(30) for c in NOTES]
    y = np.array([k for _ in range(30) for k in range(2)])
    return TaskData(np.array(texts, dtype=object), y, np.arange(60), pd.DataFrame(index=range(60)))


def _ecgs(_root: Path) -> TaskData:
    """Spiky 10 s traces at 300 Hz: regular beats (class 0) or irregular ones (class 1)."""
    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    records = np.empty(24, dtype=object)
    t = np.arange(3000)
    for i in range(24):
        rr = rng.uniform(0.5, 1.1, 20) if y[i] else np.full(20, rng.uniform(0.7, 0.9))
        beats = (np.cumsum(rr) * 300).astype(int)
        x = sum(np.exp(-0.5 * ((t - b) / 4.0) ** 2) for b in beats if b < 3000)
        records[i] = (x + 0.02 * rng.normal(size=3000)).astype(np.float32)
    return TaskData(records, y, np.arange(24), pd.DataFrame(index=range(24)))


def _beats(_root: Path) -> TaskData:
    """Beat rows (8 RR features, then 234 samples at 360 Hz): narrow on-time beats (class 0) or
    wide premature ones (class 1)."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    t = np.arange(234) - 90
    rows = np.empty((60, 242), dtype=np.float32)
    for i in range(60):
        rr = 0.55 if y[i] else 0.85 + 0.05 * rng.normal()
        rows[i, :8] = [rr, 1.0, 0.85, 0.85, rr / 0.85, 1 / 0.85, rr / 0.85, 1 / rr]
        rows[i, 8:] = np.exp(-0.5 * (t / (12.0 if y[i] else 4.0)) ** 2) + 0.05 * rng.normal(size=234)
    return TaskData(rows, y, np.arange(60), pd.DataFrame(index=range(60)))


def _molecules(_root: Path) -> TaskData:
    """Small molecules labelled by whether they hold nitrogen."""
    smiles = np.array(MOLECULES, dtype=object)
    y = np.array([int("N" in s or "n" in s) for s in MOLECULES])
    return TaskData(smiles, y, smiles, pd.DataFrame({"smiles": smiles}))


def _omics(_root: Path) -> TaskData:
    """Two omics (4 + 3 features); the second absent for every fifth sample."""
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 7)).astype(np.float32)
    x[:, 0] += 2.0 * y
    x[::5, 4:] = np.nan
    return TaskData(x, y, np.arange(40), pd.DataFrame(index=range(40)),
                    feature_names=[f"mrna:g{j}" for j in range(4)] + [f"protein:p{j}" for j in range(3)])


def _drug_pairs(_root: Path) -> TaskData:
    """(cell line, drug) pairs: 4 binary line features, then the drug index (3 drugs)."""
    rng = np.random.default_rng(0)
    lines = (rng.random((20, 4)) < 0.5).astype(np.float32)
    x = np.concatenate([np.column_stack([lines, np.full(20, d, np.float32)]) for d in range(3)])
    y = x[:, -1] - 2.0 * x[:, 0] + 0.1 * rng.normal(size=len(x))
    ids = np.tile(np.arange(20), 3)
    return TaskData(x, y, ids, pd.DataFrame({"drug": x[:, -1].astype(int).astype(str)}),
                    feature_names=["g0", "g1", "g2", "g3", "drug"])


def _iob_root(root: Path) -> Path:
    _write_iob(root / "bioner" / "NCBI-disease-IOB", n=3)
    return root


def _case(modality: Modality, kind: TargetKind, tmp: Path) -> tuple[Task | str, Path | None]:
    """A tiny task of this modality and kind, and its data root."""
    if modality is Modality.BEATS:
        return Task(name="contract-beats", description="contract", modality=Modality.BEATS,
                    target=kind, loader=_beats, classes=("normal", "ectopic")), None
    if modality is Modality.TABULAR:
        return _tabular(kind), None
    if modality is Modality.MOLECULE:
        return Task(name="contract-molecules", description="contract", modality=Modality.MOLECULE,
                    target=kind, loader=_molecules, classes=("no nitrogen", "nitrogen")), None
    if modality is Modality.OMICS:
        return Task(name="contract-omics", description="contract", modality=Modality.OMICS,
                    target=kind, loader=_omics, classes=("no", "yes"),
                    model_params={"blocks": [["mrna", 4], ["protein", 3]]}), None
    if modality is Modality.DRUG_RESPONSE:
        return Task(name="contract-drugs", description="contract",
                    modality=Modality.DRUG_RESPONSE, target=kind, loader=_drug_pairs,
                    primary_metric="rmse", extra={"correlate_by": "drug"}), None
    if modality is Modality.IMAGE:
        return Task(name="contract-images", description="contract", modality=Modality.IMAGE,
                    target=kind, loader=_images, classes=("no", "yes"),
                    model_params={"spatial_dims": 2, "in_channels": 1, "size": 16,
                                  "widen_factor": 0.125}), None
    if modality is Modality.EHR:
        name = "icu-survival" if kind is TargetKind.SURVIVAL else "icu-mortality"
        return name, write_physionet_root(tmp / "ehr", n=60)
    if modality is Modality.SIGNAL:
        return Task(name="contract-ecg", description="contract", modality=Modality.SIGNAL,
                    target=kind, loader=_ecgs, classes=("regular", "irregular"),
                    model_params={"fs": 300.0, "length_s": 10.0}), None
    if kind is TargetKind.TOKENS:
        return "ner-ncbi-disease", _iob_root(tmp / "iob")
    return Task(name="contract-notes", description="contract", modality=Modality.TEXT,
                target=kind, loader=_notes, classes=tuple(NOTES), primary_metric="auroc"), None


CASES = [pytest.param(spec.name, modality, next(k for k in KIND_ORDER if k in spec.kinds),
                      id=f"{spec.name}-{modality.value}")
         for spec in list_models() for modality in spec.modalities]


def _outputs(predictor, inputs) -> np.ndarray:
    if predictor.kind is TargetKind.SURVIVAL:
        return np.asarray(predictor.predict_survival(inputs)[2])
    return np.asarray(predictor.predict_scores(inputs))


class _Interrupt(Callback):
    def on_epoch_end(self, trainer, record) -> None:
        if record.epoch == 1:
            raise KeyboardInterrupt


def test_every_registered_model_is_covered():
    assert {p.values[0] for p in CASES} == {s.name for s in list_models()}


@pytest.mark.filterwarnings("ignore:.*checksum")
@pytest.mark.parametrize(("model", "modality", "kind"), CASES)
def test_model_trains_predicts_reloads_identically_and_resumes(model, modality, kind, tmp_path):
    task, root = _case(modality, kind, tmp_path)
    spec = next(s for s in list_models() if s.name == model)
    options = dict(data_root=root, model=model, eval_options=FAST, register=False,
                   params=SMALL.get(model))
    torch = spec.family == "torch"
    run = api.train(task, out=tmp_path / "run", epochs=2 if torch else None, ensemble=1,
                    cross_fit=False, **options)
    assert RunFolder(run).is_complete and (run / "report.html").is_file()

    task_obj = get_task(task) if isinstance(task, str) else task
    data = task_obj.load(root or tmp_path)
    inputs = data.inputs[np.arange(min(8, len(data)))]
    first = _outputs(load_predictor(run), inputs)
    again = _outputs(load_predictor(run), inputs)
    assert np.all(np.isfinite(first.astype(float)))
    assert np.array_equal(first, again), "a reloaded model must predict exactly as before"
    assert json.loads((run / "metrics.json").read_text())["splits"]["test"]

    if not torch:
        return
    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        api.train(task, out=stopped, epochs=2, ensemble=1, cross_fit=False,
                  callbacks=[_Interrupt()], **options)
    assert not RunFolder(stopped).is_complete
    api.train(task, out=stopped, resume=True, **options)
    log = pd.read_csv(stopped / "train_log.csv")
    assert RunFolder(stopped).is_complete and log["epoch"].tolist() == [1, 2]
