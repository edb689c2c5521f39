"""`tune --backend ray`: Ray Tune trials choose what the sequential search chooses, ASHA stops a
setting that falls behind, and a Ray address nobody answers is a clear error."""

from __future__ import annotations

import json
import socket

import pytest

from iatros import api
from iatros.errors import ConfigError, RunError

ray = pytest.importorskip("ray", reason="Ray Tune (iatros[scale]) is not installed")
FAST = api.EvalOptions(n_boot=10)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting Ray takes seconds)."""
    from iatros.pipeline.tuning_ray import connect

    connect(None, 2)
    yield
    ray.shutdown()


def _tuning(run) -> dict:
    return json.loads((run / "tuning.json").read_text())


def test_ray_trials_score_and_choose_exactly_as_the_sequential_search(tmp_path, local_ray):
    space = {"lr": [1e-4, 1e-2], "dropout": [0.0]}
    here = _tuning(api.tune("breast-cancer-wdbc", space, model="mlp", epochs=3,
                            out=tmp_path / "here", eval_options=FAST, register=False))
    on_ray = _tuning(api.tune("breast-cancer-wdbc", space, model="mlp", epochs=3,
                              out=tmp_path / "ray", eval_options=FAST, register=False,
                              backend="ray", workers=2))
    assert on_ray["backend"] == "ray" and here["backend"] == "local"
    assert [r["val"] for r in on_ray["trials"]] == pytest.approx([r["val"] for r in
                                                                  here["trials"]])
    assert [r["settings"] for r in on_ray["trials"]] == [r["settings"] for r in here["trials"]]
    assert on_ray["chosen"] == here["chosen"] == 1
    assert set(here) <= set(on_ray) and set(here["trials"][0]) <= set(on_ray["trials"][0])


def test_asha_stops_a_setting_that_falls_behind_and_never_chooses_it(tmp_path, local_ray):
    space = {"lr": [3e-2, 1e-6]}  # the second barely moves from its initial weights
    tuning = _tuning(api.tune("breast-cancer-wdbc", space, model="mlp", epochs=6,
                              out=tmp_path / "asha", eval_options=FAST, register=False,
                              backend="ray", workers=1, scheduler="asha"))
    good, weak = tuning["trials"]
    assert good["val"] is not None and tuning["chosen"] == 0
    assert weak["val"] is None and weak["stopped_after_epoch"] < 6


def test_a_ray_address_nobody_answers_is_a_clear_error_not_a_hang():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(RunError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        api.tune("breast-cancer-wdbc", {"lr": [1e-3]}, model="mlp", epochs=1, backend="ray",
                 address=f"127.0.0.1:{port}", register=False)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        api.tune("breast-cancer-wdbc", {"lr": [1e-3]}, model="mlp", epochs=1, backend="ray",
                 address="nowhere", register=False)
    with pytest.raises(ConfigError, match="belong to --backend ray"):
        api.tune("breast-cancer-wdbc", {"lr": [1e-3]}, model="mlp", scheduler="asha",
                 register=False)
