"""Schema fuzzing with schemathesis: every operation of the OpenAPI document, with generated
valid and invalid inputs, never answers 5xx and always answers what the schema declares
(status, content type, body)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (iatros[dev]) is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serve.conftest import PASSWORD, make_app, promote, token  # noqa: E402

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ADMIN_PATHS = ("/api/v1/users", "/api/v1/keys", "/api/v1/audit-log", "/api/v1/care-teams")


@pytest.fixture
def served(tabular_run):
    promote(tabular_run, "wdbc")
    app = make_app(rate_per_minute=100_000, deid_key="k" * 32)
    app.state.store.add_user("clara", PASSWORD, "clinician", ["icu-a"])
    app.state.store.add_user("ada", PASSWORD, "admin")
    from fastapi.testclient import TestClient

    client = TestClient(app)
    headers = {user: {"Authorization": f"Bearer {token(client, user)}"} for user in ("clara", "ada")}
    headers["device"] = {"X-API-Key": app.state.store.create_key("bed-1", "device")[1]}
    return app, headers


def test_no_server_errors_and_responses_match_the_schema(served):
    app, headers = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        if operation.path.startswith("/api/v1/nlp/extract"):
            continue  # the terminology dictionary takes tens of seconds to build; covered elsewhere
        _fuzz(operation, headers[_caller(operation.path)])


def _caller(path: str) -> str:
    """Who calls an endpoint in the fuzz: one its roles admit, so the handler itself runs."""
    if path == "/api/v1/monitor/readings":
        return "device"
    if path.startswith(ADMIN_PATHS) or path.startswith("/api/v1/monitor/"):
        return "ada"    # an admin may admit patients and sees every monitored one
    return "clara"


def _fuzz(operation, auth: dict[str, str]) -> None:
    from hypothesis import given

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        case.call_and_validate(headers=auth, checks=CHECKS)
    fuzz()
