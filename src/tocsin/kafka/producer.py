"""Publishing simulator events to a topic (``tocsin produce`` and the tests and benchmark).

Events are keyed by entity (``card_id``), so the client's hash partitioner
puts every event of a card in the same partition: its state lives in one
worker. Records are JSON objects with every simulator field.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec
import numpy as np
from confluent_kafka import Producer

from tocsin.batch import EventBatch
from tocsin.decode import RAW_FIELD
from tocsin.simulate.daily import FieldInfo, field_columns
from tocsin.simulate.transactions import TransactionSimulator, _columns

T = TypeVar("T")


def event_lines(batch: EventBatch, fields: tuple[FieldInfo, ...] | None = None) -> tuple[list[bytes], list[bytes]]:
    """The batch as JSON records (one bytes object per event) and their keys; ``fields``: the simulator's
    field table (a transaction batch's when omitted). A batch carrying its raw records (rows that change shape,
    the quality scenario's) is sent as they are."""
    if RAW_FIELD in batch.extra:
        return [bytes(line) for line in batch.extra[RAW_FIELD].tolist()], [k.encode() for k in batch.keys.tolist()]
    columns = _columns(batch) if fields is None else field_columns(batch, fields)
    names = list(columns)
    rows = zip(*(column.tolist() for column in columns.values()))
    encoded = msgspec.json.Encoder().encode_lines([dict(zip(names, row)) for row in rows])
    lines = encoded.split(b"\n")[:-1]
    keys = [k.encode() for k in batch.keys.tolist()]
    return lines, keys


def corrupt(lines: list[bytes], share: float, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """Replace ``share`` of the records with malformed ones (cut JSON, wrong types); returns the bad indices."""
    rng = np.random.default_rng(seed)
    bad = np.flatnonzero(rng.random(len(lines)) < share)
    out = list(lines)
    for j, i in enumerate(bad.tolist()):
        kind = j % 3
        if kind == 0:
            out[i] = lines[i][: len(lines[i]) // 2]  # truncated JSON
        elif kind == 1:
            out[i] = lines[i].replace(b'"amount":', b'"amount":"lots","was":', 1)  # wrong type
        else:
            out[i] = b"\xff\xfe not json at all"
    return out, bad


def events_producer(client: dict[str, Any], linger_ms: int = 20) -> Producer:
    """An idempotent producer tuned for publishing events in bulk."""
    return Producer({**client, "linger.ms": linger_ms, "batch.num.messages": 10_000, "enable.idempotence": True,
                     "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_152})


def produce_events(
    client: dict[str, Any],
    topic: str,
    simulator: TransactionSimulator,
    events: int,
    rate: float = 0.0,
    chunk: int = 5_000,
    malformed_share: float = 0.0,
    start_position: int = 0,
    on_chunk: Callable[[int], None] | None = None,
    linger_ms: int = 20,
    producer: Producer | None = None,
    pregenerate: bool = False,
) -> dict[str, Any]:
    """Publish ``events`` simulator events (paced to ``rate`` events/s when > 0); returns counts and timing.

    ``producer`` (from :func:`events_producer`) reuses a connected client: a new one spends its first
    ~second connecting and getting a producer id, with its first records waiting in its queue.
    The simulator makes a day of events at a time (~0.25 s for 100k cards), which would turn a paced
    input into a gap and a burst once per simulated day: when paced, a thread simulates about a
    second of events ahead; ``pregenerate`` simulates every event before the clock starts (for
    benchmarks, where the simulator must not share the measured seconds at all).
    """
    producer = producer if producer is not None else events_producer(client, linger_ms)

    def chunks() -> Iterator[tuple[list[bytes], list[bytes], int]]:
        done = 0
        for batch in simulator.batches(chunk, start_position=start_position, max_events=events):
            lines, keys = event_lines(batch, getattr(simulator, "FIELDS", None))
            bad_count = 0
            if malformed_share:
                lines, bad = corrupt(lines, malformed_share, seed=start_position + done)
                bad_count = len(bad)
            done += len(lines)
            yield lines, keys, bad_count

    if pregenerate:
        source: Iterable[tuple[list[bytes], list[bytes], int]] = list(chunks())
    elif rate > 0:
        source = generated_ahead(chunks(), ahead=max(2, int(rate / chunk) + 1))
    else:
        source = chunks()
    started = time.monotonic()
    sent = malformed = 0
    for lines, keys, bad_count in source:
        malformed += bad_count
        if rate > 0:
            wait = started + (sent + len(lines)) / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        produce = producer.produce
        for key, line in zip(keys, lines):
            while True:
                try:
                    produce(topic, line, key)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        sent += len(lines)
        if on_chunk is not None:
            on_chunk(sent)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} event(s) not acknowledged by the broker")
    seconds = time.monotonic() - started
    return {"events": sent, "malformed": malformed, "seconds": seconds, "events_per_s": sent / seconds if seconds else 0.0}


def generated_ahead(items: Iterator[T], ahead: int) -> Iterator[T]:
    """``items``, produced by a background thread up to ``ahead`` items before they are taken, so a
    slow item (a simulated day) is made while earlier ones are still being consumed. An exception in
    the producer thread is raised here, at its place in the sequence."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            slots.put(("error", error))

    thread = threading.Thread(target=fill, name="tocsin-generate-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def simulator_batches(simulator: TransactionSimulator, events: int, chunk: int) -> Iterator[EventBatch]:
    return simulator.batches(chunk, max_events=events)
