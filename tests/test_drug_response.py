"""Drug response end to end: the GDSC loader on the shared gdsctools files (pairs, held-out cell
lines or drugs, bad files named), the two models (a new drug read as the unknown drug, the
per-drug elastic net's pooled fallback), per-drug correlations against scipy, and
`iatros train gdsc-drug-response` on GDSC-format files with the per-drug section in the report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr

from iatros.errors import ConfigError, CorruptDataError, MissingDataError
from iatros.evaluate.metrics import correlations_with_ci
from iatros.models.drug_response import (
    DrugResponseNet,
    PerDrugElasticNet,
    PerDrugMixedModel,
    leading_onehot,
)
from iatros.pipeline.drug_response import per_group_correlations
from iatros.pipeline.options import EvalOptions
from iatros.tasks import get_task
from tests.cli_run import run_cli

DRUGS = ("1001", "1002", "1003", "1004")


def write_gdsc(root: Path, n_lines: int = 80, seed: int = 0) -> Path:
    """gdsctools-format files: each drug's log IC50 falls with one mutation of its own (drug k,
    gene k), plus noise; 10% of the pairs unmeasured. Returns the data root."""
    rng = np.random.default_rng(seed)
    folder = root / "gdsc_subset"
    folder.mkdir(parents=True)
    ids = [str(900000 + i) for i in range(n_lines)]
    mutations = (rng.random((n_lines, 6)) < 0.4).astype(int)
    features = pd.DataFrame({"COSMIC_ID": ids,
                             "TISSUE_FACTOR": rng.choice(["breast", "lung_NSCLC"], n_lines),
                             "MSI_FACTOR": (rng.random(n_lines) < 0.1).astype(int)})
    for j in range(6):
        features[f"GENE{j}_mut"] = mutations[:, j]
    features["gain_cnaPANCAN1_(CCNE1)"] = (rng.random(n_lines) < 0.2).astype(int)
    response = pd.DataFrame({"COSMIC_ID": ids})
    for k, drug in enumerate(DRUGS):
        values = 2.0 + k - 2.5 * mutations[:, k] + 0.5 * rng.normal(size=n_lines)
        values[rng.random(n_lines) < 0.1] = np.nan
        response[f"Drug_{drug}_IC50"] = values
    with gzip.open(folder / "genomic_features_v17.csv.gz", "wt") as f:
        features.to_csv(f, index=False)
    with gzip.open(folder / "IC50_v17.csv.gz", "wt") as f:
        response.to_csv(f, index=False)
    pd.DataFrame({"DRUG_ID": ["Drug_1001_IC50"], "DRUG_NAME": ["Erlotinib"],
                  "DRUG_TARGET": ["EGFR"]}).to_csv(folder / "DRUG_DECODE.csv", index=False)
    return root


@pytest.fixture
def gdsc_root(shared_data: Path) -> Path:
    if not (shared_data / "gdsc_subset" / "IC50_v17.csv.gz").is_file():
        pytest.skip(f"{shared_data / 'gdsc_subset'} is absent (gdsctools' GDSC v17 files)")
    return shared_data


def test_gdsc_loads_every_measured_pair_with_line_features_and_drug_index(gdsc_root: Path):
    data = get_task("gdsc-drug-response").load(gdsc_root)
    assert data.inputs.shape == (213787, 706) and data.inputs.dtype == np.float32
    assert data.feature_names[-1] == "drug" and data.feature_names[0].startswith("tissue_")
    drugs = data.inputs[:, -1]
    assert np.array_equal(drugs, np.round(drugs)) and len(np.unique(drugs)) == 265
    assert set(np.unique(data.inputs[:, :-1])) <= {0.0, 1.0}
    assert np.isfinite(data.targets).all() and data.checks["cell_lines"] == 988
    assert "Nutlin-3a" in set(data.attributes["drug"])  # named in DRUG_DECODE.csv


@pytest.mark.parametrize(("task", "column"), [("gdsc-drug-response", "cell_line"),
                                              ("gdsc-drug-response-new-drugs", "drug_id")])
def test_gdsc_split_keeps_each_line_or_drug_in_one_part(gdsc_root: Path, task: str, column: str):
    data = get_task(task).load(gdsc_root)
    split = get_task(task).split(data, seed=0)
    groups = [set(data.attributes[column].to_numpy()[getattr(split, p)])
              for p in ("train", "val", "test")]
    assert all(groups) and not (groups[0] & groups[1] or groups[0] & groups[2]
                                or groups[1] & groups[2])


def test_gdsc_missing_folder_says_what_to_pass(tmp_path: Path):
    with pytest.raises(MissingDataError, match="IC50_v17.csv.gz.*--data-root"):
        get_task("gdsc-drug-response").load(tmp_path)


def test_gdsc_bad_cell_names_the_file_line_and_column(tmp_path: Path):
    root = write_gdsc(tmp_path)
    path = root / "gdsc_subset" / "IC50_v17.csv.gz"
    frame = pd.read_csv(path, dtype=str)
    frame.loc[3, "Drug_1002_IC50"] = "resistant"
    frame.to_csv(path, index=False)
    with pytest.raises(CorruptDataError, match=r"IC50_v17.csv.gz.*line 5.*Drug_1002_IC50"):
        get_task("gdsc-drug-response").load(root)


def test_gdsc_column_that_is_not_a_drug_is_refused(tmp_path: Path):
    root = write_gdsc(tmp_path)
    path = root / "gdsc_subset" / "IC50_v17.csv.gz"
    pd.read_csv(path).rename(columns={"Drug_1003_IC50": "AUC_1003"}).to_csv(path, index=False)
    with pytest.raises(CorruptDataError, match="AUC_1003.*Drug_<id>_IC50"):
        get_task("gdsc-drug-response").load(root)


def test_gdsc_lines_without_features_are_an_error_when_none_match(tmp_path: Path):
    root = write_gdsc(tmp_path)
    path = root / "gdsc_subset" / "genomic_features_v17.csv.gz"
    frame = pd.read_csv(path)
    frame["COSMIC_ID"] = frame["COSMIC_ID"] + 1000
    frame.to_csv(path, index=False)
    with pytest.raises(CorruptDataError, match="COSMIC ids do not match"):
        get_task("gdsc-drug-response").load(root)


def _pairs(n_lines: int = 50, drugs: tuple[int, ...] = (0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    lines = (rng.random((n_lines, 5)) < 0.5).astype(np.float32)
    x = np.concatenate([np.column_stack([lines, np.full(n_lines, d, np.float32)]) for d in drugs])
    y = np.concatenate([d - 2.0 * lines[:, d] + 0.1 * rng.normal(size=n_lines) for d in drugs])
    return x, y


def test_net_reads_an_unseen_drug_as_the_unknown_drug():
    x, _ = _pairs(drugs=(0, 1))
    net = DrugResponseNet(6, 1, n_drugs=8).fit_preprocessing(x).eval()
    assert net.seen.tolist() == [True, True] + [False] * 6
    probe = torch.as_tensor(x[:4].copy())
    unseen = probe.clone()
    unseen[:, -1] = 5.0
    past_table = probe.clone()
    past_table[:, -1] = 99.0
    assert net.drug_index(unseen).tolist() == [8] * 4 == net.drug_index(past_table).tolist()
    with torch.no_grad():
        assert torch.equal(net(unseen), net(past_table))
        assert not torch.equal(net(unseen), net(probe))


def test_net_learns_each_drug_in_its_own_sd_units_and_predicts_in_the_responses():
    x, y = _pairs(n_lines=40, drugs=(0, 1))
    y = np.where(x[:, -1] == 1, 10.0 * y, y)  # drug 1 spreads ten times wider
    net = DrugResponseNet(6, 1, n_drugs=4, dropout=0.0, drug_dropout=0.0)
    net.fit_preprocessing(x).fit_target_scaling(y)
    for d in (0, 1):
        assert net.drug_center[d, 0].item() == pytest.approx(y[x[:, -1] == d].mean(), rel=1e-5)
        assert net.drug_scale[d, 0].item() == pytest.approx(y[x[:, -1] == d].std(), rel=1e-5)
    batch, target = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.float32)
    net.train()
    out = net(batch).reshape(-1)
    with torch.no_grad():
        assert torch.allclose(out, net.eval()(batch).reshape(-1), atol=1e-5)  # same values
    ((out - target) ** 2).sum().backward()
    for d in (0, 1):  # the bias adds to z: its gradient is the error in the drug's SD units
        rows = batch[:, -1] == d
        expected = (2 * (out - target)[rows] / net.drug_scale[d, 0]).sum()
        assert net.bias.weight.grad[d, 0].item() == pytest.approx(expected.item(), rel=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 3), st.integers(2, 40), st.integers(0, 10_000))
def test_leading_onehot_is_the_width_of_the_group_block(groups: int, others: int, n: int,
                                                        seed: int):
    rng = np.random.default_rng(seed)
    block = np.eye(groups)[rng.integers(0, groups, n)]
    rest = (rng.random((n, others)) < 0.5).astype(float)
    rest[0] = 1.0  # each later column has a 1, so it cannot extend the block
    assert leading_onehot(np.column_stack([block, rest])) == groups
    first = np.zeros((n, 2))
    first[0] = 1.0  # row 0 has two 1s and row 1 none: no block
    assert leading_onehot(np.column_stack([first, block])) == 0
    assert leading_onehot(np.column_stack([block * 0.5, rest])) == 0


def _grouped(n_lines: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Two drugs on lines in three groups (one-hot first): group 2 is 3 units more resistant."""
    rng = np.random.default_rng(2)
    group = rng.integers(0, 3, n_lines)
    lines = np.column_stack([np.eye(3)[group], rng.random((n_lines, 2)) < 0.5]).astype(np.float32)
    x = np.concatenate([np.column_stack([lines, np.full(n_lines, d, np.float32)]) for d in (0, 1)])
    y = np.concatenate([d + 3.0 * (group == 2) + 0.1 * rng.normal(size=n_lines) for d in (0, 1)])
    return x, y


