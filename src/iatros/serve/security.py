"""Who is calling and whether they may: bearer tokens (users), API keys (devices, hospital
systems) or the dashboard's session cookie; per-route role lists (a route without one is
refused by the app's own check); rate limits per caller; the audit context of the request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from iatros.access.store import AccessError, AccessStore, Principal
from iatros.access.tokens import TokenIssuer
from iatros.serve.problems import Problem

SESSION_COOKIE = "iatros_session"
API_KEY_HEADER = "X-API-Key"
ALL_USERS = ("clinician", "researcher", "admin")


@dataclass
class AuditContext:
    """What the audit entry of this request will say (filled in as the request is handled)."""

    actor: str = "anonymous"
    role: str = "-"
    action: str = ""
    target: str = ""
    model_version: str = ""
    detail: str = ""


@dataclass
class RateLimiter:
    """A token bucket per caller: `per_minute` requests, refilled continuously."""

    per_minute: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, caller: str) -> None:
        now = time.monotonic()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / rate + 0.999))
                raise Problem(429, f"rate limit of {self.per_minute} requests a minute reached; "
                              f"retry in {wait} s", headers={"Retry-After": str(wait)})
            self._buckets[caller] = (tokens - 1.0, now)


def audit_context(request: Request) -> AuditContext:
    ctx = getattr(request.state, "audit", None)
    if ctx is None:
        ctx = AuditContext()
        request.state.audit = ctx
    return ctx


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Problem(401, "the Authorization header must be 'Bearer TOKEN'",
                          field="Authorization", headers={"WWW-Authenticate": "Bearer"})
        return "token", value.strip()
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return "key", key.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return "token", cookie
    return None


def authenticate(request: Request) -> Principal:
    """The caller behind the request's token, key or cookie; 401 when absent or invalid."""
    state = request.app.state
    store: AccessStore = state.store
    issuer: TokenIssuer = state.issuer
    creds = _credentials(request)
    if creds is None:
        raise Problem(401, "authentication required: log in (POST /api/v1/auth/token) and send "
                      "'Authorization: Bearer TOKEN', or send an API key in X-API-Key",
                      headers={"WWW-Authenticate": "Bearer"})
    kind, value = creds
    try:
        principal = (store.principal(issuer.subject(value)) if kind == "token"
                     else store.authenticate_key(value))
    except AccessError as e:
        raise Problem(401, str(e), field="Authorization" if kind == "token" else API_KEY_HEADER,
                      headers={"WWW-Authenticate": "Bearer"}) from None
    ctx = audit_context(request)
    ctx.actor, ctx.role = principal.name, principal.role
    limiter = state.device_limiter if principal.role == "device" else state.limiter
    limiter.check(f"{principal.kind}:{principal.name}")
    return principal


def sign_in(request: Request, username: str, password: str, action: str) -> Principal:
    """Check a user name and password for a login (rate-limited per client address, audited
    under `action`); AccessError when they are wrong or the user is disabled."""
    ctx = audit_context(request)
    ctx.action, ctx.actor = action, username[:120]
    request.app.state.limiter.check(f"login:{request.client.host if request.client else '-'}")
    principal: Principal = request.app.state.store.authenticate(username, password)
    ctx.role = principal.role
    return principal


def allow(*roles: str) -> Callable[[Request], Principal]:
    """A dependency that admits only callers with one of `roles` (403 otherwise)."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.role not in roles:
            raise Problem(403, f"role {principal.role!r} may not use this endpoint (allowed: "
                          f"{', '.join(roles)})")
        return principal

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


def require_patient(request: Request, principal: Principal, patient_id: str | None) -> None:
    """A clinician may name only patients of their care teams; the patient is audited."""
    if not patient_id:
        return
    audit_context(request).target = f"patient:{patient_id}"[:200]
    if not request.app.state.store.may_see(principal, patient_id):
        raise Problem(403, f"patient {patient_id} is not in your care teams "
                      f"({', '.join(principal.teams) or 'none'})", field="patient_id")


def roles_of(route: Any) -> tuple[str, ...] | None:
    """The roles a route admits (None: the route has no role check)."""
    for dep in getattr(route, "dependant", None).dependencies if hasattr(route, "dependant") else []:
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            return tuple(roles)
    return None
