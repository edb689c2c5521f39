"""`iatros serve` and the service's accounts: `users`, `keys`, `care-teams`, `audit-log`; and
the data-encryption master key (`keys new-master`, `keys rotate`)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from iatros.errors import ConfigError

users_app = typer.Typer(help="Service users: clinician, researcher or admin (passwords hashed "
                             "with argon2id).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for devices and hospital systems (create, list, revoke: "
                            "stored as digests, the secret printed once), and the master key that "
                            "encrypts patient data at rest (new-master, rotate).",
                       no_args_is_help=True)
teams_app = typer.Typer(help="Care teams: clinicians see only their teams' patients.",
                        no_args_is_help=True)
audit_app = typer.Typer(help="The service's hash-chained audit log.", no_args_is_help=True)
PASSWORD_ENV = "IATROS_USER_PASSWORD"


def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to bind. The default serves this machine "
                                           "only; another value exposes patient data to the network: "
                                           "put TLS in front.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    cors: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Allow browser calls from this origin (repeatable; none by default).")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body.")] = 20.0,
    rate: Annotated[int, typer.Option(min=1, help="Requests a minute per user or key.")] = 600,
    token_minutes: Annotated[int, typer.Option(min=1, help="Access-token lifetime.")] = 60,
    secure_cookies: Annotated[bool, typer.Option(help="Mark the dashboard cookie Secure (behind "
                                                      "HTTPS).")] = False,
    monitor_config: Annotated[Path | None, typer.Option(
        help="Monitoring settings (JSON): escalation levels, stale_after_minutes, hold_minutes and "
             "webhooks whose secrets are read from the environment variables it names (see "
             "docs/monitoring.md).")] = None,
    device_rate: Annotated[int, typer.Option(min=1, help="Requests a minute per device key "
                                                         "(reading batches).")] = 60_000,
) -> None:
    """Serve the promoted models, the JSON API (/api/v1, documented at /docs) and the dashboard.

    Needs IATROS_SERVE_SECRET (32+ random characters, signs access tokens); de-identification
    also needs IATROS_DEID_KEY. Database: the registry's (IATROS_DATABASE_URL, else SQLite in the
    workspace)."""
    import uvicorn

    from iatros.monitoring.config import MonitorConfig, load_monitor_config
    from iatros.serve import ServeConfig, create_app

    monitor = load_monitor_config(monitor_config) if monitor_config else MonitorConfig()
    config = ServeConfig(secret=os.environ.get("IATROS_SERVE_SECRET", ""),
                         token_ttl_seconds=token_minutes * 60,
                         max_upload_bytes=int(max_upload_mb * 1024 * 1024), rate_per_minute=rate,
                         cors_origins=tuple(cors or ()), deid_key=os.environ.get("IATROS_DEID_KEY"),
                         secure_cookies=secure_cookies, device_rate_per_minute=device_rate,
                         monitor=monitor)
    app = create_app(config)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {host}: the service is reachable from the network; use TLS",
              file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def _password(prompt: bool) -> str:
    value = os.environ.get(PASSWORD_ENV)
    if value:
        return value
    if not prompt or not sys.stdin.isatty():
        raise ConfigError(f"no password: set {PASSWORD_ENV} or run in a terminal to be asked")
    first = getpass.getpass("Password (12+ characters): ")
    if first != getpass.getpass("Again: "):
        raise ConfigError("the two passwords differ")
    return first


@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="User name.")],
              role: Annotated[str, typer.Option(help="clinician, researcher or admin.")],
              team: Annotated[list[str] | None, typer.Option(help="Care team (repeatable).")] = None) -> None:
    """Add a user; the password is asked for (or read from IATROS_USER_PASSWORD)."""
    from iatros.api import service

    u = service.add_user(name, _password(True), role, team or ())
    print(f"user {u.name} ({u.role}{', teams ' + ', '.join(u.teams) if u.teams else ''}) added")


@users_app.command("list")
def users_list() -> None:
    from iatros.api import service

    for u in service.users():
        print(f"{u.name}\t{u.role}\t{','.join(u.teams) or '-'}\t{'disabled' if u.disabled else 'active'}")


@users_app.command("disable")
def users_disable(name: str, enable: Annotated[bool, typer.Option(help="Enable again.")] = False) -> None:
    """Disable a user (their tokens stop working at once); --enable to undo."""
    from iatros.api import service

    service.disable_user(name, not enable)
    print(f"user {name} {'enabled' if enable else 'disabled'}")


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="What the key is for (a device, a system).")],
                role: Annotated[str, typer.Option(help="system or device.")] = "system") -> None:
    """Create an API key and print its secret once (send it as the X-API-Key header)."""
    from iatros.api import service

    info, secret = service.create_key(name, role)
    print(f"key {info.id} ({info.name}, {info.role}, prefix {info.prefix}); its secret, shown once:",
          file=sys.stderr)
    print(secret)


@keys_app.command("list")
def keys_list() -> None:
    from iatros.api import service

    for k in service.api_keys():
        print(f"{k.id}\t{k.name}\t{k.role}\t{k.prefix}\t{'revoked' if k.revoked else 'active'}")


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    from iatros.api import service

    info = service.revoke_key(ref)
    print(f"key {info.id} ({info.prefix}) revoked")


@keys_app.command("new-master")
def keys_new_master(out: Annotated[Path, typer.Option(
        help="Key file to write (mode 0600; an existing file is never overwritten).")]) -> None:
    """Make a new data-encryption master key (not an API key): 32 random bytes in a file only
    you can read. Point IATROS_MASTER_KEY_FILE at it to encrypt patient data at rest; keep a
    copy somewhere safe: without it the data cannot be read."""
    from iatros.api import encryption

    made = encryption.new_master_key(out)
    print(f"wrote master key {made['key_id']} to {made['path']} (mode 0600); use it with "
          f"export IATROS_MASTER_KEY_FILE={made['path']}")


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[Path, typer.Option(
        help="File holding the new master key (`iatros keys new-master` makes one).")],
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Run folders, converted event folders, folders holding them, or files.")] = None,
    service: Annotated[bool, typer.Option(
        help="Also re-wrap the service tables' patient-id key (registry database).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rotate the data-encryption master key (not API keys): re-wrap the data key of every
    encrypted file under PATHS from the current key (IATROS_MASTER_KEY_FILE or
    IATROS_MASTER_KEY) to the key in --new-key-file. Each file is rewritten atomically; one the
    current key does not open is reported and left as it was. Exit 1 when any failed. Then point
    IATROS_MASTER_KEY_FILE at the new key; keep the old one until nothing failed."""
    from iatros.api import encryption

    result = encryption.rotate(paths or [], new_key_file, service=service)
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        for item in result["failed"]:
            print(f"failed: {item['path']}: {item['reason']}")
        reasons: dict[str, int] = {}
        for item in result["skipped"]:
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        skipped = ", ".join(f"{n} {why}" for why, n in reasons.items()) or "none"
        service_line = f"; service tables: {result['service']}" if result["service"] else ""
        print(f"key {result['old_key_id']} -> {result['new_key_id']}: "
              f"{len(result['rewrapped'])} file(s) re-wrapped, skipped: {skipped}, "
              f"{len(result['failed'])} failed{service_line}")
        if not result["failed"]:
            print(f"now set IATROS_MASTER_KEY_FILE={new_key_file.expanduser().resolve()}")
    if result["failed"]:
        raise typer.Exit(1)


