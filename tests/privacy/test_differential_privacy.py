"""DP-SGD (Opacus) in the one Trainer: the privacy spent is recorded and shown, noise follows the
budget, and what DP cannot do is refused clearly; the membership-inference audit on real runs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from iatros import api
from iatros.errors import ConfigError

pytest.importorskip("opacus", reason="differential privacy needs iatros[privacy] (opacus)")
FAST = api.EvalOptions(n_boot=30)


def _dp_run(tmp_path, epsilon: float, name: str = "dp"):
    return api.train("breast-cancer-wdbc", model="mlp", epochs=3, out=tmp_path / name,
                     train_overrides={"dp_epsilon": epsilon}, eval_options=FAST, register=False)


def test_dp_training_records_the_privacy_spent_and_shows_it(tmp_path):
    run = _dp_run(tmp_path, 3.0)
    metrics = json.loads((run / "metrics.json").read_text())
    spent = metrics["privacy"]
    assert 0 < spent["epsilon"] <= 3.0 + 1e-6 and spent["target_epsilon"] == 3.0
    assert spent["delta"] == pytest.approx(1 / (10 * json.loads(
        (run / "config.json").read_text())["data"]["splits"]["train"]["rows"]))
    assert spent["noise_multiplier"] > 0 and spent["steps"] > 0
    assert metrics["splits"]["test"]["auroc"]["n"] > 0
    html = (run / "report.html").read_text()
    assert "differential privacy" in html and f"{spent['epsilon']:.3f}" in html
    assert api.verify(run)["ok"]  # privacy.json is sealed with the rest


def test_a_smaller_budget_means_more_noise(tmp_path):
    strict = json.loads((_dp_run(tmp_path, 1.0, "e1") / "metrics.json").read_text())["privacy"]
    loose = json.loads((_dp_run(tmp_path, 8.0, "e8") / "metrics.json").read_text())["privacy"]
    assert strict["noise_multiplier"] > loose["noise_multiplier"]


def test_what_dp_cannot_do_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="torch networks"):
        api.train("breast-cancer-wdbc", model="logreg", train_overrides={"dp_epsilon": 1.0},
                  out=tmp_path / "a", register=False)
    with pytest.raises(ConfigError, match="--ensemble"):
        api.train("breast-cancer-wdbc", model="mlp", ensemble=2, epochs=1,
                  train_overrides={"dp_epsilon": 1.0}, out=tmp_path / "b", register=False)
    with pytest.raises(ConfigError, match="dp_epsilon must be positive"):
        api.train("breast-cancer-wdbc", model="mlp", epochs=1, train_overrides={"dp_epsilon": -1.0},
                  out=tmp_path / "c", register=False)


def test_a_network_with_batch_norm_is_refused_naming_the_layer():
    from torch.utils.data import TensorDataset

    from iatros.train.trainer import TrainConfig, Trainer

    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    trainer = Trainer(TrainConfig(epochs=1, dp_epsilon=1.0, progress=False))
    with pytest.raises(ConfigError, match="BatchNorm"):
        trainer.fit(net, nn.MSELoss(), data, data)


def test_a_dp_fit_cannot_be_resumed(tmp_path):
    from torch.utils.data import TensorDataset

    from iatros.train.trainer import TrainConfig, Trainer

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    trainer = Trainer(TrainConfig(epochs=1, dp_epsilon=1.0, progress=False), checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot be resumed"):
        trainer.fit(net, nn.MSELoss(), data, data, resume=True)


def test_dp_runs_get_dp_sgd_settings_unless_the_user_sets_them(tmp_path):
    from iatros.pipeline.fit import DP_DEFAULTS

    run = api.train("breast-cancer-wdbc", model="mlp", epochs=2, out=tmp_path / "d",
                    train_overrides={"dp_epsilon": 8.0, "lr": 5e-3}, eval_options=FAST,
                    register=False)
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["batch_size"] == DP_DEFAULTS["batch_size"] and train["keep"] == "last"
    assert train["lr"] == 5e-3 and train["epochs"] == 2
