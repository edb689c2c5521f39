"""Users (argon2-hashed passwords, a role, care teams), API keys (random secrets stored as
sha256 digests, revocable) and which care teams a patient belongs to (patient ids as lookup
tokens with the id sealed beside them when a master key is configured: `access/patients.py`)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from iatros.access.patients import PatientFields
from iatros.access.tables import ADDED_COLUMNS, ApiKeyRow, Base, CareTeamRow, UserRow
from iatros.errors import ConfigError, IatrosError
from iatros.registry import Registry, masked, without_secret

USER_ROLES = ("clinician", "researcher", "admin")
KEY_ROLES = ("system", "device")
MIN_PASSWORD = 12
KEY_PREFIX = "iat_"


class AccessError(IatrosError):
    """Wrong credentials, a disabled user or a revoked key (the message says which, never the
    secret)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user or an API key, with its role and care teams."""

    name: str
    role: str
    kind: str = "user"
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    teams: tuple[str, ...]
    disabled: bool
    created: datetime


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    role: str
    prefix: str
    revoked: bool
    created: datetime


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL and a busy timeout for SQLite, so concurrent requests wait instead of failing."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def open_engine(url: str) -> Engine:
    """An engine on the registry's database with the service tables created."""
    Registry(url)  # same checks and messages as the registry (missing folder, bad URL)
    try:
        engine = create_engine(url, connect_args={"check_same_thread": False}
                               if url.startswith("sqlite") else {})
        _sqlite_pragmas(engine)
        Base.metadata.create_all(engine)
        _add_missing_columns(engine)
    except SQLAlchemyError as e:
        raise ConfigError(f"cannot open the service tables in {masked(url)}: "
                          f"{without_secret(str(e), url)}") from None
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Service tables made by an older iatros gain the (nullable) columns added since."""
    inspector = inspect(engine)
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name, kind in columns.items():
            if name not in present:
                with engine.begin() as connection:
                    connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def _teams(value: str) -> tuple[str, ...]:
    return tuple(t for t in value.split(",") if t)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessStore:
    """Users, keys and care teams behind one engine."""

    def __init__(self, engine: Engine) -> None:
        from argon2 import PasswordHasher

        self.engine = engine
        self.hasher = PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_hex(16))
        self._lock = threading.Lock()
        self.patients = PatientFields(engine)

    # users
    def add_user(self, name: str, password: str, role: str, teams: Iterable[str] = ()) -> UserInfo:
        """A new user; the password is stored as an argon2id hash."""
        if role not in USER_ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(USER_ROLES)}")
        if not name or len(name) > 120 or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"user name {name!r}: use 1-120 letters, digits, '.', '-' or '_'")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
        team_list = [t.strip() for t in teams if t.strip()]
        if any("," in t for t in team_list):
            raise ConfigError("a care team name may not contain ','")
        created = datetime.now(timezone.utc)
        row = UserRow(name=name, role=role, password_hash=self.hasher.hash(password),
                      teams=",".join(team_list), disabled=False, created=created)
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise ConfigError(f"user {name!r} already exists") from None
        return UserInfo(name, role, tuple(team_list), False, created)

    def users(self) -> list[UserInfo]:
        with Session(self.engine) as session:
            return [UserInfo(u.name, u.role, _teams(u.teams), u.disabled, u.created)
                    for u in session.scalars(select(UserRow).order_by(UserRow.name))]

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(UserRow).where(UserRow.name == name))
            if row is None:
                raise ConfigError(f"no user {name!r}; `iatros users list` shows them")
            row.disabled = disabled

    def authenticate(self, name: str, password: str) -> Principal:
        """The user behind a name and password; the same error for a wrong name or password."""
        from argon2.exceptions import VerificationError

        with Session(self.engine) as session:
            row = session.scalar(select(UserRow).where(UserRow.name == name))
            stored = row.password_hash if row is not None else self._dummy
            try:
                self.hasher.verify(stored, password)
            except VerificationError:
                raise AccessError("wrong user name or password") from None
            if row is None:
                raise AccessError("wrong user name or password")
            if row.disabled:
                raise AccessError(f"user {name!r} is disabled")
            return Principal(row.name, row.role, "user", _teams(row.teams))

    def principal(self, name: str) -> Principal:
        """The current state of a user named in a token (disabled users are refused)."""
        with Session(self.engine) as session:
            row = session.scalar(select(UserRow).where(UserRow.name == name))
            if row is None or row.disabled:
                raise AccessError("the token's user no longer exists or is disabled")
            return Principal(row.name, row.role, "user", _teams(row.teams))

    # API keys
    def create_key(self, name: str, role: str) -> tuple[KeyInfo, str]:
        """A new key; its secret is returned once and stored only as a sha256 digest."""
        if role not in KEY_ROLES:
            raise ConfigError(f"key role {role!r} is not one of {', '.join(KEY_ROLES)}")
        prefix = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKeyRow(name=name, role=role, prefix=prefix, key_hash=_digest(secret),
                        revoked=False, created=datetime.now(timezone.utc))
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            info = KeyInfo(row.id, name, role, prefix, False, row.created)
        return info, secret

    def api_keys(self) -> list[KeyInfo]:
        with Session(self.engine) as session:
            return [KeyInfo(k.id, k.name, k.role, k.prefix, k.revoked, k.created)
                    for k in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]

    def revoke_key(self, ref: str) -> KeyInfo:
        """Revoke a key by id or prefix."""
        with Session(self.engine) as session, session.begin():
            query = select(ApiKeyRow).where(ApiKeyRow.prefix == ref)
            if ref.isdigit():
                query = select(ApiKeyRow).where(ApiKeyRow.id == int(ref))
            row = session.scalar(query)
            if row is None:
                raise ConfigError(f"no API key {ref!r}; `iatros keys list` shows ids and prefixes")
            row.revoked = True
            return KeyInfo(row.id, row.name, row.role, row.prefix, True, row.created)

    def authenticate_key(self, secret: str) -> Principal:
        parts = secret.split("_")
        if len(parts) < 3 or not secret.startswith(KEY_PREFIX):
            raise AccessError("malformed API key")
        with Session(self.engine) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
            if row is None or not hmac.compare_digest(row.key_hash, _digest(secret)):
                raise AccessError("unknown API key")
            if row.revoked:
                raise AccessError(f"API key {row.prefix} was revoked")
            return Principal(row.name, row.role, "key")

    # care teams
    def assign(self, team: str, patient_ids: Iterable[str]) -> int:
        """Put patients in a care team; returns how many were new."""
        added = 0
        # stored forms first: the field key may be made (its own transaction) on first use
        ids = [(self.patients.matches(pid), *self.patients.stored(pid))
               for pid in dict.fromkeys(str(p) for p in patient_ids)]
        with self._lock, Session(self.engine) as session, session.begin():
            known = set(session.scalars(select(CareTeamRow.patient_id).where(CareTeamRow.team == team)))
            for matches, stored, sealed in ids:
                if known.isdisjoint(matches):
                    session.add(CareTeamRow(team=team, patient_id=stored, patient_sealed=sealed))
                    known.add(stored)
                    added += 1
        return added

    def may_see(self, principal: Principal, patient_id: str) -> bool:
        """Clinicians see only their care teams' patients; other roles are limited by
        the endpoint's role list alone."""
        if principal.role != "clinician":
            return True
        if not principal.teams:
            return False
        with Session(self.engine) as session:
            found = session.scalar(select(CareTeamRow.id).where(
                CareTeamRow.patient_id.in_(self.patients.matches(str(patient_id))),
                CareTeamRow.team.in_(principal.teams)))
            return found is not None
