"""A site's steps with the one Trainer: preprocessing fitted at the site, the exchanged
weights, local training, FedProx's proximal term, and loading the global model safely."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.federated.local import Plan, Proximal, SiteModel, exchanged_keys, load_task, local_site

PLAN = Plan(task="breast-cancer-wdbc", model="mlp", sites="dirichlet:2:10", seed=0,
            train={"batch_size": 32}, local_epochs=2, min_site_patients=5, n_boot=20)


@pytest.fixture(scope="module")
def site() -> SiteModel:
    task, data = load_task(PLAN, "/nonexistent-data-root-is-fine-for-built-in-tasks")
    return SiteModel(PLAN, task, data, local_site(PLAN, task, data, "site-1"))


def test_exchanged_weights_are_parameters_and_batch_norm_statistics():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    keys = exchanged_keys(net)
    assert "1.running_mean" in keys and "1.running_var" in keys
    assert "1.num_batches_tracked" not in keys and "0.weight" in keys


def test_preprocessing_is_fitted_on_the_sites_training_rows_and_not_exchanged(site):
    fixed = site.prepare()
    assert {"center", "scale", "fill"} <= set(fixed)
    assert not set(fixed) & set(site.keys)
    x = np.asarray(site.data.inputs[site.rows.train], dtype=np.float64)
    assert np.allclose(fixed["center"], np.nanmean(x, axis=0), rtol=1e-3, atol=1e-3)


def test_local_training_moves_the_weights_and_reports_its_losses(site):
    site.prepare()
    before = site.trainable()
    losses = site.train(round_number=1)
    after = site.trainable()
    assert set(losses) == {"train_loss", "val_loss", "val_metric"}
    assert any(not np.allclose(before[k], after[k]) for k in before)


def test_the_proximal_term_is_zero_at_the_global_weights_and_grows_away_from_them():
    net = nn.Linear(3, 1)
    prox = Proximal(net, mu=0.5)
    assert float(prox.penalty()) == 0.0
    with torch.no_grad():
        net.weight.add_(1.0)
    assert float(prox.penalty()) == pytest.approx(0.5 * 0.5 * 3, rel=1e-5)


def test_global_arrays_of_another_shape_are_refused_by_name(site):
    with pytest.raises(ConfigError, match="net.0.weight has shape"):
        site.load({"net.0.weight": np.zeros((2, 2), dtype=np.float32)})
    with pytest.raises(ConfigError, match="unknown entries"):
        site.load({"not.a.weight": np.zeros(1)})


def test_site_metrics_carry_intervals_and_counts_but_no_rows(site):
    site.prepare()
    result = site.evaluate("test", intervals=True)
    assert result["auroc"]["n"] == len(site.rows.test) and len(result["auroc"]["ci95"]) == 2
    counts = site.counts()
    assert counts["n-train"] == len(site.rows.train) and counts["n-inputs"] == 30


def test_a_site_that_is_not_in_the_data_is_named(site):
    task, data = load_task(PLAN, "/nonexistent")
    with pytest.raises(ConfigError, match="site 'site-9' has no records"):
        local_site(PLAN, task, data, "site-9")
