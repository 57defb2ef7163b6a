"""A hostile-input run against a real server (uvicorn in a thread, keys for every role): malformed
cursors, NaN/inf/huge numbers in query parameters and in events, an 8 MB record, slow-header sockets,
1,000 failed logins in a burst, cross-origin writes to a server without auth. Every answer must be a 2xx
for valid work, a 4xx, or a closed connection, never a 5xx, and while it runs a /health checker's p99
stays under 100 ms."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.api.server import start_in_thread
from tocsin.spec import parse_spec
from tests.api.conftest import WARM_EVENTS, spec_dict
from tests.api.test_hardening import NUMBERS, NUMERIC_QUERY, cursor_of

HEADER_TIMEOUT = 2.0
ROLES = ("viewer", "analyst", "admin")
CURSORS = [cursor_of("id:" + "9" * 40), cursor_of(f"id:{2**63}"), cursor_of(f"id:{2**64 + 5}"), cursor_of("id:-5"), cursor_of("id:0"),
           cursor_of("id:1 OR 1=1"), cursor_of("id:1e308"), cursor_of("id:nan"), cursor_of("\x00\xff"), "=" * 10, "%00", "é" * 50,
           "A" * 200, cursor_of("id:\uff11"), "id:1"]


class Answers:
    """Every answer of the run, by phase: status codes, and "closed" for a connection the server ended."""

    def __init__(self) -> None:
        self.by_phase: dict[str, Counter] = {}
        self.server_errors: list[tuple[str, str, int, str]] = []
        self._lock = threading.Lock()

    def add(self, phase: str, what: str, status: int | str, text: str = "", count: int = 1) -> None:
        with self._lock:
            self.by_phase.setdefault(phase, Counter())[status] += count
            if isinstance(status, int) and status >= 500:
                self.server_errors.append((phase, what, status, text[:300]))

    def call(self, phase: str, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        try:
            answer = client.request(method, url, **kwargs)
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            self.add(phase, f"{method} {url}", "closed")
            return None
        self.add(phase, f"{method} {url}", answer.status_code, answer.text)
        return answer


class HealthChecker(threading.Thread):
    """GET /health every 10 ms on a kept-alive connection, timing each answer."""

    def __init__(self, url: str) -> None:
        super().__init__(name="health-checker", daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                status = client.get("/health").status_code
                self.latencies.append(time.perf_counter() - started)
                self.statuses[status] += 1
                time.sleep(0.01)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(0.99 * (len(ordered) - 1))]


class SlowHeaders(threading.Thread):
    """``n`` sockets sending a request head one byte every 300 ms (and one sending nothing), until the
    server closes them; records when each closed and what it answered."""

    def __init__(self, port: int, n: int = 40) -> None:
        super().__init__(name="slow-headers", daemon=True)
        self.port, self.n = port, n
        self.closed_after: list[float] = []
        self.answers: Counter = Counter()

    def run(self) -> None:
        head = b"GET /v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + b"k" * 400 + b"\r\n\r\n"
        sockets = []
        for i in range(self.n + 1):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.setblocking(False)
            sockets.append([sock, 0 if i < self.n else None, b""])  # the last one stays silent
        started = time.monotonic()
        while sockets and time.monotonic() - started < HEADER_TIMEOUT + 10:
            for entry in list(sockets):
                sock, sent, received = entry
                try:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionResetError
                    entry[2] = received + chunk
                    continue
                except BlockingIOError:
                    pass
                except (ConnectionResetError, OSError):
                    self.closed_after.append(time.monotonic() - started)
                    self.answers[received.split(b"\r\n", 1)[0].decode() or "closed"] += 1
                    sock.close()
                    sockets.remove(entry)
                    continue
                if sent is not None and sent < len(head):
                    try:
                        sock.send(head[sent : sent + 1])
                        entry[1] = sent + 1
                    except OSError:
                        pass
            time.sleep(0.3)
        for sock, *_ in sockets:
            sock.close()


def bad_logins(url: str, total: int, threads: int = 4) -> tuple[Counter, float]:
    """``total`` requests with wrong credentials from 127.0.0.2, from ``threads`` clients at once."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    credentials = [{"X-API-Key": "tsk_000000000000_guess"}, {"Authorization": "Bearer not.a.jwt"},
                   {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ."}, {"X-API-Key": "x" * 2000}]

    def attack(share: int) -> None:
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, transport=transport, timeout=10) as client:
            for i in range(share):
                status = client.get("/v1/alerts", headers=credentials[i % len(credentials)]).status_code
                with lock:
                    statuses[status] += 1

    workers = [threading.Thread(target=attack, args=(total // threads,)) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses, time.perf_counter() - started


def hostile_events(base: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, event, must be a dead letter) for values no event may carry."""
    cases: list[tuple[str, dict[str, Any], bool]] = []
    for name, amount in (("amount 1e308", 1e308), ("amount -1e308", -1e308), ("amount 'NaN'", "NaN"), ("amount 'inf'", "Infinity"),
                         ("amount 'lots'", "lots"), ("amount list", [1, 2]), ("amount object", {"v": 1}), ("amount null", None)):
        cases.append((name, {**base, "amount": amount}, amount is not None))
    for name, ts in (("ts 1e300", 1e300), ("ts milliseconds", 1767444200000), ("ts -1e12", -1e12), ("ts 0", 0),
                     ("ts 'yesterday'", "yesterday"), ("ts 'NaN'", "NaN")):
        cases.append((name, {**base, "ts": ts}, True))
    cases.append(("card id object", {**base, "card_id": {"$ne": None}}, True))
    cases.append(("no fields", {}, True))
    return [(name, {**event, "tx_id": f"hostile-{i}"} if event else event, dead) for i, (name, event, dead) in enumerate(cases)]


@pytest.fixture
def open_server(tmp_path: Path):
    """A second server with auth off (as `tocsin demo` and `tocsin serve --no-auth` run), on loopback."""
    spec = parse_spec(spec_dict(f"sqlite:///{tmp_path / 'open.db'}", str(tmp_path / "open-checkpoints")))
    server = start_in_thread(create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None))), header_timeout=HEADER_TIMEOUT)
    yield server
    server.stop()


def test_hostile_input_gets_only_4xx_or_closed_connections_and_health_stays_fast(spec, auth, keys, warm_pipeline, records,
                                                                                 open_server) -> None:
    server = start_in_thread(create_app(spec, auth, pipeline=warm_pipeline), header_timeout=HEADER_TIMEOUT)
    answers = Answers()
    health = HealthChecker(server.url)
    slow = SlowHeaders(server.port)
    began = time.monotonic()
    try:
        health.start()
        time.sleep(0.3)
        slow.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            role = {name: {"X-API-Key": getattr(keys, name)} for name in ROLES}
            # stored anomalies and alerts, so that cursors and filters have rows to run into
            assert client.post("/v1/score", json={"events": records[WARM_EVENTS:WARM_EVENTS + 3_000]}, headers=role["analyst"]).status_code == 200

            # malformed cursors, every list route, every role
            for name in ROLES:
                for path in ("/v1/anomalies", "/v1/alerts", "/v1/dead-letters"):
                    for cursor in CURSORS:
                        answer = answers.call("cursors", client, "GET", path, params={"cursor": cursor}, headers=role[name])
                        if name == "admin":
                            assert answer is not None and answer.status_code == 422, (path, cursor, answer.text if answer else None)

            # NaN, inf and huge numbers in every numeric query parameter, every role
            for name in ROLES:
                for path, parameter in NUMERIC_QUERY:
                    for value in (*NUMBERS, "1e309", "-0", "0x10", "", " 1", "1" * 5_000):
                        answer = answers.call("query numbers", client, "GET", path, params={parameter: value}, headers=role[name])
                        assert answer is not None and answer.status_code < 500
            for value in ("1e308", "nan", "9" * 30, "-1"):
                answers.call("query numbers", client, "GET", f"/v1/alerts/{value}", headers=role["viewer"])
                answers.call("query numbers", client, "POST", f"/v1/alerts/{value}/ack", headers=role["analyst"])

            # hostile values in events, synchronously and queued, one by one and mixed with a good one
            good = records[WARM_EVENTS + 3_000]
            for name, event, must_be_dead in hostile_events(good):
                scored = answers.call("events", client, "POST", "/v1/score", json={"event": event}, headers=role["analyst"])
                assert scored is not None and scored.status_code in (200, 422), (name, scored.text if scored else None)
                if scored.status_code == 200:
                    result = scored.json()["results"][0]
                    assert not must_be_dead or result["status"] == "dead_letter", (name, result)
                queued = answers.call("events", client, "POST", "/v1/events", json={"events": [event]}, headers=role["analyst"])
                assert queued is not None and queued.status_code in (202, 422), (name, queued.text if queued else None)
            mixed = [record for _n, record, _d in hostile_events({**good, "tx_id": "x"})]
            batch = answers.call("events", client, "POST", "/v1/score", json={"events": [records[WARM_EVENTS + 3_001], *mixed]},
                                 headers=role["analyst"])
            assert batch is not None and batch.status_code == 200 and batch.json()["results"][0]["status"] == "scored"
            for raw in (b'{"event": {"amount": NaN}}', b'{"event": {"amount": Infinity}}', b'{"events": [' + b"[" * 10_000,
                        b'{"event": {"amount": 1e400, "ts": 1e400}}', b"\xff\xfe", b'{"event": "' + b"\\u0000" * 1000 + b'"}'):
                for path in ("/v1/score", "/v1/events"):
                    answer = answers.call("events", client, "POST", path, content=raw,
                                          headers={**role["analyst"], "Content-Type": "application/json"})
                    assert answer is not None and answer.status_code in (200, 202, 422), (path, raw[:40], answer.text[:300])
            card = good["card_id"]
            entity = answers.call("events", client, "GET", f"/v1/entities/{card}", headers=role["analyst"])
            assert entity is not None and entity.status_code == 200, "the card's state stays finite (NaN would not encode)"
            dead = answers.call("events", client, "GET", "/v1/dead-letters", params={"limit": 1_000}, headers=role["analyst"])
            assert dead is not None and dead.status_code == 200 and len(dead.json()["items"]) >= 10

            # an 8 MB record: in a body under the limit, over it, and without credentials
            big_event = {**good, "tx_id": "big-1", "merchant_id": "m" * (8 * 1024 * 1024 - 2_000)}
            for path, ok in (("/v1/score", (200, 422)), ("/v1/events", (202, 422))):
                answer = answers.call("8 MB", client, "POST", path, json={"event": big_event}, headers=role["analyst"])
                assert answer is not None and answer.status_code in ok, (path, answer.text[:300] if answer else None)
            over = json.dumps({"event": {**good, "tx_id": "big-2", "merchant_id": "m" * (9 * 1024 * 1024)}}).encode()
            for headers in (role["analyst"], {}, {"X-API-Key": "tsk_0_bad"}):
                answer = answers.call("8 MB", client, "POST", "/v1/score", content=over, headers={**headers, "Content-Type": "application/json"})
                assert answer is None or answer.status_code in (401, 413)
            raw_dead = answers.call("8 MB", client, "GET", "/v1/dead-letters", params={"limit": 5}, headers=role["admin"])
            assert raw_dead is not None and all(len(d["raw"].encode()) <= 64 * 1024 for d in raw_dead.json()["items"] if d["raw"])

            # 1,000 failed logins in a burst from one address; others are unaffected meanwhile
            statuses, took = bad_logins(server.url, 1_000)
            for status, count in statuses.items():
                answers.add("failed logins", "GET /v1/alerts", status, count=count)
            assert set(statuses) <= {401, 429} and statuses[401] <= 25 and statuses[429] >= 975, statuses
            assert took < 10, f"1,000 failed logins took {took:.1f} s"
            assert answers.call("failed logins", client, "GET", "/v1/alerts", headers=role["viewer"]).status_code == 200

            # cross-origin writes and DNS rebinding against the server without auth
            with httpx.Client(base_url=open_server.url, timeout=10) as open_client:
                own = open_server.url
                for method, path, headers in (
                    ("POST", "/v1/alerts/1/ack", {"Origin": "https://evil.example"}),
                    ("POST", "/v1/alerts/1/resolve", {"Origin": "null"}),
                    ("POST", "/v1/feedback", {"Origin": "http://localhost:1", "Content-Type": "text/plain"}),
                    ("POST", "/v1/keys", {"Referer": "https://evil.example/attack.html"}),
                    ("DELETE", "/v1/keys/abc", {"Origin": "https://evil.example"}),
                    ("GET", "/v1/stats", {"Host": "evil.example"}),
                    ("GET", "/v1/keys", {"Host": f"rebind.evil.example:{open_server.port}"}),
                    ("POST", "/v1/alerts/1/ack", {"Host": "evil.example", "Origin": "http://evil.example"}),
                ):
                    answer = answers.call("cross-origin", open_client, method, path, headers=headers,
                                          content=b'{"event_id": "x", "label": "true_positive"}' if method == "POST" else None)
                    assert answer is not None and answer.status_code == 403, (method, path, headers, answer.text if answer else None)
                same = answers.call("cross-origin", open_client, "POST", "/v1/alerts/1/ack", headers={"Origin": own})
                assert same is not None and same.status_code == 404, "its own pages may write (no such alert here)"
        slow.join(HEADER_TIMEOUT + 15)
        assert not slow.is_alive()
    finally:
        health.stopping.set()
        health.join(15)
        server.stop()

    assert answers.server_errors == [], answers.server_errors
    for status, count in slow.answers.items():
        answers.add("slow headers", "GET /v1/stats", status, count=count)
    assert len(slow.closed_after) == slow.n + 1 and max(slow.closed_after) < HEADER_TIMEOUT + 1.5, slow.closed_after
    assert slow.answers == Counter({"HTTP/1.1 408 Request Timeout": slow.n, "closed": 1}), slow.answers
    assert set(health.statuses) == {200} and len(health.latencies) > 100, health.statuses
    p99 = health.p99()
    print(f"\nhostile run: {time.monotonic() - began:.1f} s; answers { {k: dict(v) for k, v in answers.by_phase.items()} }; "
          f"failed logins: {dict(statuses)} in {took:.2f} s; /health p99 {p99 * 1000:.1f} ms over {len(health.latencies)} checks")
    assert p99 < 0.100, f"/health p99 {p99 * 1000:.0f} ms"
