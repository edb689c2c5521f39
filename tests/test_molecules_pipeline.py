"""Molecules end to end through the one pipeline: `iatros train molecules:PATH` (regression with
an ensemble: uncertainty calibrated on validation, applicability domain), multitask training
with missing labels (per-label metrics and their mean), `iatros predict` screening SMILES and a
CSV with invalid rows, `iatros explain --smiles` drawing atom attributions, and `iatros train
tox21` on the shared MoleculeNet file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("rdkit")

from iatros import api  # noqa: E402
from iatros.data.transforms.molecules import ATOM_FEATURES, GraphDataset  # noqa: E402
from iatros.explain.molecule import integrated_gradients, masking_attributions  # noqa: E402
from iatros.models.molecules import build_dmpnn  # noqa: E402
from tests.cli_run import run_cli  # noqa: E402

FAST = api.EvalOptions(n_boot=20)
SMALL = {"hidden": 16, "ffn_hidden": 16}
HEADS = ["C", "CC", "CCC", "CC(C)", "c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1"]
TAILS = ["O", "N", "C(=O)O", "C(=O)N", "Cl", "OC", "NC", "C#N"]


def _molecules() -> list[str]:
    return [f"{h}{t}" for h in HEADS for t in TAILS]


def _table(tmp_path: Path) -> Path:
    """64 molecules: logp-like value (carbons minus heteroatoms), two 0/1 assays with gaps,
    and a few bad rows."""
    rng = np.random.default_rng(0)
    rows = []
    for k, smiles in enumerate(_molecules()):
        carbons = smiles.upper().count("C") - smiles.count("Cl")
        hetero = sum(smiles.count(a) for a in "NO")
        value = carbons - 1.5 * hetero + 0.1 * rng.normal()
        a = "" if k % 7 == 0 else int("N" in smiles or "n" in smiles)
        b = "" if k % 5 == 0 else int("O" in smiles)
        rows.append({"SMILES": smiles, "logd": round(value, 3), "tox_a": a, "tox_b": b})
    rows += [{"SMILES": "C1CC", "logd": 1.0, "tox_a": 1, "tox_b": 0},  # unparseable
             {"SMILES": "CCCCO", "logd": "n/a?", "tox_a": 0, "tox_b": 1}]  # value not a number
    path = tmp_path / "assay.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def regression_run(tmp_path):
    path = _table(tmp_path)
    return api.train(f"molecules:{path}", task_options={"smiles": "SMILES", "target": "logd",
                                                        "split": "random"},
                     model="dmpnn", epochs=3, ensemble=3, params=SMALL, out=tmp_path / "run",
                     eval_options=FAST, register=False), path


def test_an_ensemble_gives_calibrated_uncertainty_and_the_applicability_domain(regression_run):
    run, _ = regression_run
    metrics = json.loads((run / "metrics.json").read_text())
    domain, uncertainty = metrics["applicability_domain"], metrics["uncertainty"]
    assert 0 < domain["threshold"] < 1 and domain["reference"] == "validation"
    assert uncertainty["members"] == 3 and uncertainty["scale"] > 0
    assert 0 <= uncertainty["test"]["coverage_95"] <= 1
    coverage = uncertainty["test"]["interval_coverage"]
    assert 0 <= uncertainty["test"]["interval_ece"] <= 0.95 and coverage["levels"][-1] == 0.95
    assert coverage["observed"] == sorted(coverage["observed"])  # wider intervals cover more
    frame = pd.read_csv(run / "predictions.csv")
    assert {"nn_similarity", "in_domain", "uncertainty", "attr_smiles"} <= set(frame.columns)
    assert (frame["uncertainty"] > 0).all()
    report = pd.read_csv(run / "data_report.csv")
    assert {"invalid SMILES", "not a number"} <= set(report["kind"])
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["checks"]["issues_by_kind"]["invalid SMILES"] == 1
    explanations = json.loads((run / "explanations.json").read_text())
    assert explanations and explanations[0]["path"].endswith(".svg")
    assert "integrated gradients" in explanations[0]["caption"]
    html = (run / "report.html").read_text()
    assert "Applicability domain and uncertainty" in html and "molecule_1.svg" in html
    assert "interval expected calibration error" in html
    assert "Splits are made by molecule at random" in html


def test_predict_screens_smiles_and_a_csv_listing_invalid_rows(regression_run, capsys, tmp_path):
    run, _ = regression_run
    library = tmp_path / "library.csv"
    library.write_text("smiles,name\nCCCO,propanol\nnot-a-molecule,x\n[Na+].CC(=O)[O-],salt\n"
                       "C1=CC=CC=C1CCCCCCCCCCCCCCCCCCCC,far\n")
    out = tmp_path / "screen.csv"
    code, stdout, stderr = run_cli(capsys, "predict", str(run), str(library), "--smiles", "CCN",
                                   "--smiles", "C(", "--csv", str(out), "--out",
                                   str(tmp_path / "figs"))
    assert code == 0, stderr
    assert "per second" in stderr and "2 of 6 input(s) failed" in stderr
    table = pd.read_csv(out)
    assert len(table) == 6
    bad = table[table["error"].notna()]
    assert {str(library) + ":3", "smiles:C("} == set(bad["input"])
    assert "unparseable SMILES" in " ".join(bad["error"])
    good = table[table["error"].isna()].set_index("input")
    salt = good.loc[f"{library}:4"]
    assert salt["standardised"] == "CC(=O)O" and "largest fragment" in salt["standardisation"]
    assert {"prediction", "uncertainty", "nn_similarity", "in_domain", "interval_95"} <= set(
        table.columns)
    assert good["in_domain"].astype(str).isin(["True", "False"]).all()
    assert Path(good.loc["smiles:CCN", "heatmap"]).is_file()


def test_explain_draws_atom_attributions_for_smiles(regression_run, capsys, tmp_path):
    run, _ = regression_run
    code, stdout, stderr = run_cli(capsys, "explain", str(run), "--smiles", "CCCCO", "--out",
                                   str(tmp_path / "why"))
    assert code == 0, stderr
    name, prediction, figure = stdout.strip().split("\t")
    assert name == "smiles:CCCCO" and Path(figure).suffix == ".svg"
    assert "<svg" in Path(figure).read_text()


def test_multitask_training_with_missing_labels_reports_each_label_and_their_mean(tmp_path):
    path = _table(tmp_path)
    run = api.train(f"molecules:{path}", task_options={"smiles": "SMILES", "targets":
                                                       ["tox_a", "tox_b"], "split": "random"},
                    model="ecfp-mlp", epochs=2, params={"hidden": (16,)}, out=tmp_path / "run",
                    eval_options=FAST, register=False)
    metrics = json.loads((run / "metrics.json").read_text())
    labels = metrics["per_label"]["test"]
    assert set(labels) == {"tox_a", "tox_b"}
    values = [e["auroc"]["value"] for e in labels.values() if e["auroc"]["value"] is not None]
    assert metrics["splits"]["test"]["auroc"]["value"] == pytest.approx(np.mean(values))
    assert metrics["uncertainty"]["method"] is None  # a single network
    frame = pd.read_csv(run / "predictions.csv")
    assert frame[["target_0", "target_1"]].isna().any().any()
    assert "Per label" in (run / "report.html").read_text()
    results = api.predict(run, ["smiles:CCN"])
    assert set(results[0]["probabilities"]) == {"tox_a", "tox_b"}
    assert results[0]["uncertainty"] is None and "in_domain" in results[0]


def test_a_forest_explains_by_atom_masking(tmp_path):
    path = _table(tmp_path)
    run = api.train(f"molecules:{path}", task_options={"smiles": "SMILES", "target": "tox_a"},
                    model="ecfp-rf", params={"n_estimators": 20, "n_jobs": 1},
                    out=tmp_path / "run", eval_options=FAST, register=False)
    explanations = json.loads((run / "explanations.json").read_text())
    assert "atom masking" in explanations[0]["caption"]
    assert json.loads((run / "config.json").read_text())["split_by"] == "scaffold"


def test_forests_fit_one_model_per_label_on_its_known_rows_and_reload_from_skops(tmp_path):
    from iatros.train.predictors import load_predictor

    path = _table(tmp_path)
    run = api.train(f"molecules:{path}", task_options={"smiles": "SMILES", "targets":
                                                       ["tox_a", "tox_b"]},
                    model="ecfp-rf", params={"n_estimators": 10, "n_jobs": 1},
                    out=tmp_path / "run", eval_options=FAST, register=False)
    predictor = load_predictor(run)
    scores = predictor.predict_scores(np.array(["CCN", "CCO", "c1ccccc1"], dtype=object))
    assert scores.shape == (3, 2) and ((scores >= 0) & (scores <= 1)).all()
    forests = predictor.estimator.named_steps["model"].estimators_
    assert len(forests) == 2


def test_a_label_with_a_single_positive_predicts_its_rate():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from iatros.models.molecules import PerLabelClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    y = np.column_stack([(x[:, 0] > 0).astype(float), np.zeros(80)])
    y[3, 1], y[10:20, 1] = 1.0, np.nan
    model = PerLabelClassifier(HistGradientBoostingClassifier(max_iter=10, early_stopping=True))
    p = model.fit(x, y).predict_proba(x)
    assert p.shape == (80, 2) and np.allclose(p[:, 1], 1 / 70)
    assert p[x[:, 0] > 0, 0].mean() > p[x[:, 0] <= 0, 0].mean()


def test_dmpnn_with_rdkit_descriptors_trains_and_reloads(tmp_path):
    from iatros.train.predictors import load_predictor

    path = _table(tmp_path)
    run = api.train(f"molecules:{path}", task_options={"smiles": "SMILES", "target": "logd"},
                    model="dmpnn", epochs=1, params={**SMALL, "descriptors": True},
                    out=tmp_path / "run", eval_options=FAST, register=False)
    batch = np.array(["CCCO", "c1ccccc1N"], dtype=object)
    first = load_predictor(run).predict_scores(batch)
    assert np.isfinite(first).all()
    assert np.array_equal(first, load_predictor(run).predict_scores(batch))
    network = load_predictor(run).network
    assert network.n_descriptors > 100 and float(network.desc_scale.min()) > 0


def test_the_reader_takes_smi_files_inline_smiles_and_names_each_row(tmp_path):
    from iatros.pipeline.inputs import read_molecules

    smi = tmp_path / "lib.smi"
    smi.write_text("SMILES name\nCCO ethanol\nC1CC broken\n\n[K+].[O-]C(=O)c1ccccc1\n")
    new = read_molecules([smi, Path("smiles:CCN"), tmp_path / "missing.csv"],
                         {"task_options": {"tautomer": False}})
    assert new.names == [f"{smi}:2", f"{smi}:5", "smiles:CCN"]
    assert list(new.batch) == ["CCO", "O=C(O)c1ccccc1", "CCN"]
    assert new.notes[f"{smi}:5"]["standardisation"][0].startswith("kept the largest fragment")
    errors = {e["input"]: e["error"] for e in new.errors}
    assert "unclosed ring" in errors[f"{smi}:3"] and "not found" in errors[str(tmp_path / "missing.csv")]


def test_integrated_gradients_add_up_to_the_output_change():
    torch.manual_seed(0)
    network = build_dmpnn(ATOM_FEATURES, 1, hidden=16, ffn_hidden=16).eval()
    item, _ = GraphDataset(["CC(=O)Nc1ccccc1"], [0.0], target_dtype=torch.float32)[0]
    inputs = {k: v.unsqueeze(0) for k, v in item.items()}
    weights, at_x, at_base = integrated_gradients(network, inputs, 0, int(item["atom_mask"].sum()),
                                                  steps=256)
    assert len(weights) == 10
    assert weights.sum() == pytest.approx(at_x - at_base, rel=0.02, abs=1e-3)


def test_atom_masking_reads_the_output_drop_per_atom():
    def score(batch):  # counts oxygens: masking an oxygen drops the score by one
        return np.array([s.count("O") for s in batch], dtype=float)

    weights, base = masking_attributions("OCCO", score, 0)
    assert base == 2 and weights.tolist() == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.slow
def test_iatros_train_tox21_reports_per_label_auroc_and_atom_attributions(shared_data, capsys,
                                                                           tmp_path):
    code, stdout, stderr = run_cli(capsys, "train", "tox21", "--data-root", str(shared_data),
                                   "--epochs", "1", "--param", "hidden=32", "--param",
                                   "ffn_hidden=32", "--n-boot", "50", "--out",
                                   str(tmp_path / "tox21"), "--no-progress")
    assert code == 0, stderr
    assert "mean over 12 labels" in stderr and "SR-p53" in stderr
    run = tmp_path / "tox21"
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["per_label"]["test"]) == 12
    assert all(e["auroc"]["ci95"] for e in metrics["per_label"]["test"].values())
    html = (run / "report.html").read_text()
    assert "NR-AhR" in html and ".svg" in html and "Scaffolds" in html
