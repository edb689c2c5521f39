"""The omics fusion network: every fusion mode predicts with an omic missing (masked, never read
as zeros), modality dropout hides omics only while training, preprocessing comes from the rows
`prepare` is given, integrated gradients add up; the flat baselines fit on matrices with gaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iatros.errors import ConfigError
from iatros.explain.omics import integrated_gradients, top_features
from iatros.kinds import TargetKind
from iatros.models.omics import (
    FUSIONS,
    build_omics_enet,
    build_omics_fusion,
    build_omics_gbm,
)

BLOCKS = [["mrna", 6], ["protein", 3]]


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 9)).astype(np.float32)
    x[:, 0] += 2.0 * y
    x[:, 6] -= 1.5 * y
    return x, y


def _network(fusion: str, **params) -> torch.nn.Module:
    x, _ = _data()
    torch.manual_seed(0)
    network = build_omics_fusion(9, 3, blocks=BLOCKS, hidden=8, latent=4, fusion=fusion, **params)
    return network.fit_preprocessing(x).eval()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_predicts_when_an_omic_is_missing_and_masks_it(fusion):
    network = _network(fusion)
    x, _ = _data()
    missing = torch.as_tensor(x[:4].copy())
    missing[:, 6:] = float("nan")
    with torch.no_grad():
        out = network(missing)
        assert out.shape == (4, 3) and torch.isfinite(out).all()
        network.fill1.add_(100.0)  # what a masked omic would be imputed with must not matter
        assert torch.allclose(network(missing), out)
        zeros = missing.clone()
        zeros[:, 6:] = 0.0  # zeros are data, not absence
        assert not torch.allclose(network(zeros), out)


def test_a_sample_without_any_omic_still_gets_a_finite_output():
    network = _network("attention")
    empty = torch.full((2, 9), float("nan"))
    with torch.no_grad():
        assert torch.isfinite(network(empty)).all()


def test_modality_dropout_hides_omics_only_while_training_and_keeps_one():
    network = _network("mean", modality_dropout=0.9)
    x = torch.as_tensor(_data()[0])
    mask = network.present(x)
    network.train()
    torch.manual_seed(1)
    dropped = network._drop_modalities(mask)
    assert dropped.any(dim=1).all() and (dropped.sum() < mask.sum())
    network.eval()
    assert torch.equal(network._drop_modalities(mask), mask)


def test_preprocessing_comes_from_the_rows_prepare_is_given():
    x, _ = _data()
    network = build_omics_fusion(9, 3, blocks=BLOCKS, max_features=4, hidden=8, latent=4)
    network.fit_preprocessing(x[:20])
    keep = network.keep0.numpy()
    assert len(keep) == 4
    assert set(keep) == set(np.argsort(-x[:20, :6].var(axis=0))[:4])
    np.testing.assert_allclose(network.center0.numpy(), x[:20, keep].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(network.center1.numpy(), x[:20, 6:].mean(axis=0), rtol=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="fusion must be one of"):
        build_omics_fusion(9, 3, blocks=BLOCKS, fusion="sum")
    with pytest.raises(ConfigError, match="add up"):
        build_omics_fusion(10, 3, blocks=BLOCKS)
    with pytest.raises(ConfigError, match="modality_dropout"):
        build_omics_fusion(9, 3, blocks=BLOCKS, modality_dropout=1.0)


def test_integrated_gradients_add_up_and_skip_missing_omics():
    network = _network("concat", dropout=0.0)
    x = torch.as_tensor(_data()[0][:5])
    x[0, 6:] = float("nan")
    baseline = network.reference_input(x)
    attributions = integrated_gradients(network, x, baseline, unit=2, steps=128)
    with torch.no_grad():
        gap = (network(x)[:, 2] - network(baseline)[:, 2]).numpy()
    np.testing.assert_allclose(attributions.sum(axis=1), gap, atol=2e-2)
    assert (attributions[0, 6:] == 0).all()
    names = [f"mrna:g{j}" for j in range(6)] + [f"protein:p{j}" for j in range(3)]
    top = top_features(attributions, x.numpy(), baseline.numpy(), names, k=3)
    assert len(top) == 3 and {t["omic"] for t in top} <= {"mrna", "protein"}
    assert all(t["direction"] in ("higher raises", "higher lowers") for t in top)


@pytest.mark.parametrize("build", [build_omics_enet, build_omics_gbm])
def test_baselines_fit_and_predict_with_a_missing_omic(build):
    x, y = _data(60)
    x = x.astype(np.float64)
    x[40:, 6:] = np.nan
    params = {"max_iter": 20} if build is build_omics_gbm else {}
    model = build(TargetKind.MULTICLASS, 0, **params).fit(x[:40], y[:40])
    proba = model.predict_proba(x[40:])
    assert proba.shape == (20, 3) and np.isfinite(proba).all()
