"""A promoted champion reaches a running 2-worker Kafka group within seconds, and a promotion survives kill -9.

The switch happens at a batch boundary of each partition and is saved in that partition's checkpoint at
once (the version and the offset it took over after), so a worker killed at any moment resumes either
before the switch (and switches again when it next polls) or after it: every event is stored once, with
the score of the model in force at its offset — checked against a replay of each partition that switches
where its checkpoint says it did.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text

from tocsin.checkpoint import open_checkpoint_store
from tocsin.engine.pipeline import Pipeline
from tocsin.engine.train import train_model
from tocsin.kafka.admin import read_topic
from tocsin.kafka.producer import produce_events
from tocsin.registry import CHAMPION, open_registry
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.sources.base import SourceBatch
from tocsin.spec import StreamSettings, parse_spec
from tocsin.store.sql import Store

from .helpers import (
    kafka_source,
    last_offsets,
    simulator,
    small_spec_data,
    start_worker,
    topics,
    wait_checkpointed,
    wait_owning,
)

pytestmark = pytest.mark.kafka


def setup(tmp_path, kafka_brokers, seed: int):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck", seed=seed)
    data["store"]["scored_events"] = True
    data["registry"] = {"poll_interval": "200ms"}
    spec = parse_spec(data)
    history = tmp_path / "history.jsonl"
    write_events(TransactionSimulator.from_spec(spec.source.model_copy(update={"seed": seed + 100})).generate(20_000), history, "jsonl")
    version_info, arrays = train_model(spec, history, holdout=0)
    version = open_registry(spec).register(version_info, arrays).version
    return data, spec, version


def partition_checkpoints(tmp_path, data, names) -> dict[str, dict]:
    checkpoints = open_checkpoint_store(str(tmp_path / "ck"), data["name"])
    out = {}
    for partition in checkpoints.partitions():
        saved = checkpoints.load(partition)
        out[partition] = json.loads(str(saved.state["pipeline/meta"]))
    return out


def test_a_two_worker_group_switches_within_seconds_and_loses_nothing(tmp_path, kafka_brokers) -> None:
    data, spec, version = setup(tmp_path, kafka_brokers, seed=41)
    names = topics(kafka_brokers)
    client = {"bootstrap.servers": kafka_brokers}
    sim = simulator(data)
    produce_events(client, names["topic"], sim, 10_000)
    producer = threading.Thread(target=produce_events, args=(client, names["topic"], sim, 30_000),
                                kwargs={"rate": 3_000, "start_position": 10_000})
    source = kafka_source(kafka_brokers, names)
    settings = StreamSettings(checkpoint_url=str(tmp_path / "ck"))
    workers = [start_worker(tmp_path, data, source, settings, str(i)) for i in range(2)]
    producer.start()
    try:
        wait_checkpointed(open_checkpoint_store(str(tmp_path / "ck"), data["name"]),
                          {f"{names['topic']}/{p}": 2_500 for p in (0, 1)}, 120)  # both partitions scoring
        promoted = time.monotonic()
        open_registry(spec).promote(spec.name, version, CHAMPION, by="test")
        while time.monotonic() - promoted < 10:
            metas = partition_checkpoints(tmp_path, data, names)
            if len(metas) == 2 and all(meta.get("model_version") == version for meta in metas.values()):
                break
            time.sleep(0.1)
        took = time.monotonic() - promoted
        metas = partition_checkpoints(tmp_path, data, names)
        assert len(metas) == 2 and all(meta["model_version"] == version for meta in metas.values()), (took, metas)
        producer.join()
        wait_checkpointed(open_checkpoint_store(str(tmp_path / "ck"), data["name"]), last_offsets(kafka_brokers, names["topic"]), 120)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    rows = Store(data["store"]["url"]).fetch(text(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scored_events"))[0]
    warmup = 2 * spec.detector.warmup_events
    assert rows["n"] == rows["d"] == 40_000 - warmup, "every event scored once (after each partition's warm-up)"
    print(f"both partitions switched {took:.2f} s after the promotion")


def test_kill_9_across_a_promotion_scores_every_event_once_with_the_model_in_force(tmp_path, kafka_brokers) -> None:
    data, spec, version = setup(tmp_path, kafka_brokers, seed=42)
    names = topics(kafka_brokers)
    client = {"bootstrap.servers": kafka_brokers}
    sim = simulator(data)
    produce_events(client, names["topic"], sim, 8_000)
    producer = threading.Thread(target=produce_events, args=(client, names["topic"], sim, 32_000),
                                kwargs={"rate": 2_500, "start_position": 8_000})
    source = kafka_source(kafka_brokers, names)
    health = tmp_path / "health.json"
    settings = StreamSettings(checkpoint_url=str(tmp_path / "ck"), health_path=health)
    rng = random.Random(7)
    worker = start_worker(tmp_path, data, source, settings, "0")
    producer.start()
    kills, promoted = 0, False
    try:
        while kills < 6 or producer.is_alive():
            wait_owning(health, worker)
            if kills == 2 and not promoted:  # the promotion lands among the kills
                open_registry(spec).promote(spec.name, version, CHAMPION, by="test")
                promoted = True
            time.sleep(rng.uniform(0.0, 1.2))
            if kills >= 6 and not producer.is_alive():
                break
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = start_worker(tmp_path, data, source, settings, "0")
        producer.join()
        checkpoints = open_checkpoint_store(str(tmp_path / "ck"), data["name"])
        wait_checkpointed(checkpoints, last_offsets(kafka_brokers, names["topic"]), 180)
        # a worker switches at a batch: the last incarnation may have scored its last one before its follower
        # first read the registry, so a few more events give it the batch the switch waits for
        extra = 40_000
        while not all(m["model_version"] == version for m in partition_checkpoints(tmp_path, data, names).values()) and extra < 40_600:
            produce_events(client, names["topic"], sim, 100, start_position=extra)
            extra += 100
            wait_checkpointed(checkpoints, last_offsets(kafka_brokers, names["topic"]), 60)
            time.sleep(1.0)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    metas = partition_checkpoints(tmp_path, data, names)
    assert all(meta["model_version"] == version for meta in metas.values()), {k: {n: v for n, v in m.items() if n in ("model_version", "model_switches", "events_seen", "fits")} for k, m in metas.items()}

    # the reference: each partition replayed in one pipeline that switches where its checkpoint says it did
    arrays = open_registry(spec).arrays(spec.name, version)
    expected: dict[str, float] = {}
    messages = list(read_topic(client, names["topic"]))
    for partition in sorted({m.partition() for m in messages}):
        switches = {int(p): int(v) for p, v in metas[f"{names['topic']}/{partition}"]["model_switches"]}
        pipeline = Pipeline(spec)
        mine = sorted((m for m in messages if m.partition() == partition), key=lambda m: m.offset())
        offsets = np.array([m.offset() for m in mine], dtype=np.int64)
        cut = min(switches) if switches else int(offsets[-1])
        for part in (offsets <= cut, offsets > cut):
            index = np.flatnonzero(part)
            if len(index):
                raw = SourceBatch(positions=offsets[index], next_position=int(offsets[index][-1]) + 1,
                                  lines=[mine[i].value() for i in index.tolist()])
                scored = pipeline.process_raw(raw, f"kafka:{names['topic']}/{partition}")
                expected.update({str(scored.events.ids[i]): float(scored.score[i]) for i in np.flatnonzero(scored.scored)})
            if switches and pipeline.model_version == 0:  # after the part up to the switch
                pipeline.install_model(arrays, version, cut)
    rows = Store(data["store"]["url"]).fetch(text("SELECT event_id, score FROM scored_events"))
    stored = {row["event_id"]: row["score"] for row in rows}
    assert len(rows) == len(stored), "no event stored twice"
    assert stored.keys() == expected.keys(), "every event stored, nothing else"
    np.testing.assert_array_equal([stored[k] for k in expected], [expected[k] for k in expected])
