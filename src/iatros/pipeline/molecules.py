"""What a molecule run keeps for `predict` and adds to each prediction: the applicability domain
(nearest-neighbour Tanimoto similarity of a molecule's ECFP4 bits to the training molecules, and
the flag `in_domain`), the uncertainty of an ensemble (the spread of its members' predictions,
calibrated on validation for regression), and atom attributions (integrated gradients for graph
networks, atom masking for the others). Used by `pipeline.explain.MoleculeExplainer`.

Applicability domain: a molecule is in domain when its similarity to the nearest training
molecule is at least the 5th percentile of the validation molecules' (the molecules the model's
validation performance was measured on; leave-one-out within training for a cross-fit
ensemble, whose validation rows are its training rows). With a scaffold split the validation
molecules come from unseen scaffolds, so the threshold is lower than with a random split.

Uncertainty: the standard deviation of the ensemble members' predictions. For regression it is
scaled on validation so that the errors divided by it have unit variance (z-scaling, chemprop's
`zscaling`): it then reads as the expected error in the target's units, and prediction +- 1.96 x
uncertainty as a 95% interval. On test, the coverage of the 95% interval and the intervals'
expected calibration error over levels 5%..95% (`metrics.interval_coverage`) are recorded.
For classification it is the members' spread of the probability (the probability itself is
calibrated on validation by the scorer). A single model has no uncertainty: train with `--ensemble 5`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from iatros.data.splits import Split
from iatros.data.transforms.molecules import domain_bits, nearest_similarity
from iatros.evaluate import metrics as M
from iatros.pipeline.options import EvalOptions
from iatros.run_folder import DOMAIN, PREDICTIONS, RunFolder, write_csv, write_npz
from iatros.tasks import Task, TaskData
from iatros.train.predictors import EnsemblePredictor, Predictor, make_dataset

log = logging.getLogger("iatros")
DOMAIN_QUANTILE = 0.05
MIN_ROWS = 10  # metrics in or out of the domain need at least this many test molecules
Z95 = 1.959964


def member_scores(predictor: Any, inputs: Any) -> np.ndarray | None:
    """(members, N, ...) scores of an ensemble's members; None for a single model."""
    if not isinstance(predictor, EnsemblePredictor) or len(predictor.members) < 2:
        return None
    return np.stack([np.asarray(m.predict_scores(inputs), dtype=np.float64)
                     for m in predictor.members])


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return None
    return M.json_float(spearmanr(a[keep], b[keep]).statistic)


