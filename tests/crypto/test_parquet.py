"""Parquet modular encryption through the key provider: a table round-trips, the file is
encrypted (PARE), and it is refused without the key or with another one."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iatros.crypto import MASTER_KEY_FILE_ENV, DecryptionError, KeyMissingError, LocalKeyProvider
from iatros.crypto.parquet import is_encrypted_parquet, read_table, rotate_parquet, write_table
from tests.crypto.helpers import use_key

KEY = LocalKeyProvider(os.urandom(32))
TABLE = pa.table({"subject_id": ["MRN-1", "MRN-2"], "value": [1.5, None]})


def test_a_table_round_trips_encrypted(tmp_path):
    path = tmp_path / "events.parquet"
    write_table(TABLE, path, KEY)
    assert is_encrypted_parquet(path) and b"MRN-1" not in path.read_bytes()
    assert read_table(path, KEY).equals(TABLE)
    with pytest.raises(OSError):
        pq.read_table(path)  # plain pyarrow cannot read it


def test_without_the_key_or_with_another_it_is_refused_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "events.parquet"
    write_table(TABLE, path, KEY)
    use_key(monkeypatch, None)
    with pytest.raises(KeyMissingError, match=MASTER_KEY_FILE_ENV) as caught:
        read_table(path)
    assert str(path) in str(caught.value)
    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        read_table(path, LocalKeyProvider(os.urandom(32)))
    assert str(path) in str(caught.value) and KEY.key_id in str(caught.value)


def test_rotation_reencrypts_with_the_new_key_and_keeps_the_rows(tmp_path):
    path = tmp_path / "stays.parquet"
    write_table(TABLE, path, KEY)
    new = LocalKeyProvider(os.urandom(32))
    assert rotate_parquet(path, KEY, new)
    assert read_table(path, new).equals(TABLE)
    with pytest.raises(DecryptionError):
        read_table(path, KEY)
