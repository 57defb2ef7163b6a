"""Streaming commands: ``tocsin produce``, ``tocsin run SPEC --workers N`` on Kafka, ``tocsin bench kafka``.

Plain functions with Typer annotations; :mod:`tocsin.cli.main` registers them.
"""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path
from typing import Optional

import typer

from tocsin.cli.common import console, write_json
from tocsin.spec import PipelineSpec


def produce_command(
    topic: str = typer.Option("events", help="topic to publish to (created if missing)"),
    brokers: Optional[str] = typer.Option(None, help="bootstrap servers (default: env TOCSIN_KAFKA_BROKERS or 127.0.0.1:9092)"),
    rate: float = typer.Option(10_000, help="events per second (0 = as fast as possible)"),
    events: int = typer.Option(1_000_000, help="number of events to publish"),
    users: int = typer.Option(5_000, help="simulated cards"),
    seed: int = typer.Option(7, help="simulator seed: the same seed gives the same stream"),
    partitions: int = typer.Option(4, help="partitions when the topic is created"),
    malformed: float = typer.Option(0.0, help="share of records replaced by malformed ones (to exercise the DLQ)"),
) -> None:
    """Publish simulated card transactions to a Kafka topic, keyed by card."""
    from tocsin.kafka.admin import create_topics
    from tocsin.kafka.producer import produce_events
    from tocsin.simulate import TransactionSimulator
    from tocsin.spec import EnvironmentOverrides, SpecError

    try:
        client = EnvironmentOverrides.read().kafka_client(brokers)
    except SpecError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    create_topics(client, {topic: partitions})
    console.print(f"publishing {events:,} events to {topic} at {rate:,.0f}/s" if rate else f"publishing {events:,} events to {topic}")
    result = produce_events(client, topic, TransactionSimulator(users=users, seed=seed), events, rate=rate, malformed_share=malformed)
    console.print(f"published {result['events']:,} events in {result['seconds']:.1f} s ({result['events_per_s']:,.0f}/s)")


def run_workers(spec: PipelineSpec, workers: int, create_topics_: bool = True) -> None:
    """Run a pipeline on Kafka with N worker processes in one consumer group; Ctrl-C or SIGTERM stops them cleanly."""
    from tocsin.engine.process import worker_main
    from tocsin.kafka.admin import create_topics, partition_count

    source = spec.source
    if create_topics_:
        inputs = partition_count(source.client_config(), source.topic)
        outputs = [t for t in (source.alerts_topic, source.dlq_topic, source.scored_topic) if t]
        create_topics(source.client_config(), {t: inputs for t in outputs})
    console.print(f"[b]{spec.name}[/]: {workers} worker(s) on {source.topic} (group {source.group}) at {source.brokers}")
    context = multiprocessing.get_context("spawn")
    spec_data = spec.model_dump(mode="json", by_alias=True)
    processes = [context.Process(target=worker_main, name=f"tocsin-worker-{i}", args=(spec_data, str(i))) for i in range(workers)]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid:
                import os

                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        console.print(f"[red]worker(s) {failed} exited with an error[/]")
        raise typer.Exit(1)


def bench_kafka_command(
    events: int = typer.Option(1_000_000, help="events for the throughput run"),
    rate: float = typer.Option(50_000, help="input rate of the latency run, events/s"),
    latency_seconds: float = typer.Option(20.0, help="duration of the latency run"),
    users: int = typer.Option(100_000, help="simulated cards"),
    partitions: int = typer.Option(2, help="partitions of the events topic"),
    runs: int = typer.Option(3, min=1, help="throughput trials; the median is reported"),
    brokers: Optional[str] = typer.Option(None, help="use this broker instead of starting tansu"),
    workers: str = typer.Option("1,2", help="worker counts of the scaling run, comma-separated (\"\" or \"none\": no scaling run)"),
    scaling_events: int = typer.Option(400_000, min=1, help="events for each worker count of the scaling run"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures to this file"),
) -> None:
    """End-to-end events/s through a broker for one worker, event-to-alert latency at a fixed rate, and how
    events/s and events per CPU second change with 1, 2… worker processes on 4 partitions."""
    from tocsin.bench.kafka import parse_workers, run_kafka_bench

    try:
        counts = parse_workers(workers)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--workers") from None
    result = run_kafka_bench(events=events, rate=rate, latency_seconds=latency_seconds, users=users,
                             partitions=partitions, brokers=brokers, console=console, runs=runs,
                             workers=counts, scaling_events=scaling_events)
    write_json(json_out, result)
