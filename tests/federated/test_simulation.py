"""`iatros federate` in Flower's simulation engine: a complete run folder with per-round and
per-site results, a site that cannot train named and left out, client-level DP accounted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iatros import api
from iatros.errors import ConfigError
from iatros.run_folder import RunFolder
from tests.cli_run import run_cli

pytest.importorskip("flwr", reason="Flower (iatros[federated]) is not installed")
pytest.importorskip("ray", reason="Ray (Flower's simulation engine) is not installed")

FAST = api.EvalOptions(n_boot=50)


@pytest.fixture(scope="module")
def federated_run(tmp_path_factory) -> Path:
    """Three Dirichlet sites of the WDBC table (alpha 0.5: one site holds one class only)."""
    out = tmp_path_factory.mktemp("fed") / "run"
    return api.federate("breast-cancer-wdbc", sites="dirichlet:3", out=out, rounds=2,
                        min_site_patients=10, eval_options=FAST, register=False,
                        train_overrides={"batch_size": 32})


def test_a_federated_run_is_a_complete_sealed_run_folder(federated_run):
    run = RunFolder(federated_run)
    assert run.is_complete
    run.require_intact()
    metrics = run.metrics()
    assert metrics["splits"]["test"]["auroc"]["value"] is not None
    assert metrics["federation"]["rounds"] == 2 and metrics["federation"]["strategy"] == "fedavg"


def test_each_round_records_sites_traffic_and_the_pooled_curve(federated_run):
    record = json.loads((federated_run / "federation.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [1, 2]
    first = record["rounds"][0]
    assert first["bytes_up"] > 0 and first["bytes_down"] == first["bytes_up"]
    assert set(first["sites"]) == {s["site"] for s in record["sites"]}
    assert set(record["pooled_test_by_round"]) == {"1", "2"}


def test_a_site_with_one_outcome_class_sits_out_and_is_named(federated_run):
    record = json.loads((federated_run / "federation.json").read_text())
    assert [e["site"] for e in record["excluded"]] == ["site-2"]
    assert "one outcome class" in record["excluded"][0]["reasons"][0]
    report = (federated_run / "report.html").read_text()
    assert "<h3>Sites</h3>" in report and "sat the run out" in report and "site-2" in report


def test_every_training_site_scores_the_final_model_on_its_own_test_patients(federated_run):
    record = json.loads((federated_run / "federation.json").read_text())
    tests = record["site_tests"]
    assert set(tests) == {"site-1", "site-3"}
    for result in tests.values():
        assert result["auroc"]["n"] > 0 and len(result["auroc"]["ci95"]) == 2
    audit = RunFolder(federated_run).metrics()["subgroups"]["federated_site"]
    assert "auroc" in audit["gaps"]


def test_too_few_usable_sites_is_a_clear_error_naming_them(tmp_path):
    with pytest.raises(ConfigError, match="fewer than --min-clients 3.*site-2: one outcome class"):
        api.federate("breast-cancer-wdbc", sites="dirichlet:3", out=tmp_path / "r", rounds=1,
                     min_clients=3, min_site_patients=10, eval_options=FAST, register=False)
    assert RunFolder(tmp_path / "r").status().get("state") == "failed"


def test_client_level_dp_with_fedadam_records_the_epsilon_spent(tmp_path, capsys):
    code, out, err = run_cli(capsys, "federate", "breast-cancer-wdbc", "--sites", "dirichlet:2:10",
                             "--rounds", "2", "--strategy", "fedadam", "--dp-epsilon", "8",
                             "--n-boot", "20", "--out", str(tmp_path / "dp"))
    assert code == 0, err
    metrics = RunFolder(tmp_path / "dp").metrics()
    privacy = metrics["privacy"]
    assert privacy["unit"].startswith("a site") and 0 < privacy["epsilon"] <= 8.0
    assert privacy["noise_multiplier"] > 0
    assert "for a site (hospital)" in (tmp_path / "dp" / "report.html").read_text()
    assert out.strip().endswith(str(tmp_path / "dp"))


def test_patient_level_dp_runs_dp_sgd_at_every_site_and_reports_the_worst_site(tmp_path):
    run = api.federate("breast-cancer-wdbc", sites="dirichlet:2:10", out=tmp_path / "p",
                       rounds=2, dp_epsilon=3.0, dp_level="patient", eval_options=FAST,
                       register=False)
    privacy = RunFolder(run).metrics()["privacy"]
    assert privacy["unit"] == "example" and set(privacy["sites"]) == {"site-1", "site-2"}
    assert privacy["epsilon"] == pytest.approx(max(p["epsilon"] for p in privacy["sites"].values()),
                                               abs=1e-3)
    assert 0 < privacy["epsilon"] <= 3.0 + 0.05
    assert "each example's gradient clipped" in (run / "report.html").read_text()


def test_an_unknown_dp_level_is_refused():
    with pytest.raises(ConfigError, match="--dp-level must be one of site, patient"):
        api.federate("breast-cancer-wdbc", sites="dirichlet:2", dp_epsilon=1.0, dp_level="row",
                     register=False)


def test_secure_aggregation_gives_the_plain_average_and_says_so(tmp_path):
    """SecAgg+ masks each site's update; the server's sum must equal FedAvg's up to the
    protocol's quantisation, so both runs end at the same model."""
    common = dict(sites="dirichlet:3:10", rounds=2, eval_options=FAST, register=False,
                  train_overrides={"batch_size": 32})
    secure = api.federate("breast-cancer-wdbc", out=tmp_path / "secure", secagg=True, **common)
    plain = api.federate("breast-cancer-wdbc", out=tmp_path / "plain", **common)
    record = json.loads((secure / "federation.json").read_text())
    assert record["federation"]["secagg"] is True
    assert all(r["bytes_up"] is None and r["sites_trained"] == 3 for r in record["rounds"])
    curves = [json.loads((run / "federation.json").read_text())["pooled_test_by_round"]
              for run in (secure, plain)]
    for key in ("1", "2"):
        assert curves[0][key]["pooled_test_auroc"] == pytest.approx(
            curves[1][key]["pooled_test_auroc"], abs=0.01)
    assert "secure aggregation" in (secure / "report.html").read_text()


def test_secure_aggregation_with_site_level_dp_is_refused():
    with pytest.raises(ConfigError, match="--secagg.*--dp-level patient"):
        api.federate("breast-cancer-wdbc", sites="dirichlet:2", secagg=True, dp_epsilon=1.0,
                     register=False)


def test_the_kept_round_is_the_one_with_the_best_mean_site_validation(federated_run):
    record = json.loads((federated_run / "federation.json").read_text())
    assert record["federation"]["keep"] == "best"
    best = max(record["rounds"], key=lambda r: (r["val_auroc"], r["round"]))
    assert record["kept_round"] == best["round"]
    assert f"round {best['round']}" in (federated_run / "report.html").read_text()