@teams_app.command("assign")
def teams_assign(team: str, patients: Annotated[list[str], typer.Argument(help="Patient ids.")]) -> None:
    """Put patients in a care team."""
    from iatros.api import service

    print(f"{service.assign_patients(team, patients)} patient(s) added to {team}")


@audit_app.command("verify")
def audit_verify(expect_head: Annotated[str | None, typer.Option(
        help="SEQ:HASH of the head seen earlier (detects entries removed from the end).")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the hash chain; exit 1 and name each edited or missing entry if it is broken."""
    from iatros.api import service

    head = None
    if expect_head:
        seq, _, digest = expect_head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ConfigError("--expect-head must be SEQ:HASH (the head printed by an earlier verify)")
        head = (int(seq), digest)
    result = service.verify_audit_log(head)
    if as_json:
        print(json.dumps(result, indent=1))
    elif result["ok"]:
        print(f"audit log intact: {result['entries']} entries, head "
              f"{result['head']['seq']}:{result['head']['hash']}")
    else:
        for p in result["problems"]:
            print(f"entry {p['seq']}: {p['problem']}")
    if not result["ok"]:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(since: Annotated[str | None, typer.Option(
                     help="ISO date or time (UTC if no zone).")] = None,
                 fmt: Annotated[str, typer.Option(
                     "--format", help="jsonl or fhir (AuditEvent Bundle).")] = "jsonl",
                 out: Annotated[Path | None, typer.Option(
                     help="File to write (default: stdout).")] = None) -> None:
    """Export entries as JSON lines or a FHIR R4 AuditEvent Bundle."""
    from iatros.api import service

    when = None
    if since:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since {since!r} is not an ISO date or time (2026-12-01 or "
                              f"2026-12-01T08:00)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    text = service.export_audit_log(when, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
