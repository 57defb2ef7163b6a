"""Keys stored hashed, JWT checks, loopback-only without auth, CORS off by default, sensitive fields
encrypted at rest (AES-256-GCM) and masked for viewers."""

from __future__ import annotations

import base64
import json
import os
import time

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.api.auth import check_bind
from tocsin.sensitive import MASK, PREFIX
from tests.api.conftest import EVENTS, JWT_SECRET, WARM_EVENTS


def test_keys_are_stored_hashed_and_can_be_revoked(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("analyst", "ci")
    secret = key.split("_", 2)[2]
    saved = (tmp_path / "keys.json").read_text()
    assert secret not in saved and record["hash"] in saved
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    assert store.verify(key).role.name == "analyst"
    assert KeyStore(tmp_path / "keys.json").verify(key) is not None  # another process sees it
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.revoke(record["id"]) and store.verify(key) is None


def test_jwt_needs_a_valid_signature_an_expiry_and_a_known_role(client, seeded) -> None:
    def call(token: str) -> int:
        return client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"}).status_code

    now = int(time.time())
    assert call(jwt.encode({"sub": "a", "role": "viewer", "exp": now + 60}, JWT_SECRET, algorithm="HS256")) == 200
    assert call(jwt.encode({"sub": "a", "role": "viewer", "exp": now - 60}, JWT_SECRET, algorithm="HS256")) == 401
    assert call(jwt.encode({"sub": "a", "role": "viewer"}, JWT_SECRET, algorithm="HS256")) == 401
    assert call(jwt.encode({"sub": "a", "role": "root", "exp": now + 60}, JWT_SECRET, algorithm="HS256")) == 401
    assert call(jwt.encode({"sub": "a", "role": "viewer", "exp": now + 60}, "another-secret-" + "y" * 32, algorithm="HS256")) == 401
    assert call(jwt.encode({"sub": "a", "role": "admin", "exp": now + 60}, None, algorithm="none")) == 401


def test_without_auth_only_loopback_is_allowed() -> None:
    off = AuthConfig(enabled=False, keys=KeyStore(None))
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, off)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ValueError, match="refusing to bind .* authentication switched off"):
            check_bind(host, off)
    check_bind("0.0.0.0", AuthConfig(keys=KeyStore(None)))  # with auth on, any address


def test_auth_off_makes_every_caller_admin(spec, warm_pipeline) -> None:
    # (a loopback Host: without auth, other names are refused; see test_hardening.py)
    with TestClient(create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None)), pipeline=warm_pipeline),
                    base_url="http://127.0.0.1") as client:
        assert client.get("/v1/pipelines").status_code == 200


def test_cors_is_off_by_default_and_on_for_named_origins(spec, auth, keys, warm_pipeline) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(spec, auth, pipeline=warm_pipeline)) as client:
        answer = client.get("/v1/stats", headers={**keys.headers("viewer"), "Origin": "https://evil.example"})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-origin" not in client.options("/v1/stats", headers=headers).headers
    with TestClient(create_app(spec, auth, pipeline=warm_pipeline, cors_origins=["https://ops.example"])) as client:
        allowed = client.options("/v1/stats", headers={**headers, "Origin": "https://ops.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
        assert "access-control-allow-origin" not in client.options("/v1/stats", headers=headers).headers


def test_sensitive_fields_are_encrypted_at_rest_and_masked_for_viewers(spec, auth, keys, warm_pipeline, records) -> None:
    key = os.urandom(32)
    app = create_app(spec, auth, pipeline=warm_pipeline, sensitive_fields=["amount", "city"], encryption_key=key)
    with TestClient(app) as client:
        client.post("/v1/score", json={"events": records[WARM_EVENTS:EVENTS]}, headers=keys.headers("analyst"))
        with app.state.service.store.engine.connect() as conn:
            raw_event_id, raw_fields = conn.execute(text("SELECT event_id, fields FROM anomalies LIMIT 1")).one()
        stored = json.loads(raw_fields)
        assert stored["amount"].startswith(PREFIX) and stored["city"].startswith(PREFIX)
        sent = next(r for r in records if r["tx_id"] == raw_event_id)
        assert str(sent["amount"]) not in raw_fields and sent["city"] not in raw_fields
        assert stored["merchant_id"] == sent["merchant_id"]  # not sensitive: stored as is
        blob = base64.b64decode(stored["amount"][len(PREFIX):])
        assert len(blob) == 12 + len(json.dumps(sent["amount"])) + 16  # nonce + ciphertext + GCM tag

        def fields_as(role: str) -> dict:
            items = client.get("/v1/anomalies", params={"limit": 1000}, headers=keys.headers(role)).json()["items"]
            return next(a for a in items if a["event_id"] == raw_event_id)["fields"]

        assert fields_as("viewer")["amount"] == MASK and fields_as("viewer")["city"] == MASK
        assert fields_as("analyst")["amount"] == sent["amount"] and fields_as("admin")["city"] == sent["city"]
        entity_as_viewer = client.get(f"/v1/entities/{sent['card_id']}", headers=keys.headers("viewer")).json()
        assert all(e["values"]["amount"] == MASK for e in entity_as_viewer["recent_events"])
        entity_as_analyst = client.get(f"/v1/entities/{sent['card_id']}", headers=keys.headers("analyst")).json()
        assert any(e["values"]["amount"] == sent["amount"] for e in entity_as_analyst["recent_events"])


def test_sensitive_fields_need_a_key_and_cannot_be_the_lookup_fields(spec, auth) -> None:
    with pytest.raises(ValueError, match="TOCSIN_ENCRYPTION_KEY"):
        create_app(spec, auth, sensitive_fields=["amount"])
    with pytest.raises(ValueError, match="key and id fields"):
        create_app(spec, auth, sensitive_fields=["card_id"], encryption_key=os.urandom(32))
