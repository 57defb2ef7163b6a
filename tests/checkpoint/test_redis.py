"""Tests for src/tocsin/checkpoint/redis.py against a real redis-server."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.checkpoint.base import CheckpointError
from tocsin.checkpoint.base import pack_checkpoint, unpack_checkpoint
from tocsin.checkpoint.redis import RedisCheckpointStore
from tocsin.checkpoint import open_checkpoint_store

from ._contract import check_contract

pytestmark = pytest.mark.redis


def test_contract(redis_url):
    check_contract(RedisCheckpointStore(redis_url, namespace="tx"))


def test_namespaces_are_apart_and_url_picks_redis(redis_url):
    a = open_checkpoint_store(redis_url, "a")
    b = open_checkpoint_store(redis_url, "b")
    assert isinstance(a, RedisCheckpointStore)
    a.save("p", {"x": np.ones(1)}, 1)
    assert b.load("p") is None and b.partitions() == []


def test_damaged_blob_is_an_error_not_garbage(redis_url):
    store = RedisCheckpointStore(redis_url, namespace="tx")
    store.client.set(store._key("p"), b"not a zip")
    with pytest.raises(CheckpointError):
        store.load("p")


def test_pack_round_trip_refuses_objects():
    blob, _ = pack_checkpoint("p", {"a": np.arange(3)}, 5, {"k": 1})
    assert unpack_checkpoint(blob, "here").offset == 5
    with pytest.raises(TypeError):
        pack_checkpoint("p", {"a": np.array([object()])}, 5, None)
