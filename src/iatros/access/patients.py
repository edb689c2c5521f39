"""How patient ids are stored in the service's tables (care teams, the audit log).

Without a master key they are stored as they are. With one (`iatros.crypto`), a column that is
searched by equality holds the id's lookup token (`tok1:...`, a keyed HMAC) and the id itself is
kept sealed beside it (AES-GCM, bound to the token), for display to those who hold the key. The
field key behind both is random, made on first use and stored wrapped by the master key in
`service_data_keys`; rotating the master key re-wraps it only, so stored tokens, sealed ids and
the audit log's hash chain stay as they are. Tables that hold encrypted ids refuse to be used
without the key (never silently matched against plain ids).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iatros.access.tables import DataKeyRow
from iatros.crypto import (
    DecryptionError,
    FieldKeys,
    KeyProvider,
    active_provider,
    field_keys,
    is_token,
    lookup_token,
    new_field_key,
    open_field,
    require_provider,
    seal_field,
    unwrap_field_key,
    wrap_field_key,
)

FIELD_KEY = "patient-ids"
PATIENT = "patient:"


class PatientFields:
    """Patient ids to and from their stored form, for one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keys: dict[str, FieldKeys] = {}
        self._lock = threading.Lock()
        self._stored_unkeyed: bool | None = None

    def _row(self) -> DataKeyRow | None:
        with Session(self.engine) as session:
            row = session.get(DataKeyRow, FIELD_KEY)
            if row is not None:
                session.expunge(row)
            return row

    def keys(self) -> FieldKeys | None:
        """The field keys under the configured master key (made and stored on first use);
        None when no master key is configured and the tables hold no encrypted ids; a
        KeyMissingError when they do."""
        provider = active_provider()
        if provider is None:
            if self._stored_unkeyed is None:
                self._stored_unkeyed = self._row() is not None
            if self._stored_unkeyed:
                require_provider("the service's patient ids (care teams, audit log)")
            return None
        with self._lock:
            keys = self._keys.get(provider.key_id)
            if keys is None:
                keys = field_keys(self._field_key(provider))
                self._keys[provider.key_id] = keys
            return keys

    def _field_key(self, provider: KeyProvider) -> bytes:
        where = f"the service's patient-id key (table service_data_keys, {FIELD_KEY!r})"
        row = self._row()
        if row is None:
            key = new_field_key()
            try:
                with Session(self.engine) as session, session.begin():
                    session.add(DataKeyRow(name=FIELD_KEY, key_id=provider.key_id,
                                           wrapped=wrap_field_key(key, provider),
                                           created=datetime.now(timezone.utc)))
                return key
            except IntegrityError:
                row = self._row()  # another process made it first: use theirs
                if row is None:
                    raise
        return unwrap_field_key(row.wrapped, provider, where)

    # -- one id ---------------------------------------------------------------------------------
    def stored(self, patient_id: str) -> tuple[str, str | None]:
        """(what the searched column holds, the sealed id or None)."""
        keys = self.keys()
        if keys is None:
            return patient_id, None
        token = lookup_token(patient_id, keys)
        return token, seal_field(patient_id, keys, token)

    def matches(self, patient_id: str) -> list[str]:
        """The stored values an id is found by: its token (with a key) and the plain id (rows
        written before a key was configured)."""
        keys = self.keys()
        return [patient_id] if keys is None else [lookup_token(patient_id, keys), patient_id]

    def shown(self, stored: str, sealed: str | None) -> str:
        """The id for display: the sealed id opened when the key is configured, else what is
        stored (a token says nothing without the key)."""
        if not sealed or not is_token(stored) or active_provider() is None:
            return stored
        keys = self.keys()
        try:
            return open_field(sealed, keys, stored) if keys is not None else stored
        except DecryptionError:
            return stored  # a changed sealed id: `iatros audit-log verify` names the entry

    # -- audit targets ("patient:ID") -----------------------------------------------------------
    def audit_target(self, target: str) -> tuple[str, str | None]:
        """An audit entry's target as stored: `patient:TOKEN` and the sealed id, with a key."""
        if not target.startswith(PATIENT):
            return target, None
        stored, sealed = self.stored(target[len(PATIENT):])
        return PATIENT + stored, sealed

    def shown_target(self, target: str, sealed: str | None) -> str:
        if not sealed or not target.startswith(PATIENT):
            return target
        return PATIENT + self.shown(target[len(PATIENT):], sealed)


def rotate_field_key(engine: Engine, old: KeyProvider, new: KeyProvider) -> str | None:
    """Re-wrap the stored field key from `old` to `new` (the ids stored under it do not
    change). Returns what was done, or None when the database holds no field key."""
    with Session(engine) as session, session.begin():
        row = session.get(DataKeyRow, FIELD_KEY)
        if row is None:
            return None
        if row.key_id == new.key_id:
            return "already under the new key"
        key = unwrap_field_key(row.wrapped, old, f"the service's patient-id key ({FIELD_KEY!r})")
        row.wrapped, row.key_id = wrap_field_key(key, new), new.key_id
    return "re-wrapped"
