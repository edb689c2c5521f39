"""The audit and limits middleware, as plain ASGI (no per-request task or body copy): refuses
bodies over the size limit, turns an unhandled error into a 500 problem without a trace, adds
security headers, and stores the request's audit entry before the first byte of the answer
leaves. If the entry cannot be stored, the client gets a 503 instead of the answer."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iatros.access.audit import AuditWriteError
from iatros.serve.problems import PROBLEM_TYPE, problem_body
from iatros.serve.security import AuditContext

log = logging.getLogger("iatros")
NOT_AUDITED = ("/static/", "/api/v1/health", "/openapi.json", "/docs", "/redoc", "/favicon.ico")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"), (b"cache-control", b"no-store"),
                    (b"content-security-policy",
                     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                     b"frame-ancestors 'none'")]


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "refused" if status < 500 else "error"


def _problem_messages(status: int, detail: str, path: str) -> list[Message]:
    body = json.dumps(problem_body(status, detail, path)).encode()
    headers = [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode()),
               *SECURITY_HEADERS]
    return [{"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body}]


class AuditMiddleware:
    """Wraps the app: size limit, errors, headers, and the audit entry of every request."""

    def __init__(self, app: ASGIApp, audit: Any, max_body: int) -> None:
        self.app = app
        self.audit = audit
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        ctx = AuditContext(action=f"{scope['method']} {path}"[:120])
        scope.setdefault("state", {})["audit"] = ctx
        audited = not path.startswith(NOT_AUDITED)
        started = False
        dropped = False

        async def record(status: int) -> bool:
            if not audited:
                return True
            try:
                await asyncio.wrap_future(self.audit.submit(
                    actor=ctx.actor, role=ctx.role, action=ctx.action, target=ctx.target,
                    model_version=ctx.model_version, outcome=_outcome(status), status=status,
                    detail=ctx.detail))
                return True
            except AuditWriteError as e:
                log.error("audit write failed for %s %s: %s", scope["method"], path, e)
                return False

        async def send_wrapped(message: Message) -> None:
            nonlocal started, dropped
            if dropped:
                return
            if message["type"] == "http.response.start":
                started = True
                if not await record(message["status"]):
                    dropped = True
                    for m in _problem_messages(503, "the request could not be recorded in the audit "
                                               "log, so it was not completed; try again or tell "
                                               "the administrator", path):
                        await send(m)
                    return
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                message = {**message, "headers": headers}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            for m in _problem_messages(413, f"request body larger than {self.max_body} bytes", path):
                await send_wrapped(m)
            return
        try:
            await self.app(scope, receive, send_wrapped)
        except Exception:  # a bug: never a stack trace to the client
            log.exception("unhandled error on %s %s", scope["method"], path)
            if not started:
                for m in _problem_messages(500, "internal error; the request was not completed "
                                           "(see the server log)", path):
                    await send_wrapped(m)
