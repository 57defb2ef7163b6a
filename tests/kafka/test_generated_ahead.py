"""``generated_ahead``: the paced producer's read-ahead of simulated chunks (no broker needed)."""

from __future__ import annotations

import threading
import time

import pytest

from tocsin.kafka.producer import generated_ahead


def test_keeps_order_and_ends():
    assert list(generated_ahead(iter(range(100)), ahead=3)) == list(range(100))


def test_makes_items_ahead_while_earlier_ones_are_consumed():
    made = []

    def slow():
        for i in range(5):
            made.append(i)
            yield i

    items = generated_ahead(slow(), ahead=3)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(made) < 5 and time.monotonic() < deadline:  # 1, 2, 3 wait in the queue, 4 is made and waits for room
        time.sleep(0.01)
    assert made == [0, 1, 2, 3, 4]
    assert list(items) == [1, 2, 3, 4]


def test_an_error_is_raised_at_its_place():
    def failing():
        yield 1
        yield 2
        raise ValueError("simulator broke")

    items = generated_ahead(failing(), ahead=2)
    assert next(items) == 1 and next(items) == 2
    with pytest.raises(ValueError, match="simulator broke"):
        next(items)


def test_stopping_early_releases_the_thread():
    before = set(threading.enumerate())
    items = generated_ahead(iter(range(10_000)), ahead=2)
    assert next(items) == 0
    (filler,) = [t for t in set(threading.enumerate()) - before if t.name == "tocsin-generate-ahead"]
    assert filler.is_alive()  # blocked on the full queue
    items.close()  # the consumer gives up (e.g. the broker failed)
    filler.join(5)
    assert not filler.is_alive()
