"""The dashboard: server-rendered pages (Jinja2 templates, local CSS, no script from elsewhere)
over the same catalog, predictors, note pipeline and access store as the JSON API. A browser
logs in with a form; the session is the same signed token in an HttpOnly, SameSite=Strict
cookie. Pages state their roles like API routes; a page a role may not see says so."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from iatros.access.store import KEY_ROLES, USER_ROLES, AccessError, Principal
from iatros.errors import IatrosError
from iatros.serve import api_v1
from iatros.serve.problems import Problem
from iatros.serve.security import SESSION_COOKIE, allow, audit_context, sign_in

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
EVERYONE = ("clinician", "researcher", "admin")
PREDICTORS = ("clinician", "researcher")


class PageProblem(Exception):
    """A page that cannot be shown: a redirect to the login form, or a 'denied' page."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def page(*roles: str) -> Any:
    """A page dependency: the logged-in user with one of `roles` (the API's `allow` check),
    else the login form or a 'denied' page; forms posted from another site are refused."""
    check = allow(*roles)

    def dependency(request: Request) -> Principal:
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urlparse(origin).netloc != request.url.netloc:
                raise PageProblem(403, "this form was sent from another site")
        try:
            return check(request)
        except Problem as e:
            raise PageProblem(e.status, e.detail) from None

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


def _render(request: Request, name: str, principal: Principal | None, status: int = 200,
            **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"user": principal, **context},
                                      status_code=status)


