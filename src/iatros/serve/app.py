"""The FastAPI application: state (access store, audit log, model catalog, jobs), the audit
middleware (every request under /api and every dashboard action is recorded before its answer
leaves; if the entry cannot be stored the request fails), size limits, problem-details errors,
the JSON API and the dashboard. Routes without a role list are refused at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from iatros import __version__
from iatros.access.audit import AuditLog
from iatros.access.store import AccessStore, open_engine
from iatros.access.tokens import TokenIssuer, require_secret
from iatros.serve import api_v1, dashboard, monitor
from iatros.serve.catalog import ModelCatalog
from iatros.serve.config import ServeConfig
from iatros.serve.jobs import JobQueue
from iatros.serve.middleware import AuditMiddleware
from iatros.serve.problems import Problem, problem_response
from iatros.serve.security import RateLimiter, roles_of

log = logging.getLogger("iatros")
PUBLIC_PATHS = {"/api/v1/health", "/api/v1/auth/token", "/openapi.json", "/docs", "/redoc",
                "/docs/oauth2-redirect", "/login", "/logout", "/static"}


def _check_roles(app: FastAPI) -> None:
    """Deny by default: every route that is not public must state the roles it admits."""
    for route in [*app.routes, *api_v1.router.routes, *monitor.router.routes]:
        if isinstance(route, Mount) or not hasattr(route, "path"):
            continue
        path = route.path
        if any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS) or path == "/":
            continue
        if roles_of(route) is None and not getattr(getattr(route, "endpoint", None), "public", False):
            raise RuntimeError(f"route {path} states no roles; add Depends(allow(...))")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:20]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form")]
        out.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", ""))[:200]})
    return out


def create_app(config: ServeConfig) -> FastAPI:
    """The service for `config` (token secret required; database from its settings)."""
    secret = require_secret(config.secret)
    config.settings.home.mkdir(parents=True, exist_ok=True)
    engine = open_engine(config.settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        tasks = asyncio.ensure_future(monitor.run_monitor_tasks(app))
        yield
        tasks.cancel()
        if app.state.webhooks is not None:
            app.state.webhooks.close(5.0)
        app.state.jobs.shutdown()

    app = FastAPI(title="iatros", version=__version__, lifespan=lifespan,
                  description="Clinical models behind authentication, roles and an audit log. "
                              "Errors are RFC 9457 problem details.")
    app.state.config = config
    app.state.store = AccessStore(engine)
    app.state.audit = AuditLog(engine)
    app.state.issuer = TokenIssuer(secret, config.token_ttl_seconds)
    app.state.limiter = RateLimiter(config.rate_per_minute)
    app.state.device_limiter = RateLimiter(config.device_rate_per_minute)
    app.state.catalog = ModelCatalog(config.settings, config.reload_seconds)
    app.state.jobs = JobQueue(config.work_dir / "jobs")
    app.state.extractor = _lazy_extractor()
    app.state.webhooks = config.monitor.webhook_sender(monitor.audit_delivery(app.state.audit))
    monitor.start_monitor(app, engine, config.monitor.settings, app.state.webhooks,
                          config.monitor.deterioration, config.monitor.rhythm)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.status, exc.detail, request.url.path, exc.field, exc.headers,
                                exc.errors)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return problem_response(422, f"{first['field']}: {first['message']}", request.url.path,
                                first["field"], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.url.path}; the API is described at /docs"
        return problem_response(exc.status_code, detail, request.url.path,
                                headers=getattr(exc, "headers", None))

    app.include_router(api_v1.router)
    app.include_router(monitor.router)
    dashboard.mount(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization",
                                                                          "Content-Type", "X-API-Key"])
    app.add_middleware(AuditMiddleware, audit=app.state.audit, max_body=config.max_upload_bytes)
    _check_roles(app)
    return app


def _lazy_extractor() -> Callable[[], Any]:
    """The note pipeline, built on first use (loading terminologies takes seconds)."""
    import threading

    holder: dict[str, Any] = {}
    lock = threading.Lock()

    def get() -> Any:
        with lock:
            if "x" not in holder:
                from iatros.api.nlp import NoteExtractor

                holder["x"] = NoteExtractor()
            return holder["x"]
    return get
