"""Periodic checkpoints are written by a background thread while scoring goes on; when such a write
fails, the worker retries it in line (pausing consumption) and nothing is lost."""

from __future__ import annotations

import threading

import pytest

from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.worker import KafkaWorker
from tocsin.spec import StreamSettings
from tocsin.kafka.producer import produce_events

from .helpers import kafka_source, last_offsets, simulator, small_spec_data, topics, worker_spec
from .test_worker import assert_same, run_reference, stored_scores

pytestmark = pytest.mark.kafka


class FlakyInBackground(LocalCheckpointStore):
    """A local checkpoint store whose first ``failures`` saves from the writer thread fail."""

    def __init__(self, directory, failures: int) -> None:
        super().__init__(directory)
        self.failures = failures
        self.saves: list[tuple[str, str, int]] = []  # (thread, partition, offset) of each successful save
        self.failed = 0
        self.failed_saves: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def save(self, partition, state, offset, meta=None):
        thread = threading.current_thread().name
        with self._lock:
            if thread.startswith("tocsin-checkpoint") and self.failed < self.failures:
                self.failed += 1
                self.failed_saves.append((partition, offset))
                raise OSError("disk full (injected)")
        result = super().save(partition, state, offset, meta=meta)
        with self._lock:
            self.saves.append((thread, partition, offset))
        return result


def test_background_writes_and_their_failures_lose_nothing(tmp_path, kafka_brokers):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")  # checkpoint interval 1 s
    names = topics(kafka_brokers)
    client = {"bootstrap.servers": kafka_brokers}
    sim = simulator(data)
    produce_events(client, names["topic"], sim, 5_000)
    # paced, so the worker is busy across several checkpoint intervals
    producer = threading.Thread(target=produce_events, args=(client, names["topic"], sim, 45_000),
                                kwargs={"rate": 7_000, "start_position": 5_000})
    checkpoints = FlakyInBackground(tmp_path / "ck" / data["name"], failures=2)
    worker = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(retry_initial=0.05)),
                         checkpoints=checkpoints, idle_exit=3.0)
    producer.start()
    worker.run()
    producer.join()

    background = [s for s in checkpoints.saves if s[0].startswith("tocsin-checkpoint")]
    in_line = [s for s in checkpoints.saves if not s[0].startswith("tocsin-checkpoint")]
    assert checkpoints.failed == 2
    assert background, "periodic checkpoints were written in the background"
    last = last_offsets(kafka_brokers, names["topic"])
    # Periodic checkpoints take one partition at a time, so a failed write may also fall on a
    # partition's last offset; at least one fell mid-stream, and scoring went on after it.
    assert any(offset < last[partition] for partition, offset in checkpoints.failed_saves)
    for partition, offset in checkpoints.failed_saves:  # each failed write was redone in line, same snapshot
        assert ("MainThread", partition, offset) in in_line
    for name, offset in last.items():
        assert checkpoints.load(name).offset == offset
    for partition in {s[1] for s in checkpoints.saves}:  # a partition's saved offsets never go backwards
        offsets = [s[2] for s in checkpoints.saves if s[1] == partition]
        assert offsets == sorted(offsets)
    got, rows = stored_scores(data["store"]["url"])
    assert rows == len(got)
    assert_same(run_reference(tmp_path, kafka_brokers, names, data), got)
