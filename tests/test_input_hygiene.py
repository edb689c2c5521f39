"""Dirty inputs are caught or named, and identifiers never reach a shareable artifact (config.json,
report.html, model.json, the registry)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from faker import Faker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iatros import api
from iatros.data.sources.table_encoding import fit_encoding
from iatros.errors import ConfigError, CorruptDataError, IatrosError, RunError
from iatros.kinds import Modality, TargetKind
from iatros.tasks import Task, TaskData

FAST = api.EvalOptions(n_boot=20)


@pytest.fixture
def cohort(tmp_path) -> tuple[Path, pd.DataFrame]:
    """WHAS500 as a user's CSV: a binary outcome, numeric and categorical columns, names."""
    from sksurv.datasets import load_whas500

    x, y = load_whas500()
    frame = x.astype({c: float for c in x.columns if str(x[c].dtype) != "category"}).copy()
    for c in frame.columns:
        if str(frame[c].dtype) == "category":
            frame[c] = frame[c].astype(str)
    frame["died_1y"] = ((y["lenfol"] <= 365) & y["fstat"]).astype(int)
    fake = Faker("en_US")
    Faker.seed(0)
    frame["name"] = [fake.name() for _ in range(len(frame))]
    frame["mrn"] = [f"MRN{100000 + i}" for i in range(len(frame))]
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _train(path: Path, tmp_path: Path, **options):
    return api.train(f"csv:{path}", model="logreg", out=tmp_path / "run", eval_options=FAST,
                     register=False, task_options={"target": "died_1y", "patient_id": "mrn",
                                                   **options})


def test_a_numeric_column_with_a_few_junk_cells_stays_numeric_and_names_their_lines(
        cohort, tmp_path, caplog):
    path, frame = cohort
    frame = frame.astype({"bmi": object})
    frame.loc[[3, 40, 41], "bmi"] = ["?", "12,5", "n/a"]  # pandas reads "n/a" as missing
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="iatros"):
        run = _train(path, tmp_path, drop=["name"])
    config = json.loads((run / "config.json").read_text())
    assert "bmi" in config["data"]["features"]
    assert not any(f.startswith("bmi_") for f in config["data"]["features"])  # not one-hot
    assert "column 'bmi' is numeric but 2 cell(s) are not numbers (lines 5, 42" in caplog.text
    assert json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]["value"] > 0.7


def test_a_stray_target_value_is_an_error_naming_its_line(cohort, tmp_path):
    path, frame = cohort
    frame = frame.astype({"died_1y": object})
    frame.loc[7, "died_1y"] = "yes"
    frame.to_csv(path, index=False)
    with pytest.raises(CorruptDataError, match=r"rare value\(s\) \['yes'\] on line 9 "):
        _train(path, tmp_path, drop=["name"])


def test_a_single_class_target_is_a_clear_error(cohort, tmp_path):
    path, frame = cohort
    frame.assign(died_1y=0).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="single value.*nothing to predict"):
        _train(path, tmp_path, drop=["name"])


def test_a_free_text_column_is_refused_as_a_feature(cohort, tmp_path):
    path, _ = cohort
    with pytest.raises(ConfigError, match=r"'name' \(\d+ distinct values.*--allow-text-feature"):
        _train(path, tmp_path)


def test_an_allowed_text_feature_keeps_its_values_out_of_every_shareable_file(cohort, tmp_path):
    path, frame = cohort
    run = _train(path, tmp_path, allow_text_feature=True, attributes=["gender"])
    shared = {name: (run / name).read_text() for name in ("config.json", "report.html",
                                                           "model.json", "metrics.json")}
    for value in list(frame["name"].head(50)) + list(frame["mrn"].head(50)):
        for name, text in shared.items():
            assert value not in text, f"{value} leaked into {name}"
    config = json.loads(shared["config.json"])
    levels = frame["name"].nunique()
    assert config["data"]["encoding"]["text_features"] == {"name": levels}
    assert f"name ({levels} distinct values)" in shared["report.html"]
    assert any(f.startswith("name=#") for f in config["data"]["features"])


def test_an_identifier_column_cannot_be_an_audited_attribute(cohort, tmp_path):
    path, _ = cohort
    with pytest.raises(ConfigError, match=r"attribute 'name' has \d+ distinct values"):
        _train(path, tmp_path, drop=["name"], attributes=["name"])


