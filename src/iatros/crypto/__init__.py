"""Encryption at rest: envelope encryption of files (`envelope`), Parquet modular encryption
(`parquet`), sealed fields and lookup tokens for database rows (`fields`), under a master key
from a `KeyProvider` (`keys`: the environment's key by default, a KMS through `set_provider`).
With no key configured nothing is encrypted; an encrypted file met without a key is refused,
naming the file and the variable to set. Imports only `iatros.errors`."""

from iatros.crypto.envelope import (
    MAGIC,
    RotationReport,
    decrypt_bytes,
    encrypt_bytes,
    is_encrypted,
    is_encrypted_bytes,
    maybe_encrypt,
    read_bytes,
    rewrap_bytes,
    rotate,
    rotate_file,
    write_file_atomic,
)
from iatros.crypto.fields import (
    FieldKeys,
    field_keys,
    is_sealed,
    is_token,
    lookup_token,
    new_field_key,
    open_field,
    seal_field,
    unwrap_field_key,
    wrap_field_key,
    wrapped_key_id,
)
from iatros.crypto.keys import (
    HOW_TO_SET,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE_ENV,
    DecryptionError,
    EncryptionError,
    KeyConfigError,
    KeyMissingError,
    KeyProvider,
    LocalKeyProvider,
    active_provider,
    new_key_text,
    parse_key,
    require_provider,
    set_provider,
)

__all__ = [
    "HOW_TO_SET", "MAGIC", "MASTER_KEY_ENV", "MASTER_KEY_FILE_ENV", "DecryptionError",
    "EncryptionError", "FieldKeys", "KeyConfigError", "KeyMissingError", "KeyProvider",
    "LocalKeyProvider", "RotationReport", "active_provider", "decrypt_bytes", "encrypt_bytes",
    "field_keys", "is_encrypted", "is_encrypted_bytes", "is_sealed", "is_token", "lookup_token",
    "maybe_encrypt", "new_field_key", "new_key_text", "open_field", "parse_key", "read_bytes",
    "require_provider", "rewrap_bytes", "rotate", "rotate_file", "seal_field", "set_provider",
    "unwrap_field_key", "wrap_field_key", "wrapped_key_id", "write_file_atomic",
]
