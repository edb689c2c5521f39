"""EHR tasks end to end on a generated PhysioNet 2012 root, and on the real demos when present."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.errors import ConfigError, MissingDataError
from iatros.tasks import get_task
from tests.tasks.ehr_fixture import write_physionet_root

FAST = api.EvalOptions(n_boot=50)


@pytest.fixture(scope="module")
def icu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_physionet_root(tmp_path_factory.mktemp("ehr") / "root")


@pytest.fixture(scope="module")
def grud_run(icu_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IATROS_HOME", str(home))
        return api.train("icu-mortality", data_root=icu_root, model="grud", epochs=3,
                         out=home / "grud", eval_options=FAST, register=False)


def test_icu_mortality_inputs_hold_only_the_first_48_hours(icu_root: Path) -> None:
    data = get_task("icu-mortality").load(icu_root)
    hr = data.inputs.variables.index("PHYSIONET2012//HR")
    assert data.inputs.values.shape[1] == 48
    assert np.nanmax(data.inputs.values[:, :, hr]) < 200  # the planted 250 at 49 h stays out
    assert data.inputs.ev_time.max() < 48
    assert set(data.attributes.columns) >= {"sex", "age_group", "site", "stay_id"}
    assert data.targets.mean() == pytest.approx(0.25)


def test_aggregated_features_summarise_each_variable(icu_root: Path) -> None:
    data = get_task("icu-mortality").load(icu_root)
    table = np.asarray(data.inputs)
    names = data.feature_names
    assert table.shape == (len(data), len(names))
    v = data.inputs.variables.index("PHYSIONET2012//Lactate")
    grid = data.inputs.values[0, :, v]
    observed = grid[~np.isnan(grid)]
    assert table[0, names.index("PHYSIONET2012//Lactate:count")] == len(observed) == 3
    assert table[0, names.index("PHYSIONET2012//Lactate:first")] == pytest.approx(observed[0])
    assert table[0, names.index("PHYSIONET2012//Lactate:max")] == pytest.approx(observed.max())
    assert table[0, names.index("PHYSIONET2012//Lactate:since_last")] == pytest.approx(47 - 40)


def test_align_reorders_variables_and_marks_absent_ones_missing(icu_root: Path) -> None:
    inputs = get_task("icu-mortality").load(icu_root).inputs
    names = inputs.feature_names
    swapped = [n for n in names if n.startswith("PHYSIONET2012//MAP:")] + \
              [n for n in names if not n.startswith("PHYSIONET2012//MAP:")] + \
              ["PHYSIONET2012//pH:mean"]
    aligned = inputs.align(swapped)
    assert aligned.variables[0] == "PHYSIONET2012//MAP"
    assert np.isnan(aligned.values[:, :, aligned.variables.index("PHYSIONET2012//pH")]).all()
    hr_old, hr_new = inputs.variables.index("PHYSIONET2012//HR"), aligned.variables.index(
        "PHYSIONET2012//HR")
    np.testing.assert_array_equal(aligned.values[:, :, hr_new], inputs.values[:, :, hr_old])


def test_grud_run_reports_cis_subgroups_and_explains_stays(grud_run: Path) -> None:
    metrics = json.loads((grud_run / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert test["auroc"]["n"] > 0 and len(test["auroc"]["ci95"]) == 2
    assert "ece" in test
    assert {"sex", "age_group"} <= set(metrics["subgroups"])
    items = json.loads((grud_run / "explanations.json").read_text())
    assert items and all((grud_run / item["path"]).is_file() for item in items)
    first = items[0]
    assert first["variables"] and first["cells"]
    assert {c["variable"] for c in first["cells"]} <= {"PHYSIONET2012//HR", "PHYSIONET2012//MAP",
                                                        "PHYSIONET2012//Lactate"}
    assert all(0 <= c["hour"] < 48 for c in first["cells"])
    assert "What the model looked at" in (grud_run / "report.html").read_text()


def test_integrated_gradients_add_up_to_the_change_in_output(grud_run: Path, icu_root: Path) -> None:
    import torch

    from iatros.explain.sequence import attribute
    from iatros.train.predictors import load_predictor

    predictor = load_predictor(grud_run, "cpu")
    net = predictor.network
    inputs = get_task("icu-mortality").load(icu_root).inputs[[0]]
    batch = {"values": torch.as_tensor(inputs.values), "static": torch.as_tensor(inputs.static)}
    attr = attribute(net, batch, 0, 48, 1.0, len(inputs.variables))
    x, base, fixed = net.attribution_inputs(batch)
    with torch.no_grad():
        gap = float(net.forward_attribution(*x, *fixed)[0, 0] - net.forward_attribution(*base, *fixed)[0, 0])
    assert attr.cells.sum() + attr.static.sum() == pytest.approx(gap, abs=0.02)
    unobserved = np.isnan(inputs.values[0])
    assert np.all(attr.cells[unobserved] == 0)


def test_explain_records_names_stays_and_rejects_unknown_ids(grud_run: Path, tmp_path: Path) -> None:
    items = api.explain_records(grud_run, ["200001"], out=tmp_path / "e")
    assert items[0]["stay_id"] == "200001" and Path(items[0]["path"]).is_file()
    assert json.loads((tmp_path / "e" / "explanations.json").read_text())[0]["stay_id"] == "200001"
    with pytest.raises(MissingDataError, match="999"):
        api.explain_records(grud_run, ["999"], out=tmp_path / "f")


def test_run_scores_on_another_copy_missing_a_variable(grud_run: Path, tmp_path: Path) -> None:
    other = write_physionet_root(tmp_path / "other", n=40, seed=1, set_name="b", first_id=300000,
                                 with_lactate=False)
    result = api.evaluate(grud_run, data_root=other, eval_options=FAST)
    assert result["split"] == "all" and result["external"]
    assert result["splits"]["all"]["auroc"]["n"] == 40


def test_event_transformer_trains_and_explains(icu_root: Path, tmp_path: Path) -> None:
    run = api.train("icu-mortality", data_root=icu_root, model="event-transformer", epochs=1,
                    out=tmp_path / "et", eval_options=FAST, register=False)
    items = json.loads((run / "explanations.json").read_text())
    assert items[0]["variables"]
    assert all(0 <= c["hour"] < 48 for c in items[0]["cells"])


def test_gbm_baseline_reads_aggregated_features(icu_root: Path, tmp_path: Path) -> None:
    run = api.train("icu-mortality", data_root=icu_root, model="gbm", out=tmp_path / "gbm",
                    eval_options=FAST, register=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["value"] > 0.8  # the planted signal is strong
    assert not (run / "explanations.json").exists()


def test_icu_survival_gives_a_c_index(icu_root: Path, tmp_path: Path) -> None:
    run = api.train("icu-survival", data_root=icu_root, model="grud", epochs=1,
                    out=tmp_path / "surv", eval_options=FAST, register=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["c_index"]["n"] > 0
    stay = str(pd.read_csv(run / "predictions.csv")["attr_stay_id"].iloc[0])
    items = api.explain_records(run, [stay], out=tmp_path / "why")
    assert items[0]["caption"].endswith("attributions for the risk score") and items[0]["variables"]


def test_ehr_family_trains_any_stays_column_with_a_window(icu_root: Path, tmp_path: Path) -> None:
    run = api.train("ehr:physionet2012", data_root=icu_root, model="logreg", out=tmp_path / "r",
                    task_options={"target": "died", "window": 24}, eval_options=FAST,
                    register=False)
    config = json.loads((run / "config.json").read_text())
    assert config["task_options"]["window"] == 24
    data = get_task("ehr:physionet2012", {"target": "died", "window": 24,
                                          "data_root": str(icu_root)}).load(icu_root)
    assert data.inputs.values.shape[1] == 24


def test_ehr_family_code_outcome_counts_events_after_the_window(icu_root: Path) -> None:
    task = get_task("ehr:physionet2012", {"target": "code:PHYSIONET2012//HR@1", "window": 48,
                                          "data_root": str(icu_root)})
    data = task.load(icu_root)
    assert data.targets.tolist() == [1] * len(data)  # every stay has the planted HR at 49 h


def test_ehr_family_rejects_bad_targets(icu_root: Path) -> None:
    with pytest.raises(ConfigError, match="--target"):
        get_task("ehr:physionet2012", {"data_root": str(icu_root)})
    task = get_task("ehr:physionet2012", {"target": "nope", "data_root": str(icu_root)})
    with pytest.raises(ConfigError, match="not a stays column"):
        task.load(icu_root)
    task = get_task("ehr:physionet2012", {"target": "los_days", "kind": "binary",
                                          "data_root": str(icu_root)})
    with pytest.raises(ConfigError, match="--kind regression"):
        task.load(icu_root)


def test_missing_physionet_folder_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="physionet.org"):
        get_task("icu-mortality").load(tmp_path)


def test_cli_explain_prints_a_line_per_stay(grud_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from iatros.cli import app

    result = CliRunner().invoke(app, ["explain", str(grud_run), "200002", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("200002\t") and (tmp_path / "stay_200002.png").is_file()


@pytest.mark.parametrize("task", ["mimic-mortality", "mimic-los-7d", "mimic-readmission-30d",
                                  "eicu-mortality"])
def test_demo_tasks_train_end_to_end(task: str, shared_data: Path, tmp_path: Path) -> None:
    run = api.train(task, data_root=shared_data, model="gbm", out=tmp_path / "r",
                    eval_options=FAST, register=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["n"] > 0
    assert "ethnicity" in metrics["subgroups"]


def test_eicu_keeps_the_hospital_as_site(shared_data: Path) -> None:
    data = get_task("eicu-mortality").load(shared_data)
    assert data.attributes["site"].nunique() > 20


def test_synthea_fhir_bundles_train_a_readmission_model(shared_data: Path, tmp_path: Path) -> None:
    if not (shared_data / "synthea_sample" / "fhir").is_dir():
        pytest.skip("synthea_sample/fhir is absent from the data root")
    copy = tmp_path / "fhir"
    shutil.copytree(shared_data / "synthea_sample" / "fhir", copy)
    run = api.train(f"ehr:{copy}", model="gbm", out=tmp_path / "r", eval_options=FAST,
                    task_options={"target": "readmit_30d"}, register=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["n"] > 0


def test_a_meds_dataset_trains_through_ehr_path(shared_data: Path, tmp_path: Path) -> None:
    from iatros.data.ehr import convert, get_source

    meds_root = convert(get_source("mimic3"), shared_data / "mimic3_demo", tmp_path / "meds").path
    (meds_root / "events.parquet").unlink()  # a MEDS tool reads data/ and metadata/ only
    run = api.train(f"ehr:{meds_root}", model="gbm", out=tmp_path / "r", eval_options=FAST,
                    task_options={"target": "died"}, register=False)
    config = json.loads((run / "config.json").read_text())
    assert config["task"].startswith("ehr:") and "meds" in config["source"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["splits"]["test"]["auroc"]["n"] > 0


def test_mimic_cohorts_read_mimic4_when_the_data_root_has_it(tmp_path: Path) -> None:
    from tests.data.ehr.mimic4_files import write_mimic4

    root = tmp_path / "root"
    write_mimic4(root / "mimic4" / "mimic-iv-3.1")
    data = get_task("mimic-readmission-30d").load(root)
    assert data.source.startswith("mimic4:") and len(data) > 0
    with pytest.raises(MissingDataError, match="mimic3"):
        get_task("mimic-readmission-30d").load(tmp_path / "empty")
