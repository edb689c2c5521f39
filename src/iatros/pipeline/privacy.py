"""Measured privacy of a finished run: a loss-threshold membership-inference attack (Yeom et al.,
CSF 2018). An attacker who sees a record and the model's score guesses "in the training set"
when the model's loss on it is low; the attack's AUROC between training patients (members) and
test patients (non-members) says how much the model leaks about who it was trained on: 0.5 is
nothing, 1.0 is everything. Differential privacy should pull it toward 0.5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iatros.evaluate import metrics as M
from iatros.kinds import TargetKind
from iatros.pipeline.runs import load_data, open_run, saved_split
from iatros.pipeline.scoring import scorer_for
from iatros.report import write_report
from iatros.run_folder import EVALUATIONS, now_iso, write_json
from iatros.settings import get_settings
from iatros.train.predictors import load_predictor

MEMBERSHIP = "membership-inference"
AUDIT_FILE = "privacy_audit.json"


def membership_inference(run: str | Path, *, n_boot: int = 1000, seed: int = 0,
                         device: str | None = None, trust: bool = False) -> dict[str, Any]:
    """Attack AUROC (95% CI, patient-clustered bootstrap) and advantage (max TPR - FPR) of the
    loss-threshold attack, on equal numbers of training and test rows (the larger part
    subsampled, seeded); written to evaluations/membership-inference/privacy_audit.json and
    shown in the report."""
    folder, config, task = open_run(run, trust=trust)
    scorer = scorer_for(task.target)
    settings = get_settings(device=device).with_data_root(config["data_root"])
    data = load_data(task, config, settings)
    split = saved_split(task, data, config)
    members, others = np.asarray(split.train), np.asarray(split.test)
    rng = np.random.default_rng(seed)
    n = min(len(members), len(others))
    members, others = (np.sort(rng.choice(members, n, replace=False)),
                       np.sort(rng.choice(others, n, replace=False)))
    predictor = load_predictor(folder.path, settings.device, trust)  # the deployed model
    rows = np.concatenate([members, others])
    scores = scorer.scores(folder, predictor, data.inputs[rows])
    losses = scorer.example_losses(data.targets[rows], scores)
    is_member = np.r_[np.ones(n, int), np.zeros(n, int)]
    auroc = M.evaluate(is_member, attack_scores(losses), TargetKind.BINARY, metrics=["auroc"],
                       n_boot=n_boot, seed=seed, clusters=data.patient_ids[rows])["auroc"]
    result = {"attack": "loss threshold (Yeom et al. 2018)", "auroc": auroc,
              "advantage": round(_advantage(is_member, losses), 4),
              "members": int(n), "non_members": int(n),
              "mean_loss_members": float(np.mean(losses[:n])),
              "mean_loss_non_members": float(np.mean(losses[n:])),
              "privacy": (folder.metrics() or {}).get("privacy"), "created": now_iso()}
    out = folder.file(EVALUATIONS) / MEMBERSHIP
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / AUDIT_FILE, result)
    write_report(folder.path)  # the card shows the attack beside the privacy spent
    return result


def attack_scores(losses: np.ndarray) -> np.ndarray:
    """The attack's score in [0, 1]: lower loss, more likely a member. Tied losses get the same
    score (average ranks), so a model whose losses tie (a saturated one) cannot look leaky
    because of the order in which members and non-members were listed."""
    from scipy.stats import rankdata

    ranks = rankdata(losses, method="average")
    return 1.0 - (ranks - 1) / max(len(losses) - 1, 1)


def _advantage(is_member: np.ndarray, losses: np.ndarray) -> float:
    """Best threshold's TPR - FPR (the membership advantage of Yeom et al.), over thresholds
    between distinct losses (a tie is never split)."""
    if not len(losses):
        return 0.0
    order = np.argsort(losses, kind="stable")
    hits = np.cumsum(is_member[order]) / max(is_member.sum(), 1)
    false = np.cumsum(1 - is_member[order]) / max((1 - is_member).sum(), 1)
    sorted_losses = losses[order]
    last_of_value = np.r_[sorted_losses[1:] != sorted_losses[:-1], True]
    return float(max(0.0, np.max((hits - false)[last_of_value])))
