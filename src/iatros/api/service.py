"""The service's accounts and audit log for the CLI: users, API keys, care teams, verifying and
exporting the audit log (in the registry's database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from iatros.access.audit import AuditLog, as_fhir_bundle, as_json_lines
from iatros.access.store import AccessStore, KeyInfo, UserInfo, open_engine
from iatros.errors import ConfigError
from iatros.settings import Settings, get_settings


def _engine(settings: Settings | None) -> Any:
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return open_engine(settings.database_url)


def store(settings: Settings | None = None) -> AccessStore:
    return AccessStore(_engine(settings))


def add_user(name: str, password: str, role: str, teams: Sequence[str] = (),
             settings: Settings | None = None) -> UserInfo:
    return store(settings).add_user(name, password, role, teams)


def users(settings: Settings | None = None) -> list[UserInfo]:
    return store(settings).users()


def disable_user(name: str, disabled: bool = True, settings: Settings | None = None) -> None:
    store(settings).set_disabled(name, disabled)


def create_key(name: str, role: str, settings: Settings | None = None) -> tuple[KeyInfo, str]:
    return store(settings).create_key(name, role)


def api_keys(settings: Settings | None = None) -> list[KeyInfo]:
    return store(settings).api_keys()


def revoke_key(ref: str, settings: Settings | None = None) -> KeyInfo:
    return store(settings).revoke_key(ref)


def assign_patients(team: str, patient_ids: Sequence[str], settings: Settings | None = None) -> int:
    return store(settings).assign(team, patient_ids)


def verify_audit_log(expect_head: tuple[int, str] | None = None,
                     settings: Settings | None = None) -> dict[str, Any]:
    return AuditLog(_engine(settings)).verify(expect_head)


def export_audit_log(since: datetime | None = None, fmt: str = "jsonl",
                     settings: Settings | None = None) -> str:
    """The entries since a time as JSON lines, or a FHIR AuditEvent Bundle (`fmt="fhir"`)."""
    import json

    entries = AuditLog(_engine(settings)).entries(since)
    if fmt == "jsonl":
        return as_json_lines(entries)
    if fmt == "fhir":
        return json.dumps(as_fhir_bundle(entries), indent=1)
    raise ConfigError(f"--format must be jsonl or fhir, not {fmt!r}")
