"""Every route under every role: 401 without or with bad credentials, 403 below the route's role,
success at or above it; the same with JWT bearer tokens; public routes answer everyone."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from tocsin.api.auth import Role

CALLERS = (None, "bad", "viewer", "analyst", "admin")


def routes(seeded: dict[str, Any], records: list[dict[str, Any]], auth: Any) -> list[tuple[str, Callable[[], str], Any, Role, int]]:
    alert_id = seeded["alerts"][0]["id"]
    anomaly = seeded["anomalies"][0]
    entity = anomaly["entity"]
    fresh = iter({**r, "tx_id": f"roles-{i}"} for i, r in enumerate(records[-200:]))  # ids not seen yet (repeats are refused)
    return [
        ("POST", lambda: "/v1/score", lambda: {"event": next(fresh)}, Role.analyst, 200),
        ("POST", lambda: "/v1/events", lambda: {"events": [next(fresh)]}, Role.analyst, 202),
        ("GET", lambda: "/v1/anomalies", None, Role.viewer, 200),
        ("GET", lambda: "/v1/alerts", None, Role.viewer, 200),
        ("GET", lambda: f"/v1/alerts/{alert_id}", None, Role.viewer, 200),
        ("POST", lambda: f"/v1/alerts/{alert_id}/ack", None, Role.analyst, 200),
        ("POST", lambda: f"/v1/alerts/{alert_id}/resolve", None, Role.analyst, 200),
        ("POST", lambda: "/v1/feedback", lambda: {"event_id": anomaly["event_id"], "label": "true_positive"}, Role.analyst, 200),
        ("GET", lambda: "/v1/mutes", None, Role.viewer, 200),
        ("GET", lambda: f"/v1/entities/{entity}", None, Role.viewer, 200),
        ("GET", lambda: "/v1/stats", None, Role.viewer, 200),
        ("GET", lambda: "/v1/vocabulary", None, Role.viewer, 200),
        ("GET", lambda: "/v1/whoami", None, Role.viewer, 200),
        ("GET", lambda: "/v1/pipelines", None, Role.admin, 200),
        ("GET", lambda: "/v1/models", None, Role.admin, 200),
        ("GET", lambda: "/v1/keys", None, Role.admin, 200),
        ("POST", lambda: "/v1/keys", lambda: {"role": "viewer", "name": "made in a test"}, Role.admin, 201),
        ("DELETE", lambda: f"/v1/keys/{auth.keys.create('viewer')[1]['id']}", None, Role.admin, 204),
    ]


PUBLIC = ["/health", "/metrics", "/dashboard/", "/dashboard/static/app.js", "/dashboard/vendor/plotly.min.js", "/openapi.json", "/docs"]


def credentials(caller: str | None, keys: Any, auth: Any, kind: str) -> dict[str, str]:
    if caller is None:
        return {}
    if caller == "bad":
        return {"X-API-Key": "tsk_000000000000_not-a-key"} if kind == "key" else {"Authorization": "Bearer not.a.jwt"}
    if kind == "key":
        return {"X-API-Key": getattr(keys, caller)}
    return {"Authorization": f"Bearer {auth.issue_jwt(f'user-{caller}', caller)}"}


@pytest.mark.parametrize("kind", ["key", "jwt"])
def test_every_route_under_every_role(client, seeded, records, keys, auth, kind) -> None:
    seen = []
    for method, path, body, needed, success in routes(seeded, records, auth):
        for caller in CALLERS:
            url = path()
            payload = body() if body else None
            answer = client.request(method, url, json=payload, headers=credentials(caller, keys, auth, kind))
            if caller in (None, "bad"):
                expected = 401
            elif Role[caller] < needed:
                expected = 403
            else:
                expected = success
            seen.append((method, url, caller, answer.status_code))
            assert answer.status_code == expected, (method, url, caller, answer.text)
            if expected == 401:
                assert answer.headers.get("www-authenticate") == "Bearer"
            if expected == 403:
                assert needed.name in answer.json()["detail"]
    assert len(seen) == 18 * len(CALLERS)


def test_a_bearer_api_key_works_like_the_header(client, seeded, keys) -> None:
    answer = client.get("/v1/alerts", headers={"Authorization": f"Bearer {keys.viewer}"})
    assert answer.status_code == 200


def test_public_routes_answer_everyone(client, keys) -> None:
    for path in PUBLIC:
        for headers in ({}, keys.headers("viewer"), {"X-API-Key": "garbage"}):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, headers, answer.status_code)


def test_the_openapi_schema_documents_both_credentials(client) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    paths = schema["paths"]
    for path in ("/v1/score", "/v1/events", "/v1/anomalies", "/v1/alerts", "/v1/alerts/{alert_id}/ack",
                 "/v1/alerts/{alert_id}/resolve", "/v1/feedback", "/v1/entities/{key}", "/v1/pipelines", "/health", "/metrics"):
        assert path in paths, path
    assert "401" in paths["/v1/alerts"]["get"]["responses"] and "403" in paths["/v1/alerts"]["get"]["responses"]
