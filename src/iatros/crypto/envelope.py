"""Envelope encryption of whole files.

An encrypted file is

    IATROS-ENC1\\n
    {"v": 1, "cipher": "AES-256-GCM", "file_id": ..., "nonce": ..., "key_id": ..., "wrapped_key": ...}\\n
    AES-256-GCM ciphertext of the content (with its 16-byte tag)

The content is encrypted under a random data key used for this file only; the data key is
stored wrapped by the master key (`KeyProvider.wrap`, with the file id and key id as context).
The magic line and the header's fixed part (version, cipher, file id, nonce) are authenticated
with the content; the key id and wrapped key are authenticated by the unwrapping, and the header
line must be in its one canonical form, so a changed byte anywhere is refused. The key id and
wrapped key are not part of the content's associated data: rotating the master key rewrites
them only (`rotate`), and the content's bytes stay as they are. A wrapped key that was changed,
moved from another file or wrapped by another key does not unwrap.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iatros.crypto.keys import (
    NONCE_BYTES,
    DecryptionError,
    EncryptionError,
    KeyProvider,
    active_provider,
    require_provider,
)

MAGIC = b"IATROS-ENC1\n"
VERSION = 1
CIPHER = "AES-256-GCM"
MAX_HEADER = 64 * 1024
AUTH_FAILED = "authentication failed: the file was changed or the key is wrong"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str, name: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise DecryptionError(f"{name}: its encryption header is damaged ({what})") from None


def is_encrypted_bytes(data: bytes) -> bool:
    return data[:len(MAGIC)] == MAGIC


def is_encrypted(path: str | Path) -> bool:
    """Whether the file starts with the envelope's magic line (False for a missing file)."""
    try:
        with open(path, "rb") as handle:
            return is_encrypted_bytes(handle.read(len(MAGIC)))
    except OSError:
        return False


@dataclass(frozen=True)
class Header:
    file_id: str
    nonce: bytes
    key_id: str
    wrapped_key: bytes
    end: int  # where the ciphertext starts

    def fixed(self) -> bytes:
        """The authenticated part (what rotation never changes)."""
        return MAGIC + json.dumps({"v": VERSION, "cipher": CIPHER, "file_id": self.file_id,
                                   "nonce": _b64(self.nonce)}, sort_keys=True,
                                  separators=(",", ":")).encode()

    def context(self) -> bytes:
        """What the data key is wrapped with: this file's id and the wrapping key's id."""
        return f"{self.file_id}\n{self.key_id}".encode()

    def encode(self) -> bytes:
        line = json.dumps({"v": VERSION, "cipher": CIPHER, "file_id": self.file_id,
                           "nonce": _b64(self.nonce), "key_id": self.key_id,
                           "wrapped_key": _b64(self.wrapped_key)}, separators=(",", ":"))
        return MAGIC + line.encode() + b"\n"


def read_header(data: bytes, name: str = "the data") -> Header:
    """The header of an encrypted blob; DecryptionError naming `name` when it is damaged."""
    if not is_encrypted_bytes(data):
        raise EncryptionError(f"{name} is not an iatros encrypted file")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise DecryptionError(f"{name}: its encryption header is damaged or cut short")
    try:
        header = json.loads(data[len(MAGIC):end])
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise DecryptionError(f"{name}: its encryption header is damaged (not JSON)") from None
    if header.get("v") != VERSION or header.get("cipher") != CIPHER:
        raise EncryptionError(f"{name} is encrypted in format {header.get('v')!r} "
                              f"({header.get('cipher')!r}); this iatros reads format {VERSION} "
                              f"({CIPHER}): upgrade iatros to read it")
    missing = [k for k in ("file_id", "nonce", "key_id", "wrapped_key") if not header.get(k)]
    if missing:
        raise DecryptionError(f"{name}: its encryption header is damaged (no {', '.join(missing)})")
    nonce = _unb64(header["nonce"], "nonce", name)
    if len(nonce) != NONCE_BYTES:
        raise DecryptionError(f"{name}: its encryption header is damaged (nonce)")
    parsed = Header(str(header["file_id"]), nonce, str(header["key_id"]),
                    _unb64(header["wrapped_key"], "wrapped key", name), end + 1)
    if parsed.encode() != data[:end + 1]:
        raise DecryptionError(f"{name}: its encryption header is damaged (changed)")
    return parsed


