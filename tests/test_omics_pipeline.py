"""Omics end to end through the one pipeline: `iatros train tcga-brca-subtype` on the shared
mixOmics files (test samples without protein, reported and masked; attributions per class in the
report), the elastic-net and boosting baselines, and `omics:PATH[,PATH...] --target COL` on a
user's CSV.gz and Parquet matrices with its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iatros import api
from iatros.errors import ConfigError, CorruptDataError
from iatros.tasks import get_task
from iatros.train.predictors import load_predictor
from tests.cli_run import run_cli

FAST = api.EvalOptions(n_boot=20)
SMALL = {"hidden": 16, "latent": 8}


@pytest.fixture
def tcga_root(shared_data: Path) -> Path:
    if not (shared_data / "tcga_brca_mixomics" / "data.train_subtype.csv").is_file():
        pytest.skip(f"{shared_data / 'tcga_brca_mixomics'} is absent (mixOmics breast.TCGA as CSV)")
    return shared_data


def test_tcga_loads_with_its_own_split_and_reports_the_missing_protein(tcga_root: Path):
    task = get_task("tcga-brca-subtype")
    data = task.load(tcga_root)
    assert data.inputs.shape == (220, 526) and data.inputs.dtype == np.float32
    assert (data.split == "test").sum() == 70 and (data.split == "train").sum() == 150
    assert np.isnan(data.inputs[data.split == "test"][:, 384:]).all()  # no test protein
    assert not np.isnan(data.inputs[data.split == "train"]).any()
    report = data.row_report
    assert len(report) == 70 and set(report["omic"]) == {"protein"}
    assert set(report["sample"]) == set(data.patient_ids[data.split == "test"])
    split = task.split(data, seed=0)
    assert len(split.test) == 70 and len(split.val) == 30 and len(split.train) == 120
    assert set(split.test) == set(np.flatnonzero(data.split == "test"))
    assert np.bincount(data.targets[split.val]).tolist() == [9, 6, 15]  # stratified


def test_a_subset_of_the_tcga_omics_keeps_the_split_and_its_block_layout(tcga_root: Path):
    from iatros.tasks.omics import tcga_subtype_task

    full = get_task("tcga-brca-subtype")
    mrna = tcga_subtype_task(("mirna", "mrna"))
    assert mrna.name == "tcga-brca-subtype[mrna+mirna]"
    assert mrna.model_params["blocks"] == [["mrna", 200], ["mirna", 184]]
    data, whole = mrna.load(tcga_root), full.load(tcga_root)
    assert data.inputs.shape == (220, 384)
    assert data.row_report is None or data.row_report.empty  # no omic missing for any sample
    np.testing.assert_array_equal(data.inputs, whole.inputs[:, :384])
    assert mrna.split(data, seed=1).val.tolist() == full.split(whole, seed=1).val.tolist()
    with pytest.raises(ConfigError, match="subset"):
        tcga_subtype_task(("rna-seq",))


def test_cli_trains_the_fusion_model_with_attributions(tcga_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "train", "tcga-brca-subtype", "--data-root",
                                   str(tcga_root), "--epochs", "2", "--out", str(out),
                                   "--n-boot", "20", "--param", "hidden=16",
                                   "--param", "fusion=gated")
    assert code == 0, stdout + stderr
    metrics = json.loads((out / "metrics.json").read_text())["splits"]["test"]
    assert metrics["auroc"]["n"] == 70 and 0.0 <= metrics["auroc"]["value"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["model_params"]["blocks"] == [["mrna", 200], ["mirna", 184], ["protein", 142]]
    assert config["data"]["checks"]["omics"]["protein"]["samples"] == 150
    explanations = json.loads((out / "explanations.json").read_text())
    assert [e["class"] for e in explanations] == ["Basal", "Her2", "LumA"]
    for item in explanations:
        assert (out / item["path"]).is_file() and len(item["features"]) == 10
        assert {f["omic"] for f in item["features"]} <= {"mrna", "mirna"}  # protein absent
        assert "protein absent in 70 of 70" in item["caption"]
    assert "omics_top_features_Basal.png" in (out / "report.html").read_text()
    assert len(pd.read_csv(out / "data_report.csv")) == 70


def test_fusion_training_fits_preprocessing_on_training_samples_only(tcga_root: Path,
                                                                      tmp_path: Path):
    run = api.train("tcga-brca-subtype", data_root=tcga_root, out=tmp_path / "run", epochs=1,
                    params={**SMALL, "fusion": "concat"}, eval_options=FAST, register=False)
    data = get_task("tcga-brca-subtype").load(tcga_root)
    held_out = set(pd.read_csv(run / "predictions.csv")["row"])
    train = np.array(sorted(set(range(len(data))) - held_out))
    assert len(train) == 120
    network = load_predictor(run).network
    keep = network.keep2.numpy()
    protein = data.inputs[train][:, 384:].astype(np.float64)[:, keep]
    np.testing.assert_allclose(network.center2.numpy(), protein.mean(axis=0), rtol=1e-4,
                               atol=1e-5)
    every = data.inputs[:, :200].astype(np.float64)[:, network.keep0.numpy()]
    assert not np.allclose(network.center0.numpy(), every.mean(axis=0), atol=1e-4)


@pytest.mark.parametrize(("model", "params"), [("omics-enet", {"C": 0.5}),
                                               ("omics-gbm", {"max_iter": 30})])
def test_baselines_train_on_tcga(tcga_root: Path, tmp_path: Path, model: str, params: dict):
    run = api.train("tcga-brca-subtype", data_root=tcga_root, model=model, params=params,
                    out=tmp_path / model, eval_options=FAST, register=False)
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    assert metrics["accuracy"]["n"] == 70 and metrics["auroc"]["value"] > 0.8
    assert not (run / "explanations.json").exists()  # attributions are the network's


def _user_matrices(tmp_path: Path) -> tuple[Path, Path, Path]:
    """mRNA (CSV.gz, 40 samples), protein (Parquet, 30 of them plus 2 unlabelled), labels."""
    rng = np.random.default_rng(0)
    ids = [f"s{i:02d}" for i in range(40)]
    y = np.arange(40) % 2
    mrna = pd.DataFrame(rng.normal(size=(40, 5)), columns=[f"g{j}" for j in range(5)])
    mrna["g0"] += 2.0 * y
    mrna.insert(0, "sample", ids)
    mrna.to_csv(tmp_path / "mrna.csv.gz", index=False, compression="gzip")
    protein = pd.DataFrame(rng.normal(size=(32, 3)), columns=["p0", "p1", "p2"])
    protein.insert(0, "sample", ids[:30] + ["x1", "x2"])
    protein.to_parquet(tmp_path / "protein.parquet", index=False)
    pd.DataFrame({"sample": ids, "status": np.where(y == 1, "responder", "non-responder")}).to_csv(
        tmp_path / "labels.csv", index=False)
    return tmp_path / "mrna.csv.gz", tmp_path / "protein.parquet", tmp_path / "labels.csv"


def test_user_matrices_train_through_the_omics_family(tmp_path: Path):
    mrna, protein, labels = _user_matrices(tmp_path)
    name = f"omics:{mrna},{protein},{labels}"
    task = get_task(name, {"target": "status", "data_root": str(tmp_path)})
    assert task.classes == ("non-responder", "responder")
    assert task.model_params["blocks"] == [["mrna", 5], ["protein", 3]]
    data = task.load(tmp_path)
    report = data.row_report
    assert set(report.loc[report["action"] == "left out", "sample"]) == {"x1", "x2"}
    assert (report["action"] == "omic treated as missing").sum() == 10
    run = api.train(name, task_options={"target": "status"}, data_root=tmp_path, epochs=2,
                    params=SMALL, out=tmp_path / "run", eval_options=FAST, register=False)
    assert json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]["n"] > 0
    scores = load_predictor(run).predict_scores(data.inputs[:3])
    assert np.all(np.isfinite(scores))


def test_an_h5ad_omic_with_its_labels_in_obs_trains_beside_a_csv(tmp_path: Path):
    anndata = pytest.importorskip("anndata", reason="reading .h5ad needs the omics extra")
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(40)]
    y = np.array(["a", "b"] * 20)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    x[:, 0] += 2.0 * (y == "b")
    anndata.AnnData(x, obs=pd.DataFrame({"group": y, "site": "x"}, index=ids),
                    var=pd.DataFrame(index=[f"g{j}" for j in range(5)])).write_h5ad(
        tmp_path / "rna.h5ad")
    pd.DataFrame(rng.normal(size=(40, 3)), index=ids, columns=["p1", "p2", "p3"]).to_csv(
        tmp_path / "protein.csv")
    name = f"omics:{tmp_path / 'rna.h5ad'},{tmp_path / 'protein.csv'}"
    task = get_task(name, {"target": "group", "data_root": str(tmp_path)})
    assert task.model_params["blocks"] == [["rna", 5], ["protein", 3]]  # obs is not a feature
    run = api.train(name, task_options={"target": "group"}, data_root=tmp_path, epochs=2,
                    params=SMALL, out=tmp_path / "run", eval_options=FAST, register=False)
    assert json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]["n"] > 0


def test_user_matrix_errors_name_what_is_wrong(tmp_path: Path):
    mrna, protein, labels = _user_matrices(tmp_path)
    with pytest.raises(ConfigError, match="--target"):
        get_task(f"omics:{mrna}", {"data_root": str(tmp_path)})
    with pytest.raises(ConfigError, match="'stage' is in none"):
        get_task(f"omics:{mrna}", {"target": "stage", "data_root": str(tmp_path)})
    (tmp_path / "bad.csv").write_text("sample,g0,g1\ns00,1.0,2.0\ns01,1.5,oops\n")
    task = get_task(f"omics:{tmp_path / 'bad.csv'}", {"target": "status",
                                                      "labels": str(labels),
                                                      "data_root": str(tmp_path)})
    with pytest.raises(CorruptDataError, match=r"bad.csv: line 3, sample 's01', column 'g1'"):
        task.load(tmp_path)


def test_a_loaded_fusion_model_predicts_test_samples_without_protein(tcga_root: Path,
                                                                      tmp_path: Path):
    run = api.train("tcga-brca-subtype", data_root=tcga_root, out=tmp_path / "run", epochs=1,
                    params=SMALL, eval_options=FAST, register=False)
    data = get_task("tcga-brca-subtype").load(tcga_root)
    test = data.inputs[data.split == "test"][:5]
    predictor = load_predictor(run)
    scores = predictor.predict_scores(test)
    assert scores.shape == (5, 3) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        assert not predictor.network.present(torch.as_tensor(test))[:, 2].any()


def test_predict_reads_one_matrix_per_omic_and_scores_as_training_did(
        tcga_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    run = api.train("tcga-brca-subtype", data_root=tcga_root, out=tmp_path / "run", epochs=1,
                    params=SMALL, eval_options=FAST, register=False)
    folder = tcga_root / "tcga_brca_mixomics"
    mrna = pd.read_csv(folder / "data.test_mrna.csv.gz", index_col=0).iloc[:6]
    mirna = pd.read_csv(folder / "data.test_mirna.csv.gz", index_col=0).iloc[:4]
    mrna.drop(columns=mrna.columns[:3]).to_csv(tmp_path / "mrna.csv")  # 3 genes missing
    mirna.to_csv(tmp_path / "mirna.csv")
    (tmp_path / "other.csv").write_text("id,x,y\na,1,2\n")
    out = tmp_path / "scores.csv"
    code, stdout, stderr = run_cli(capsys, "predict", str(run), str(tmp_path / "mrna.csv"),
                                   str(tmp_path / "mirna.csv"), str(tmp_path / "other.csv"),
                                   "--csv", str(out))
    assert code == 0, stdout + stderr
    table = pd.read_csv(out)
    bad = table[table["error"].notna()]
    assert bad["input"].tolist() == [str(tmp_path / "other.csv")]
    assert "none of the model's features" in bad["error"].iloc[0]
    good = table[table["error"].isna()].set_index("input")
    assert list(good.index) == list(map(str, mrna.index))
    assert good["omics_absent"].str.contains("protein").all()
    assert good["omics_absent"].str.contains("mirna").sum() == 2  # 4 of 6 samples have miRNA
    assert (good["missing_features.mrna"] == 3).all()
    mrna.to_csv(tmp_path / "mrna.csv")  # every gene: the scores training wrote for these samples
    code, stdout, stderr = run_cli(capsys, "predict", str(run), str(tmp_path / "mrna.csv"),
                                   str(tmp_path / "mirna.csv"), "--csv", str(out))
    assert code == 0, stdout + stderr
    again = pd.read_csv(out).set_index("input")
    trained = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    trained = trained[trained["split"] == "test"].set_index("patient_id")
    both = [str(s) for s in mirna.index]
    for k, subtype in enumerate(("Basal", "Her2", "LumA")):
        assert np.allclose(again.loc[both, f"probabilities.{subtype}"],
                           trained.loc[both, f"prob_{k}"], atol=1e-6)


def test_gse7390_omics_has_the_flat_tasks_rows_and_split_in_two_blocks():
    fused, flat = get_task("survival-gse7390-omics"), get_task("survival-gse7390")
    data, whole = fused.load(Path(".")), flat.load(Path("."))
    blocks = fused.model_params["blocks"]
    assert [name for name, _ in blocks] == ["expression", "clinical"]
    assert data.inputs.shape == (198, sum(width for _, width in blocks))
    assert np.array_equal(data.targets, whole.targets)
    assert {f.split(":")[0] for f in data.feature_names} == {"expression", "clinical"}
    assert "clinical:age" in data.feature_names
    for seed in (0, 1):
        assert fused.split(data, seed).test.tolist() == flat.split(whole, seed).test.tolist()


def test_gse7390_fusion_trains_under_a_cox_head_with_gene_attributions(
        tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(capsys, "train", "survival-gse7390-omics", "--epochs", "3",
                                   "--out", str(out), "--n-boot", "20", "--param", "hidden=16")
    assert code == 0, stdout + stderr
    test = json.loads((out / "metrics.json").read_text())["splits"]["test"]
    assert 0.0 <= test["c_index"]["value"] <= 1.0 and test["c_index"]["n"] == 30
    explanations = json.loads((out / "explanations.json").read_text())
    assert [e["class"] for e in explanations] == ["risk"]
    omics = {f["omic"] for f in explanations[0]["features"]}
    assert omics <= {"expression", "clinical"} and len(explanations[0]["features"]) == 10
    assert (out / explanations[0]["path"]).is_file()
