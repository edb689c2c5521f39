"""The versioned JSON API (`/api/v1`): login, models and their cards, predict and explain for
every modality, notes, de-identification, batch jobs, and the admin endpoints. Every route
states the roles it admits; the app refuses to start with a route that does not."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from iatros.access.store import AccessError, Principal
from iatros.errors import IatrosError
from iatros.serve.catalog import ServedModel
from iatros.serve.fhir import assess, check_bundle
from iatros.serve.inputs import (
    json_safe,
    public_results,
    record_inputs,
    rows_csv,
    save_uploads,
    texts_files,
    workspace,
)
from iatros.serve.problems import ERROR_RESPONSES, Problem
from iatros.serve.security import allow, audit_context, require_patient, sign_in

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

READERS = ("clinician", "researcher", "admin", "system")
PREDICTORS = ("clinician", "researcher", "system")
ADMIN = ("admin",)


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ModelSummary(Open):
    name: str
    version: int
    stage: str
    available: bool


class PredictRequest(BaseModel):
    """Tabular rows (`rows`: objects of column: value) or notes (`texts`) for the model;
    `patient_id` names the patient the inputs belong to (checked against your care teams)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    texts: list[Annotated[str, Field(max_length=200_000)]] | None = Field(default=None, max_length=256)
    patient_id: str | None = Field(default=None, max_length=200)


class Prediction(BaseModel):
    model: str
    version: int
    results: list[dict[str, Any]]


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=200_000)
    patient_id: str | None = Field(default=None, max_length=200)
    fhir: bool = True


class DeidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=200_000)
    patient_id: str | None = Field(default=None, max_length=200)
    mode: str = Field(default="tags", pattern="^(tags|surrogates)$")


class DeidResult(BaseModel):
    text: str
    report: dict[str, Any]


class Job(BaseModel):
    id: str
    model: str
    status: str
    done: int
    total: int
    results: list[dict[str, Any]] | None = None
    error: str | None = None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._-]+$")
    password: str = Field(min_length=12, max_length=200)
    role: str = Field(pattern="^(clinician|researcher|admin)$")
    teams: list[Annotated[str, Field(max_length=120)]] = Field(default=[], max_length=50)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    role: str = Field(pattern="^(system|device)$")


class Patients(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=10_000)


def _served(request: Request, name: str) -> ServedModel:
    model = request.app.state.catalog.get(name)
    ctx = audit_context(request)
    ctx.model_version = f"{model.label} (run {model.run_id})"
    return model


async def _predict_files(request: Request, model: ServedModel, paths: list[Path],
                         names: dict[str, str], folder: Path, explain: bool) -> Prediction:
    """Score the request's files through the model's dynamic batcher."""
    batcher = model.batcher(request.app.state.config.work_dir / "batches")
    try:
        results = await asyncio.wrap_future(batcher.submit(paths, explain))
    except IatrosError as e:
        raise Problem(422, str(e).replace(str(folder) + "/", "")) from None
    public = json_safe(public_results(results, names, folder))
    if public and all("error" in r for r in public):
        errors = [{"field": r["input"], "message": r["error"]} for r in public[:20]]
        raise Problem(422, f"no input could be used: {public[0]['input']}: {public[0]['error']}",
                      field=public[0]["input"], errors=errors)
    return Prediction(model=model.name, version=model.version, results=public)


async def _predict_json(request: Request, name: str, body: PredictRequest, principal: Principal,
                        explain: bool) -> Prediction:
    ctx = audit_context(request)
    ctx.action = "explain" if explain else "predict"
    model = _served(request, name)
    require_patient(request, principal, body.patient_id)
    raw = body.model_dump_json().encode()
    if not body.patient_id:
        ctx.target = f"input:{hashlib.sha256(raw).hexdigest()[:16]}"
    if (body.rows is None) == (body.texts is None):
        raise Problem(422, "send exactly one of 'rows' (tabular models) or 'texts' (note models)",
                      field="rows")
    modality = model.require().config["modality"]
    wanted = "rows" if modality == "tabular" else "texts" if modality == "text" else None
    given = "rows" if body.rows is not None else "texts"
    if wanted != given:
        hint = (f"send '{wanted}'" if wanted else "send a FHIR Bundle to .../fhir"
                if modality == "ehr" else "upload files to .../predict/files")
        raise Problem(422, f"model {name!r} is a {modality} model: {hint}", field=given)
    with workspace(request.app.state.config.work_dir / "requests") as folder:
        if body.rows is not None:
            path, names = rows_csv(body.rows, folder)
            paths = [path]
        else:
            paths, names = texts_files(body.texts or [], folder)
        return await _predict_files(request, model, paths, names, folder, explain)


