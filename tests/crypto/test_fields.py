"""Sealed fields and lookup tokens: ids round-trip, equal ids give equal tokens, sealing is
randomised and bound to its context, and the field key re-wraps under a new master key without
changing what was stored."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.crypto import (
    DecryptionError,
    LocalKeyProvider,
    field_keys,
    lookup_token,
    new_field_key,
    open_field,
    seal_field,
    unwrap_field_key,
    wrap_field_key,
)

KEYS = field_keys(new_field_key())


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_round_trips_through_a_sealed_field(value):
    assert open_field(seal_field(value, KEYS, "ctx"), KEYS, "ctx") == value


def test_sealing_twice_differs_but_tokens_are_equal_and_keyed():
    assert seal_field("MRN-1", KEYS) != seal_field("MRN-1", KEYS)
    assert lookup_token("MRN-1", KEYS) == lookup_token("MRN-1", KEYS) != lookup_token("MRN-2", KEYS)
    assert lookup_token("MRN-1", KEYS) != lookup_token("MRN-1", field_keys(new_field_key()))
    assert "MRN-1" not in lookup_token("MRN-1", KEYS) + seal_field("MRN-1", KEYS)


def test_a_sealed_field_does_not_open_with_another_context_key_or_a_changed_byte():
    sealed = seal_field("MRN-1", KEYS, "tok1:a")
    with pytest.raises(DecryptionError):
        open_field(sealed, KEYS, "tok1:b")
    with pytest.raises(DecryptionError):
        open_field(sealed, field_keys(new_field_key()), "tok1:a")
    changed = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(DecryptionError):
        open_field(changed, KEYS, "tok1:a")


def test_the_field_key_rewraps_under_a_new_master_key_unchanged():
    old, new = LocalKeyProvider(os.urandom(32)), LocalKeyProvider(os.urandom(32))
    key = new_field_key()
    stored = wrap_field_key(key, old)
    assert unwrap_field_key(wrap_field_key(unwrap_field_key(stored, old), new), new) == key
    with pytest.raises(DecryptionError, match=old.key_id):
        unwrap_field_key(stored, new)
