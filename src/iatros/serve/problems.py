"""Errors as RFC 9457 problem details (`application/problem+json`): a title, the status, a
detail that says what is wrong and what to do, and the field or file at fault. No stack trace
ever reaches the client."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Content too large",
          415: "Unsupported media type", 422: "Unprocessable content", 429: "Too many requests",
          500: "Internal server error", 503: "Service unavailable"}


class Problem(Exception):
    """An error answer: status, detail and optionally the field (or file) at fault."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.errors = errors or []


def problem_body(status: int, detail: str, instance: str, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"),
                            "status": status, "detail": detail, "instance": instance}
    if field:
        body["field"] = field
    if errors:
        body["errors"] = errors
    return body


def problem_response(status: int, detail: str, instance: str, field: str | None = None,
                     headers: dict[str, str] | None = None,
                     errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(problem_body(status, detail, instance, field, errors), status_code=status,
                        media_type=PROBLEM_TYPE, headers=headers)


# the shape of a problem answer, for the OpenAPI schema of every route's error responses
PROBLEM_SCHEMA = {
    "type": "object", "required": ["title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "instance": {"type": "string"}, "field": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object"}}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": TITLES[code], "content": {PROBLEM_TYPE: {"schema": PROBLEM_SCHEMA}}}
    for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)}
