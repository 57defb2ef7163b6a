"""The HTTP surface against hostile input, one finding at a time: bounded cursors and query numbers,
credentials before bodies, throttled failed logins, Host and Origin checks without auth, HS256 secret
length and audience/issuer, security headers, who acknowledged/resolved/gave feedback, the dead-letter
read API. (Slow headers: test_timeouts.py; all of it at once against a real server: test_hostile.py.)"""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.api.server import start_in_thread
from tests.api.conftest import JWT_SECRET

NUMBERS = ("nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1767444200000", "9" * 30)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def field_of(answer: Any) -> str:
    return answer.json()["detail"][0]["field"]


# --- 1. cursors ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/anomalies", "/v1/alerts", "/v1/dead-letters"])
@pytest.mark.parametrize("cursor", [cursor_of("id:" + "9" * 25), cursor_of(f"id:{2**63}"), cursor_of("id:-1"), cursor_of("id:0"),
                                    cursor_of("id:1e9"), cursor_of("id:\x00"), "%%%", "id:5"])
def test_a_malformed_cursor_is_422_naming_it(client, keys, path, cursor) -> None:
    answer = client.get(path, params={"cursor": cursor}, headers=keys.headers("admin"))
    assert answer.status_code == 422 and field_of(answer) == "cursor", answer.text
    assert "cursor" in answer.json()["detail"][0]["msg"]


def test_a_cursor_at_the_largest_row_id_is_accepted(client, keys) -> None:
    answer = client.get("/v1/anomalies", params={"cursor": cursor_of(f"id:{2**63 - 1}")}, headers=keys.headers("viewer"))
    assert answer.status_code == 200 and answer.json()["items"] == []


# --- 2. numbers in query parameters ---------------------------------------------------------------

NUMERIC_QUERY = [("/v1/anomalies", "since"), ("/v1/anomalies", "until"), ("/v1/anomalies", "limit"),
                 ("/v1/alerts", "since"), ("/v1/alerts", "until"), ("/v1/alerts", "limit"),
                 ("/v1/entities/card0000001", "limit"), ("/v1/dead-letters", "limit"),
                 ("/v1/models/compare", "challenger")]


@pytest.mark.parametrize("path,name", NUMERIC_QUERY)
def test_nan_inf_and_huge_numbers_in_queries_are_422_naming_the_parameter(client, keys, path, name) -> None:
    for value in NUMBERS:
        answer = client.get(path, params={name: value}, headers=keys.headers("admin"))
        assert answer.status_code == 422 and field_of(answer) == name, (path, name, value, answer.text)


def test_every_numeric_query_parameter_is_covered(app) -> None:
    """A new float/int query parameter on any route must be bounded (and added to NUMERIC_QUERY)."""
    schema = app.openapi()
    found = set()
    for path, methods in schema["paths"].items():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                kinds = {s.get("type") for s in parameter["schema"].get("anyOf", [parameter["schema"]])}
                if kinds & {"number", "integer"}:
                    found.add((path, parameter["name"], parameter["in"]))
                    if parameter["in"] == "query":
                        bounded = [s for s in parameter["schema"].get("anyOf", [parameter["schema"]]) if s.get("type") in ("number", "integer")]
                        assert all("maximum" in s and "minimum" in s for s in bounded), (path, parameter)
    covered = {(p.replace("card0000001", "{key}"), n, "query") for p, n in NUMERIC_QUERY}
    assert {f for f in found if f[2] == "query"} == covered
    assert found - covered == {("/v1/alerts/{alert_id}", "alert_id", "path"), ("/v1/alerts/{alert_id}/ack", "alert_id", "path"),
                               ("/v1/alerts/{alert_id}/resolve", "alert_id", "path"),
                               ("/v1/models/versions/{version}", "version", "path"),
                               ("/v1/models/versions/{version}/promote", "version", "path"),
                               ("/v1/mutes/{mute_id}", "mute_id", "path")}


def test_times_within_range_still_filter(client, keys) -> None:
    answer = client.get("/v1/anomalies", params={"since": 0, "until": 4_102_444_800.5}, headers=keys.headers("viewer"))
    assert answer.status_code == 200


# --- 3. credentials before the body ---------------------------------------------------------------


@pytest.fixture
def running(app):
    server = start_in_thread(app, header_timeout=2.0)
    yield server
    server.stop()


def exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send ``head`` (and ``body``) on a fresh connection; what the server answers before closing or pausing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def post_head(length: int, headers: dict[str, str] | None = None) -> bytes:
    lines = ["POST /v1/score HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_credentials_are_checked_before_the_body_is_read(running, keys) -> None:
    # no body is sent: a server that reads the body before checking credentials would wait for it
    seven_mb = 7 * 1024 * 1024
    for headers in ({}, {"X-API-Key": "tsk_000000000000_not-a-key"}, {"Authorization": "Bearer not.a.jwt"}):
        answer = exchange(running.port, post_head(seven_mb, headers))
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"www-authenticate: Bearer" in answer.lower().replace(b"www-authenticate: bearer", b"www-authenticate: Bearer")
    unauthenticated_huge = exchange(running.port, post_head(9 * 1024 * 1024))
    assert unauthenticated_huge.startswith(b"HTTP/1.1 401"), "credentials first, then the size"
    authenticated_huge = exchange(running.port, post_head(9 * 1024 * 1024, {"X-API-Key": keys.analyst}))
    assert authenticated_huge.startswith(b"HTTP/1.1 413")


def test_error_shapes_stay_json(client, keys) -> None:
    missing = client.post("/v1/score", json={"event": {}})
    assert missing.status_code == 401 and missing.json() == {"detail": "missing credentials: send X-API-Key or Authorization: Bearer"}
    assert missing.headers["www-authenticate"] == "Bearer"
    bad = client.post("/v1/score", json={"event": {}}, headers={"X-API-Key": "nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "invalid or expired credentials"}
    lower = client.post("/v1/score", json={"event": {}}, headers=keys.headers("viewer"))
    assert lower.status_code == 403 and "analyst" in lower.json()["detail"]
    basic = client.get("/v1/stats", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401 and "missing credentials" in basic.json()["detail"]


# --- 5. failed-login throttling ----------------------------------------------------------------------


def test_failed_logins_are_throttled_per_address(app, keys) -> None:
    attacker = TestClient(app, client=("192.0.2.66", 40000))
    neighbour = TestClient(app, client=("192.0.2.7", 40000))
    bad = {"X-API-Key": "tsk_000000000000_guess"}
    statuses = [attacker.get("/v1/stats", headers=bad).status_code for _ in range(20)]
    assert statuses == [401] * 20
    throttled = attacker.get("/v1/stats", headers=bad)
    assert throttled.status_code == 429 and "too many failed" in throttled.json()["detail"]
    assert 1 <= int(throttled.headers["retry-after"]) <= 10
    checked: list[str] = []
    keystore = app.state.auth.keys
    original = keystore.verify
    keystore.verify = lambda key: checked.append(key) or original(key)
    assert attacker.get("/v1/stats", headers=bad).status_code == 429 and not checked, "refused without checking"
    assert attacker.get("/health").status_code == 200, "routes without credentials are not throttled"
    assert neighbour.get("/v1/stats", headers=keys.headers("viewer")).status_code == 200, "other addresses are unaffected"
    assert neighbour.get("/v1/stats", headers=bad).status_code == 401
    for _ in range(50):  # successful requests never count as failures
        assert neighbour.get("/v1/whoami", headers=keys.headers("viewer")).status_code == 200
    throttle = app.state.auth_throttle
    later = time.monotonic() + 11
    throttle.clock = lambda: later
    assert attacker.get("/v1/stats", headers=keys.headers("viewer")).status_code == 200, "the block lifts after the window"


def test_the_throttle_table_is_bounded() -> None:
    from tocsin.api.auth import FailureThrottle

    now = [0.0]
    throttle = FailureThrottle(limit=3, window=10.0, max_addresses=100, clock=lambda: now[0])
    for i in range(5_000):
        throttle.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        now[0] += 0.001
    assert len(throttle) <= 100
    for _ in range(3):
        throttle.failed("203.0.113.9")
    assert throttle.retry_after("203.0.113.9") == 10
    now[0] += 4.2
    assert throttle.retry_after("203.0.113.9") == 6
    now[0] += 6
    assert throttle.retry_after("203.0.113.9") is None


# --- 6. Host and Origin with auth off -----------------------------------------------------------------


@pytest.fixture
def open_app(spec, warm_pipeline):
    return create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None)), pipeline=warm_pipeline)


@pytest.mark.parametrize("base", ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000", "http://LOCALHOST", "http://127.0.0.1"])
def test_without_auth_loopback_hosts_are_answered(open_app, base) -> None:
    client = TestClient(open_app, base_url=base)
    assert client.get("/v1/stats").status_code == 200
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil.example", "10.0.0.1:8000", "", "[::1"])
def test_without_auth_other_host_headers_are_refused(open_app, host) -> None:
    client = TestClient(open_app, base_url="http://localhost:8000")
    for path in ("/v1/stats", "/health", "/dashboard/"):
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 403, (host, path)
        assert "Host" in answer.json()["detail"] and "loopback" in answer.json()["detail"]


def test_without_auth_cross_origin_writes_are_refused(open_app) -> None:
    client = TestClient(open_app, base_url="http://localhost:8000")
    url = "/v1/alerts/1/ack"
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "http://localhost:9999"},
                    {"Origin": "http://127.0.0.1.nip.io:8000"}, {"Referer": "https://evil.example/page"},
                    {"Origin": "https://evil.example", "Referer": "http://localhost:8000/dashboard/"}):
        answer = client.post(url, headers=headers)
        assert answer.status_code == 403 and "cross-origin" in answer.json()["detail"], headers
        assert client.request("DELETE", "/v1/keys/abc", headers=headers).status_code == 403
    for headers in ({}, {"Origin": "http://localhost:8000"}, {"Referer": "http://localhost:8000/dashboard/#/alerts/1"}):
        assert client.post(url, headers=headers).status_code == 404, headers  # checked, then: no such alert
    assert client.get("/v1/stats", headers={"Origin": "https://evil.example"}).status_code == 200, "reads: the browser keeps the answer"


def test_with_auth_on_host_and_cors_stay_as_configured(app, keys) -> None:
    client = TestClient(app, base_url="http://tocsin.internal.example")
    answer = client.get("/v1/stats", headers={**keys.headers("viewer"), "Origin": "https://evil.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


# --- 7. JWT ----------------------------------------------------------------------------------------------


def test_a_short_hs256_secret_is_refused_at_startup(monkeypatch, tmp_path) -> None:
    with pytest.raises(ValueError, match="TOCSIN_JWT_SECRET.*32 bytes"):
        AuthConfig(keys=KeyStore(None), jwt_secret="x")
    monkeypatch.setenv("TOCSIN_JWT_SECRET", "s" * 31)
    with pytest.raises(ValueError, match="TOCSIN_JWT_SECRET"):
        AuthConfig.from_env(tmp_path / "keys.json")
    from tocsin.cli.main import app as cli

    result = CliRunner().invoke(cli, ["serve", "--keys-file", str(tmp_path / "keys.json"), "--port", "1"], env={"TOCSIN_JWT_SECRET": "short"})
    assert result.exit_code == 2 and "TOCSIN_JWT_SECRET" in result.output, result.output
    monkeypatch.setenv("TOCSIN_JWT_SECRET", "s" * 32)
    assert AuthConfig.from_env(tmp_path / "keys.json").jwt_secret == "s" * 32


def test_audience_and_issuer_are_read_from_the_environment_and_checked(monkeypatch, spec, warm_pipeline, tmp_path) -> None:
    monkeypatch.setenv("TOCSIN_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("TOCSIN_JWT_AUDIENCE", "tocsin-api")
    monkeypatch.setenv("TOCSIN_JWT_ISSUER", "https://sso.example")
    auth = AuthConfig.from_env(tmp_path / "keys.json")
    assert (auth.jwt_audience, auth.jwt_issuer) == ("tocsin-api", "https://sso.example")
    client = TestClient(create_app(spec, auth, pipeline=warm_pipeline))
    now = int(time.time())

    def call(**claims: Any) -> int:
        token = jwt.encode({"sub": "u", "role": "viewer", "exp": now + 60, **claims}, JWT_SECRET, algorithm="HS256")
        return client.get("/v1/stats", headers={"Authorization": f"Bearer {token}"}).status_code

    assert call(aud="tocsin-api", iss="https://sso.example") == 200
    assert call(aud=["other", "tocsin-api"], iss="https://sso.example") == 200
    assert call(iss="https://sso.example") == 401, "no audience"
    assert call(aud="another-api", iss="https://sso.example") == 401
    assert call(aud="tocsin-api") == 401, "no issuer"
    assert call(aud="tocsin-api", iss="https://evil.example") == 401
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {auth.issue_jwt('u', 'viewer')}"}).status_code == 200


def test_without_an_audience_configured_tokens_for_another_audience_are_refused(client) -> None:
    token = jwt.encode({"sub": "u", "role": "viewer", "exp": int(time.time()) + 60, "aud": "another-api"}, JWT_SECRET, algorithm="HS256")
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# --- 8. security headers ------------------------------------------------------------------------------------

SECURITY_HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def test_every_response_carries_security_headers(client, keys) -> None:
    answers = [
        client.get("/dashboard/"), client.get("/dashboard/static/app.js"), client.get("/dashboard/vendor/plotly.min.js"),
        client.get("/health"), client.get("/metrics"), client.get("/openapi.json"), client.get("/v1/stats"),
        client.get("/v1/stats", headers=keys.headers("viewer")), client.get("/nowhere"),
        client.post("/v1/score", content=b"x" * (9 * 1024 * 1024), headers=keys.headers("analyst")),
        client.get("/v1/alerts", params={"since": "nan"}, headers=keys.headers("viewer")), client.get("/docs"),
    ]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name, answer.status_code)
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    dashboard = client.get("/dashboard/").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in dashboard.split(";"))
    assert set(directives["script-src"].split()) == set(directives["style-src"].split()) == {"'self'", "'report-sample'"}
    assert "unsafe-inline" not in dashboard and "unsafe-eval" not in dashboard and "http" not in dashboard


def test_the_dashboard_has_no_inline_scripts_styles_or_handlers() -> None:
    """What the dashboard's CSP (scripts and styles from 'self' only) requires of its files."""
    import re

    from tocsin.api.routes.dashboard import STATIC

    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        assert not re.search(r"\son[a-z]+=[\"'\\]", text), f"{script.name} writes an inline event handler"
        assert "style=" not in text and "eval(" not in text and "new Function" not in text
        assert "http://" not in text and "https://" not in text, "no CDN"


# --- 9. who acknowledged, resolved, gave feedback --------------------------------------------------------


def test_acknowledgements_resolutions_and_feedback_record_their_author(client, keys, seeded, auth) -> None:
    alert = seeded["alerts"][0]
    assert alert["acknowledged_by"] is None and alert["resolved_by"] is None
    analyst_id = next(k["id"] for k in auth.keys.list() if k["role"] == "analyst")
    before = time.time()
    acked = client.post(f"/v1/alerts/{alert['id']}/ack", headers=keys.headers("analyst")).json()
    assert acked["acknowledged_by"] == f"key:{analyst_id}" and before <= acked["acknowledged_at"] <= time.time()
    token = auth.issue_jwt("ada@example.org", "admin")
    resolved = client.post(f"/v1/alerts/{alert['id']}/resolve", headers={"Authorization": f"Bearer {token}"}).json()
    assert resolved["resolved_by"] == "ada@example.org" and resolved["resolved_at"] >= acked["acknowledged_at"]
    assert resolved["acknowledged_by"] == f"key:{analyst_id}", "the acknowledgement is kept"
    listed = client.get("/v1/alerts", params={"status": "resolved"}, headers=keys.headers("viewer")).json()["items"]
    assert listed[0]["resolved_by"] == "ada@example.org"
    row = client.app.state.service.store.alerts(pipeline="transactions", status="resolved")[0]
    assert (row["acknowledged_by"], row["resolved_by"]) == (f"key:{analyst_id}", "ada@example.org")
    anomaly = seeded["anomalies"][0]
    given = client.post("/v1/feedback", json={"event_id": anomaly["event_id"], "label": "true_positive"}, headers=keys.headers("analyst")).json()
    assert given["author"] == f"key:{analyst_id}" and given["created_at"] >= before
    stored = client.app.state.service.store.feedback(event_id=anomaly["event_id"])[0]
    assert stored["author"] == f"key:{analyst_id}"


# --- 10. dead letters --------------------------------------------------------------------------------------


def test_dead_letters_can_be_read_by_analysts_not_viewers(client, keys, records) -> None:
    analyst = keys.headers("analyst")
    good = records[3_500]
    bad = [{**good, "tx_id": f"bad-{i}", "amount": "lots"} for i in range(5)] + [{"tx_id": "no-card", "note": "é\u2028"}]
    answer = client.post("/v1/score", json={"events": [good, *bad]}, headers=analyst)
    assert answer.status_code == 200 and answer.json()["dead_letters"] == 6
    assert client.get("/v1/dead-letters", headers=keys.headers("viewer")).status_code == 403
    assert client.get("/v1/dead-letters").status_code == 401
    first = client.get("/v1/dead-letters", params={"limit": 4}, headers=analyst).json()
    rest = client.get("/v1/dead-letters", params={"limit": 4, "cursor": first["next_cursor"]}, headers=analyst).json()
    items = first["items"] + rest["items"]
    assert len(first["items"]) == 4 and rest["next_cursor"] is None and len(items) == 6
    assert [d["id"] for d in items] == sorted((d["id"] for d in items), reverse=True), "newest first"
    assert all(d["reason"] and d["source"] and d["raw_truncated"] is False for d in items)
    assert '"no-card"' in items[0]["raw"] and "é" in items[0]["raw"], "raw as text"
    assert {d["raw_bytes"] for d in items} >= {len(d["raw"].encode()) for d in items}
    source = items[0]["source"]
    by_source = client.get("/v1/dead-letters", params={"source": source}, headers=keys.headers("admin")).json()["items"]
    assert by_source and all(d["source"] == source for d in by_source)
    assert client.get("/v1/dead-letters", params={"source": "nowhere"}, headers=analyst).json()["items"] == []


def test_a_large_or_binary_dead_letter_is_truncated_text(client, keys) -> None:
    store = client.app.state.service.store
    store.write_dead_letters("transactions", [
        {"source": "file:x", "position": 1, "reason": "not JSON", "raw": b"\xff\xfe" + b"a" * 100_000},
        {"source": "file:x", "position": 2, "reason": "empty", "raw": None},
    ])
    items = client.get("/v1/dead-letters", params={"source": "file:x"}, headers=keys.headers("analyst")).json()["items"]
    empty, big = items
    assert empty["raw"] is None and empty["raw_truncated"] is False and empty["raw_bytes"] == 0
    assert big["raw_truncated"] is True and big["raw_bytes"] == 100_002
    assert len(big["raw"].encode()) <= 64 * 1024 and big["raw"].startswith("\ufffd\ufffd") and big["raw"].endswith("a")


def test_plotly_css_matches_the_served_plotly() -> None:
    """static/plotly.css holds the rules Plotly would inject inline (refused by the CSP): regenerate it when
    plotly is upgraded (its header says how)."""
    import re

    from tocsin.api.routes.dashboard import STATIC, plotly_js

    with open(plotly_js()) as bundle:
        served = re.search(r"plotly\.js (v[\d.]+)", bundle.read(400)).group(1)
    assert f"plotly.js {served})" in (STATIC / "plotly.css").read_text()
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in (STATIC / "index.html").read_text()


def test_an_internal_error_is_json_with_security_headers(app, keys, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("the store exploded")

    monkeypatch.setattr(app.state.service, "stats", broken)
    answer = TestClient(app, raise_server_exceptions=False).get("/v1/stats", headers=keys.headers("viewer"))
    assert answer.status_code == 500 and answer.json() == {"detail": "internal server error"}
    assert "exploded" not in answer.text
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value


def test_sealed_dead_letters_are_shown_opened_to_analysts(spec, auth, keys, warm_pipeline, records) -> None:
    import os

    from sqlalchemy import text

    app = create_app(spec, auth, pipeline=warm_pipeline, sensitive_fields=["amount"], encryption_key=os.urandom(32))
    with TestClient(app) as client:
        bad = {**records[3_600], "tx_id": "bad-secret", "ts": "not a time", "amount": 4242.4242}
        client.post("/v1/score", json={"events": [records[3_601], bad]}, headers=keys.headers("analyst"))
        with app.state.service.store.engine.connect() as conn:
            stored = conn.execute(text("SELECT raw FROM dead_letters")).scalar_one()
        assert b"4242.4242" not in bytes(stored), "sealed at rest"
        items = client.get("/v1/dead-letters", headers=keys.headers("analyst")).json()["items"]
        assert "4242.4242" in items[0]["raw"] and "bad-secret" in items[0]["raw"]
