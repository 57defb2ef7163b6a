"""Where events come from: the ``source`` section (a simulator, a file, or a Kafka topic)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel


class SimulatorSource(SpecModel):
    """Labelled synthetic events: card transactions (``users`` … ``compromised_share``), cloud host metrics
    (``hosts``, ``racks``), microservice request logs (``services``, ``request_rate``) or IoT sensor readings
    (``sensors``); ``report_every`` serves hosts and sensors, ``incident_rate`` hosts, requests and sensors (null:
    the scenario's own default), ``seed``, ``warmup_days`` and ``start`` every scenario."""

    kind: Literal["simulator"]
    scenario: Literal["transactions", "hosts", "requests", "sensors", "logins", "behaviour", "retail", "quality"] = Field(
        "transactions", description="transactions: card payments with fraud; hosts: host metric readings with incidents; "
        "requests: microservice request logs with incidents; sensors: IoT sensor readings with incidents; logins: login and "
        "access events with attacks; behaviour: a site's page views with bots; retail: store sales with incidents; quality: "
        "hourly batch loads of table rows with data-quality incidents")
    seed: int = 7
    users: int = Field(5_000, ge=1)
    merchants: int = Field(2_000, ge=10)
    fraud_rate: float = Field(0.004, ge=0, le=0.5, description="share of events that are injected fraud")
    warmup_days: float = Field(1.0, ge=0, description="days of clean history before the first injected fraud or incident")
    start: str = "2026-01-01T00:00:00Z"
    compromised_merchants: int = Field(0, ge=0, description="in-person merchants whose stolen-card fraud looks normal (only labels reveal it)")
    compromised_share: float = Field(0.3, gt=0, le=1, description="share of a compromised merchant's transactions that are fraud")
    hosts: int = Field(200, ge=1, description="hosts scenario: hosts reporting metrics")
    racks: int = Field(10, ge=1, description="hosts scenario: racks the hosts are spread over")
    report_every: Duration | None = Field(
        None, le=86_400, description="hosts and sensors scenarios: time between two readings of a host (null: 60s) "
        "or of a sensor (null: 10s); quality: between two loads of a table (null: 1h)")
    incident_rate: float | None = Field(
        None, ge=0, le=10, description="hosts, requests and sensors scenarios: incidents per entity per day after warm-up; "
        "null: 0.03 per host (a rack incident counts once), 0.25 per service, 0.1 per sensor")
    services: int = Field(20, ge=1, description="requests scenario: services serving requests")
    request_rate: float = Field(
        0.8, gt=0, le=1_000, description="requests scenario: requests per second of a typical service at its weekday peak "
        "(services range about 0.3-3x it; a weekday holds about services x request_rate x 48,000 requests, a weekend day x 36,000)")
    sensors: int = Field(40, ge=1, description="sensors scenario: sensors reporting readings (one site per 8 sensors)")
    accounts: int = Field(2_000, ge=10, description="logins scenario: user accounts that log in")
    visitors: int = Field(1_000, ge=10, description="behaviour scenario: people browsing the site in a day")
    stores: int = Field(20, ge=1, description="retail scenario: stores selling")
    tables: int = Field(12, ge=1, description="quality scenario: tables loading a batch of rows every report_every (null: 1h)")


class FileSource(SpecModel):
    kind: Literal["file"]
    path: Path
    format: Literal["csv", "jsonl", "json", "parquet"] | None = Field(
        None, description="inferred from the file suffix when omitted"
    )


class KafkaSource(SpecModel):
    """Events from a Kafka topic, consumed in a consumer group.

    Partitions are the unit of scale: each worker of the group scores the
    partitions it is assigned, each with its own pipeline state.
    """

    kind: Literal["kafka"]
    brokers: str = Field("127.0.0.1:9092", description="bootstrap servers, comma-separated; env TOCSIN_KAFKA_BROKERS")
    topic: str = Field("events", description="the events topic; env TOCSIN_KAFKA_TOPIC")
    group: str = Field("tocsin", description="consumer group id; env TOCSIN_KAFKA_GROUP")
    alerts_topic: str | None = Field("alerts", description="alert changes (opened, updated, resolved) are produced here keyed {alert_key}/{count}; null: none")
    dlq_topic: str | None = Field("dead-letters", description="dead letters, raw bytes with the reason in headers; null: none")
    scored_topic: str | None = Field(None, description="every scored event (at-least-once, keyed by event id); null: none")
    labels_topic: str | None = Field(
        None, description="labels (chargebacks, closed incidents) read by every worker into `kind: confirmed` features, "
        "each applied once per partition state; null: none")
    client: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka settings passed through to every client (security.protocol, sasl.*, ssl.*); "
        "env TOCSIN_KAFKA_CONFIG (JSON) is merged in",
    )
    session_timeout_ms: int = Field(10_000, ge=1_000, description="consumer group session timeout")
    max_poll_interval_ms: int = Field(
        300_000, ge=10_000,
        description="longest time between polls before the group evicts the worker; it also bounds how long a "
        "sink outage can be ridden out without a rebalance",
    )
    fetch_max_messages: int = Field(
        20_000, ge=1, description="messages one consume() call may return (split by partition, each part one pipeline batch)"
    )
    prefetch_messages: int = Field(
        1_000_000, ge=1,
        description="messages per partition the client keeps fetched ahead (librdkafka queued.min.messages, within "
        "256 MB); its default of 100,000 held consumption from tansu to ~174k messages/s",
    )

    def client_config(self) -> dict[str, Any]:
        """The settings every client (consumer, producer, admin) shares."""
        return {"bootstrap.servers": self.brokers, **self.client}


SourceSpec = Annotated[Union[SimulatorSource, FileSource, KafkaSource], Field(discriminator="kind")]
