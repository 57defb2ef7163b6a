"""Tests for the model-version routes (src/tocsin/api/routes/model_versions.py and the Service methods behind
them): admins list, read, promote and roll back versions of the spec's registry (by default the tables
beside its store); viewers and analysts get 403; who promoted is recorded."""

from __future__ import annotations

import pytest

from tocsin.registry import CHALLENGER, CHAMPION
from tocsin.registry.store import StoreRegistry
from tests.api.conftest import WARM_EVENTS
from tests.registry._contract import make_version, sample_arrays

ROUTES = [("get", "/v1/models/versions"), ("get", "/v1/models/versions/1"), ("post", "/v1/models/versions/1/promote"),
          ("post", "/v1/models/rollback")]


@pytest.fixture
def registry(spec):
    registry = StoreRegistry(spec.store.url)
    for rows in (100, 200, 300):
        registry.register(make_version(spec.name, rows=rows, aucpr=rows / 1_000, created_by="trainer"), sample_arrays(rows))
    yield registry
    registry.close()


def key_id(client, keys, role: str) -> str:
    return client.get("/v1/whoami", headers=keys.headers(role)).json()["subject"]


@pytest.mark.parametrize("method,path", ROUTES)
def test_only_admins_reach_the_model_routes(client, keys, registry, method, path):
    assert getattr(client, method)(path).status_code == 401
    for role in ("viewer", "analyst"):
        answer = getattr(client, method)(path, headers=keys.headers(role))
        assert answer.status_code == 403 and "needs the admin role" in answer.json()["detail"], (role, answer.text)
    assert registry.alias("transactions", CHAMPION) is None, "a refused promotion changed nothing"


def test_an_admin_lists_and_reads_versions(client, keys, registry):
    registry.promote("transactions", 2)
    listed = client.get("/v1/models/versions", headers=keys.headers("admin"))
    assert listed.status_code == 200
    assert [(v["version"], v["aliases"], v["rows"], v["metrics"]["aucpr"]) for v in listed.json()] == [
        (1, [], 100, 0.1), (2, ["champion"], 200, 0.2), (3, [], 300, 0.3)]
    one = client.get("/v1/models/versions/2", headers=keys.headers("admin")).json()
    assert one["aliases"] == ["champion"] and one["feature_names"] == make_version("transactions").feature_names
    assert one["trained_from"] == 1_767_225_600.0 and one["created_by"] == "trainer" and one["metrics"]["recall"] is None
    missing = client.get("/v1/models/versions/9", headers=keys.headers("admin"))
    assert missing.status_code == 404 and "no model version 9; versions: [1, 2, 3]" in missing.json()["detail"]
    assert client.get("/v1/models", headers=keys.headers("admin")).status_code == 200, "the model in use is still described"


def test_an_admin_promotes_and_rolls_back_and_who_is_recorded(client, keys, registry):
    admin = keys.headers("admin")
    subject = key_id(client, keys, "admin")
    first = client.post("/v1/models/versions/1/promote", headers=admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["alias"], body["version"], body["previous"], body["kind"], body["by"]) == ("champion", 1, None, "promote", subject)
    assert body["model"]["aliases"] == ["champion"]
    second = client.post("/v1/models/versions/2/promote", params={"alias": "champion"}, headers=admin).json()
    assert (second["version"], second["previous"]) == (2, 1)
    challenger = client.post("/v1/models/versions/3/promote", params={"alias": "challenger"}, headers=admin).json()
    assert challenger["alias"] == "challenger" and registry.alias("transactions", CHALLENGER) == 3
    assert registry.alias("transactions", CHAMPION) == 2

    back = client.post("/v1/models/rollback", headers=admin)
    assert back.status_code == 200
    assert (back.json()["version"], back.json()["previous"], back.json()["kind"]) == (1, 2, "rollback")
    assert registry.alias("transactions", CHAMPION) == 1
    nothing = client.post("/v1/models/rollback", params={"alias": "champion"}, headers=admin)
    assert nothing.status_code == 409 and "no earlier version" in nothing.json()["detail"]
    assert [(c.kind, c.version, c.by) for c in registry.alias_history("transactions", CHAMPION)] == [
        ("promote", 1, subject), ("promote", 2, subject), ("rollback", 1, subject)]


