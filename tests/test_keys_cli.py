"""`iatros keys new-master` and `iatros keys rotate`: a private key file that is never
overwritten, rotation over run folders and event folders that reports what it re-wrapped,
skipped and could not open, and no key ever printed."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from typer.testing import CliRunner

from iatros.cli import app as cli
from iatros.crypto import (
    MASTER_KEY_FILE_ENV,
    KeyConfigError,
    KeyMissingError,
    LocalKeyProvider,
    is_encrypted,
    read_bytes,
)
from iatros.errors import ConfigError
from iatros.run_folder import PREDICTIONS, RunFolder, write_csv
from tests.crypto.helpers import use_key, write_key

runner = CliRunner()


def _secrets(*paths) -> list[str]:
    """Every written form of the keys in `paths` (and a prefix of each)."""
    out = []
    for path in paths:
        text = path.read_text().strip()
        out += [text, text[:16], LocalKeyProvider.from_file(path)._key.hex()[:16]]
    return out


def test_new_master_writes_a_private_key_file_and_prints_only_its_id(tmp_path):
    out = tmp_path / "master.key"
    result = runner.invoke(cli, ["keys", "new-master", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key_id = LocalKeyProvider.from_file(out).key_id
    assert key_id in result.output
    assert not any(s in result.output for s in _secrets(out))


def test_new_master_never_overwrites_a_key_file(tmp_path):
    out = write_key(tmp_path / "master.key")
    before = out.read_bytes()
    result = runner.invoke(cli, ["keys", "new-master", "--out", str(out)])
    assert isinstance(result.exception, ConfigError) and "never overwritten" in str(result.exception)
    assert out.read_bytes() == before


def test_rotate_walks_folders_reports_each_file_and_prints_no_key(tmp_path, monkeypatch):
    old_file, new_file = write_key(tmp_path / "old.key"), write_key(tmp_path / "new.key")
    use_key(monkeypatch, old_file)
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        write_csv(RunFolder(runs / name).file(PREDICTIONS), pd.DataFrame({"patient_id": ["MRN-1"]}))
    corrupt = RunFolder(runs / "b").file(PREDICTIONS)
    data = bytearray(corrupt.read_bytes())
    data[-1] ^= 1
    corrupt.write_bytes(bytes(data))
    use_key(monkeypatch, None)
    (runs / "c").mkdir()
    write_csv(RunFolder(runs / "c").file(PREDICTIONS), pd.DataFrame({"patient_id": ["MRN-2"]}))
    use_key(monkeypatch, old_file)

    result = runner.invoke(cli, ["keys", "rotate", str(runs), "--new-key-file", str(new_file)])
    assert result.exit_code == 1, result.output
    assert f"failed: {corrupt}: " in result.output and "authentication failed" in result.output
    assert "1 file(s) re-wrapped, skipped: 1 not encrypted, 1 failed" in result.output
    assert not any(s in result.output for s in _secrets(old_file, new_file))
    good = runs / "a" / PREDICTIONS
    assert is_encrypted(good) and b"MRN-1" in read_bytes(good, LocalKeyProvider.from_file(new_file))
    assert corrupt.read_bytes() == bytes(data)

    as_json = runner.invoke(cli, ["keys", "rotate", str(runs), "--new-key-file", str(new_file),
                                  "--json"])
    report = json.loads(as_json.stdout)
    assert {s["reason"] for s in report["skipped"]} == {"not encrypted", "already under the new key"}


def test_rotate_needs_the_current_key_and_a_different_private_new_one(tmp_path, monkeypatch):
    new_file = write_key(tmp_path / "new.key")
    use_key(monkeypatch, None)
    result = runner.invoke(cli, ["keys", "rotate", str(tmp_path), "--new-key-file", str(new_file)])
    assert isinstance(result.exception, KeyMissingError)
    assert MASTER_KEY_FILE_ENV in str(result.exception)
    use_key(monkeypatch, new_file)
    result = runner.invoke(cli, ["keys", "rotate", str(tmp_path), "--new-key-file", str(new_file)])
    assert isinstance(result.exception, KeyConfigError) and "already configured" in str(result.exception)
    use_key(monkeypatch, write_key(tmp_path / "old.key"))
    os.chmod(new_file, 0o644)
    result = runner.invoke(cli, ["keys", "rotate", str(tmp_path), "--new-key-file", str(new_file)])
    assert isinstance(result.exception, KeyConfigError) and "chmod 600" in str(result.exception)


@pytest.mark.parametrize("command", [["keys", "--help"], ["keys", "rotate", "--help"]])
def test_help_says_rotate_is_about_the_data_encryption_key_not_api_keys(command):
    result = runner.invoke(cli, command, env={"COLUMNS": "200"})
    assert "master key" in result.output and "API key" in result.output


def test_rotate_with_service_rewraps_the_tables_field_key(tmp_path, monkeypatch):
    pytest.importorskip("argon2", reason="the service tables need iatros[serve]")
    from iatros.api import service

    old_file, new_file = write_key(tmp_path / "old.key"), write_key(tmp_path / "new.key")
    use_key(monkeypatch, old_file)
    service.assign_patients("icu", ["MRN-1"])
    result = runner.invoke(cli, ["keys", "rotate", "--service", "--new-key-file", str(new_file)])
    assert result.exit_code == 0, result.output
    assert "service tables: re-wrapped" in result.output
    use_key(monkeypatch, new_file)
    assert service.assign_patients("icu", ["MRN-1"]) == 0  # still found under the new key


def test_rotate_reencrypts_a_converted_event_folder_and_keeps_its_cache(tmp_path, monkeypatch):
    from iatros.data.ehr import convert, get_source, physionet2012
    from tests.data.ehr.builders import physionet_record, record_calls, write_physionet_set

    old_file, new_file = write_key(tmp_path / "old.key"), write_key(tmp_path / "new.key")
    use_key(monkeypatch, old_file)
    source = tmp_path / "in"
    write_physionet_set(source, "a", {1: physionet_record(1)}, ["1,6,1,5,-1,0"])
    first = convert(get_source("physionet2012"), source, tmp_path / "store" / "events")
    result = runner.invoke(cli, ["keys", "rotate", str(tmp_path / "store"), "--new-key-file",
                                 str(new_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["rewrapped"]) == len(list((tmp_path / "store").rglob("*.parquet")))
    use_key(monkeypatch, new_file)
    calls = record_calls(monkeypatch, physionet2012, "convert_set")
    again = convert(get_source("physionet2012"), source, tmp_path / "store" / "events")
    assert again.manifest["from_cache"] and calls == [] and again.events.equals(first.events)