def test_mixed_model_group_effect_is_each_drugs_group_mean_shrunk_by_the_prior():
    x, y = _grouped()
    model = PerDrugMixedModel(group_prior=5.0, alpha=100.0).fit(x, y)  # no genomic term
    assert model.n_groups_ == 3 and not model.coefs_.any()
    group = x[:, :3].argmax(axis=1)
    for d in (0, 1):
        rows = x[:, -1] == d
        standard = (y[rows] - y[rows].mean()) / y[rows].std()
        for g in range(3):
            inside = standard[group[rows] == g]
            assert model.effects_[d, g] == pytest.approx(inside.sum() / (len(inside) + 5.0))
        shift = model.effects_[d, group[rows]] + model.intercepts_[d]  # what shrinkage left
        expected = y[rows].mean() + y[rows].std() * shift
        assert np.allclose(model.predict(x[rows]), expected)
    new = x.copy()
    new[:, -1] = 9  # a new drug: the group's effect across drugs
    assert np.allclose(model.predict(new), model.mean_of_means_
                       + model.mean_sd_ * model.pooled_effects_[group])
    assert model.pooled_effects_[2] > 0.5 > model.pooled_effects_[0]


def test_mixed_model_learns_a_drugs_own_mutation_beyond_its_tissue():
    x, y = _pairs(n_lines=60)
    model = PerDrugMixedModel(alpha=0.05, min_lines=20).fit(x, y)
    assert model.n_groups_ == 0  # random 0/1 features are no one-hot block
    for d in range(3):
        rows = x[:, -1] == d
        assert np.argmax(np.abs(model.coefs_[d])) == d  # each drug's signal is gene d
        assert pearsonr(model.predict(x[rows]), y[rows]).statistic > 0.9


