"""A viewer walks every route and the dashboard's data with ``schema.sensitive`` set and finds no sensitive
value, and no number derived only from one; the database file holds none in clear text.

Sentinel values mark the sensitive fields of a few events: amounts no other number resembles, a city
name no simulator makes. They are searched for in every response a viewer gets (in the forms tocsin
writes numbers: plain, with thousands separators, to 3 significant digits as explanations do) and in
the bytes of the SQLite files. An analyst, by contrast, sees them (so the search can find them).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tocsin.api import create_app
from tocsin.features.base import format_number
from tocsin.spec import parse_spec
from tests.api.conftest import EVENTS, WARM_EVENTS, spec_dict

KEY = base64.b64encode(bytes(range(32))).decode()
SENTINEL_AMOUNTS = [48_713.37, 61_922.19, 73_456.83, 52_847.61]
SENTINEL_CITY = "city_zanzibar_secret"


def forms(amount: float) -> set[str]:
    """How an amount may be written in a response or a row."""
    whole = int(amount)  # any writing with 5 significant digits or more shows the integer part
    return {f"{whole:,}", str(whole), format_number(amount), format_number(amount).replace(",", "")}


def shows(form: str, body: str) -> bool:
    """``form`` written as a number of its own in ``body``, not inside another one: "52800" (an amount to three
    digits) once matched inside a longer number on /metrics, a process figure unrelated to any event."""
    return re.search(rf"(?<![\d.]){re.escape(form)}(?!\d)", body) is not None


@pytest.fixture
def sensitive_app(tmp_path, auth, monkeypatch):
    monkeypatch.setenv("TOCSIN_ENCRYPTION_KEY", KEY)
    data = spec_dict(f"sqlite:///{tmp_path / 'store.db'}", str(tmp_path / "checkpoints"))
    data["schema"]["sensitive"] = ["amount", "city"]
    data["store"]["scored_events"] = True
    spec = parse_spec(data)
    return create_app(spec, auth, encryption_key=base64.b64decode(KEY)), tmp_path / "store.db"


def get_routes(app) -> list[str]:
    """Every GET path of the app's OpenAPI schema (path parameters left as ``{name}``)."""
    return sorted(path for path, ops in app.openapi()["paths"].items() if "get" in ops)


def test_a_viewer_sees_no_sensitive_value_anywhere(sensitive_app, keys, records, warm_state) -> None:
    app, db = sensitive_app
    stream = records[WARM_EVENTS:EVENTS]
    marked = []
    for i, amount in enumerate(SENTINEL_AMOUNTS):  # big amounts on known cards: anomalies, explained by the amount
        base = stream[100 + 400 * i]
        marked.append({**base, "tx_id": f"secret-{i}", "amount": amount, "city": SENTINEL_CITY, "ts": base["ts"] + 1})
    bad = {**marked[0], "tx_id": "secret-bad", "ts": "not a time"}  # a dead letter holding sensitive values
    with TestClient(app) as client:
        app.state.service.pipeline.load_state_dict(warm_state)
        events = stream[:2000] + marked + [bad] + stream[2000:2500]
        answer = client.post("/v1/score", json={"events": events}, headers=keys.headers("analyst"))
        assert answer.status_code == 200, answer.text
        flagged = {r["id"] for r in answer.json()["results"] if r["is_anomaly"]}
        assert {m["tx_id"] for m in marked} <= flagged, "the sentinel events are anomalies"
        entities = sorted({m["card_id"] for m in marked})

        texts: dict[str, str] = {}
        viewer = keys.headers("viewer")
        for path in get_routes(app):
            if "{alert_id}" in path:
                urls = [path.replace("{alert_id}", str(a["id"]))
                        for a in client.get("/v1/alerts", params={"limit": 500}, headers=viewer).json()["items"]]
            elif "{key}" in path or "{entity}" in path:
                urls = [re.sub(r"\{[^}]+\}", e, path) for e in entities]
            elif "{version}" in path:
                urls = [path.replace("{version}", "1")]
            elif "{" in path:
                pytest.fail(f"the walk does not know how to fill {path}")
            else:
                urls = [path]
            for url in urls:
                response = client.get(url, headers=viewer, params={"limit": 500} if url.startswith("/v1/") else None)
                assert response.status_code in (200, 403), (url, response.status_code)
                texts[url] = response.text
        for name in ("index.html", "app.js"):  # the dashboard's own data comes from the routes above
            texts[name] = client.get(f"/dashboard/{'' if name == 'index.html' else 'static/'}{name}").text
        assert any(url.startswith("/v1/entities/") for url in texts) and any(url.startswith("/v1/alerts/") for url in texts)

        leaks = [(url, form) for url, body in texts.items() for amount in SENTINEL_AMOUNTS for form in forms(amount) if shows(form, body)]
        leaks += [(url, SENTINEL_CITY) for url, body in texts.items() if SENTINEL_CITY in body]
        assert not leaks, f"a viewer saw sensitive values: {leaks[:5]}"
        entity = client.get(f"/v1/entities/{entities[0]}", headers=viewer).json()
        assert entity["state"] and not any(name.startswith("amount") for name in entity["state"]), entity["state"]

        # the analyst sees them: the search would have found them
        analyst = keys.headers("analyst")
        seen = client.get("/v1/anomalies", params={"limit": 500}, headers=analyst).text
        assert any(form in seen for form in forms(SENTINEL_AMOUNTS[0])) and SENTINEL_CITY in seen
        explained = [item for a in client.get("/v1/anomalies", params={"limit": 500}, headers=analyst).json()["items"]
                     if a["event_id"] == "secret-0" for item in a["explanation"]]
        assert any(item["feature"].startswith("amount") and item["value"] is not None for item in explained), explained
        dead = client.get("/v1/dead-letters", headers=analyst).json()["items"]
        assert any(SENTINEL_CITY in (d["raw"] or "") for d in dead)
    app.state.service.store.close()

    stored = b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists())
    at_rest = [form for amount in SENTINEL_AMOUNTS for form in forms(amount) if form.encode() in stored]
    assert not at_rest and SENTINEL_CITY.encode() not in stored, f"in clear text at rest: {at_rest[:5]}"
