"""``tocsin serve`` killed with SIGKILL 20 times while a client posts to ``/v1/events``: after every
restart it replays its journal after its checkpoint, and in the end every event answered 202 is
stored exactly once, with the score an uninterrupted run over the same accepted requests gives.

The client is sequential, so at most one request is in flight at a kill. Its events may or may not
have been journaled before the process died; the journal seqs of the answered requests tell which
(a gap in the answered seqs is the in-flight request's entry), so the test knows the exact order
the service accepted requests in, and replays it through one uninterrupted pipeline as the reference.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy import text

from tocsin.api.server import free_port
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator
from tocsin.spec import parse_spec
from tocsin.store.sql import Store
from tests.api.conftest import as_records, spec_dict

KILLS = 20
BATCH = 40
EVENTS = 9_000

pytestmark = pytest.mark.slow


def start_server(spec_path: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tocsin.cli.main", "serve", str(spec_path), "--port", str(port),
                                 "--no-auth", "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited on start"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code in (200, 503):
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError("the server did not start")


def test_kill_9_during_event_traffic_stores_every_accepted_event_once(tmp_path) -> None:
    data = spec_dict(f"sqlite:///{tmp_path / 'store.db'}", str(tmp_path / "checkpoints"))
    data["detector"].update({"warmup_events": 1_000, "refit_every": 2_000, "train_window": 2_000})
    data["calibration"]["update_every"] = 500
    data["store"]["scored_events"] = True
    data["checkpoint"]["interval"] = "300ms"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    simulator = TransactionSimulator(users=300, merchants=2_000, fraud_rate=0.02, warmup_days=0.5, seed=3)
    records = as_records(simulator.generate(EVENTS))
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    rng = random.Random(7)
    server = start_server(spec_path, port, log)
    wait_ready(url, server)
    answered: dict[int, int] = {}  # batch index -> journal seq of its 202
    in_flight_at_kill: list[int] = []
    kill_before = set(rng.sample(range(3, len(batches) - 3), KILLS))
    kills = 0
    client = httpx.Client(base_url=url, timeout=10)
    try:
        for index, batch in enumerate(batches):
            if index in kill_before:
                # half the kills land while this request is being sent, journaled or answered; the others
                # between requests, while the service folds what it accepted or writes a checkpoint
                during = rng.random() < 0.5
                timer = threading.Timer(rng.uniform(0.0, 0.004) if during else rng.uniform(0.0, 0.05),
                                        lambda p=server: p.send_signal(signal.SIGKILL))
                timer.start()
                if during:
                    try:
                        answer = client.post("/v1/events", json={"events": batch})
                        if answer.status_code == 202:
                            answered[index] = answer.json()["position"]
                        else:
                            in_flight_at_kill.append(index)
                    except httpx.HTTPError:
                        in_flight_at_kill.append(index)
                timer.join()
                server.wait(10)
                kills += 1
                server = start_server(spec_path, port, log)
                wait_ready(url, server)
                if during:
                    continue
            answer = client.post("/v1/events", json={"events": batch})
            assert answer.status_code == 202, answer.text
            answered[index] = answer.json()["position"]
        deadline = time.monotonic() + 60
        while client.get("/v1/stats").json()["queue_depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert kills == KILLS

    # The order the service accepted requests in: answered seqs, and each in-flight request in the gap
    # its journal entry left (if it was journaled before the kill).
    by_seq = {seq: index for index, seq in answered.items()}
    assert len(by_seq) == len(answered), "two answers with one journal seq"
    for index in in_flight_at_kill:
        before = max((s for i, s in answered.items() if i < index), default=0)
        after = min((s for i, s in answered.items() if i > index), default=None)
        if after is not None and after - before == 2:
            by_seq[before + 1] = index
        else:
            assert after is None or after - before == 1, f"unexplained journal gap between {before} and {after}"
    accepted = [batches[by_seq[seq]] for seq in sorted(by_seq)]
    assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), "journal seqs are consecutive"

    # The uninterrupted run over the same accepted events.
    reference = Pipeline(parse_spec(data))
    scored = reference.process_records([r for batch in accepted for r in batch], source="api")
    expected = {str(scored.events.ids[i]): float(scored.score[i]) for i in np.flatnonzero(scored.scored)}

    store = Store(data["store"]["url"])
    rows = store.fetch(text("SELECT event_id, score FROM scored_events WHERE pipeline = 'transactions'"))
    stored: dict[str, float] = {}
    for row in rows:
        assert row["event_id"] not in stored, f"{row['event_id']} stored twice"
        stored[row["event_id"]] = row["score"]
    answered_ids = {r["tx_id"] for index in answered for r in batches[index]}
    reference_ids = {str(i) for i in scored.events.ids}
    assert answered_ids <= reference_ids
    assert stored.keys() == expected.keys(), "every scored event of every accepted request is stored, and nothing else"
    np.testing.assert_array_equal([stored[k] for k in expected], [expected[k] for k in expected])
    assert len(expected) > 5_000 and len(in_flight_at_kill) <= KILLS
