"""Images (PNG and a real DICOM, with heat maps), notes (entities, context, codes, FHIR) and
de-identification through the service."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import DEID_KEY, make_app, promote, token


def _png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((28, 28)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_image_explain_returns_probabilities_and_a_heat_map(client, as_user, image_run):
    promote(image_run, "breast")
    r = client.post("/api/v1/models/breast/explain/files", headers=as_user("clara"),
                    files=[("files", ("scan.png", _png(), "image/png"))])
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["input"] == "scan.png"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["heatmap"].startswith("data:image/png;base64,")
    assert base64.b64decode(result["heatmap"].split(",", 1)[1])[:4] == b"\x89PNG"


def test_a_real_dicom_and_a_corrupt_one_in_one_request(client, as_user, image_run):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's CT_small.dcm is not available offline")
    promote(image_run, "breast")
    files = [("files", ("ct.dcm", Path(path).read_bytes(), "application/dicom")),
             ("files", ("broken.dcm", b"DICM" + b"\x00" * 50, "application/dicom"))]
    r = client.post("/api/v1/models/breast/predict/files", headers=as_user("clara"), files=files)
    assert r.status_code == 200, r.text
    good, bad = r.json()["results"]
    assert good["input"] == "ct.dcm" and 0 <= good["probabilities"]["malignant"] <= 1
    assert bad["input"] == "broken.dcm" and "error" in bad and "/tmp" not in bad["error"]
    assert "heatmap" not in good or good["heatmap"] is None


def test_upload_names_cannot_escape_the_request_folder(client, as_user, image_run, tmp_path):
    promote(image_run, "breast")
    r = client.post("/api/v1/models/breast/predict/files", headers=as_user("clara"),
                    files=[("files", ("../../../../etc/evil.png", _png(), "image/png"))])
    assert r.status_code == 200
    assert r.json()["results"][0]["input"] == "../../../../etc/evil.png"


def test_note_extraction_returns_negated_entities_with_codes_and_fhir(client, as_user):
    note = "Chest pain. No shortness of breath. History of hypertension. Taking aspirin 81 mg daily."
    r = client.post("/api/v1/nlp/extract", headers=as_user("clara"), json={"text": note})
    assert r.status_code == 200, r.text
    doc = r.json()
    by_text = {e["text"].lower(): e for e in doc["entities"]}
    assert by_text["shortness of breath"]["negated"] is True
    assert by_text["aspirin"]["label"] == "MEDICATION" and by_text["aspirin"]["concept_id"]
    assert doc["fhir"]["resourceType"] == "Bundle"


def test_deid_needs_a_server_key_and_then_removes_phi(client, as_user, tabular_run):
    note = "Pt John Smith seen 3/14/2024 at Mercy Hospital, call 617-555-1234."
    body = client.post("/api/v1/nlp/deid", headers=as_user("clara"), json={"text": note})
    assert body.status_code == 503 and "IATROS_DEID_KEY" in body.json()["detail"]
    from fastapi.testclient import TestClient

    app = make_app(deid_key=DEID_KEY)  # same database: clara exists

    c = TestClient(app)
    r = c.post("/api/v1/nlp/deid", headers={"Authorization": f"Bearer {token(c, 'clara')}"},
               json={"text": note, "patient_id": "MRN-1"})
    assert r.status_code == 200, r.text
    out = r.json()["text"]
    for phi in ("John", "Smith", "3/14/2024", "617-555-1234"):
        assert phi not in out
    assert "date_shift_days" not in r.json()["report"]
    assert all(e.target.startswith("input:") for e in app.state.audit.entries()
               if e.action == "de-identify note")


def test_two_uploads_with_one_name_keep_their_own_heat_maps(client, as_user, image_run):
    promote(image_run, "breast")
    files = [("files", ("scan.png", _png(1), "image/png")), ("files", ("scan.png", _png(2), "image/png"))]
    r = client.post("/api/v1/models/breast/explain/files", headers=as_user("clara"), files=files)
    first, second = r.json()["results"]
    assert first["input"] == second["input"] == "scan.png"
    assert first["heatmap"] != second["heatmap"]


def test_an_ecg_record_uploaded_as_header_and_signal_gives_one_result(client, as_user, ecg_run):
    run, header = ecg_run
    promote(run, "af")
    files = [("files", (header.with_suffix(s).name, header.with_suffix(s).read_bytes(),
                        "application/octet-stream")) for s in (".hea", ".mat")]
    r = client.post("/api/v1/models/af/explain/files", headers=as_user("clara"), files=files)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["input"] == header.name
    assert set(result["probabilities"]) == {"Normal", "AF", "Other", "Noisy"}
    assert result["heart_rate_bpm"]["mean"] > 0 and result["quality"]["label"]
    assert result["windows"] and result["figure"].startswith("data:image/png")


def test_a_note_model_answers_texts_with_its_words(client, as_user, note_run):
    promote(note_run, "specialty")
    note = ("CHIEF COMPLAINT: Chest pain. HISTORY: exertional chest pressure. Stress test positive. "
            "PLAN: cardiac catheterization, aspirin, metoprolol.")
    r = client.post("/api/v1/models/specialty/explain", headers=as_user("remy"), json={"texts": [note]})
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["input"] == "texts[0]" and sum(result["probabilities"].values()) == pytest.approx(1)
    assert result.get("words")