async def _predict_uploads(request: Request, name: str, files: list[UploadFile],
                           patient_id: str | None, principal: Principal, explain: bool) -> Prediction:
    ctx = audit_context(request)
    ctx.action = "explain" if explain else "predict"
    model = _served(request, name)
    require_patient(request, principal, patient_id)
    config = request.app.state.config
    with workspace(config.work_dir / "requests") as folder:
        paths, names, digest = await save_uploads(files, folder, config.max_upload_bytes,
                                                  config.max_items)
        if not patient_id:
            ctx.target = f"input:{digest}"
        return await _predict_files(request, model, record_inputs(paths), names, folder, explain)


@router.get("/health", tags=["service"])
def health() -> dict[str, str]:
    """Liveness only: no data, no authentication."""
    return {"status": "ok"}


@router.post("/auth/token", response_model=Token, tags=["auth"])
def login(request: Request, username: Annotated[str, Form(max_length=120)],
          password: Annotated[str, Form(max_length=200)]) -> Token:
    """OAuth2 password flow: a signed bearer token (JWT) for a user name and password."""
    try:
        principal = sign_in(request, username, password, "login")
    except AccessError as e:
        raise Problem(401, str(e), field="password") from None
    issuer = request.app.state.issuer
    return Token(access_token=issuer.issue(principal.name, principal.role),
                 expires_in=issuer.ttl_seconds)


@router.get("/models", response_model=list[ModelSummary], tags=["models"])
def list_models(request: Request, _: Annotated[Principal, Depends(allow(*READERS))]) -> list[Any]:
    """Promoted models (the served version of each name) with their headline test metric."""
    audit_context(request).action = "list models"
    return [m.summary() for m in request.app.state.catalog.all()]


@router.get("/models/{name}", response_model=Open, tags=["models"])
def model_card(request: Request, name: str,
               _: Annotated[Principal, Depends(allow(*READERS))]) -> Any:
    """The model card as data: intended use, limitations, inputs, test metrics with 95% CIs,
    calibration, subgroup audits and figure names."""
    audit_context(request).action = "read model card"
    return json_safe(_served(request, name).card())


@router.get("/models/{name}/card", response_class=HTMLResponse, tags=["models"])
def model_card_html(request: Request, name: str,
                    _: Annotated[Principal, Depends(allow(*READERS))]) -> Any:
    """The run's HTML model card (report.html), as written and PHI-checked by training."""
    audit_context(request).action = "read model card"
    model = _served(request, name)
    # the card carries its own stylesheet inline and no script: allow exactly that
    return FileResponse(model.require().folder.path / "report.html", media_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'none'; img-src 'self' data:; "
                                                            "style-src 'unsafe-inline'; "
                                                            "frame-ancestors 'none'"})


@router.get("/models/{name}/figures/{figure}", tags=["models"],
            responses={200: {"content": {"image/png": {}}}})
def model_figure(request: Request, name: str, figure: str,
                 _: Annotated[Principal, Depends(allow(*READERS))]) -> Any:
    """One figure of the model card (ROC, calibration, subgroup plots ...)."""
    audit_context(request).action = "read model card"
    model = _served(request, name)
    if figure not in model.card()["figures"]:
        raise Problem(404, f"model {name!r} has no figure {figure!r}", field="figure")
    return FileResponse(model.require().folder.path / "figures" / figure, media_type="image/png")


@router.post("/models/{name}/predict", response_model=Prediction, tags=["predict"])
async def predict_json(request: Request, name: str, body: PredictRequest,
                       principal: Annotated[Principal, Depends(allow(*PREDICTORS))]) -> Prediction:
    """Calibrated probabilities (classification), values (regression) or survival curves for
    tabular rows, or a note model's predictions for texts."""
    return await _predict_json(request, name, body, principal, explain=False)


@router.post("/models/{name}/explain", response_model=Prediction, tags=["predict"])
async def explain_json(request: Request, name: str, body: PredictRequest,
                       principal: Annotated[Principal, Depends(allow(*PREDICTORS))]) -> Prediction:
    """As predict, with the explanation each modality gives (word attributions for notes)."""
    return await _predict_json(request, name, body, principal, explain=True)


@router.post("/models/{name}/predict/files", response_model=Prediction, tags=["predict"])
async def predict_files(request: Request, name: str, files: Annotated[list[UploadFile], File()],
                        principal: Annotated[Principal, Depends(allow(*PREDICTORS))],
                        patient_id: Annotated[str | None, Form(max_length=200)] = None) -> Prediction:
    """Uploaded inputs: images (PNG, JPEG, DICOM, NIfTI), CSV tables with the training
    columns, note files, or ECG recordings; one result per input (per row for CSV), an input
    that cannot be read becomes {"input", "error"} and the others go on."""
    return await _predict_uploads(request, name, files, patient_id, principal, explain=False)


