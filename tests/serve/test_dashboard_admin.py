"""The dashboard's admin pages: create and revoke API keys (the secret shown once), disable a
user; each action audited; other roles refused."""

from __future__ import annotations

import re


def test_admin_creates_a_key_shown_once_and_revokes_it(client, app, as_user):
    h = as_user("ada")
    page = client.post("/admin/keys", headers=h, data={"name": "lab-feed", "role": "system"})
    assert page.status_code == 200
    secret = re.search(r'<code id="secret">([^<]+)</code>', page.text)[1]
    assert client.get("/api/v1/models", headers={"X-API-Key": secret}).status_code == 200
    again = client.get("/admin/users", headers=h).text
    assert "lab-feed" in again and secret not in again
    key_id = app.state.store.api_keys()[0].id
    assert "revoked" in client.post(f"/admin/keys/{key_id}/revoke", headers=h).text
    assert client.get("/api/v1/models", headers={"X-API-Key": secret}).status_code == 401
    actions = [e.action for e in app.state.audit.entries()]
    assert "create API key (dashboard)" in actions and "revoke API key (dashboard)" in actions


def test_admin_disables_a_user_and_their_token_stops(client, as_user):
    clara = as_user("clara")
    assert client.get("/api/v1/models", headers=clara).status_code == 200
    page = client.post("/admin/users/clara/disable", headers=as_user("ada"))
    assert "clara disabled" in page.text
    assert client.get("/api/v1/models", headers=clara).status_code == 401


def test_other_roles_cannot_use_admin_actions(client, app, as_user):
    r = client.post("/admin/keys", headers=as_user("clara"), data={"name": "x", "role": "system"})
    assert r.status_code == 403 and "Not allowed" in r.text
    assert app.state.store.api_keys() == []