def test_a_token_subject_is_recorded_and_mistakes_are_refused(client, app, keys, registry):
    token = app.state.auth.issue_jwt("alice@example.com", "admin")
    bearer = {"Authorization": f"Bearer {token}"}
    promoted = client.post("/v1/models/versions/3/promote", headers=bearer)
    assert promoted.json()["by"] == "alice@example.com"
    assert registry.alias_history("transactions", CHAMPION)[-1].by == "alice@example.com"
    unknown = client.post("/v1/models/versions/42/promote", headers=bearer)
    assert unknown.status_code == 404 and "no model version 42" in unknown.json()["detail"]
    wrong_alias = client.post("/v1/models/versions/1/promote", params={"alias": "production"}, headers=bearer)
    assert wrong_alias.status_code == 422 and wrong_alias.json()["detail"][0]["field"] == "alias"
    assert client.get("/v1/models/versions/0", headers=bearer).status_code == 422
    assert registry.alias("transactions", CHAMPION) == 3


@pytest.mark.parametrize("value", ["0", "-1", "2147483648", "1e3", "nan", "inf", "99999999999999999999999", "1.5"])
def test_version_numbers_out_of_range_are_422_naming_the_parameter(client, keys, value):
    for method, path in (("get", f"/v1/models/versions/{value}"), ("post", f"/v1/models/versions/{value}/promote")):
        answer = getattr(client, method)(path, headers=keys.headers("admin"))
        assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "version", (path, answer.text)


def test_an_admin_sees_the_challenger_beside_the_champion_and_the_drift(spec, auth, warm_pipeline, keys, records):
    """Two versions of the running model, named champion and challenger: the service installs the champion,
    scores the challenger in shadow, and ``/v1/models/compare`` sums what both saw over the same events;
    ``/v1/models/drift`` measures the scored features against the champion's training rows."""
    import time

    from fastapi.testclient import TestClient

    from tocsin.api import create_app
    from tocsin.registry import ModelVersion, model_sections, spec_hash

    spec = spec.model_copy(update={"registry": spec.registry.model_copy(update={"poll_interval": 0.1}),
                                   "drift": spec.drift.model_copy(update={"min_rows": 500})})
    registry = StoreRegistry(spec.store.url)
    arrays = warm_pipeline.model_arrays()
    for _ in range(2):
        registry.register(ModelVersion(pipeline=spec.name, spec_hash=spec_hash(spec), feature_names=list(warm_pipeline.feature_names),
                                       detector=spec.detector.kind, sections=model_sections(spec), trained_from=None, trained_until=None,
                                       rows=2_000, metrics={}, tocsin_version="test", created_by="test"), arrays)
    registry.promote(spec.name, 1, CHAMPION)
    registry.promote(spec.name, 2, CHALLENGER)
    admin = keys.headers("admin")
    with TestClient(create_app(spec, auth, pipeline=warm_pipeline)) as client:
        missing = client.get("/v1/models/compare", headers=admin)
        assert missing.status_code == 404 and "no events scored by a challenger" in missing.json()["detail"]
        assert client.get("/v1/models/compare", headers=keys.headers("analyst")).status_code == 403
        deadline, start = time.monotonic() + 20, WARM_EVENTS
        compared = missing
        while compared.status_code != 200 and start < len(records) and time.monotonic() < deadline:
            assert client.post("/v1/score", json={"events": records[start : start + 500]}, headers=admin).status_code == 200
            start += 500
            compared = client.get("/v1/models/compare", headers=admin)
        for start in range(start, len(records), 1_000):
            client.post("/v1/score", json={"events": records[start : start + 1_000]}, headers=admin)
        compared = client.get("/v1/models/compare", headers=admin)
        assert compared.status_code == 200, compared.text
        body = compared.json()
        assert (body["champion"], body["challenger"]) == (1, 2) and body["events"] > 1_000
        assert sum(body["champion_scores"]) == sum(body["challenger_scores"]) == body["events"]
        assert body["both_anomalies"] <= min(body["champion_anomalies"], body["challenger_anomalies"])
        assert body["labelled"] == body["events"] and body["positives"] > 0, "the simulated events carry is_fraud"
        assert body["champion_recall"] == body["champion_true"] / body["positives"]
        drift = client.get("/v1/models/drift", headers=admin).json()
        assert drift["model_version"] == 1 and drift["psi_alert"] == spec.drift.psi_alert
        names = [row["feature"] for row in drift["features"]]
        assert set(names) == {*warm_pipeline.feature_names, "score"}, names
        assert all(row["psi"] >= 0 and 0 <= row["ks"] <= 1 for row in drift["features"])
        assert [row["psi"] for row in drift["features"]] == sorted((row["psi"] for row in drift["features"]), reverse=True)
    registry.close()