@router.post("/models/{name}/explain/files", response_model=Prediction, tags=["predict"])
async def explain_files(request: Request, name: str, files: Annotated[list[UploadFile], File()],
                        principal: Annotated[Principal, Depends(allow(*PREDICTORS))],
                        patient_id: Annotated[str | None, Form(max_length=200)] = None) -> Prediction:
    """As predict/files, with the explanation: a Grad-CAM heat map over each image (a PNG data
    URI in `heatmap`), per-window scores and a figure for recordings, words for notes."""
    return await _predict_uploads(request, name, files, patient_id, principal, explain=True)


@router.post("/models/{name}/jobs", response_model=Job, status_code=202, tags=["predict"])
async def create_job(request: Request, name: str, files: Annotated[list[UploadFile], File()],
                     principal: Annotated[Principal, Depends(allow(*PREDICTORS))],
                     explain: Annotated[bool, Form()] = False) -> Job:
    """A batch of many inputs as a background job: answers 202 with the job id at once; poll
    GET /jobs/{id} for progress and results."""
    model = _served(request, name)
    ctx = audit_context(request)
    ctx.action = "create batch job"
    config = request.app.state.config
    jobs = request.app.state.jobs
    folder = jobs.new_folder()
    try:
        paths, names, digest = await save_uploads(files, folder, config.max_upload_bytes,
                                                  config.max_items * 40)
    except Problem:
        jobs.discard_folder(folder)
        raise
    ctx.target = f"input:{digest}"
    job = jobs.submit(model, record_inputs(paths), names, folder, explain, owner=principal.name)
    return Job(**job.public())


@router.get("/jobs/{job_id}", response_model=Job, tags=["predict"])
def get_job(request: Request, job_id: str,
            principal: Annotated[Principal, Depends(allow(*PREDICTORS))]) -> Job:
    """A batch job's status, progress (done / total) and, when finished, its results."""
    audit_context(request).action = "read batch job"
    job = request.app.state.jobs.get(job_id, principal.name)
    return Job(**job.public())


@router.post("/models/{name}/fhir", response_model=Open, tags=["fhir"])
async def fhir_risk(request: Request, name: str, bundle: Annotated[dict[str, Any], Body()],
                    principal: Annotated[Principal, Depends(allow(*PREDICTORS))],
                    all_encounters: Annotated[bool, Query()] = False) -> Any:
    """A FHIR R4 Bundle of one patient (Patient, Encounters, Observations ...) in; the health-
    record model's risk for the latest encounter (all with `all_encounters`) out, as a
    collection Bundle of RiskAssessments: model version, calibrated probability, the
    Observations used as `basis`, the variables that moved the risk as `rationale`. For models
    trained on FHIR data (`iatros train ehr:FOLDER_OF_BUNDLES --target ...`)."""
    ctx = audit_context(request)
    ctx.action = "assess risk (FHIR)"
    model = _served(request, name)
    loaded = model.require()
    if loaded.config["modality"] != "ehr":
        raise Problem(422, f"model {name!r} is a {loaded.config['modality']} model; FHIR Bundles "
                      f"go to health-record models", field="name")
    patient, resources = check_bundle(bundle)
    require_patient(request, principal, patient)
    with workspace(request.app.state.config.work_dir / "requests") as folder:
        try:
            out = await run_in_threadpool(assess, loaded, bundle, resources, patient, folder,
                                          model.label, all_encounters)
        except IatrosError as e:
            raise Problem(422, str(e).replace(str(folder) + "/", "")) from None
    return json_safe(out)


@router.post("/nlp/extract", response_model=Open, tags=["notes"])
async def extract_note(request: Request, body: NoteRequest,
                       principal: Annotated[Principal, Depends(allow(*PREDICTORS))]) -> Any:
    """Entities of a note (problems, symptoms, medications, labs, procedures) with ConText
    (negated, uncertain, historical, family, hypothetical), concept codes and, with `fhir`, a
    validated FHIR R4 Bundle."""
    ctx = audit_context(request)
    ctx.action = "extract note"
    require_patient(request, principal, body.patient_id)
    if not body.patient_id:
        ctx.target = f"input:{hashlib.sha256(body.text.encode()).hexdigest()[:16]}"
    extractor = await run_in_threadpool(request.app.state.extractor)
    doc = await run_in_threadpool(extractor.extract, body.text, "note", body.patient_id or "unknown",
                                  fhir=body.fhir)
    return json_safe(doc)


