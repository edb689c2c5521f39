"""The CLI end to end on real packaged data (tiny epochs, small bootstrap)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_run import run_cli

FAST = ["--n-boot", "50", "--no-progress"]


@pytest.fixture
def whas_run(tmp_path, capsys) -> Path:
    code, out, err = run_cli(capsys, "train", "whas500-mortality-1y", "--epochs", "3",
                             "--out", str(tmp_path / "whas"), *FAST)
    assert code == 0, err
    return Path(out.strip().splitlines()[-1])


def test_tasks_lists_builtin_tasks(capsys):
    code, out, _ = run_cli(capsys, "tasks", "--json")
    names = {t["name"] for t in json.loads(out)}
    assert code == 0 and {"breast-cancer-wdbc", "whas500-mortality-1y"} <= names


def test_tasks_table_marks_each_default_and_what_auto_compares(capsys):
    from iatros.cli import _models_cell

    code, out, _ = run_cli(capsys, "tasks", "--json")
    rows = {t["name"]: t for t in json.loads(out)}
    assert code == 0 and _models_cell(rows["breast-cancer-wdbc"]).startswith("mlp (default)")
    assert _models_cell(rows["icu-mortality"]).startswith(
        "auto (default: CV over gbm, gbm-bag, logreg-cv, grud)")


def test_train_writes_a_complete_run_folder_and_prints_its_path_last(whas_run):
    for name in ("config.json", "metrics.json", "predictions.csv", "report.html",
                 "checkpoints/best.pt", "figures/roc.png", "figures/calibration.png",
                 "figures/subgroups.png"):
        assert (whas_run / name).is_file(), name
    metrics = json.loads((whas_run / "metrics.json").read_text())
    assert metrics["task"] == "whas500-mortality-1y"
    auroc = metrics["splits"]["test"]["auroc"]
    assert auroc["n"] == 75 and auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    assert set(metrics["splits"]) == {"test", "val"}
    assert set(metrics["subgroups"]) == {"sex", "age_group"}
    predictions = pd.read_csv(whas_run / "predictions.csv")
    assert predictions["patient_id"].str.startswith("whas-").all()
    assert json.loads((whas_run / "status.json").read_text())["state"] == "complete"


def test_runs_lists_the_registered_run(whas_run, capsys):
    code, out, _ = run_cli(capsys, "runs", "--json")
    entries = json.loads(out)
    assert code == 0 and entries[0]["path"] == str(whas_run) and entries[0]["metric"] == "auroc"


def test_audit_by_sex_reports_each_group(whas_run, capsys):
    code, out, _ = run_cli(capsys, "audit", str(whas_run), "--by", "sex", "--json",
                           "--n-boot", "50")
    result = json.loads(out)
    assert code == 0 and set(result["groups"]) == {"female", "male"}
    assert "equalized_odds_difference" in result


def test_audit_by_unknown_attribute_names_the_available_ones(whas_run, capsys):
    code, _, err = run_cli(capsys, "audit", str(whas_run), "--by", "race")
    assert code == 2 and "sex" in err and "Traceback" not in err


def test_evaluate_scores_another_split(whas_run, capsys):
    code, out, _ = run_cli(capsys, "evaluate", str(whas_run), "--split", "val", "--json",
                           "--n-boot", "50")
    result = json.loads(out)
    assert code == 0 and result["split"] == "val"
    assert result["splits"]["val"]["auroc"]["n"] == 75
    assert Path(result["path"], "metrics.json").is_file()


def test_evaluate_on_another_data_root_scores_all_rows(whas_run, tmp_path, capsys):
    other = tmp_path / "other-copy"
    other.mkdir()
    code, out, _ = run_cli(capsys, "evaluate", str(whas_run), "--data-root", str(other),
                           "--json", "--n-boot", "50")
    result = json.loads(out)
    assert code == 0 and result["external"] and result["split"] == "all"
    assert result["splits"]["all"]["auroc"]["n"] == 500


def test_promote_makes_a_model_version(whas_run, capsys):
    code, out, _ = run_cli(capsys, "promote", str(whas_run), "--name", "mi-1y")
    assert code == 0 and "mi-1y v1" in out


def test_unknown_task_is_one_line_without_traceback(capsys):
    code, out, err = run_cli(capsys, "train", "no-such-task")
    assert code == 2 and err.strip().startswith("error: no task named 'no-such-task'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_data_root_is_named(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--data-root",
                           str(tmp_path / "nowhere"), *FAST)
    assert code == 2 and "nowhere" in err and "does not exist" in err


def test_resuming_into_another_tasks_run_is_refused(whas_run, capsys):
    code, _, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--out", str(whas_run),
                           "--resume", *FAST)
    assert code == 2 and "belongs to task 'whas500-mortality-1y'" in err


def test_corrupt_metrics_file_is_a_clear_error(whas_run, capsys):
    (whas_run / "metrics.json").write_text("{truncated")
    code, _, err = run_cli(capsys, "evaluate", str(whas_run))
    assert code == 2 and "metrics.json" in err and "Traceback" not in err


def test_existing_out_folder_is_not_overwritten(whas_run, capsys):
    code, _, err = run_cli(capsys, "train", "whas500-mortality-1y", "--out", str(whas_run), *FAST)
    assert code == 2 and "not empty" in err


CRASHING_TRAIN = """
import os, signal
from iatros import api
from iatros.train.trainer import Callback
from tests.cli_run import run_cli

