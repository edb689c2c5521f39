"""Master keys: the `KeyProvider` protocol (wrap and unwrap a data key, name the key by id) and
`LocalKeyProvider`, whose 32-byte key comes from `IATROS_MASTER_KEY` or the file named by
`IATROS_MASTER_KEY_FILE`. There is no default key: without one, encryption is off. A key's
bytes never appear in a message, a log line or a `repr`; only its id (a keyed fingerprint)
does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from iatros.errors import ConfigError, IatrosError

MASTER_KEY_ENV = "IATROS_MASTER_KEY"
MASTER_KEY_FILE_ENV = "IATROS_MASTER_KEY_FILE"
KEY_BYTES = 32
NONCE_BYTES = 12
HOW_TO_SET = (f"set {MASTER_KEY_FILE_ENV} to the key file (or {MASTER_KEY_ENV} to the key "
              f"itself); `iatros keys new-master --out FILE` makes one")


class EncryptionError(IatrosError):
    """Encrypted data cannot be read or written (the message names the file, never a key)."""


class KeyMissingError(EncryptionError):
    """The data is encrypted and no master key is configured."""


class DecryptionError(EncryptionError):
    """Authentication failed: the data was changed, or the key is not the one it was written
    with."""


class KeyConfigError(EncryptionError, ConfigError):
    """The configured key cannot be used (bad length or encoding, a file others can read)."""


@runtime_checkable
class KeyProvider(Protocol):
    """What encryption needs from a key-management system: wrap (encrypt) a random data key
    under the master key and unwrap it again, and a stable, non-secret id of the master key.
    `context` is authenticated with the wrapped key (a file's id, a table's name): a wrapped
    key moved to another context does not unwrap. A real KMS (Vault transit, AWS/GCP/Azure
    KMS, an HSM) implements these two calls with its own encrypt/decrypt and is installed with
    `iatros.crypto.set_provider`; the master key then never leaves the KMS."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes = b"") -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes = b"") -> bytes: ...


def _aesgcm(key: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


class LocalKeyProvider:
    """A master key held in this process (from the environment or a key file), wrapping data
    keys with AES-256-GCM."""

    def __init__(self, key: bytes, *, source: str = "a key") -> None:
        if len(key) != KEY_BYTES:
            raise KeyConfigError(f"{source} is {len(key)} bytes; a master key is {KEY_BYTES} bytes "
                                 f"(64 hex digits or 44 base64 characters)")
        self._key = key
        self.source = source
        self._key_id = "local-" + hmac.new(key, b"iatros master key id", hashlib.sha256).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_id={self._key_id!r}, source={self.source!r})"

    def _aad(self, context: bytes) -> bytes:
        return b"iatros-wrap-v1\x00" + self._key_id.encode() + b"\x00" + context

    def wrap(self, data_key: bytes, context: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + _aesgcm(self._key).encrypt(nonce, data_key, self._aad(context))

    def unwrap(self, wrapped: bytes, context: bytes = b"") -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return _aesgcm(self._key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                              self._aad(context))
        except (InvalidTag, ValueError):
            raise DecryptionError(f"the data key does not unwrap with key {self._key_id}") from None

    @classmethod
    def from_text(cls, text: str, source: str) -> LocalKeyProvider:
        return cls(parse_key(text, source), source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> LocalKeyProvider:
        """The key in a file that only its owner may read (mode 0600 or stricter)."""
        path = Path(path).expanduser()
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyConfigError(f"key file {path} does not exist; {HOW_TO_SET}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise KeyConfigError(f"key file {path} cannot be read ({type(e).__name__})") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyConfigError(f"key file {path} is open to group or others (mode "
                                 f"{stat.S_IMODE(mode):04o}); make it private with `chmod 600 "
                                 f"{path}`")
        return cls.from_text(text, f"key file {path}")


def parse_key(text: str, source: str) -> bytes:
    """32 bytes from 64 hex digits or base64 (standard or URL-safe); the message never repeats
    the text."""
    value = "".join(text.split())
    if len(value) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise KeyConfigError(f"{source} is not a {KEY_BYTES}-byte key written as 64 hex digits or "
                         f"base64; `iatros keys new-master --out FILE` makes one")


def new_key_text() -> str:
    """A fresh random master key, base64-encoded (what a key file holds)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n"


# --------------------------------------------------------------------------------------------
# The configured provider: one set in code (a KMS), else the environment, else none
# --------------------------------------------------------------------------------------------
_override: KeyProvider | None = None
_cache: dict[tuple, LocalKeyProvider] = {}
_lock = threading.Lock()


def set_provider(provider: KeyProvider | None) -> None:
    """Use `provider` (a KMS client) instead of the environment's key; None goes back to the
    environment."""
    global _override
    _override = provider


def _env_state() -> tuple:
    text = os.environ.get(MASTER_KEY_ENV) or ""
    file = os.environ.get(MASTER_KEY_FILE_ENV) or ""
    if file:
        try:
            st = Path(file).expanduser().stat()
            return ("file", file, st.st_mtime_ns, st.st_size, st.st_mode, bool(text))
        except OSError:
            return ("file", file, None, None, None, bool(text))
    return ("env", hashlib.sha256(text.encode()).hexdigest() if text else "")


def active_provider() -> KeyProvider | None:
    """The provider in use: one set with `set_provider`, else a `LocalKeyProvider` from
    IATROS_MASTER_KEY_FILE or IATROS_MASTER_KEY, else None (encryption off)."""
    if _override is not None:
        return _override
    state = _env_state()
    if state == ("env", ""):
        return None
    with _lock:
        cached = _cache.get(state)
        if cached is not None:
            return cached
        if state[0] == "file":
            if state[-1]:
                raise KeyConfigError(f"both {MASTER_KEY_ENV} and {MASTER_KEY_FILE_ENV} are set; "
                                     f"set only one")
            provider = LocalKeyProvider.from_file(state[1])
        else:
            provider = LocalKeyProvider.from_text(os.environ[MASTER_KEY_ENV], MASTER_KEY_ENV)
        _cache.clear()
        _cache[state] = provider
        return provider


def require_provider(what: str, key_id: str | None = None) -> KeyProvider:
    """The active provider, or KeyMissingError saying that `what` is encrypted and which
    environment variable to set."""
    provider = active_provider()
    if provider is None:
        written = f" (with key {key_id})" if key_id else ""
        raise KeyMissingError(f"{what} is encrypted{written} and no master key is configured: "
                              f"{HOW_TO_SET}")
    return provider
