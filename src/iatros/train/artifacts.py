"""Fitted scikit-learn models on disk without pickle: skops files loaded against an explicit list
of the types iatros's own estimators are made of, so a crafted file cannot run code.

Run folders written before this (format 1) hold `model.joblib`, a pickle: it is refused unless
the caller trusts the folder (`--trust`), because unpickling a file can execute anything in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iatros.errors import RunError
from iatros.run_folder import SKLEARN_MODEL, SKLEARN_PICKLE, atomic_write

# The non-builtin types inside iatros's fitted estimators (checked for every registered model
# by tests/models/test_model_contract.py); scikit-learn's own estimators and numpy arrays are
# trusted by skops itself.
TRUSTED_TYPES = frozenset({
    "iatros.models.survival.SurvivalEstimator",
    "iatros.models.beats.BeatFeatures",
    "iatros.models.beats.SqrtBalancedGBM",
    "iatros.models.drug_response.PerDrugElasticNet",
    "iatros.models.drug_response.PerDrugMixedModel",
    "iatros.models.molecules.MorganFingerprints",
    "iatros.models.molecules.PerLabelClassifier",
    "iatros.models.signals.RhythmFeatures",
    "iatros.models.tabular.DropAllMissing",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "sksurv.ensemble.forest.RandomSurvivalForest",
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
    "sksurv.tree.tree.SurvivalTree",
})


def save_estimator(estimator: Any, run_dir: Path) -> Path:
    """Write the fitted estimator as `model.skops` (atomically)."""
    import skops.io as sio

    _plain_vocabularies(estimator)
    return atomic_write(run_dir / SKLEARN_MODEL, lambda tmp: sio.dump(estimator, tmp))


def _plain_vocabularies(obj: Any, seen: set[int] | None = None) -> None:
    """Give every fitted text vectorizer's `vocabulary_` Python int values (same columns).

    skops writes each numpy scalar as its own array file, rescanning the archive for each: a
    45,000-term vocabulary took over two minutes to save; plain ints are written as JSON.
    """
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None))):
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        children: list[Any] = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("sklearn", "iatros",
                                                                           "sksurv"):
        vocabulary = getattr(obj, "vocabulary_", None)
        if isinstance(vocabulary, dict):
            obj.vocabulary_ = {term: int(column) for term, column in vocabulary.items()}
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        _plain_vocabularies(child, seen)


def untrusted_types(path: Path) -> list[str]:
    """Types in a skops file that are neither trusted by skops nor on iatros's list."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as e:  # not a skops file, truncated, or a zip bomb the reader refuses
        raise RunError(f"{path} is not a readable skops model file ({type(e).__name__}: "
                       f"{str(e)[:200]}); retrain the run or restore the file") from e
    return sorted(set(found) - TRUSTED_TYPES)


def load_estimator(run_dir: Path, trust: bool = False) -> Any:
    """The fitted estimator of a run folder, loaded safely (see the module docstring)."""
    import skops.io as sio

    path = run_dir / SKLEARN_MODEL
    if path.is_file():
        foreign = untrusted_types(path)
        if foreign:
            raise RunError(f"refusing to load {path}: it holds types that iatros's models are not "
                           f"made of ({', '.join(foreign[:5])}); it was not written by iatros or "
                           f"has been altered")
        try:
            return sio.load(path, trusted=sorted(set(sio.get_untrusted_types(file=path))))
        except Exception as e:
            raise RunError(f"cannot load {path} ({type(e).__name__}: {str(e)[:200]})") from e
    legacy = run_dir / SKLEARN_PICKLE
    if legacy.is_file():
        if not trust:
            raise RunError(f"{legacy} is a pickle written by an older iatros (run format 1); "
                           f"loading a pickle can run any code inside it, so iatros refuses it. "
                           f"Retrain the run, or pass --trust if you made this file yourself")
        import joblib

        return joblib.load(legacy)
    raise RunError(f"{run_dir} holds no fitted model ({SKLEARN_MODEL}); the run folder is "
                   f"incomplete")
