"""The loss-threshold membership-inference audit on real runs: an AUROC with its CI over equal
numbers of training and test patients, written beside the run and shown in its report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iatros import api
from iatros.cli import app as cli
from iatros.errors import ConfigError

FAST = api.EvalOptions(n_boot=30)


@pytest.fixture(scope="module")
def gbm_run(tmp_path_factory):
    return api.train("breast-cancer-wdbc", model="gbm", out=tmp_path_factory.mktemp("mia") / "run",
                     eval_options=FAST, register=False)


def test_attack_auroc_has_a_ci_and_balanced_members(gbm_run):
    found = api.membership_inference(gbm_run, n_boot=50)
    auroc = found["auroc"]
    assert 0.0 <= auroc["value"] <= 1.0 and auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    config = json.loads((gbm_run / "config.json").read_text())
    assert found["members"] == found["non_members"] == config["data"]["splits"]["test"]["rows"]
    assert 0.0 <= found["advantage"] <= 1.0 and found["privacy"] is None
    # boosted trees fit their training rows more closely than new ones
    assert found["mean_loss_members"] < found["mean_loss_non_members"]
    saved = gbm_run / "evaluations" / "membership-inference" / "privacy_audit.json"
    assert json.loads(saved.read_text())["auroc"] == auroc
    html = (gbm_run / "report.html").read_text()
    assert "Membership inference" in html and "without differential privacy" in html
    assert api.verify(gbm_run)["ok"]  # the audit does not touch sealed files


def test_cli_prints_the_attack(gbm_run):
    result = CliRunner().invoke(cli, ["audit", str(gbm_run), "--membership", "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    assert "attack AUROC" in result.output and "without differential privacy" in result.output
    missing = CliRunner().invoke(cli, ["audit", str(gbm_run)])
    assert missing.exit_code != 0


def test_survival_runs_have_no_per_row_loss_and_say_so(tmp_path):
    run = api.train("survival-gbsg2", model="coxph", out=tmp_path / "s", eval_options=FAST,
                    register=False)
    with pytest.raises(ConfigError, match="per-row loss"):
        api.membership_inference(run)


def test_tied_losses_give_no_membership_signal_whatever_the_order():
    """A saturated model's losses tie; the attack must not rank members first for being listed
    first."""
    import numpy as np

    from iatros.evaluate import metrics as M
    from iatros.pipeline.privacy import _advantage, attack_scores

    losses = np.r_[np.zeros(50), np.full(50, 16.1), np.zeros(50), np.full(50, 16.1)]
    is_member = np.r_[np.ones(100, int), np.zeros(100, int)]
    assert M.score("auroc", is_member, attack_scores(losses), "binary") == pytest.approx(0.5)
    assert _advantage(is_member, losses) == pytest.approx(0.0)
