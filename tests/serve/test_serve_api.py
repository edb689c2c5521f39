"""The JSON API with real runs: login, roles, care teams, predictions identical to in-process
ones, problem-details errors for bad input, keys, rate limits, promotion reload, batch jobs."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from iatros import api
from iatros.serve.problems import PROBLEM_TYPE
from tests.serve.conftest import PASSWORD, SECRET, make_app, promote, token


def _row(run) -> dict:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    return {c: float(frame.iloc[0][c]) for c in features}


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_TYPE)
    body = r.json()
    assert body["status"] == status and body["detail"] and "Traceback" not in r.text
    return body


def test_login_gives_a_signed_expiring_token(client):
    r = client.post("/api/v1/auth/token", data={"username": "clara", "password": PASSWORD})
    claims = jwt.decode(r.json()["access_token"], SECRET, algorithms=["HS256"], issuer="iatros")
    assert claims["sub"] == "clara" and claims["exp"] - claims["iat"] == r.json()["expires_in"]


def test_wrong_password_and_unknown_user_get_the_same_401(client):
    a = _problem(client.post("/api/v1/auth/token", data={"username": "clara", "password": "x" * 14}), 401)
    b = _problem(client.post("/api/v1/auth/token", data={"username": "nobody", "password": "x" * 14}), 401)
    assert a["detail"] == b["detail"] == "wrong user name or password"


def test_every_endpoint_denies_without_credentials(client, app):
    from iatros.serve import api_v1

    for route in api_v1.router.routes:
        if route.path in ("/api/v1/health", "/api/v1/auth/token"):
            continue
        method = sorted(route.methods)[0]
        path = route.path.replace("{name}", "m").replace("{job_id}", "j").replace(
            "{figure}", "f.png").replace("{ref}", "1").replace("{team}", "t")
        r = client.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)


def test_forged_and_expired_tokens_are_refused(client):
    forged = jwt.encode({"sub": "ada", "role": "admin", "iss": "iatros", "iat": 0,
                         "exp": int(time.time()) + 60}, "another-secret" * 4, algorithm="HS256")
    assert "not valid" in _problem(client.get("/api/v1/models", headers={
        "Authorization": f"Bearer {forged}"}), 401)["detail"]
    expired = jwt.encode({"sub": "ada", "role": "admin", "iss": "iatros", "iat": 0, "exp": 1},
                         SECRET, algorithm="HS256")
    assert "expired" in _problem(client.get("/api/v1/models", headers={
        "Authorization": f"Bearer {expired}"}), 401)["detail"]


def test_a_route_without_roles_stops_the_app_from_starting():
    from iatros.serve import api_v1

    @api_v1.router.get("/unguarded")
    def unguarded() -> dict:
        return {}
    try:
        with pytest.raises(RuntimeError, match="states no roles"):
            make_app()
    finally:
        api_v1.router.routes.pop()


def test_researcher_is_refused_admin_endpoints_and_the_refusal_is_audited(client, app, as_user):
    body = _problem(client.get("/api/v1/users", headers=as_user("remy")), 403)
    assert "researcher" in body["detail"] and "admin" in body["detail"]
    last = app.state.audit.entries(newest_first=True, limit=1)[0]
    assert (last.actor, last.status, last.outcome) == ("remy", 403, "denied")


def test_disabled_user_token_stops_working(client, app, as_user):
    headers = as_user("clara")
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    app.state.store.set_disabled("clara")
    _problem(client.get("/api/v1/models", headers=headers), 401)


def test_tabular_prediction_matches_the_in_process_predictor(client, as_user, tabular_run, tmp_path):
    promote(tabular_run, "wdbc")
    row = _row(tabular_run)
    r = client.post("/api/v1/models/wdbc/predict", headers=as_user("clara"), json={"rows": [row]})
    assert r.status_code == 200, r.text
    (served,) = r.json()["results"]
    csv = tmp_path / "one.csv"
    csv.write_text(",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n")
    (local,) = api.predict(tabular_run, [csv], out=tmp_path / "p")
    assert served["input"] == "rows[0]"
    assert served["probabilities"] == pytest.approx(local["probabilities"])
    assert sum(served["probabilities"].values()) == pytest.approx(1.0)


def test_model_list_and_card_show_test_metrics_with_ci(client, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    (m,) = client.get("/api/v1/models", headers=as_user("remy")).json()
    assert (m["name"], m["version"], m["modality"]) == ("wdbc", 1, "tabular")
    card = client.get("/api/v1/models/wdbc", headers=as_user("remy")).json()
    head = card["headline"]
    assert head["metric"] == "auroc" and head["ci95"][0] <= head["value"] <= head["ci95"][1]
    assert "mean radius" in card["inputs"] and card["figures"]
    png = client.get(f"/api/v1/models/wdbc/figures/{card['figures'][0]}", headers=as_user("remy"))
    assert png.content[:4] == b"\x89PNG"
    _problem(client.get("/api/v1/models/wdbc/figures/..%2Fconfig.json", headers=as_user("remy")), 404)


def test_bad_requests_get_problem_details_naming_the_field(client, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    h = as_user("clara")
    bad_json = client.post("/api/v1/models/wdbc/predict", headers={**h, "Content-Type": "application/json"},
                           content=b"{not json")
    assert _problem(bad_json, 422)["field"]
    _problem(client.post("/api/v1/models/wdbc/predict", headers={**h, "Content-Type": "text/plain"},
                         content=b"rows"), 422)
    body = _problem(client.post("/api/v1/models/nope/predict", headers=h, json={"rows": [{}]}), 404)
    assert "wdbc" in body["detail"]
    body = _problem(client.post("/api/v1/models/wdbc/predict", headers=h, json={"rows": [{"x": 1}]}), 422)
    assert "features" in body["detail"] and body["field"] == "rows"
    body = _problem(client.post("/api/v1/models/wdbc/predict", headers=h, json={"texts": ["a note"]}), 422)
    assert body["field"] == "texts" and "tabular" in body["detail"]
    body = _problem(client.post("/api/v1/models/wdbc/predict", headers=h, json={"rowz": []}), 422)
    assert body["field"] == "rowz"


def test_a_junk_cell_is_reported_and_the_other_rows_are_scored(client, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    good = _row(tabular_run)
    r = client.post("/api/v1/models/wdbc/predict", headers=as_user("clara"),
                    json={"rows": [good, {**good, "mean radius": "n/a"}, good]})
    assert r.status_code == 200
    assert [("probabilities" in x) for x in r.json()["results"]].count(True) >= 2


def test_oversized_request_is_refused_with_413(tabular_run):
    promote(tabular_run, "wdbc")
    app = make_app(max_upload_bytes=1000)
    app.state.store.add_user("clara", PASSWORD, "clinician")
    client = TestClient(app)
    h = {"Authorization": f"Bearer {token(client, 'clara')}"}
    body = _problem(client.post("/api/v1/models/wdbc/predict", headers=h,
                                json={"rows": [{"x": "y" * 2000}]}), 413)
    assert "1000 bytes" in body["detail"]
    assert app.state.audit.entries(newest_first=True, limit=1)[0].status == 413


def test_clinicians_see_only_their_care_teams_patients(client, app, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    h = as_user("clara")
    body = {"rows": [_row(tabular_run)], "patient_id": "MRN-0042"}
    assert "care teams" in _problem(client.post("/api/v1/models/wdbc/predict", headers=h, json=body),
                                    403)["detail"]
    app.state.store.assign("icu-a", ["MRN-0042"])
    assert client.post("/api/v1/models/wdbc/predict", headers=h, json=body).status_code == 200
    targets = [e.target for e in app.state.audit.entries() if e.action == "predict"]
    assert targets == ["patient:MRN-0042", "patient:MRN-0042"]


def test_api_keys_work_until_revoked(client, app, tabular_run):
    promote(tabular_run, "wdbc")
    info, secret = app.state.store.create_key("lab-system", "system")
    h = {"X-API-Key": secret}
    assert client.get("/api/v1/models", headers=h).status_code == 200
    _problem(client.get("/api/v1/users", headers=h), 403)
    app.state.store.revoke_key(str(info.id))
    assert "revoked" in _problem(client.get("/api/v1/models", headers=h), 401)["detail"]
    _problem(client.get("/api/v1/models", headers={"X-API-Key": secret[:-2] + "xx"}), 401)
    stored = {k.prefix: k for k in app.state.store.api_keys()}
    assert secret not in repr(stored)


def test_rate_limit_answers_429_with_retry_after():
    app = make_app(rate_per_minute=3)
    app.state.store.add_user("remy", PASSWORD, "researcher")
    client = TestClient(app)
    h = {"Authorization": f"Bearer {token(client, 'remy')}"}
    codes = [client.get("/api/v1/models", headers=h).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = client.get("/api/v1/models", headers=h)
    assert int(r.headers["Retry-After"]) >= 1


def test_a_new_promotion_is_served_without_restart(client, as_user, tabular_run, tmp_path):
    promote(tabular_run, "wdbc")
    h = as_user("remy")
    assert client.get("/api/v1/models/wdbc", headers=h).json()["version"] == 1
    promote(tabular_run, "wdbc")
    assert client.get("/api/v1/models/wdbc", headers=h).json()["version"] == 2


def test_a_tampered_promoted_run_is_not_served(client, as_user, tabular_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tabular_run, copy)
    promote(copy, "wdbc")
    (copy / "model.json").write_text((copy / "model.json").read_text() + " ")
    body = _problem(client.post("/api/v1/models/wdbc/predict", headers=as_user("clara"),
                                json={"rows": [_row(tabular_run)]}), 503)
    assert "cannot be served" in body["detail"]


def test_batch_job_reports_progress_and_results(client, as_user, tabular_run, tmp_path):
    promote(tabular_run, "wdbc")
    row = _row(tabular_run)
    header = ",".join(f'"{c}"' for c in row)
    line = ",".join(str(v) for v in row.values())
    files = [("files", (f"t{k}.csv", f"{header}\n{line}\n".encode(), "text/csv")) for k in range(3)]
    files.append(("files", ("broken.csv", b"\x00\x01binary", "text/csv")))
    h = as_user("clara")
    r = client.post("/api/v1/models/wdbc/jobs", headers=h, files=files)
    assert r.status_code == 202 and r.json()["total"] == 4
    for _ in range(200):
        job = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=h).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "done" and job["done"] == 4
    assert sum("probabilities" in x for x in job["results"]) == 3
    assert any(x["input"] == "broken.csv" and "error" in x for x in job["results"])
    _problem(client.get(f"/api/v1/jobs/{r.json()['id']}", headers=as_user("remy")), 404)


def test_a_survival_model_answers_with_a_curve(client, as_user, tmp_path_factory):
    run = api.train("survival-gbsg2", model="coxph", out=tmp_path_factory.mktemp("gbsg") / "run",
                    eval_options=api.EvalOptions(n_boot=20), register=False)
    promote(run, "recurrence")
    row = {"age": 52, "estrec": 10, "horTh": "no", "menostat": "Post", "pnodes": 3,
           "progrec": 20, "tgrade": "II", "tsize": 25}
    r = client.post("/api/v1/models/recurrence/predict", headers=as_user("clara"), json={"rows": [row]})
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    curve = result["curve"]
    assert curve and {"risk", "median_survival", "survival_at"} <= set(result)
    assert result["figure"] is None or result["figure"].startswith("data:image/png;base64,")
    page = client.get("/models/recurrence", headers=as_user("remy")).text
    assert "Subgroup audit" in page and "age_group" in page and "largest gap" in page


def test_a_batched_figure_never_shows_another_requests_rows(tmp_path):
    from iatros.serve.batching import Batcher

    run = api.train("survival-gbsg2", model="coxph", out=tmp_path / "run",
                    eval_options=api.EvalOptions(n_boot=20), register=False)
    row = "age,estrec,horTh,menostat,pnodes,progrec,tgrade,tsize\n52,10,no,Post,3,20,II,25\n"
    paths = []
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "rows.csv").write_text(row)
        paths.append(tmp_path / who / "rows.csv")
    batcher = Batcher(api.LoadedRun(run), tmp_path / "batches", window_s=0.5)
    alone = batcher.submit([paths[0]], explain=False).result(timeout=60)
    assert alone[0]["figure"].startswith("data:image/png")  # one request: its own figure
    both = [batcher.submit([p], explain=False) for p in paths]  # scored in one batch
    results = [f.result(timeout=60) for f in both]
    assert [r[0]["input"] for r in results] == [str(p) + ":2" for p in paths]
    assert all(r[0]["figure"] is None for r in results)


def test_a_row_with_missing_features_says_which_in_its_result(client, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    r = client.post("/api/v1/models/wdbc/predict", headers=as_user("clara"),
                    json={"rows": [{"mean radius": 14.0}, _row(tabular_run)]})
    partial, full = r.json()["results"]
    assert partial["n_missing_features"] == 29 and "mean texture" in partial["missing_features"]
    assert "missing_features" not in full


def test_the_html_card_renders_with_its_own_styles_and_no_script(client, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    r = client.get("/api/v1/models/wdbc/card", headers=as_user("remy"))
    assert r.status_code == 200 and "<html" in r.text.lower()
    csp = r.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"


def test_a_replaced_version_stops_its_batch_worker(client, app, as_user, tabular_run):
    promote(tabular_run, "wdbc")
    h = as_user("clara")
    client.post("/api/v1/models/wdbc/predict", headers=h, json={"rows": [_row(tabular_run)]})
    old = app.state.catalog.get("wdbc")._batcher
    assert old._thread.is_alive()
    promote(tabular_run, "wdbc")
    assert client.post("/api/v1/models/wdbc/predict", headers=h,
                       json={"rows": [_row(tabular_run)]}).json()["version"] == 2
    old._thread.join(timeout=10)
    assert not old._thread.is_alive()


def test_a_request_that_reaches_a_closed_batcher_is_still_answered(tmp_path, tabular_run):
    import csv

    from iatros.serve.batching import Batcher

    batcher = Batcher(api.LoadedRun(tabular_run), tmp_path / "b")
    batcher.close()
    row = _row(tabular_run)
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(row))
        w.writerow(list(row.values()))
    (result,) = batcher.submit([path], explain=False).result(timeout=60)
    assert "probabilities" in result