@router.post("/nlp/deid", response_model=DeidResult, tags=["notes"])
async def deid_note(request: Request, body: DeidRequest,
                    principal: Annotated[Principal, Depends(allow(*PREDICTORS, "admin"))]) -> Any:
    """A note with its protected health information replaced by tags or surrogates (keyed by
    the service's IATROS_DEID_KEY: the same patient gets the same pseudonym and date shift)."""
    from iatros.api.nlp import deid_text

    ctx = audit_context(request)
    ctx.action = "de-identify note"
    ctx.target = f"input:{hashlib.sha256(body.text.encode()).hexdigest()[:16]}"
    key = request.app.state.config.deid_key
    try:
        return await run_in_threadpool(deid_text, body.text, patient_id=body.patient_id or "unknown",
                                       key=key, mode=body.mode)
    except IatrosError as e:
        raise Problem(503, f"de-identification is not configured on this server: {e}") from None


# admin
@router.get("/users", response_model=list[Open], tags=["admin"])
def users(request: Request, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> list[Any]:
    audit_context(request).action = "list users"
    return [json_safe({"name": u.name, "role": u.role, "teams": list(u.teams), "disabled": u.disabled,
                    "created": u.created.isoformat()}) for u in request.app.state.store.users()]


@router.post("/users", response_model=Open, status_code=201, tags=["admin"])
def add_user(request: Request, body: NewUser, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    ctx = audit_context(request)
    ctx.action, ctx.target = "create user", f"user:{body.name}"
    try:
        u = request.app.state.store.add_user(body.name, body.password, body.role, body.teams)
    except IatrosError as e:
        raise Problem(409 if "exists" in str(e) else 422, str(e), field="name") from None
    return {"name": u.name, "role": u.role, "teams": list(u.teams)}


@router.post("/users/{name}/disable", response_model=Open, tags=["admin"])
def disable_user(request: Request, name: str, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    ctx = audit_context(request)
    ctx.action, ctx.target = "disable user", f"user:{name}"
    try:
        request.app.state.store.set_disabled(name, True)
    except IatrosError as e:
        raise Problem(404, str(e), field="name") from None
    return {"name": name, "disabled": True}


@router.get("/keys", response_model=list[Open], tags=["admin"])
def keys(request: Request, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> list[Any]:
    audit_context(request).action = "list API keys"
    return [{"id": k.id, "name": k.name, "role": k.role, "prefix": k.prefix, "revoked": k.revoked,
             "created": k.created.isoformat()} for k in request.app.state.store.api_keys()]


@router.post("/keys", response_model=Open, status_code=201, tags=["admin"])
def create_key(request: Request, body: NewKey, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    """A new API key; its secret is in this answer only (stored as a digest)."""
    ctx = audit_context(request)
    ctx.action, ctx.target = "create API key", f"key:{body.name}"
    info, secret = request.app.state.store.create_key(body.name, body.role)
    return {"id": info.id, "name": info.name, "role": info.role, "prefix": info.prefix, "key": secret}


@router.post("/keys/{ref}/revoke", response_model=Open, tags=["admin"])
def revoke_key(request: Request, ref: str, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    ctx = audit_context(request)
    ctx.action, ctx.target = "revoke API key", f"key:{ref}"
    try:
        info = request.app.state.store.revoke_key(ref)
    except IatrosError as e:
        raise Problem(404, str(e), field="ref") from None
    return {"id": info.id, "prefix": info.prefix, "revoked": True}


@router.post("/care-teams/{team}/patients", response_model=Open, tags=["admin"])
def assign_patients(request: Request, team: str, body: Patients,
                    _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    """Put patients in a care team (clinicians of that team may then name them)."""
    ctx = audit_context(request)
    ctx.action, ctx.target = "assign patients", f"team:{team}"
    added = request.app.state.store.assign(team, body.patient_ids)
    return {"team": team, "added": added}


@router.get("/audit-log", response_model=list[Open], tags=["admin"])
def audit_log(request: Request, _: Annotated[Principal, Depends(allow(*ADMIN))],
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              since: Annotated[datetime | None, Query()] = None) -> list[Any]:
    """The newest audit entries (who, role, action, patient or input digest, model version,
    outcome, time, chain hashes)."""
    audit_context(request).action = "read audit log"
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return [e.__dict__ for e in request.app.state.audit.entries(since, limit, newest_first=True)]


@router.get("/audit-log/verify", response_model=Open, tags=["admin"])
def verify_audit_log(request: Request, _: Annotated[Principal, Depends(allow(*ADMIN))]) -> Any:
    """Walk the hash chain: ok, entry count, head, and every edited or missing entry."""
    audit_context(request).action = "verify audit log"
    return request.app.state.audit.verify()

