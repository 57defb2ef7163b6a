import pytest
"""The runner: micro-batches to the store, dead letters kept, restarts resume without duplicates."""


import numpy as np

from tocsin.engine.runner import Runner
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.sources.file import FileSource
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import parse_spec
from tocsin.store.sql import Store

from .conftest import small_spec_dict


def stored(store, pipeline="transactions"):
    rows = store.anomalies(pipeline=pipeline, limit=1_000_000)
    return {r["event_id"]: r["score"] for r in rows}


def test_uninterrupted_vs_stopped_and_resumed(tmp_path):
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"
    whole = parse_spec(small_spec_dict(whole_dir))
    split = parse_spec(small_spec_dict(split_dir))
    expected = Runner(whole, SimulatorSource(whole.source, max_events=9_000)).run()
    Runner(split, SimulatorSource(split.source, max_events=5_000)).run()
    resumed = Runner(split, SimulatorSource(split.source, max_events=9_000))
    stats = resumed.run()
    assert stats.events == 4_000, "the resumed run must start at the checkpointed position"
    a, b = stored(Store(whole.store.url)), stored(Store(split.store.url))
    assert expected.anomalies > 0 and a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=0, atol=1e-9)


def test_crash_before_checkpoint_replays_without_duplicates(tmp_path, monkeypatch):
    spec = parse_spec(small_spec_dict(tmp_path, seed=11))
    clean_spec = parse_spec(small_spec_dict(tmp_path / "clean", seed=11))
    Runner(clean_spec, SimulatorSource(clean_spec.source, max_events=8_000)).run()

    Runner(spec, SimulatorSource(spec.source, max_events=4_000)).run()  # checkpoint at 4,000
    crashing = Runner(spec, SimulatorSource(spec.source, max_events=7_000))
    monkeypatch.setattr(crashing, "checkpoint", lambda: None)  # dies after writing, before checkpointing
    crashing.run()
    monkeypatch.undo()
    after = Runner(spec, SimulatorSource(spec.source, max_events=8_000))
    assert after.run().events == 4_000, "replays from the last checkpoint, not from where it died"
    store = Store(spec.store.url)
    assert store.count("anomalies", pipeline="transactions") == len(stored(store))
    assert stored(store) == stored(Store(clean_spec.store.url))


def test_malformed_lines_become_dead_letters(tmp_path):
    events = TransactionSimulator(users=200, seed=3, warmup_days=0.2).generate(5_000)
    path = tmp_path / "events.jsonl"
    write_events(events, path, "jsonl")
    lines = path.read_bytes().splitlines()
    bad_positions = list(range(7, len(lines), 50))
    for i in bad_positions:
        lines[i] = b'{"tx_id": "broken", ' if i % 100 == 7 else lines[i].replace(b'"amount":', b'"amount":"x","was":')
    path.write_bytes(b"\n".join(lines) + b"\n")
    data = small_spec_dict(tmp_path)
    data["source"] = {"kind": "file", "path": str(path)}
    spec = parse_spec(data)
    stats = Runner(spec, FileSource(path)).run()
    assert stats.events + stats.dead_letters == len(lines)
    assert stats.dead_letters == len(bad_positions)
    dead = Store(spec.store.url).dead_letters(pipeline="transactions", limit=10_000)
    assert sorted(d["position"] for d in dead) == bad_positions
    assert all(d["reason"] and d["raw"] for d in dead)


def test_a_failure_inside_a_batch_leaves_the_last_consistent_checkpoint(tmp_path):
    """State advanced but outputs unwritten must not be checkpointed: the batch would count twice."""
    spec = parse_spec(small_spec_dict(tmp_path, seed=13))
    Runner(spec, SimulatorSource(spec.source, max_events=3_000)).run()  # checkpoint at 3,000
    failing = Runner(spec, SimulatorSource(spec.source, max_events=8_000))
    store_sink = failing.core.store_sink
    original_flush, calls = store_sink.flush, []

    def flush_then_fail():
        calls.append(1)
        if len(calls) == 2:  # the batch 4,000-5,000: scored (state advanced), then the store fails
            raise RuntimeError("store down")
        original_flush()

    store_sink.flush = flush_then_fail
    with pytest.raises(RuntimeError, match="store down"):
        failing.run()
    resumed = Runner(spec, SimulatorSource(spec.source, max_events=8_000))
    assert resumed.restore()
    assert resumed.position == 3_000, "the last consistent checkpoint, not one taken inside the failed batch"
    assert resumed.pipeline.events_seen == resumed.position, "state and position agree"
