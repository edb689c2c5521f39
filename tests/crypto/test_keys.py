"""Master keys: from IATROS_MASTER_KEY or a private key file, none by default, refused when
malformed or readable by others, and never repeated in a message or a repr."""

from __future__ import annotations

import base64
import os

import pytest

from iatros.crypto import (
    MASTER_KEY_ENV,
    MASTER_KEY_FILE_ENV,
    KeyConfigError,
    KeyMissingError,
    LocalKeyProvider,
    active_provider,
    require_provider,
    set_provider,
)
from tests.crypto.helpers import use_key, write_key


def test_encryption_is_off_without_a_configured_key(monkeypatch):
    use_key(monkeypatch, None)
    assert active_provider() is None
    with pytest.raises(KeyMissingError, match=MASTER_KEY_FILE_ENV):
        require_provider("predictions.csv")


def test_a_key_from_the_environment_as_hex_or_base64_gives_the_same_key_id(monkeypatch):
    raw = os.urandom(32)
    monkeypatch.setenv(MASTER_KEY_ENV, raw.hex())
    by_hex = active_provider()
    monkeypatch.setenv(MASTER_KEY_ENV, base64.b64encode(raw).decode())
    by_base64 = active_provider()
    assert by_hex is not None and by_base64 is not None
    assert by_hex.key_id == by_base64.key_id == LocalKeyProvider(raw).key_id


def test_a_key_file_is_read_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    first = use_key(monkeypatch, write_key(tmp_path / "a.key"))
    assert active_provider().key_id == first.key_id
    second = use_key(monkeypatch, write_key(tmp_path / "b.key"))
    assert active_provider().key_id == second.key_id != first.key_id


def test_a_key_file_readable_by_group_or_others_is_refused(tmp_path, monkeypatch):
    path = write_key(tmp_path / "open.key", mode=0o644)
    monkeypatch.setenv(MASTER_KEY_FILE_ENV, str(path))
    with pytest.raises(KeyConfigError, match="chmod 600") as caught:
        active_provider()
    assert "0644" in str(caught.value) and path.read_text().strip() not in str(caught.value)


@pytest.mark.parametrize("text", ["too-short", "zz" * 32, base64.b64encode(b"x" * 31).decode()])
def test_a_malformed_key_is_refused_without_repeating_it(monkeypatch, text):
    monkeypatch.setenv(MASTER_KEY_ENV, text)
    with pytest.raises(KeyConfigError) as caught:
        active_provider()
    assert text not in str(caught.value) and MASTER_KEY_ENV in str(caught.value)


def test_both_variables_set_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(MASTER_KEY_FILE_ENV, str(write_key(tmp_path / "k")))
    monkeypatch.setenv(MASTER_KEY_ENV, os.urandom(32).hex())
    with pytest.raises(KeyConfigError, match="set only one"):
        active_provider()


def test_a_missing_key_file_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(MASTER_KEY_FILE_ENV, str(tmp_path / "nowhere.key"))
    with pytest.raises(KeyConfigError, match="nowhere.key"):
        active_provider()


def test_the_key_never_shows_in_repr_or_id():
    raw = os.urandom(32)
    provider = LocalKeyProvider(raw)
    shown = repr(provider) + provider.key_id
    for form in (raw.hex(), base64.b64encode(raw).decode()):
        assert form not in shown and form[:12] not in shown


def test_a_provider_set_in_code_replaces_the_environment(monkeypatch):
    class Kms:  # a stand-in for a real KMS client
        key_id = "kms:test"

        def wrap(self, data_key: bytes, context: bytes = b"") -> bytes:
            return data_key[::-1]

        def unwrap(self, wrapped: bytes, context: bytes = b"") -> bytes:
            return wrapped[::-1]

    use_key(monkeypatch, None)
    set_provider(Kms())
    try:
        assert active_provider().key_id == "kms:test"
    finally:
        set_provider(None)
    assert active_provider() is None