class Kill(Callback):
    def on_epoch_end(self, trainer, record):
        if record.epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)

api.train("breast-cancer-wdbc", out={out!r}, epochs=8, train_overrides={{"patience": 0}},
          callbacks=[Kill()])
"""


def test_killed_training_resumes_from_last_checkpoint(tmp_path, capsys):
    run = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", CRASHING_TRAIN.format(out=str(run))],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert not (run / "metrics.json").exists()
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert json.loads(out) == []  # an unfinished run is never registered

    code, out, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--out", str(run),
                             "--resume", *FAST)
    assert code == 0, err
    assert "resumed after epoch 3" in err
    log = pd.read_csv(run / "train_log.csv")
    assert log["epoch"].tolist() == list(range(1, 9))
    assert json.loads((run / "status.json").read_text())["state"] == "complete"


def test_data_download_fetches_with_checksum_into_the_root(tmp_path, capsys, monkeypatch):
    import hashlib

    from iatros.data.sources import medmnist

    payload = b"not really an npz, but the checksum is what is checked"
    source = tmp_path / "remote.npz"
    source.write_bytes(payload)
    original = medmnist.remote_file

    def fake_remote(name, size=28):
        spec = original(name, size)
        return type(spec)(spec.relpath, url=source.as_uri(), md5=hashlib.md5(payload).hexdigest())

    monkeypatch.setattr(medmnist, "remote_file", fake_remote)
    root = tmp_path / "root"
    code, out, err = run_cli(capsys, "data", "download", "medmnist:dermamnist", "--data-root", str(root))
    assert code == 0, err
    assert (root / "medmnist" / "dermamnist.npz").read_bytes() == payload


def test_data_download_of_unknown_source_is_refused(capsys):
    code, _, err = run_cli(capsys, "data", "download", "kaggle:chest")
    assert code == 2 and "medmnist:NAME" in err


def test_train_takes_model_parameters_and_training_settings_as_params(tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--epochs", "2",
                             "--param", "hidden=16x8", "--param", "dropout=0.1",
                             "--param", "lr=1e-2", "--out", str(tmp_path / "r"), *FAST)
    assert code == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model_params"]["hidden"] == [16, 8] and config["model_params"]["dropout"] == 0.1
    assert config["train"]["lr"] == 0.01


def test_a_malformed_param_is_a_one_line_error(capsys):
    code, _, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--param", "hidden")
    assert code == 2 and "is not NAME=VALUE" in err


def test_several_targets_are_refused_outside_molecule_tables(capsys, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y,z\n1,2,0,1\n")
    code, out, err = run_cli(capsys, "train", f"csv:{table}", "--target", "y", "--target", "z")
    said = " ".join((out + err).replace("│", " ").split())
    assert code != 0 and "only molecules:PATH tasks" in said
