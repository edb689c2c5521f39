"""`iatros serve`: the clinical service. A FastAPI app that serves promoted model versions
(predict and explain for every modality, FHIR in and out, notes and de-identification) behind
users, roles and API keys, records every request in the hash-chained audit log, and renders a
dashboard. Built with `create_app(ServeConfig(...))`; run with uvicorn on 127.0.0.1."""

from iatros.serve.app import create_app
from iatros.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