def _known(targets: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets and values where the target is known, flattened (labels missing in multilabel
    tasks left out)."""
    y, v = np.asarray(targets, float).ravel(), np.asarray(values, float).ravel()
    keep = np.isfinite(y)
    return y[keep], v[keep]


def fit_domain(run: RunFolder, task: Task, data: TaskData, split: Split,
               options: EvalOptions, frame: Any) -> dict[str, Any]:
    """Save the training fingerprints, choose the similarity threshold, add `nn_similarity`
    and `in_domain` to the scored rows; the primary metric in and out of the domain on test."""
    train_bits = domain_bits(data.inputs[split.train])
    write_npz(run.file(DOMAIN), train_bits=train_bits)
    cross_fit = bool(np.intersect1d(split.val, split.train).size)
    if cross_fit:
        reference, _ = nearest_similarity(train_bits, train_bits, exclude_self=True)
    else:
        reference, _ = nearest_similarity(domain_bits(data.inputs[split.val]), train_bits)
    threshold = round(float(np.quantile(reference, DOMAIN_QUANTILE)), 4) if len(reference) else 0.0
    section: dict[str, Any] = {
        "fingerprint": "ECFP4, 2048 bits", "similarity": "Tanimoto to the nearest training molecule",
        "threshold": threshold, "quantile": DOMAIN_QUANTILE,
        "reference": "training, leave-one-out" if cross_fit else "validation"}
    for name in ("val", "test"):
        rows = split.part(name)
        sims, _ = nearest_similarity(domain_bits(data.inputs[rows]), train_bits)
        where = (frame["split"] == name).to_numpy()
        frame.loc[where, "nn_similarity"] = np.round(sims, 4)
        frame.loc[where, "in_domain"] = sims >= threshold
        if name == "test":
            inside = sims >= threshold
            section["test_in_domain_fraction"] = M.json_float(inside.mean()) if len(sims) else None
            section["test_similarity_median"] = M.json_float(np.median(sims)) if len(sims) else None
            section["test"] = _by_domain(task, data, rows, frame[where], inside, options)
    return section


def _by_domain(task: Task, data: TaskData, rows: np.ndarray, part: Any, inside: np.ndarray,
               options: EvalOptions) -> dict[str, Any]:
    """The primary metric with its CI on the test molecules in and out of the domain."""
    from iatros.pipeline.scoring import scorer_for

    scores = scorer_for(task.target).scores_from_frame(part)
    out: dict[str, Any] = {}
    for label, keep in (("in_domain", inside), ("out_of_domain", ~inside)):
        if keep.sum() < MIN_ROWS:
            out[label] = {"n": int(keep.sum()), "note": f"fewer than {MIN_ROWS} molecules"}
            continue
        try:
            out[label] = M.evaluate(data.targets[rows][keep], scores[keep], task.target,
                                    metrics=[task.primary_metric], threshold=0.5,
                                    n_boot=options.n_boot, seed=options.seed,
                                    clusters=data.patient_ids[rows][keep])[task.primary_metric]
        except Exception as e:  # a part with one class only: say so instead of failing the run
            out[label] = {"n": int(keep.sum()), "note": str(e)}
    return out


def fit_uncertainty(task: Task, predictor: Predictor, data: TaskData, split: Split,
                    frame: Any) -> dict[str, Any]:
    """The ensemble's spread on validation and test; for regression its z-scale fitted on
    validation, the test coverage of the 95% interval; `uncertainty` columns in the frame."""
    if isinstance(predictor, EnsemblePredictor) and predictor.held_out:
        return {"method": None, "note": "a cross-fit ensemble: its members trained on each "
                                        "other's validation rows, so their spread there is not "
                                        "calibrated; use --no-cross-fit for an uncertainty"}
    members = {name: member_scores(predictor, data.inputs[split.part(name)])
               for name in ("val", "test")}
    if members["val"] is None:
        return {"method": None, "note": "a single model: train an ensemble (--ensemble 5) for an "
                                        "uncertainty per prediction"}
    count = len(members["val"])
    section: dict[str, Any] = {"method": "standard deviation of the ensemble members' "
                                         "predictions", "members": count}
    regression = not task.target.is_classification
    scale = 1.0
    if regression:
        y, mean, sd = (data.targets[split.val], members["val"].mean(axis=0),
                       members["val"].std(axis=0))
        floor = 1e-6 * max(float(np.std(y)), 1e-12)
        z = (y - mean) / np.maximum(sd, floor)
        scale = float(np.sqrt(np.mean(z ** 2))) if len(z) else 1.0
        section.update(calibration="z-scaling on validation (errors / uncertainty have unit "
                                   "variance)", scale=round(scale, 6))
    else:
        section["calibration"] = ("none for the spread; the probability itself is calibrated on "
                                  "validation")
    for name in ("val", "test"):
        rows = split.part(name)
        mean, sd = members[name].mean(axis=0), members[name].std(axis=0) * scale
        where = (frame["split"] == name).to_numpy()
        if sd.ndim == 1:
            frame.loc[where, "uncertainty"] = sd
        else:
            for j in range(sd.shape[1]):
                frame.loc[where, f"uncertainty_{j}"] = sd[:, j]
        if name != "test":
            continue
        y, error = _known(data.targets[rows], np.abs(np.asarray(data.targets[rows], float) - mean))
        _, spread = _known(data.targets[rows], sd)
        section["test"] = {"spearman_uncertainty_error": _spearman(spread, error),
                           "n": int(len(y))}
        if regression and len(y):
            section["test"]["coverage_95"] = M.json_float(np.mean(error <= Z95 * spread))
            levels = M.interval_coverage(error, np.zeros_like(error), spread)
            section["test"]["interval_ece"] = M.json_float(levels["ece"])
            section["test"]["interval_coverage"] = {"levels": levels["levels"],
                                                    "observed": levels["observed"]}
    return section


def finish(run: RunFolder, task: Task, predictor: Predictor, data: TaskData, split: Split,
           options: EvalOptions) -> dict[str, Any]:
    """metrics.json sections `applicability_domain` and `uncertainty`; the domain file; the
    per-molecule columns added to predictions.csv."""
    frame = run.predictions()
    domain = fit_domain(run, task, data, split, options, frame)
    uncertainty = fit_uncertainty(task, predictor, data, split, frame)
    write_csv(run.file(PREDICTIONS), frame)
    return {"applicability_domain": domain, "uncertainty": uncertainty}


def describe_new(run: RunFolder, task: Task, predictor: Predictor, smiles: Sequence[str],
                 results: list[dict[str, Any]]) -> None:
    """Add to each `predict` result: `nn_similarity`, `in_domain`, `uncertainty` (None for a
    single model) and, for regression, `interval_95`."""
    metrics = run.metrics()
    domain, saved = run.domain(), metrics.get("applicability_domain") or {}
    if domain is not None and len(smiles):
        sims, _ = nearest_similarity(domain_bits(smiles), domain["train_bits"])
        threshold = float(saved.get("threshold", 0.0))
        for result, sim in zip(results, sims, strict=True):
            result["nn_similarity"] = round(float(sim), 4)
            result["in_domain"] = bool(sim >= threshold)
            result["domain_threshold"] = threshold
    spread = member_scores(predictor, np.asarray(list(smiles), dtype=object))
    scale = float((metrics.get("uncertainty") or {}).get("scale") or 1.0)
    for k, result in enumerate(results):
        if spread is None:
            result["uncertainty"] = None
            continue
        sd = spread[:, k].std(axis=0) * scale
        if np.ndim(sd) == 0:
            result["uncertainty"] = round(float(sd), 6)
            if not task.target.is_classification and "prediction" in result:
                value = float(result["prediction"])
                result["interval_95"] = [round(value - Z95 * float(sd), 6),
                                         round(value + Z95 * float(sd), 6)]
        else:
            result["uncertainty"] = {name: round(float(v), 6)
                                     for name, v in zip(task.classes, sd, strict=True)}


def atom_attributions(task: Task, predictor: Predictor, smiles: str,
                      unit: int) -> tuple[np.ndarray, str]:
    """(attribution per atom, method): integrated gradients on a graph network's atom features
    (the first member of an ensemble), atom masking for every other model."""
    from iatros.explain.molecule import integrated_gradients, masking_attributions

    network = getattr(predictor, "network", None)
    spec = getattr(predictor, "spec", None)
    if network is not None and spec is not None:
        dataset = make_dataset(spec, np.array([smiles], dtype=object), np.zeros(1, np.float32),
                               task.target, train=False, params=predictor.info["params"])
        item, _ = dataset[0]
        if isinstance(item, dict) and "atoms" in item:
            import torch

            device = next(network.parameters()).device
            inputs = {k: v.unsqueeze(0).to(device) for k, v in item.items()}
            n_atoms = int(item["atom_mask"].sum())
            with torch.enable_grad():
                weights, _, _ = integrated_gradients(network, inputs, unit, n_atoms)
            members = len(getattr(predictor, "members", ()))
            return weights, ("integrated gradients on atom features" +
                             (f" (first of {members} ensemble members)" if members > 1 else ""))

    def score(batch: Sequence[str]) -> np.ndarray:
        return np.asarray(predictor.predict_scores(np.asarray(list(batch), dtype=object)))

    weights, _ = masking_attributions(smiles, score, unit)
    return weights, "atom masking (output drop when the atom is replaced by a dummy atom)"
