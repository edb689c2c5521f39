"""The file envelope: arbitrary bytes round-trip, any changed byte or another key is refused
naming the file, a missing key names the variable to set, and rotation re-wraps the data key
only (the ciphertext is unchanged), file by file, going on past a file it cannot open."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.crypto import (
    MAGIC,
    MASTER_KEY_FILE_ENV,
    DecryptionError,
    EncryptionError,
    KeyMissingError,
    LocalKeyProvider,
    decrypt_bytes,
    encrypt_bytes,
    is_encrypted,
    read_bytes,
    rotate,
    write_file_atomic,
)
from iatros.crypto.envelope import Header, read_header
from tests.crypto.helpers import use_key

KEY = LocalKeyProvider(os.urandom(32))
OTHER = LocalKeyProvider(os.urandom(32))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(data):
    sealed = encrypt_bytes(data, KEY)
    assert sealed.startswith(MAGIC)
    assert decrypt_bytes(sealed, KEY) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=512), st.data())
def test_any_changed_byte_is_refused(data, draw):
    sealed = bytearray(encrypt_bytes(data, KEY))
    at = draw.draw(st.integers(0, len(sealed) - 1))
    sealed[at] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(EncryptionError) as caught:
        decrypt_bytes(bytes(sealed), KEY, name="p.csv")
    assert "p.csv" in str(caught.value)


def test_a_changed_ciphertext_byte_names_the_file_and_says_what_happened(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_bytes(encrypt_bytes(b"patient_id,score\nMRN-1,0.9\n", KEY))
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError) as caught:
        read_bytes(path, KEY)
    assert str(path) in str(caught.value)
    assert "authentication failed: the file was changed or the key is wrong" in str(caught.value)


def test_the_wrong_key_is_refused_naming_both_key_ids(tmp_path):
    path = tmp_path / "explanations.json"
    path.write_bytes(encrypt_bytes(b"{}", KEY))
    with pytest.raises(DecryptionError) as caught:
        read_bytes(path, OTHER)
    assert KEY.key_id in str(caught.value) and OTHER.key_id in str(caught.value)
    assert str(path) in str(caught.value)


def test_an_encrypted_file_without_a_key_names_the_file_and_the_variable(tmp_path, monkeypatch):
    use_key(monkeypatch, None)
    path = tmp_path / "predictions.csv"
    path.write_bytes(encrypt_bytes(b"a,b\n", KEY))
    with pytest.raises(KeyMissingError) as caught:
        read_bytes(path)
    assert str(path) in str(caught.value) and MASTER_KEY_FILE_ENV in str(caught.value)


def test_plain_files_are_read_as_they_are(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert not is_encrypted(path) and read_bytes(path) == b"a,b\n1,2\n"


def test_a_wrapped_key_moved_from_another_file_does_not_open():
    one, two = encrypt_bytes(b"one", KEY), encrypt_bytes(b"two", KEY)
    h1, h2 = read_header(one), read_header(two)
    moved = Header(h1.file_id, h1.nonce, h1.key_id, h2.wrapped_key, 0).encode() + one[h1.end:]
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt_bytes(moved, KEY)


def test_rotation_rewraps_the_key_and_keeps_the_ciphertext(tmp_path):
    path = write_file_atomic(tmp_path / "predictions.csv", encrypt_bytes(b"id\nMRN-7\n", KEY))
    before = path.read_bytes()
    report = rotate([path], KEY, OTHER)
    assert report.rewrapped == [str(path)] and not report.failed
    after = path.read_bytes()
    assert after[read_header(after).end:] == before[read_header(before).end:]
    assert read_header(after).key_id == OTHER.key_id
    assert read_bytes(path, OTHER) == b"id\nMRN-7\n"
    with pytest.raises(DecryptionError):
        read_bytes(path, KEY)


def test_rotation_goes_on_past_a_file_it_cannot_open_and_leaves_that_file_as_it_was(tmp_path):
    good = write_file_atomic(tmp_path / "a.csv", encrypt_bytes(b"a", KEY))
    corrupt = tmp_path / "b.csv"
    data = bytearray(encrypt_bytes(b"b", KEY))
    data[-1] ^= 1
    corrupt.write_bytes(bytes(data))
    foreign = write_file_atomic(tmp_path / "c.csv", encrypt_bytes(b"c", LocalKeyProvider(os.urandom(32))))
    plain = tmp_path / "d.csv"
    plain.write_bytes(b"d")
    untouched = {p: p.read_bytes() for p in (corrupt, foreign, plain)}
    report = rotate([corrupt, foreign, good, plain], KEY, OTHER)
    assert report.rewrapped == [str(good)]
    assert [p for p, _ in report.failed] == [str(corrupt), str(foreign)]
    assert all("authentication failed" in why for _, why in report.failed)
    assert report.skipped == [(str(plain), "not encrypted")]
    assert {p: p.read_bytes() for p in untouched} == untouched
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rotating_twice_skips_files_already_under_the_new_key(tmp_path):
    path = write_file_atomic(tmp_path / "a.csv", encrypt_bytes(b"a", KEY))
    rotate([path], KEY, OTHER)
    again = rotate([path], KEY, OTHER)
    assert again.skipped == [(str(path), "already under the new key")] and not again.failed
