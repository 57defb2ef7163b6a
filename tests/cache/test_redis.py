"""Tests for src/tocsin/cache/redis.py against a real redis-server."""

from __future__ import annotations

import pytest

from tocsin.cache.redis import EntityCache
from tocsin.engine.pipeline import Pipeline
from tocsin.kafka.producer import event_lines
from tocsin.simulate import TransactionSimulator
from tocsin.sources.base import SourceBatch
from tocsin.spec import parse_spec

from tests.kafka.helpers import small_spec_data

pytestmark = pytest.mark.redis


def test_latest_event_per_entity_and_anomalies_in_one_round_trip(redis_url, tmp_path):
    spec = parse_spec(small_spec_data(f"sqlite:///{tmp_path}/s.db", tmp_path / "ck"))
    pipeline = Pipeline(spec)
    batch = TransactionSimulator.from_spec(spec.source).generate(8_000)
    lines, _ = event_lines(batch)
    import numpy as np

    scored = pipeline.process_raw(SourceBatch(positions=np.arange(len(lines)), next_position=len(lines), lines=lines), "t")
    cache = EntityCache(redis_url)
    cache.update("tx", [scored])
    cache.update("tx", [scored])  # a replay writes the same values
    card = str(batch.keys[-1])
    state = cache.entity("tx", card)
    assert state["event_id"] == str(batch.ids[-1]) and state["event_time"] == float(batch.times[-1])
    flagged = scored.anomaly_rows
    assert len(flagged)
    entity = str(scored.events.keys[flagged[0]])
    assert str(scored.events.ids[flagged[0]]) in cache.entity("tx", entity)["recent_anomalies"]
    assert cache.entity("tx", "no-such-card") is None and cache.ping()
