"""Run folders at rest: with a master key, the files holding patient rows (predictions,
explanations, survival curves) are written encrypted under their usual names and read back
identically; without the key they are refused naming the file and the variable; config,
metrics and the report stay plain; the manifest seals them and survives a key rotation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iatros.crypto import (
    MASTER_KEY_FILE_ENV,
    DecryptionError,
    KeyMissingError,
    is_encrypted,
    rotate,
)
from iatros.run_folder import (
    CONFIG,
    CURVES,
    CV_PREDICTIONS,
    EXPLANATIONS,
    METRICS,
    PREDICTIONS,
    RUN_FORMAT,
    RunFolder,
    read_csv,
    write_csv,
    write_json,
    write_npz,
)
from tests.crypto.helpers import use_key, write_key

FRAME = pd.DataFrame({"split": ["test", "test", "val"], "row": [0, 1, 2],
                      "patient_id": ["MRN-0042", "007", "MRN-9"],
                      "target": [1, 0, 1], "score": [0.91, 0.12, 0.5]})
EXPLAINED = [{"stay_id": "MRN-0042/1", "drivers": [{"code": "HR", "effect": 0.2}]}]


def _run(path) -> RunFolder:
    """A finished run folder written through the RunFolder writers (no training)."""
    folder = RunFolder(path)
    folder.path.mkdir(parents=True)
    write_json(folder.file(CONFIG), {"task": "t", "model": "m", "run_format": RUN_FORMAT})
    write_json(folder.file(METRICS), {"primary_metric": "auroc", "splits": {}})
    write_csv(folder.file(PREDICTIONS), FRAME)
    write_csv(folder.file(CV_PREDICTIONS), FRAME)
    write_json(folder.file(EXPLANATIONS), EXPLAINED)
    write_npz(folder.file(CURVES), times=np.array([1.0, 2.0]), test=np.array([[0.9, 0.8]]))
    (folder.path / "report.html").write_text("<html>no identifiers</html>")
    folder.seal()
    folder.set_status("complete")
    return folder


@pytest.fixture
def key(tmp_path, monkeypatch):
    return use_key(monkeypatch, write_key(tmp_path / "master.key"))


def test_patient_files_are_written_encrypted_and_read_back_identically(tmp_path, key):
    folder = _run(tmp_path / "run")
    for name in (PREDICTIONS, CV_PREDICTIONS, EXPLANATIONS, CURVES):
        assert is_encrypted(folder.file(name)), name
        assert b"MRN-0042" not in folder.file(name).read_bytes()
    for name in (CONFIG, METRICS, "status.json", "manifest.json", "report.html"):
        assert not is_encrypted(folder.file(name)), name
    pd.testing.assert_frame_equal(folder.predictions(), FRAME.astype({"patient_id": str}))
    pd.testing.assert_frame_equal(read_csv(folder.file(CV_PREDICTIONS), dtype={"patient_id": str}),
                                  FRAME)
    assert folder.explanations() == EXPLAINED
    curves = folder.curves()
    assert curves["times"].tolist() == [1.0, 2.0] and curves["test"].tolist() == [[0.9, 0.8]]
    folder.require_intact()
    assert not any(folder.verify().values())


def test_without_a_key_run_folders_are_written_plain_as_before(tmp_path, monkeypatch):
    use_key(monkeypatch, None)
    folder = _run(tmp_path / "run")
    assert not any(is_encrypted(folder.file(n)) for n in (PREDICTIONS, EXPLANATIONS, CURVES))
    assert pd.read_csv(folder.file(PREDICTIONS))["patient_id"].tolist()[0] == "MRN-0042"


def test_an_encrypted_run_folder_without_the_key_is_refused_naming_file_and_variable(tmp_path, key,
                                                                                      monkeypatch):
    folder = _run(tmp_path / "run")
    use_key(monkeypatch, None)
    for read, name in ((folder.predictions, PREDICTIONS), (folder.explanations, EXPLANATIONS),
                       (folder.curves, CURVES)):
        with pytest.raises(KeyMissingError) as caught:
            read()
        assert str(folder.file(name)) in str(caught.value)
        assert MASTER_KEY_FILE_ENV in str(caught.value)
    assert folder.metrics()["primary_metric"] == "auroc"  # plain files still read
    folder.require_intact()  # the manifest is checked without the key


def test_an_encrypted_run_folder_with_another_key_is_refused(tmp_path, key, monkeypatch):
    folder = _run(tmp_path / "run")
    use_key(monkeypatch, write_key(tmp_path / "other.key"))
    with pytest.raises(DecryptionError, match="authentication failed"):
        folder.predictions()


def test_a_changed_encrypted_file_is_refused_and_the_manifest_names_it(tmp_path, key):
    folder = _run(tmp_path / "run")
    path = folder.file(PREDICTIONS)
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError, match=f"{path}: authentication failed"):
        folder.predictions()
    assert folder.verify()["changed"] == [PREDICTIONS]


def test_a_failed_encrypted_write_leaves_the_old_file(tmp_path, key, monkeypatch):
    folder = _run(tmp_path / "run")
    before = folder.file(PREDICTIONS).read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("iatros.run_folder.encrypt_bytes", broken)
    with pytest.raises(RuntimeError):
        write_csv(folder.file(PREDICTIONS), FRAME.head(1))
    assert folder.file(PREDICTIONS).read_bytes() == before
    assert not list(folder.path.glob(".*.tmp"))


def test_rotation_keeps_the_run_sealed_and_readable_with_the_new_key_only(tmp_path, key, monkeypatch):
    folder = _run(tmp_path / "run")
    digest = folder.manifest_digest()
    new_path = write_key(tmp_path / "new.key")
    new = use_key(monkeypatch, new_path)
    report = rotate([folder.file(n) for n in (PREDICTIONS, EXPLANATIONS, CURVES)], key, new)
    assert len(report.rewrapped) == 3 and not report.failed
    folder.require_intact()
    assert folder.manifest_digest() == digest  # the registry's record still matches
    pd.testing.assert_frame_equal(folder.predictions(), FRAME.astype({"patient_id": str}))
    use_key(monkeypatch, tmp_path / "master.key")
    with pytest.raises(DecryptionError):
        folder.predictions()
    assert json.loads(folder.file(CONFIG).read_text())["task"] == "t"


def test_a_misconfigured_key_fails_when_a_run_starts_not_when_it_ends(tmp_path, monkeypatch):
    from iatros.crypto import KeyConfigError

    use_key(monkeypatch, None)
    monkeypatch.setenv(MASTER_KEY_FILE_ENV, str(write_key(tmp_path / "open.key", mode=0o644)))
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    with pytest.raises(KeyConfigError, match="chmod 600"):
        folder.set_status("running")
