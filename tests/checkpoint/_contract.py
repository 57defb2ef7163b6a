"""The CheckpointStore contract, shared by the Redis and PostgreSQL store tests."""

from __future__ import annotations

import numpy as np

from tocsin.checkpoint.base import CheckpointStore


def check_contract(store: CheckpointStore) -> None:
    assert store.load("events/0") is None and store.partitions() == []
    state = {"features/count": np.arange(5, dtype=np.int64), "meta": np.asarray('{"a": 1}'), "x/": np.zeros(0, np.uint8),
             "detector/w": np.random.default_rng(0).normal(size=(3, 4))}
    store.save("events/0", state, 41, meta={"sink_floor": {"alerts": 3}})
    store.save("events/1", {"a": np.ones(2)}, 7)
    loaded = store.load("events/0")
    assert loaded.partition == "events/0" and loaded.offset == 41 and loaded.meta == {"sink_floor": {"alerts": 3}}
    assert loaded.state.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(loaded.state[key], state[key])
        assert loaded.state[key].dtype == state[key].dtype
    store.save("events/0", {"a": np.full(3, 2.0)}, 99)  # replaces whole
    again = store.load("events/0")
    assert again.offset == 99 and list(again.state) == ["a"]
    assert store.partitions() == ["events/0", "events/1"]
    store.delete("events/0")
    store.delete("events/0")  # no-op
    assert store.load("events/0") is None and store.partitions() == ["events/1"]