def test_the_report_scan_fails_a_run_whose_report_would_show_a_patient_id(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([f"MRN-{7000 + i}" for i in range(200)])

    def load(_root: Path) -> TaskData:
        x = rng.normal(size=(200, 3)).astype(np.float32)
        return TaskData(x, (x[:, 0] > 0).astype(int), ids, pd.DataFrame(index=range(200)))
    task = Task(name="leaky", description=f"outcome of patient {ids[5]} and others",
                modality=Modality.TABULAR, target=TargetKind.BINARY, loader=load,
                classes=("no", "yes"))
    with pytest.raises(RunError, match=r"would show 1 identifier value.*M\*+5\)"):
        api.train(task, model="logreg", out=tmp_path / "run", eval_options=FAST, register=False)
    assert not (tmp_path / "run" / "report.html").exists()


def test_report_explanations_name_no_patient(tmp_path):
    from tests.tasks.ehr_fixture import write_physionet_root

    root = write_physionet_root(tmp_path / "data", n=60)
    run = api.train("icu-mortality", data_root=root, model="grud", epochs=2, out=tmp_path / "run",
                    eval_options=FAST, register=False)
    html = (run / "report.html").read_text()
    stays = [str(200000 + k) for k in range(60)]
    assert "test stay 1" in html and not any(s in html for s in stays)


def test_a_labels_file_cannot_point_outside_the_image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "scans"
    folder.mkdir()
    outside = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside)
    rows = []
    for i in range(12):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(folder / f"p{i}.png")
        rows.append({"image": f"p{i}.png", "label": i % 2, "patient_id": f"p{i}"})
    rows.append({"image": "../secret.png", "label": 1, "patient_id": "x"})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    with pytest.raises(CorruptDataError, match=r"1 listed image\(s\) lie outside.*secret.png.*lines 14"):
        api.train(f"images:{folder}", out=tmp_path / "run", epochs=1, register=False)


def test_a_tagger_run_keeps_its_sentences_and_vocabulary_out_of_shared_files(tmp_path):
    from tests.models.test_model_contract import _iob_root

    root = _iob_root(tmp_path / "iob")
    run = api.train("ner-ncbi-disease", data_root=root, epochs=1, out=tmp_path / "run",
                    eval_options=FAST, register=False)
    frame = pd.read_csv(run / "predictions.csv")
    assert "tokens" not in frame.columns and "n_tokens" in frame.columns
    assert "fibrosis" not in (run / "model.json").read_text()
    assert "fibrosis" in (run / "model_data.json").read_text()  # needed to apply the tagger
    kept = api.train("ner-ncbi-disease", data_root=root, epochs=1, out=tmp_path / "kept",
                     eval_options=api.EvalOptions(n_boot=20, keep_text=True), register=False)
    assert "cystic fibrosis" in " ".join(pd.read_csv(kept / "predictions.csv")["tokens"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=12),
                          st.integers(-10**6, 10**6)), min_size=1, max_size=40),
       st.booleans())
def test_any_column_of_a_table_encodes_or_fails_with_a_clear_error(values, allow_text):
    frame = pd.DataFrame({"col": pd.Series(values, dtype=object)})
    try:
        encoding = fit_encoding(frame, "fuzz.csv", allow_text=allow_text)
    except IatrosError as e:
        assert "fuzz.csv" in str(e)
        return
    features = encoding.transform(frame, "fuzz.csv")
    assert features.shape == (len(values), len(encoding.features))
    opaque = encoding.opaque.get("col", [])
    assert [f for f in encoding.features if "=#" in f] == [f"col=#{k + 1}" for k in range(len(opaque))]


def test_another_copy_of_a_table_is_encoded_as_the_run_was_trained(cohort, tmp_path):
    path, frame = cohort
    site_a, site_b = tmp_path / "site_a", tmp_path / "site_b"
    site_a.mkdir()
    site_b.mkdir()
    frame.to_csv(site_a / "cohort.csv", index=False)
    frame.iloc[::-1].to_csv(site_b / "cohort.csv", index=False)  # same patients, other order
    run = api.train("csv:cohort.csv", data_root=site_a, model="logreg", out=tmp_path / "run",
                    eval_options=FAST, register=False,
                    task_options={"target": "died_1y", "patient_id": "mrn",
                                  "allow_text_feature": True})
    here = api.evaluate(run, split="all", eval_options=FAST)["splits"]["all"]["auroc"]["value"]
    there = api.evaluate(run, data_root=site_b, eval_options=FAST)["splits"]["all"]["auroc"]["value"]
    assert here == pytest.approx(there, abs=1e-12)
