"""Service fixtures: tiny real runs (trained once per session), promoted into each test's own
registry, an app with users of every role, and helpers to log in."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs iatros[serve]")

from fastapi.testclient import TestClient  # noqa: E402

from iatros import api  # noqa: E402
from iatros.serve import ServeConfig, create_app  # noqa: E402
from iatros.settings import get_settings  # noqa: E402

SECRET = "test-secret-" + "s" * 40
PASSWORD = "correct-horse-battery"
DEID_KEY = "k" * 32
FAST = api.EvalOptions(n_boot=30)


@pytest.fixture(scope="session")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real logistic regression on the Wisconsin breast cancer table (ships with scikit-learn)."""
    out = tmp_path_factory.mktemp("wdbc") / "run"
    return api.train("breast-cancer-wdbc", model="logreg", out=out, eval_options=FAST,
                     register=False)


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch ResNet on BreastMNIST (28 px ultrasound) from the shared data."""
    root = _data_root()
    if not (root / "medmnist" / "breastmnist.npz").is_file():
        pytest.skip(f"BreastMNIST is absent under {root}/medmnist (set IATROS_DATA)")
    out = tmp_path_factory.mktemp("breast") / "run"
    return api.train("breast-ultrasound", data_root=root, epochs=1, params={"widen_factor": 0.25},
                     out=out, eval_options=FAST, register=False)


@pytest.fixture(scope="session")
def fhir_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A readmission model trained on the five real Synthea FHIR bundles of the shared data
    (too few patients to predict anything: it exercises the path, not the quality)."""
    import shutil

    source = _data_root() / "synthea_sample" / "fhir"
    if not source.is_dir():
        pytest.skip(f"{source} is absent (set IATROS_DATA)")
    copy = tmp_path_factory.mktemp("fhir") / "bundles"
    shutil.copytree(source, copy)
    run = api.train(f"ehr:{copy}", model="gbm", out=copy.parent / "run", eval_options=FAST,
                    task_options={"target": "readmit_30d"}, register=False)
    return run, sorted(copy.glob("*.json"))


def _data_root() -> Path:
    return Path(os.environ.get("IATROS_DATA", Path(__file__).resolve().parents[2].parent
                               / "shared" / "data"))


def promote(run: Path, name: str, stage: str = "production") -> Any:
    settings = get_settings()
    api.register(run, settings)
    return api.promote(run, name, stage, settings=settings)


def make_app(**overrides: Any) -> Any:
    config = ServeConfig(secret=SECRET, settings=get_settings(), deid_key=overrides.pop("deid_key", None),
                         reload_seconds=0.0, **overrides)
    return create_app(config)


@pytest.fixture
def app() -> Any:
    application = make_app()
    store = application.state.store
    store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    store.add_user("remy", PASSWORD, "researcher")
    store.add_user("ada", PASSWORD, "admin")
    return application


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def token(client: TestClient, user: str, password: str = PASSWORD) -> str:
    r = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def as_user(client: TestClient) -> Callable[[str], dict[str, str]]:
    """Authorization headers for a user of the `app` fixture."""
    return lambda user: {"Authorization": f"Bearer {token(client, user)}"}


@pytest.fixture(scope="session")
def ecg_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-epoch 1-D ResNet on 40 real PhysioNet 2017 single-lead ECGs, and the header of
    one record it was not trained on."""
    real = _data_root() / "physionet2017_af" / "training2017"
    if not (real / "REFERENCE.csv").is_file():
        pytest.skip(f"PhysioNet 2017 records are absent under {real}")
    rows = [line.split(",") for line in (real / "REFERENCE.csv").read_text().split()]
    chosen = [r for label, n in {"N": 16, "A": 10, "O": 10, "~": 4}.items()
              for r in [x for x in rows if x[1] == label][:n]]
    root = tmp_path_factory.mktemp("af")
    train = root / "physionet2017_af" / "training2017"
    train.mkdir(parents=True)
    for name, _ in chosen:
        for suffix in (".hea", ".mat"):
            (train / f"{name}{suffix}").symlink_to(real / f"{name}{suffix}")
    (train / "REFERENCE.csv").write_text("".join(f"{n},{label}\n" for n, label in chosen))
    run = api.train("af-ecg", data_root=root, model="resnet1d", epochs=1, params={"width": 8},
                    out=root / "run", eval_options=FAST, register=False)
    unseen = next(name for name, _ in rows if name not in {n for n, _ in chosen})
    return run, real / f"{unseen}.hea"


@pytest.fixture(scope="session")
def note_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MTSamples specialty classifier (TF-IDF logistic regression) on the shared data."""
    root = _data_root()
    if not (root / "mtsamples").is_dir():
        pytest.skip(f"MTSamples is absent under {root}")
    return api.train("mtsamples-specialty", data_root=root, out=tmp_path_factory.mktemp("mts") / "run",
                     eval_options=FAST, register=False)
