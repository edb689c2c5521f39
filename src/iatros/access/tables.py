"""The service's tables, in the registry's database: users, API keys, care-team patients, the
audit log (append-only, each row carrying the hash of the one before) and the wrapped data key
that protects patient ids when a master key is configured (`access/patients.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "service_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    teams: Mapped[str] = mapped_column(String(500), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyRow(Base):
    __tablename__ = "service_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CareTeamRow(Base):
    __tablename__ = "service_care_teams"
    __table_args__ = (UniqueConstraint("team", "patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(120))
    # the id itself, or (with a master key) its lookup token, with the id sealed beside it
    patient_id: Mapped[str] = mapped_column(String(200), index=True)
    patient_sealed: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)


class AuditRow(Base):
    __tablename__ = "service_audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(40))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # with a master key: the patient id of a `patient:TOKEN` target, sealed (in the hash too)
    target_sealed: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)


class DataKeyRow(Base):
    """A data key wrapped by the master key (re-wrapped, never changed, by `iatros keys rotate`)."""

    __tablename__ = "service_data_keys"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(80))
    wrapped: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))

# columns added after the first release: older databases gain them (nullable) on open
ADDED_COLUMNS = {"service_care_teams": {"patient_sealed": "TEXT"},
                 "service_audit_log": {"target_sealed": "TEXT"}}
