"""RunStats' active window: from the end of the first batch with events to the end of the latest one, with the
events after the first batch and the process CPU spent in between (what ``tocsin bench kafka`` scales on)."""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.engine.pipeline import ScoredBatch
from tocsin.engine.stats import RunStats


def _batch(n: int) -> ScoredBatch:
    events = EventBatch(ids=np.array([f"e{i}" for i in range(n)], dtype=object),
                        keys=np.array(["k"] * n, dtype=object), times=np.arange(n, dtype=np.float64))
    nothing = np.zeros(n)
    return ScoredBatch(events=events, features=None, raw_score=nothing, score=nothing, is_anomaly=np.zeros(n, dtype=bool),
                       severity=np.full(n, -1, dtype=np.int8), scored=np.zeros(n, dtype=bool))


def test_active_window_is_empty_before_any_batch_with_events() -> None:
    stats = RunStats()
    stats.add(_batch(0))  # an idle tick opens nothing
    assert stats.summary()["active"] == {"events": 0, "seconds": 0.0, "cpu_seconds": 0.0, "started_at": None, "ended_at": None}


def test_active_window_leaves_out_the_first_batch_and_idle_ticks(monkeypatch) -> None:
    clock = {"wall": 1_000.0, "cpu": 5.0}
    monkeypatch.setattr("tocsin.engine.stats.time.time", lambda: clock["wall"])
    monkeypatch.setattr("tocsin.engine.stats.time.process_time", lambda: clock["cpu"])
    stats = RunStats()
    stats.add(_batch(0))  # before the first batch: not the start
    clock.update(wall=1_010.0, cpu=7.0)
    stats.add(_batch(100))  # the first batch: its events and its cost are left out
    clock.update(wall=1_012.0, cpu=8.5)
    stats.add(_batch(40))
    clock.update(wall=1_013.0, cpu=9.0)
    stats.add(_batch(60))
    clock.update(wall=1_020.0, cpu=9.5)
    stats.add(_batch(0))  # an idle tick after the last batch does not extend the window
    active = stats.summary()["active"]
    assert active == {"events": 100, "seconds": 3.0, "cpu_seconds": 2.0, "started_at": 1_010.0, "ended_at": 1_013.0}
    assert stats.events == 200


def test_active_window_with_one_batch_is_empty_but_started() -> None:
    stats = RunStats()
    stats.add(_batch(10))
    active = stats.active()
    assert active["events"] == 0 and active["seconds"] == 0.0 and active["cpu_seconds"] == 0.0
    assert active["started_at"] == active["ended_at"] is not None