def test_mixed_model_refuses_bad_settings_and_drug_indices():
    x, y = _grouped()
    with pytest.raises(ConfigError, match="alpha > 0"):
        PerDrugMixedModel(alpha=0.0).fit(x, y)
    with pytest.raises(ConfigError, match="group_columns 9 is more than the 5 feature columns"):
        PerDrugMixedModel(group_columns=9).fit(x, y)
    x[0, -1] = -1
    with pytest.raises(ConfigError, match="drug index -1"):
        PerDrugMixedModel().fit(x, y)


def test_net_needs_the_training_rows_before_their_targets():
    x, y = _pairs()
    with pytest.raises(ConfigError, match="fit_preprocessing must see the training rows"):
        DrugResponseNet(6, 1, n_drugs=4).fit_target_scaling(y)


def test_net_drug_dropout_hides_drugs_only_while_training():
    x, _ = _pairs(drugs=(0, 1))
    net = DrugResponseNet(6, 1, n_drugs=4, drug_dropout=0.5).fit_preprocessing(x)
    batch = torch.as_tensor(x)
    net.train()
    hidden = (net.drug_index(batch) == 4).float().mean().item()
    net.eval()
    assert 0.3 < hidden < 0.7 and (net.drug_index(batch) != 4).all()


def test_net_refuses_a_drug_index_that_is_not_a_whole_number_in_range():
    x, _ = _pairs()
    x[0, -1] = 1.5
    with pytest.raises(ConfigError, match="drug index 1.5"):
        DrugResponseNet(6, 1, n_drugs=4).fit_preprocessing(x)


def test_per_drug_enet_fits_each_drug_and_falls_back_to_the_pooled_model():
    x, y = _pairs(n_lines=60)
    model = PerDrugElasticNet(min_lines=20, cv=3).fit(x, y)
    assert model.drugs_ == [0, 1, 2]
    for d in range(3):
        rows = x[:, -1] == d
        assert pearsonr(model.predict(x[rows]), y[rows]).statistic > 0.9
    new = x[:10].copy()
    new[:, -1] = 7
    expected = model.pooled_.predict(model._features(new)) + model.mean_of_means_
    assert np.allclose(model.predict(new), expected)