def _segments(text: str, entities: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """The note cut into plain text and entity spans (overlaps: the first one wins)."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    last = 0
    for e in sorted(entities, key=lambda e: (e["start"], -e["end"])):
        if e["start"] < last:
            continue
        out.append((text[last:e["start"]], None))
        out.append((text[e["start"]:e["end"]], e))
        last = e["end"]
    out.append((text[last:], None))
    return out


def mount(app: FastAPI) -> None:
    """Add the pages and the static assets to `app`."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(PageProblem)
    async def on_page_problem(request: Request, exc: PageProblem) -> Response:
        if exc.status == 401:
            return RedirectResponse("/login", status_code=303)
        return _render(request, "denied.html", None, status=exc.status, detail=exc.detail)

    from iatros.serve import dashboard_monitor  # it builds on this module's page and _render

    dashboard_monitor.mount(app)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Any:
        return _render(request, "login.html", None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, username: Annotated[str, Form(max_length=120)],
              password: Annotated[str, Form(max_length=200)]) -> Any:
        try:
            principal = sign_in(request, username, password, "login (dashboard)")
        except AccessError as e:
            return _render(request, "login.html", None, status=401, error=str(e))
        issuer = request.app.state.issuer
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, issuer.issue(principal.name, principal.role),
                            max_age=issuer.ttl_seconds, httponly=True, samesite="strict",
                            secure=request.app.state.config.secure_cookies, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Any:
        audit_context(request).action = "logout"
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request, user: Annotated[Principal, Depends(page(*EVERYONE))]) -> Any:
        audit_context(request).action = "list models (dashboard)"
        return _render(request, "models.html", user,
                       models=[m.summary() for m in request.app.state.catalog.all()])

    @app.get("/models/{name}", response_class=HTMLResponse, include_in_schema=False)
    def model_page(request: Request, name: str,
                   user: Annotated[Principal, Depends(page(*EVERYONE))]) -> Any:
        audit_context(request).action = "read model card (dashboard)"
        try:
            model = api_v1._served(request, name)
            card = model.card()
        except Problem as e:
            raise PageProblem(e.status, e.detail) from None
        return _render(request, "model.html", user, card=card, may_predict=user.role in PREDICTORS)

    @app.post("/models/{name}/predict", response_class=HTMLResponse, include_in_schema=False)
    async def model_predict(request: Request, name: str, files: Annotated[list[UploadFile], File()],
                            user: Annotated[Principal, Depends(page(*PREDICTORS))],
                            patient_id: Annotated[str, Form(max_length=200)] = "") -> Any:
        try:
            model = api_v1._served(request, name)
            card = model.card()
            result = await api_v1._predict_uploads(request, name, files, patient_id or None, user,
                                                   explain=True)
        except Problem as e:
            raise PageProblem(e.status, e.detail) from None
        audit_context(request).action = "explain (dashboard)"
        return _render(request, "model.html", user, card=card, may_predict=True,
                       results=result.results)

    @app.get("/notes", response_class=HTMLResponse, include_in_schema=False)
    def notes_page(request: Request, user: Annotated[Principal, Depends(page(*PREDICTORS))]) -> Any:
        audit_context(request).action = "open notes (dashboard)"
        return _render(request, "notes.html", user)

    @app.post("/notes", response_class=HTMLResponse, include_in_schema=False)
    async def notes_extract(request: Request, user: Annotated[Principal, Depends(page(*PREDICTORS))],
                            text: Annotated[str, Form(min_length=1, max_length=200_000)]) -> Any:
        ctx = audit_context(request)
        ctx.action = "extract note (dashboard)"
        extractor = await run_in_threadpool(request.app.state.extractor)
        try:
            doc = await run_in_threadpool(extractor.extract, text, "note", "unknown", fhir=False)
        except IatrosError as e:
            raise PageProblem(422, str(e)) from None
        return _render(request, "notes.html", user, text=text, segments=_segments(text, doc["entities"]),
                       entities=doc["entities"])

    def _ehr_models(request: Request) -> list[dict[str, Any]]:
        return [m.summary() for m in request.app.state.catalog.all()
                if m.loaded is not None and m.loaded.config["modality"] == "ehr"]

    @app.get("/patient-risk", response_class=HTMLResponse, include_in_schema=False)
    def risk_page(request: Request, user: Annotated[Principal, Depends(page(*PREDICTORS))]) -> Any:
        audit_context(request).action = "open patient risk (dashboard)"
        return _render(request, "risk.html", user, models=_ehr_models(request))

    @app.post("/patient-risk", response_class=HTMLResponse, include_in_schema=False)
    async def risk_assess(request: Request, user: Annotated[Principal, Depends(page(*PREDICTORS))],
                          model: Annotated[str, Form(max_length=120)],
                          bundle: Annotated[UploadFile, File()]) -> Any:
        import json

        config = request.app.state.config
        raw = await bundle.read(config.max_upload_bytes + 1)
        try:
            if len(raw) > config.max_upload_bytes:
                raise Problem(413, f"the Bundle is larger than {config.max_upload_bytes} bytes")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise Problem(422, f"{bundle.filename}: not JSON ({e})") from None
            if not isinstance(body, dict):
                raise Problem(422, f"{bundle.filename}: expected a FHIR Bundle object")
            out = await api_v1.fhir_risk(request, model, body, user)
        except Problem as e:
            return _render(request, "risk.html", user, models=_ehr_models(request), error=e.detail,
                           status=e.status)
        audit_context(request).action = "assess risk (FHIR, dashboard)"
        assessments = [e["resource"] for e in out["bundle"]["entry"]]
        return _render(request, "risk.html", user, models=_ehr_models(request), chosen=model,
                       assessments=assessments, encounters=out["encounters"])

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, user: Annotated[Principal, Depends(page("admin"))]) -> Any:
        audit_context(request).action = "list users (dashboard)"
        return _admin_page(request, user)

    @app.post("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_add(request: Request, user: Annotated[Principal, Depends(page("admin"))],
                  name: Annotated[str, Form(max_length=120)],
                  password: Annotated[str, Form(max_length=200)],
                  role: Annotated[str, Form(max_length=20)],
                  teams: Annotated[str, Form(max_length=500)] = "") -> Any:
        ctx = audit_context(request)
        ctx.action, ctx.target = "create user (dashboard)", f"user:{name}"
        error = None
        try:
            request.app.state.store.add_user(name, password, role, teams.split(","))
        except IatrosError as e:
            error = str(e)
        return _admin_page(request, user, 422 if error else 200, error=error)

    def _admin_page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        store = request.app.state.store
        return _render(request, "users.html", user, users=store.users(), keys=store.api_keys(),
                       roles=USER_ROLES, key_roles=KEY_ROLES, status=status, **extra)

    @app.post("/admin/users/{name}/disable", response_class=HTMLResponse, include_in_schema=False)
    def users_disable(request: Request, name: str, user: Annotated[Principal, Depends(page("admin"))]) -> Any:
        ctx = audit_context(request)
        ctx.action, ctx.target = "disable user (dashboard)", f"user:{name}"
        try:
            request.app.state.store.set_disabled(name, True)
        except IatrosError as e:
            return _admin_page(request, user, 404, error=str(e))
        return _admin_page(request, user, message=f"user {name} disabled")

    @app.post("/admin/keys", response_class=HTMLResponse, include_in_schema=False)
    def keys_create(request: Request, user: Annotated[Principal, Depends(page("admin"))],
                    name: Annotated[str, Form(min_length=1, max_length=120)],
                    role: Annotated[str, Form(max_length=20)]) -> Any:
        ctx = audit_context(request)
        ctx.action, ctx.target = "create API key (dashboard)", f"key:{name}"
        try:
            info, secret = request.app.state.store.create_key(name, role)
        except IatrosError as e:
            return _admin_page(request, user, 422, error=str(e))
        return _admin_page(request, user, new_key={"prefix": info.prefix, "secret": secret,
                                                   "name": info.name})

    @app.post("/admin/keys/{ref}/revoke", response_class=HTMLResponse, include_in_schema=False)
    def keys_revoke(request: Request, ref: str, user: Annotated[Principal, Depends(page("admin"))]) -> Any:
        ctx = audit_context(request)
        ctx.action, ctx.target = "revoke API key (dashboard)", f"key:{ref}"
        try:
            request.app.state.store.revoke_key(ref)
        except IatrosError as e:
            return _admin_page(request, user, 404, error=str(e))
        return _admin_page(request, user, message=f"key {ref} revoked")

    @app.get("/admin/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, user: Annotated[Principal, Depends(page("admin"))]) -> Any:
        audit_context(request).action = "read audit log (dashboard)"
        log = request.app.state.audit
        return _render(request, "audit.html", user, entries=log.entries(limit=200, newest_first=True),
                       check=log.verify())
