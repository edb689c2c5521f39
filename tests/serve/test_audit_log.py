"""The hash-chained audit log: one entry per request, edits and deletions found where they
are, FHIR AuditEvent export, a request that cannot be audited fails, and PostgreSQL."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from iatros.access.audit import AuditLog, AuditWriteError, as_fhir_bundle
from iatros.access.store import open_engine
from iatros.cli import app as cli
from iatros.settings import get_settings


def _log(url: str | None = None) -> AuditLog:
    return AuditLog(open_engine(url or _default_url()))


def _default_url() -> str:
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings.database_url


def _fill(log: AuditLog, n: int = 5) -> None:
    for k in range(n):
        log.append(actor=f"user{k}", role="clinician", action="predict", target=f"input:{k}",
                   model_version="m:v1", status=200)


def test_every_request_is_one_entry_with_who_what_and_outcome(client, app, as_user):
    h = as_user("ada")
    client.get("/api/v1/models", headers=h)
    client.get("/api/v1/users", headers=as_user("remy"))
    entries = app.state.audit.entries()
    assert [(e.actor, e.action, e.status) for e in entries] == [
        ("ada", "login", 200), ("ada", "list models", 200), ("remy", "login", 200),
        ("remy", "GET /api/v1/users", 403)]
    assert app.state.audit.verify()["ok"]


def test_an_edited_entry_is_found_and_named():
    log = _log()
    _fill(log)
    with log.engine.begin() as c:
        c.execute(text("UPDATE service_audit_log SET actor = 'mallory' WHERE seq = 3"))
    result = log.verify()
    assert not result["ok"]
    assert result["problems"][0]["seq"] == 3 and "edited" in result["problems"][0]["problem"]


def test_a_deleted_entry_is_found_and_named():
    log = _log()
    _fill(log)
    with log.engine.begin() as c:
        c.execute(text("DELETE FROM service_audit_log WHERE seq = 2"))
    problems = log.verify()["problems"]
    assert problems[0]["seq"] == 3 and "missing" in problems[0]["problem"]


def test_entries_removed_from_the_end_are_found_against_an_earlier_head():
    log = _log()
    _fill(log)
    head = log.verify()["head"]
    with log.engine.begin() as c:
        c.execute(text("DELETE FROM service_audit_log WHERE seq >= 4"))
    assert log.verify()["ok"]  # the chain alone cannot see a cut tail
    assert not log.verify((head["seq"], head["hash"]))["ok"]


def test_a_rewritten_chain_is_found_against_an_earlier_head():
    log = _log()
    _fill(log, 3)
    head = log.verify()["head"]
    with log.engine.begin() as c:
        c.execute(text("DELETE FROM service_audit_log"))
    _fill(log, 3)
    assert not log.verify((head["seq"], head["hash"]))["ok"]


def test_concurrent_appends_keep_one_unbroken_chain():
    log = _log()
    threads = [threading.Thread(target=_fill, args=(log, 10)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = log.verify()
    assert result["ok"] and result["entries"] == 40


def test_export_as_fhir_auditevent_bundle_validates():
    log = _log()
    _fill(log, 3)
    log.append(actor="eve", role="researcher", action="GET /api/v1/users", status=403,
               outcome="denied")
    bundle = as_fhir_bundle(log.entries())
    events = [e["resource"] for e in bundle["entry"]]
    assert [e["outcome"] for e in events] == ["0", "0", "0", "4"]
    assert events[-1]["agent"][0]["who"]["display"] == "eve"


def test_cli_verify_exits_1_and_names_the_entry(tmp_path):
    log = _log()
    _fill(log)
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit-log", "verify"])
    assert ok.exit_code == 0 and "5 entries" in ok.output
    with log.engine.begin() as c:
        c.execute(text("UPDATE service_audit_log SET status = 500 WHERE seq = 4"))
    bad = runner.invoke(cli, ["audit-log", "verify"])
    assert bad.exit_code == 1 and "entry 4" in bad.output
    out = tmp_path / "audit.json"
    assert runner.invoke(cli, ["audit-log", "export", "--format", "fhir", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["resourceType"] == "Bundle"
    lines = runner.invoke(cli, ["audit-log", "export", "--since", "2000-01-01"]).output.splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["seq"] == 1


def test_a_request_that_cannot_be_audited_fails(client, app, as_user, monkeypatch):
    h = as_user("remy")

    def broken(**_kwargs):
        future = Future()
        future.set_exception(AuditWriteError("the audit log could not be written (OperationalError)"))
        return future
    monkeypatch.setattr(app.state.audit, "submit", broken)
    r = client.get("/api/v1/models", headers=h)
    assert r.status_code == 503 and "audit log" in r.json()["detail"]


def test_audit_log_and_accounts_on_postgresql(postgres_url):
    from iatros.access.store import AccessStore

    engine = open_engine(postgres_url)
    with engine.begin() as c:
        c.execute(text("DELETE FROM service_audit_log"))
        c.execute(text("DELETE FROM service_users"))
    log = AuditLog(engine)
    threads = [threading.Thread(target=_fill, args=(log, 5)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.verify()["ok"] and log.verify()["entries"] == 15
    with engine.begin() as c:
        c.execute(text("UPDATE service_audit_log SET target = 'x' WHERE seq = 7"))
    assert log.verify()["problems"][0]["seq"] == 7
    store = AccessStore(engine)
    store.add_user("pgclin", "correct-horse-battery", "clinician", ["a"])
    assert store.authenticate("pgclin", "correct-horse-battery").teams == ("a",)


@pytest.mark.parametrize("url", ["postgresql+psycopg://me:s3cr3tpw@127.0.0.1:1/db"])
def test_database_password_never_appears_in_errors(url):
    from iatros.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        open_engine(url)
    assert "s3cr3tpw" not in str(e.value)


def test_a_real_database_failure_fails_the_request_and_nothing_is_answered(client, app, as_user):
    h = as_user("remy")
    with app.state.audit.engine.begin() as c:
        c.execute(text("ALTER TABLE service_audit_log RENAME TO audit_moved_away"))
    r = client.get("/api/v1/models", headers=h)
    assert r.status_code == 503 and "audit log" in r.json()["detail"]
    assert r.json()["status"] == 503 and "models" not in r.json()


def test_group_commit_keeps_order_and_answers_every_writer():
    log = _log()
    futures = [log.submit(actor=f"u{k}", role="clinician", action="predict") for k in range(50)]
    entries = [f.result(timeout=30) for f in futures]
    assert [e.actor for e in sorted(entries, key=lambda e: e.seq)] == [f"u{k}" for k in range(50)]
    assert log.verify()["ok"]


def test_the_service_runs_on_postgresql(postgres_url, tabular_run, monkeypatch):
    """Registry, accounts, promotion and the audit log of one app, all in PostgreSQL."""
    from fastapi.testclient import TestClient

    from iatros import api
    from iatros.serve import ServeConfig, create_app
    from iatros.settings import get_settings
    from tests.serve.conftest import PASSWORD, SECRET, token

    monkeypatch.setenv("IATROS_DATABASE_URL", postgres_url)
    settings = get_settings()
    engine = open_engine(postgres_url)
    with engine.begin() as c:  # the database is shared by this session's PostgreSQL tests
        c.execute(text("DELETE FROM service_users WHERE name = 'pgremy'"))
        c.execute(text("DELETE FROM service_audit_log"))
    api.register(tabular_run, settings)
    version = api.promote(tabular_run, "pg-wdbc", "production", settings=settings)
    app = create_app(ServeConfig(secret=SECRET, settings=settings, reload_seconds=0.0))
    app.state.store.add_user("pgremy", PASSWORD, "researcher")
    client = TestClient(app)
    h = {"Authorization": f"Bearer {token(client, 'pgremy')}"}
    names = {m["name"]: m["version"] for m in client.get("/api/v1/models", headers=h).json()}
    assert names.get("pg-wdbc") == version.version, (names, version)
    assert app.state.audit.verify()["ok"]
    last = app.state.audit.entries(newest_first=True, limit=1)[0]
    assert (last.actor, last.action) == ("pgremy", "list models")