def test_per_drug_enet_leaves_a_drug_with_too_few_lines_to_the_pooled_model():
    x, y = _pairs(n_lines=60)
    keep = (x[:, -1] != 2) | (np.arange(len(x)) % 6 == 0)  # drug 2: 10 lines
    model = PerDrugElasticNet(min_lines=20, cv=3).fit(x[keep], y[keep])
    assert model.drugs_ == [0, 1]


@settings(max_examples=25, deadline=None)
@given(st.integers(6, 60), st.integers(0, 10_000))
def test_correlations_equal_scipy_and_their_ci_holds_the_value(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    s = y + rng.normal(size=n)
    result = correlations_with_ci(y, s, 200, np.random.default_rng(0))
    assert result["pearson"]["value"] == pytest.approx(pearsonr(y, s).statistic, abs=1e-9)
    assert result["spearman"]["value"] == pytest.approx(spearmanr(y, s).statistic, abs=1e-9)
    for name in ("pearson", "spearman"):
        low, high = result[name]["ci95"]
        assert -1.0 <= low <= high <= 1.0


def test_a_constant_prediction_counts_as_no_correlation_not_as_missing():
    y = np.arange(10.0)
    result = correlations_with_ci(y, np.full(10, 2.5), 100, np.random.default_rng(0))
    assert result["spearman"] == {"value": 0.0, "ci95": [0.0, 0.0], "constant_prediction": True}
    frame = pd.DataFrame({"split": "test", "attr_drug": ["a"] * 10 + ["b"] * 10,
                          "target": np.r_[y, y], "prediction": np.r_[y, np.ones(10)]})
    summary = per_group_correlations(frame, "drug", "test", EvalOptions(n_boot=50))
    assert summary["constant_prediction"] == 1 and summary["spearman"]["n"] == 2
    assert summary["spearman"]["median"] == pytest.approx(0.5)


def test_per_group_summary_skips_small_or_constant_groups():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"split": "test", "attr_drug": ["a"] * 30 + ["b"] * 3 + ["c"] * 10,
                          "target": np.r_[rng.normal(size=33), np.ones(10)],
                          "prediction": rng.normal(size=43)})
    result = per_group_correlations(frame, "drug", "test", EvalOptions(n_boot=50))
    assert result["n_groups"] == 3 and result["too_small"] == 2
    assert result["spearman"]["n"] == 1
    assert per_group_correlations(frame, "drug", "val", EvalOptions(n_boot=50)) is None


@pytest.mark.parametrize("model", ["drug-response-net", "drug-mixed", "drug-enet"])
def test_train_drug_response_reports_per_drug_correlations(tmp_path: Path, model: str,
                                                          capsys: pytest.CaptureFixture):
    root = write_gdsc(tmp_path / "data")
    out = tmp_path / "run"
    small = ["--epochs", "30", "--param", "batch_size=32"] if model == "drug-response-net" else []
    code, stdout, stderr = run_cli(capsys, "train", "gdsc-drug-response", "--model", model,
                                   "--data-root", str(root), "--out", str(out), "--n-boot", "50",
                                   *small)
    assert code == 0, stdout + stderr
    metrics = json.loads((out / "metrics.json").read_text())
    section = metrics["per_group"]
    test = section["splits"]["test"]
    assert section["by"] == "drug" and test["n_groups"] == len(DRUGS)
    assert test["spearman"]["median"] > 0.5  # each drug's signal is one mutation
    assert {g["drug"] for g in test["groups"]} == {"Erlotinib", "drug 1002", "drug 1003",
                                                    "drug 1004"}
    assert (out / section["figure"]).is_file()
    report = (out / "report.html").read_text()
    assert "Per drug" in report and "Median Spearman" in report


def test_new_drug_task_predicts_held_out_drugs_from_general_sensitivity(
        tmp_path: Path, capsys: pytest.CaptureFixture):
    root = write_gdsc(tmp_path / "data", n_lines=60)
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "train", "gdsc-drug-response-new-drugs", "--model",
                                   "drug-enet", "--data-root", str(root), "--out", str(out),
                                   "--n-boot", "20")
    assert code == 0, stdout + stderr
    frame = pd.read_csv(out / "predictions.csv", dtype={"attr_drug_id": str})
    parts = {p: set(frame.loc[frame["split"] == p, "attr_drug_id"]) for p in ("train", "test")}
    assert parts["test"] and not parts["train"] & parts["test"]
