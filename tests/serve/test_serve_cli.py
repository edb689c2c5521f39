"""The service's command line: accounts, keys, care teams; `serve` needs its secret and binds
to localhost by default; no secret is printed where it should not be."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from iatros.cli import app as cli
from iatros.errors import ConfigError

runner = CliRunner()


def test_serve_refuses_to_start_without_a_token_secret(monkeypatch):
    monkeypatch.delenv("IATROS_SERVE_SECRET", raising=False)
    result = runner.invoke(cli, ["serve"])
    assert isinstance(result.exception, ConfigError)
    assert "IATROS_SERVE_SECRET" in str(result.exception)
    monkeypatch.setenv("IATROS_SERVE_SECRET", "short")
    result = runner.invoke(cli, ["serve"])
    assert "too short" in str(result.exception)


def test_serve_binds_to_localhost_by_default():
    from iatros.cli.service import serve_cmd

    assert inspect.signature(serve_cmd).parameters["host"].default == "127.0.0.1"


def test_users_add_list_disable(monkeypatch):
    monkeypatch.setenv("IATROS_USER_PASSWORD", "correct-horse-battery")
    added = runner.invoke(cli, ["users", "add", "clara", "--role", "clinician", "--team", "icu-a"])
    assert added.exit_code == 0, added.output
    assert "correct-horse-battery" not in added.output
    listed = runner.invoke(cli, ["users", "list"]).output
    assert "clara\tclinician\ticu-a\tactive" in listed
    assert runner.invoke(cli, ["users", "disable", "clara"]).exit_code == 0
    assert "disabled" in runner.invoke(cli, ["users", "list"]).output


def test_users_add_refuses_a_short_password_or_a_bad_role(monkeypatch):
    monkeypatch.setenv("IATROS_USER_PASSWORD", "short")
    result = runner.invoke(cli, ["users", "add", "x", "--role", "clinician"])
    assert "12 characters" in str(result.exception)
    monkeypatch.setenv("IATROS_USER_PASSWORD", "long-enough-password")
    result = runner.invoke(cli, ["users", "add", "x", "--role", "superuser"])
    assert "superuser" in str(result.exception)


def test_key_secret_is_printed_once_and_never_listed():
    created = runner.invoke(cli, ["keys", "create", "lab-system"])
    assert created.exit_code == 0
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("iat_")
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "lab-system" in listed and secret not in listed
    assert "revoked" in runner.invoke(cli, ["keys", "revoke", "1"]).output
    assert "revoked" in runner.invoke(cli, ["keys", "list"]).output


def test_care_team_assignment():
    result = runner.invoke(cli, ["care-teams", "assign", "icu-a", "MRN-1", "MRN-2", "MRN-1"])
    assert result.exit_code == 0 and "2 patient(s)" in result.output


@pytest.mark.parametrize("args", [["audit-log", "verify", "--expect-head", "nonsense"],
                                  ["audit-log", "export", "--since", "yesterday"]])
def test_audit_log_options_are_checked(args):
    result = runner.invoke(cli, args)
    assert isinstance(result.exception, ConfigError)
