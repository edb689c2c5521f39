"""Field-level encryption for values stored in database rows (patient ids in the service's
tables).

A table's values are protected by one random field key, stored wrapped by the master key
(`wrap_field_key`) beside the tables, so rotating the master key re-wraps that one key and
leaves every stored value (and the audit log's hash chain over them) as it is. Two keys are
derived from it with HKDF-SHA256: one seals values for display (`seal_field`: AES-256-GCM, a
fresh nonce each time, so equal values give different text) and one makes lookup tokens
(`lookup_token`: HMAC-SHA256, equal values give equal tokens, so a column of tokens can be
searched by equality without holding the value).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from iatros.crypto.keys import NONCE_BYTES, DecryptionError, EncryptionError, KeyProvider

SEALED_PREFIX = "enc1:"
TOKEN_PREFIX = "tok1:"
FIELD_CONTEXT = b"iatros field key"


def _hkdf(key: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"iatros-fields-v1", info=info).derive(key)


@dataclass(frozen=True)
class FieldKeys:
    """The two keys derived from one field key (never printed)."""

    key_id: str
    seal: bytes
    token: bytes

    def __repr__(self) -> str:
        return f"FieldKeys(key_id={self.key_id!r})"


def field_keys(field_key: bytes) -> FieldKeys:
    if len(field_key) != 32:
        raise EncryptionError("a field key is 32 bytes")
    key_id = "field-" + hmac.new(field_key, b"iatros field key id", hashlib.sha256).hexdigest()[:16]
    return FieldKeys(key_id, _hkdf(field_key, b"iatros seal field v1"),
                     _hkdf(field_key, b"iatros lookup token v1"))


def new_field_key() -> bytes:
    return secrets.token_bytes(32)


def wrap_field_key(field_key: bytes, provider: KeyProvider) -> str:
    """The field key wrapped by the master key, as text to store."""
    wrapped = provider.wrap(field_key, FIELD_CONTEXT)
    return json.dumps({"key_id": provider.key_id, "wrapped_key": base64.b64encode(wrapped).decode()},
                      separators=(",", ":"))


def wrapped_key_id(text: str) -> str:
    try:
        return str(json.loads(text)["key_id"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


def unwrap_field_key(text: str, provider: KeyProvider, where: str = "the field key") -> bytes:
    try:
        stored = json.loads(text)
        wrapped = base64.b64decode(stored["wrapped_key"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise DecryptionError(f"{where} is damaged (not the stored JSON)") from None
    try:
        return provider.unwrap(wrapped, FIELD_CONTEXT)
    except DecryptionError:
        raise DecryptionError(f"{where} does not open with the configured key {provider.key_id} "
                              f"(it was wrapped with key {stored.get('key_id')}); configure that "
                              f"key, or re-wrap with `iatros keys rotate`") from None


def seal_field(value: str, keys: FieldKeys, context: str = "") -> str:
    """`value` encrypted for storage as text (`enc1:` and base64); `context` (the row's lookup
    token, say) must be given again to open it."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = nonce + AESGCM(keys.seal).encrypt(nonce, value.encode("utf-8"), context.encode())
    return SEALED_PREFIX + base64.b64encode(sealed).decode()


def is_sealed(text: str | None) -> bool:
    return bool(text) and str(text).startswith(SEALED_PREFIX)


def open_field(text: str, keys: FieldKeys, context: str = "") -> str:
    """The value `seal_field` sealed; DecryptionError when it was changed or sealed under
    another key or context."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not is_sealed(text):
        raise DecryptionError("the stored value is not a sealed field")
    try:
        raw = base64.b64decode(text[len(SEALED_PREFIX):], validate=True)
        return AESGCM(keys.seal).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                         context.encode()).decode("utf-8")
    except (InvalidTag, ValueError):
        raise DecryptionError("a sealed field does not open: it was changed or the key is "
                              "wrong") from None


def lookup_token(value: str, keys: FieldKeys) -> str:
    """A keyed, deterministic token of `value` (`tok1:` and 64 hex digits): equal values give
    equal tokens; without the key a token says nothing about the value."""
    return TOKEN_PREFIX + hmac.new(keys.token, value.encode("utf-8"), hashlib.sha256).hexdigest()


def is_token(text: str | None) -> bool:
    return bool(text) and str(text).startswith(TOKEN_PREFIX)
