"""A run folder is data, never code: crafted model files cannot execute anything, a changed file
is detected before it is used, and the registry fails early, hides passwords and never loses a
finished run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import pytest
import torch

from iatros import api
from iatros.errors import ConfigError, RunError
from iatros.run_folder import RunFolder
from iatros.train.trainer import Callback
from tests.cli_run import run_cli

FAST = api.EvalOptions(n_boot=20)


class _Payload:
    """Unpickling this creates the marker file: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _Foreign:
    """A type no iatros model is made of."""


def _copy(run: Path, where: Path) -> Path:
    shutil.copytree(run, where)
    return where


@pytest.fixture(scope="module")
def sklearn_run(tmp_path_factory):
    return api.train("breast-cancer-wdbc", model="logreg", out=tmp_path_factory.mktemp("s") / "r",
                     eval_options=FAST, register=False)


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    return api.train("breast-cancer-wdbc", model="mlp", epochs=2, out=tmp_path_factory.mktemp("t") / "r",
                     eval_options=FAST, register=False)


def test_a_crafted_model_joblib_cannot_execute_code(sklearn_run, tmp_path):
    run = _copy(sklearn_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    (run / "model.skops").unlink()
    joblib.dump(_Payload(marker), run / "model.joblib")
    RunFolder(run).seal()  # even a folder whose manifest matches is refused: pickles are not loaded
    with pytest.raises(RunError, match="model.joblib is a pickle"):
        api.evaluate(run, split="val", eval_options=FAST)
    assert not marker.exists()


def test_a_crafted_skops_model_with_foreign_types_is_refused(sklearn_run, tmp_path):
    import skops.io as sio

    run = _copy(sklearn_run, tmp_path / "run")
    sio.dump({"estimator": _Foreign()}, run / "model.skops")
    RunFolder(run).seal()
    with pytest.raises(RunError, match="refusing to load.*_Foreign"):
        api.predict(run, [_csv(tmp_path)])


def _csv(tmp_path: Path) -> Path:
    from iatros.tasks import get_task

    data = get_task("breast-cancer-wdbc").load(tmp_path)
    path = tmp_path / "rows.csv"
    import pandas as pd

    pd.DataFrame(data.inputs[:3], columns=data.feature_names).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_a_crafted_checkpoint_cannot_execute_code(torch_run, tmp_path, name):
    run = _copy(torch_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(marker)}, run / "checkpoints" / name)
    RunFolder(run).seal()
    if name == "best.pt":
        with pytest.raises(RunError, match="cannot read checkpoint .*best.pt safely"):
            api.evaluate(run, split="val", eval_options=FAST)
    else:
        RunFolder(run).set_status("running")
        with pytest.raises(RunError, match="cannot read checkpoint .*last.pt safely"):
            api.train("breast-cancer-wdbc", out=run, resume=True, eval_options=FAST, register=False)
    assert not marker.exists()


def test_a_changed_artifact_is_detected_and_refused_unless_trusted(sklearn_run, tmp_path, capsys):
    run = _copy(sklearn_run, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["threshold"] = 0.01  # quietly flag everyone
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "extra.bin").write_bytes(b"\0")
    with pytest.raises(RunError, match=r"does not match its manifest.json \(changed: metrics.json; "
                                       r"added: extra.bin\)"):
        api.predict(run, [_csv(tmp_path)])
    assert api.predict(run, [_csv(tmp_path)], trust=True)[0]["threshold"] == 0.01
    code = run_cli(capsys, "verify", str(run))[0]
    assert code == 1
    (run / "extra.bin").unlink()
    assert api.verify(run)["changed"] == ["metrics.json"]


def test_verify_passes_an_untouched_run_and_reports_its_registry_record(tmp_path, capsys):
    run = api.train("breast-cancer-wdbc", model="logreg", out=tmp_path / "r", eval_options=FAST)
    code, out, _ = run_cli(capsys, "verify", str(run))
    assert code == 0 and out.startswith("ok:") and "matches the registry" in out
    assert json.loads((run / "status.json").read_text())["registered"] is True


def test_promotion_refuses_a_run_changed_since_registration(tmp_path):
    run = api.train("breast-cancer-wdbc", model="logreg", out=tmp_path / "r", eval_options=FAST)
    (run / "calibration.json").write_text(json.dumps({"type": "identity"}))
    RunFolder(run).seal()  # even re-sealed, the registry remembers the original manifest
    with pytest.raises(RunError, match="changed since it was registered"):
        api.promote(run, "wdbc-risk")
    assert api.promote(run, "wdbc-risk", trust=True).version == 1


def test_an_unusable_registry_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("IATROS_DATABASE_URL", f"sqlite:///{tmp_path / 'no-such-dir' / 'r.db'}")
    with pytest.raises(ConfigError, match="folder that does not exist"):
        api.train("breast-cancer-wdbc", model="logreg", out=tmp_path / "r", eval_options=FAST)
    assert not (tmp_path / "r").exists() and not (tmp_path / "no-such-dir").exists()


def test_a_database_password_never_appears_in_messages(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IATROS_DATABASE_URL", "postgresql+psycopg://iatros:S3cretPw@127.0.0.1:9/x")
    code, out, err = run_cli(capsys, "runs")
    assert code == 2 and "cannot open the registry" in err
    assert "S3cretPw" not in out + err and "***" in err


def test_a_run_that_could_not_be_registered_stays_complete_and_registers_later(tmp_path,
                                                                                monkeypatch):
    from iatros.registry import Registry

    original = Registry.register_run

    def down(self, *args, **kwargs):
        raise ConfigError("cannot open the registry database (simulated outage)")
    monkeypatch.setattr(Registry, "register_run", down)
    with pytest.raises(RunError, match="finished but was not registered.*runs register"):
        api.train("breast-cancer-wdbc", model="logreg", out=tmp_path / "r", eval_options=FAST)
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "complete" and status["registered"] is False
    monkeypatch.setattr(Registry, "register_run", original)
    entry = api.register(tmp_path / "r")
    assert [e.id for e in api.runs()] == [entry.id]
    assert json.loads((tmp_path / "r" / "status.json").read_text())["registered"] is True


class _Stop(Callback):
    def on_epoch_end(self, trainer, record) -> None:
        raise KeyboardInterrupt


def test_temporary_files_of_a_killed_write_are_removed_on_resume(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        api.train("breast-cancer-wdbc", epochs=2, out=run, callbacks=[_Stop()], eval_options=FAST,
                  register=False)
    stale = run / ".metrics.json.k1ll3d.tmp"
    stale.write_bytes(b"")
    api.train("breast-cancer-wdbc", out=run, resume=True, eval_options=FAST, register=False)
    assert not stale.exists() and RunFolder(run).is_complete
