"""Parquet files with Parquet modular encryption (pyarrow): every column and the footer
encrypted with AES-GCM under data keys that pyarrow makes, each wrapped by the master key
through a `KmsClient` that calls the `KeyProvider`. Such a file starts and ends with `PARE`;
it is read with decryption properties from the same provider.

Rotation re-encrypts the file (read with the old key, written with the new one): the key
material sits inside the file's footer, so it cannot be re-wrapped in place; the rows are the
same afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from iatros.crypto.keys import (
    DecryptionError,
    EncryptionError,
    KeyProvider,
    require_provider,
)

ENCRYPTED_MAGIC = b"PARE"
FOOTER_KEY = "iatros-master"


def is_encrypted_parquet(path: str | Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ENCRYPTED_MAGIC
    except OSError:
        return False


def _factory(provider: KeyProvider) -> tuple[Any, dict[str, Exception]]:
    """A CryptoFactory whose KMS client wraps with `provider`, and where its client records
    the error it raised (pyarrow passes it on, but the record keeps our message)."""
    import pyarrow.parquet.encryption as pe

    errors: dict[str, Exception] = {}

    class _Kms(pe.KmsClient):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()

        def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
            wrapped = provider.wrap(key_bytes, master_key_identifier.encode())
            return json.dumps({"key_id": provider.key_id,
                               "wrapped_key": base64.b64encode(wrapped).decode()})

        def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
            try:
                stored = json.loads(wrapped_key)
                wrapped = base64.b64decode(stored["wrapped_key"], validate=True)
            except (ValueError, KeyError, TypeError):
                errors["error"] = DecryptionError("its key material is damaged")
                raise errors["error"] from None
            try:
                return provider.unwrap(wrapped, master_key_identifier.encode())
            except DecryptionError:
                errors["error"] = DecryptionError(
                    f"authentication failed: the file was changed or the key is wrong (it was "
                    f"written with key {stored.get('key_id')}; the configured key is "
                    f"{provider.key_id})")
                raise errors["error"] from None

    return pe.CryptoFactory(lambda _config: _Kms()), errors


def encryption_properties(provider: KeyProvider) -> Any:
    import pyarrow.parquet.encryption as pe

    factory, _ = _factory(provider)
    config = pe.EncryptionConfiguration(footer_key=FOOTER_KEY, uniform_encryption=True,
                                        double_wrapping=False, data_key_length_bits=256,
                                        plaintext_footer=False, internal_key_material=True)
    return factory.file_encryption_properties(pe.KmsConnectionConfig(), config)


def write_table(table: Any, where: str | Path, provider: KeyProvider) -> None:
    """Write a pyarrow Table to `where` encrypted (the caller makes the write atomic)."""
    import pyarrow.parquet as pq

    pq.write_table(table, where, encryption_properties=encryption_properties(provider))


def read_table(path: str | Path, provider: KeyProvider | None = None,
               columns: list[str] | None = None) -> Any:
    """A Parquet file as a pyarrow Table, decrypted when it is encrypted (with `provider`,
    else the active one: KeyMissingError naming the file and the variable to set when none).
    A plain file is read as it is."""
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    if not is_encrypted_parquet(path):
        return pq.read_table(path, columns=columns)
    provider = provider or require_provider(str(path))
    factory, errors = _factory(provider)
    properties = factory.file_decryption_properties(pe.KmsConnectionConfig(),
                                                    pe.DecryptionConfiguration())
    try:
        return pq.read_table(path, columns=columns, decryption_properties=properties)
    except EncryptionError as e:
        raise type(e)(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - pyarrow's own errors become one clear message
        known = errors.get("error")
        if known is not None:
            raise type(known)(f"{path}: {known}") from None
        raise DecryptionError(f"{path}: authentication failed: the file was changed or the key is "
                              f"wrong ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def rotate_parquet(path: str | Path, old: KeyProvider, new: KeyProvider) -> bool:
    """Re-encrypt one encrypted Parquet file from `old` to `new` (atomically; the rows are the
    same); False for a plain file. Raises EncryptionError, the file untouched, when `old` does
    not open it."""
    path = Path(path)
    if not is_encrypted_parquet(path):
        return False
    table = read_table(path, old)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    tmp = Path(name)
    try:
        write_table(table, tmp, new)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