def _aesgcm(key: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _data_key(header: Header, provider: KeyProvider, name: str) -> bytes:
    try:
        return provider.unwrap(header.wrapped_key, header.context())
    except DecryptionError:
        raise DecryptionError(f"{name}: {AUTH_FAILED} (it was written with key {header.key_id}; "
                              f"the configured key is {provider.key_id})") from None


def encrypt_bytes(data: bytes, provider: KeyProvider) -> bytes:
    """`data` in the envelope format, under a fresh data key wrapped by `provider`."""
    data_key = secrets.token_bytes(32)
    file_id = secrets.token_hex(16)
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = Header(file_id, nonce, provider.key_id, b"", 0)
    header = Header(file_id, nonce, provider.key_id, provider.wrap(data_key, header.context()), 0)
    return header.encode() + _aesgcm(data_key).encrypt(nonce, data, header.fixed())


def decrypt_bytes(data: bytes, provider: KeyProvider | None = None, name: str = "the data") -> bytes:
    """The content of an encrypted blob (`provider`: the active one when None). Raises
    KeyMissingError when no key is configured, DecryptionError when the blob was changed or
    the key is not the one it was written with; messages name `name`."""
    from cryptography.exceptions import InvalidTag

    header = read_header(data, name)
    provider = provider or require_provider(name, header.key_id)
    data_key = _data_key(header, provider, name)
    try:
        return _aesgcm(data_key).decrypt(header.nonce, data[header.end:], header.fixed())
    except (InvalidTag, ValueError):
        raise DecryptionError(f"{name}: {AUTH_FAILED}") from None


def read_bytes(path: str | Path, provider: KeyProvider | None = None) -> bytes:
    """A file's content: as it is when plain, decrypted when encrypted (see `decrypt_bytes`)."""
    data = Path(path).read_bytes()
    return decrypt_bytes(data, provider, str(path)) if is_encrypted_bytes(data) else data


def maybe_encrypt(data: bytes, provider: KeyProvider | None = None) -> bytes:
    """`data` encrypted with `provider` (else the active one); as it is when no key is set."""
    provider = provider or active_provider()
    return data if provider is None else encrypt_bytes(data, provider)


def rewrap_bytes(data: bytes, old: KeyProvider, new: KeyProvider, name: str = "the data") -> bytes:
    """The same blob with its data key wrapped by `new` instead of `old`: only the header
    changes. The content is authenticated first, so a changed file is refused, not carried on."""
    from cryptography.exceptions import InvalidTag

    header = read_header(data, name)
    data_key = _data_key(header, old, name)
    try:
        _aesgcm(data_key).decrypt(header.nonce, data[header.end:], header.fixed())
    except (InvalidTag, ValueError):
        raise DecryptionError(f"{name}: {AUTH_FAILED}") from None
    fresh = Header(header.file_id, header.nonce, new.key_id, b"", 0)
    fresh = Header(header.file_id, header.nonce, new.key_id, new.wrap(data_key, fresh.context()), 0)
    return fresh.encode() + data[header.end:]


def write_file_atomic(path: str | Path, data: bytes, mode: int = 0o644) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk and rename it over
    `path`; on failure the temporary file is removed and `path` is untouched."""
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass
class RotationReport:
    """What a rotation did: files re-wrapped, plain files skipped, files that failed (with why)."""

    rewrapped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: RotationReport) -> None:
        self.rewrapped += other.rewrapped
        self.skipped += other.skipped
        self.failed += other.failed

    def as_dict(self) -> dict[str, Any]:
        return {"rewrapped": self.rewrapped,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


def rotate_file(path: str | Path, old: KeyProvider, new: KeyProvider) -> str | None:
    """Re-wrap one file's data key (atomically): None when done, else why it was skipped (not
    encrypted, already under `new`). Raises EncryptionError, the file untouched, when `old`
    does not open it."""
    path = Path(path)
    data = path.read_bytes()
    if not is_encrypted_bytes(data):
        return "not encrypted"
    header = read_header(data, str(path))
    if header.key_id == new.key_id != old.key_id:
        return "already under the new key"
    rewrapped = rewrap_bytes(data, old, new, str(path))
    write_file_atomic(path, rewrapped, os.stat(path).st_mode & 0o777)
    return None


def rotate(paths: Iterable[str | Path], old: KeyProvider, new: KeyProvider) -> RotationReport:
    """Re-wrap each encrypted file's data key from `old` to `new`, each file written
    atomically; plain files are skipped, and a file that cannot be rotated (changed, another
    key, unreadable) is reported and left as it was while the others go on."""
    report = RotationReport()
    for path in paths:
        try:
            skipped = rotate_file(path, old, new)
        except EncryptionError as e:
            report.failed.append((str(path), str(e)))
            continue
        except OSError as e:
            report.failed.append((str(path), f"cannot be read or written ({type(e).__name__}: "
                                             f"{e.strerror or e})"))
            continue
        if skipped:
            report.skipped.append((str(path), skipped))
        else:
            report.rewrapped.append(str(path))
    return report
