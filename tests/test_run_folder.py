"""The one run-folder format: versions, atomic writes, readers that name what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros import api
from iatros.errors import RunError
from iatros.run_folder import (
    CONFIG,
    RUN_FORMAT,
    RunFolder,
    remove_stale_temp_files,
    write_csv,
    write_json,
    write_npz,
)

FAST = api.EvalOptions(n_boot=20)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    return api.train("breast-cancer-wdbc", model="logreg", out=out, eval_options=FAST, register=False)


def test_new_runs_record_their_format_version(run):
    assert json.loads((run / CONFIG).read_text())["run_format"] == RUN_FORMAT


def test_a_format_1_folder_is_refused_by_name_until_sealed_and_its_pickle_until_trusted(run, tmp_path):
    import shutil

    import joblib

    from iatros.train.artifacts import load_estimator

    old = tmp_path / "old"  # as iatros wrote folders before: no version, no manifest, a pickle
    shutil.copytree(run, old)
    config = json.loads((old / CONFIG).read_text())
    del config["run_format"]
    (old / CONFIG).write_text(json.dumps(config))
    joblib.dump(load_estimator(old), old / "model.joblib")
    (old / "model.skops").unlink()
    (old / "manifest.json").unlink()
    with pytest.raises(RunError, match=r"run format 1\).*no manifest.json.*--seal"):
        api.evaluate(old, split="val", eval_options=FAST)
    api.verify(old, seal=True)
    with pytest.raises(RunError, match=r"model.joblib is a pickle.*--trust"):
        api.evaluate(old, split="val", eval_options=FAST)
    result = api.evaluate(old, split="val", eval_options=FAST, trust=True)
    assert result["splits"]["val"]["auroc"]["n"] > 0


def test_a_newer_format_is_refused_naming_the_version(run, tmp_path):
    import shutil

    new = tmp_path / "new"
    shutil.copytree(run, new)
    config = json.loads((new / CONFIG).read_text())
    config["run_format"] = RUN_FORMAT + 1
    (new / CONFIG).write_text(json.dumps(config))
    with pytest.raises(RunError, match=f"run format {RUN_FORMAT + 1}.*formats 1-{RUN_FORMAT}"):
        api.evaluate(new)


def test_an_unfinished_run_is_refused_with_how_to_resume(run, tmp_path):
    import shutil

    half = tmp_path / "half"
    shutil.copytree(run, half)
    RunFolder(half).set_status("running")
    for read in (api.evaluate, api.report, api.run_metrics):
        with pytest.raises(RunError, match="did not finish.*--resume"):
            read(half)


def test_readers_name_the_missing_or_damaged_file(run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="metrics.json cannot be read"):
        RunFolder(broken).metrics()
    (broken / "predictions.csv").unlink()
    with pytest.raises(RunError, match="has no predictions.csv"):
        RunFolder(broken).predictions()


@pytest.mark.parametrize("write", [
    lambda p: write_json(p, {"a": float("nan")}),          # NaN is not JSON
    lambda p: write_csv(p, "not a frame"),                  # type: ignore[arg-type]
    lambda p: write_npz(p, a=object()),                     # type: ignore[arg-type]
])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, write):
    path = tmp_path / "file"
    path.write_text("old")
    with pytest.raises((ValueError, AttributeError, TypeError)):
        write(path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_atomic_writers_round_trip(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_csv(tmp_path / "b.csv", pd.DataFrame({"x": [1, 2]}))
    write_npz(tmp_path / "c.npz", x=np.arange(3))
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert pd.read_csv(tmp_path / "b.csv")["x"].tolist() == [1, 2]
    assert np.load(tmp_path / "c.npz")["x"].tolist() == [0, 1, 2]


def test_temporary_files_left_by_a_killed_writer_are_swept(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".metrics.json.abc123.tmp", tmp_path / "sub" / ".model.json.x.tmp"]
    for p in stale:
        p.write_bytes(b"")
    (tmp_path / "metrics.json").write_text("{}")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["metrics.json"]
