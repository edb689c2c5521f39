"""Patient ids in the service's tables: with a master key, care teams and the audit log store
lookup tokens and sealed ids (no id in the database), lookups and display work with the key,
the audit chain verifies without it and finds an edited sealed id, a table holding encrypted
ids refuses to be used without the key, and rotating the master key changes no stored id."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytest.importorskip("argon2", reason="the service tables need iatros[serve]")

from iatros.access.audit import AuditLog  # noqa: E402
from iatros.access.patients import rotate_field_key  # noqa: E402
from iatros.access.store import AccessStore, Principal, open_engine  # noqa: E402
from iatros.crypto import KeyMissingError  # noqa: E402
from tests.crypto.helpers import use_key, write_key  # noqa: E402

CLINICIAN = Principal("ada", "clinician", teams=("icu",))


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def key(tmp_path, monkeypatch):
    return use_key(monkeypatch, write_key(tmp_path / "master.key"))


def _dump(url: str) -> str:
    engine = open_engine(url)
    with engine.connect() as c:
        rows = [*c.execute(text("SELECT * FROM service_care_teams")),
                *c.execute(text("SELECT * FROM service_audit_log"))]
    return repr(rows)


def test_care_teams_store_tokens_and_find_patients_with_the_key(url, key):
    store = AccessStore(open_engine(url))
    assert store.assign("icu", ["MRN-0042", "MRN-7"]) == 2
    assert store.assign("icu", ["MRN-0042"]) == 0  # found by its token
    assert store.may_see(CLINICIAN, "MRN-0042") and not store.may_see(CLINICIAN, "MRN-1")
    assert "MRN-0042" not in _dump(url) and "tok1:" in _dump(url)


def test_audit_targets_are_stored_as_tokens_shown_with_the_key_and_the_chain_verifies(url, key,
                                                                                     monkeypatch):
    log = AuditLog(open_engine(url))
    log.append(actor="ada", role="clinician", action="predict", target="patient:MRN-0042")
    log.append(actor="ada", role="clinician", action="predict", target="input:abc")
    assert "MRN-0042" not in _dump(url)
    assert [e.target for e in log.entries()] == ["patient:MRN-0042", "input:abc"]
    stored = log.entries(reveal=False)[0].target
    assert stored.startswith("patient:tok1:")
    use_key(monkeypatch, None)
    assert log.verify()["ok"]  # verified without the key
    assert AuditLog(open_engine(url)).entries()[0].target == stored  # shown as the token


def test_an_edited_sealed_id_breaks_the_chain(url, key):
    log = AuditLog(open_engine(url))
    log.append(actor="ada", role="clinician", action="predict", target="patient:MRN-1")
    other = log.patients.audit_target("patient:MRN-2")[1]
    with log.engine.begin() as c:
        c.execute(text("UPDATE service_audit_log SET target_sealed = :v WHERE seq = 1"), {"v": other})
    result = log.verify()
    assert not result["ok"] and "edited" in result["problems"][0]["problem"]


def test_tables_with_encrypted_ids_refuse_to_be_used_without_the_key(url, key, monkeypatch):
    AccessStore(open_engine(url)).assign("icu", ["MRN-0042"])
    use_key(monkeypatch, None)
    store = AccessStore(open_engine(url))
    with pytest.raises(KeyMissingError, match="IATROS_MASTER_KEY_FILE"):
        store.may_see(CLINICIAN, "MRN-0042")
    future = AuditLog(open_engine(url)).submit(actor="ada", role="clinician", action="predict",
                                               target="patient:MRN-0042")
    with pytest.raises(Exception, match="IATROS_MASTER_KEY_FILE"):
        future.result()


def test_without_a_key_ids_are_stored_as_before(url, monkeypatch):
    use_key(monkeypatch, None)
    store = AccessStore(open_engine(url))
    store.assign("icu", ["MRN-0042"])
    AuditLog(store.engine).append(actor="ada", role="clinician", action="predict",
                                  target="patient:MRN-0042")
    assert store.may_see(CLINICIAN, "MRN-0042") and "MRN-0042" in _dump(url)


def test_rotating_the_master_key_rewraps_the_field_key_and_changes_no_stored_id(url, key, tmp_path,
                                                                                  monkeypatch):
    store = AccessStore(open_engine(url))
    store.assign("icu", ["MRN-0042"])
    log = AuditLog(store.engine)
    log.append(actor="ada", role="clinician", action="predict", target="patient:MRN-0042")
    before = _dump(url)
    new = use_key(monkeypatch, write_key(tmp_path / "new.key"))
    assert rotate_field_key(store.engine, key, new) == "re-wrapped"
    assert _dump(url) == before
    store, log = AccessStore(open_engine(url)), AuditLog(open_engine(url))
    assert store.may_see(CLINICIAN, "MRN-0042") and log.verify()["ok"]
    assert log.entries()[0].target == "patient:MRN-0042"


def test_an_older_database_gains_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE service_care_teams (id INTEGER PRIMARY KEY, team VARCHAR(120), "
                  "patient_id VARCHAR(200))")
    open_engine(f"sqlite:///{path}")
    with sqlite3.connect(path) as c:
        columns = [r[1] for r in c.execute("PRAGMA table_info(service_care_teams)")]
    assert "patient_sealed" in columns
