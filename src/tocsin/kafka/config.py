"""Settings of the Kafka source, its sinks and where checkpoints live.

Same style as :mod:`tocsin.spec` (frozen, ``extra="forbid"``, described fields).
Deployment facts (broker addresses, credentials, database URLs) usually differ
per environment, so each can be overridden by an environment variable, applied
by :meth:`KafkaSource.with_env` and :meth:`StreamSettings.with_env`:

=========================  =====================================================
``TOCSIN_KAFKA_BROKERS``   ``brokers`` (comma-separated ``host:port``)
``TOCSIN_KAFKA_TOPIC``     ``topic`` (the events topic)
``TOCSIN_KAFKA_GROUP``     ``group`` (consumer group id)
``TOCSIN_KAFKA_CONFIG``    JSON object merged into ``client`` (SASL/TLS, e.g.
                           ``{"security.protocol": "SASL_SSL", ...}``)
``TOCSIN_CHECKPOINT_URL``  ``checkpoint_url`` (a directory, ``redis://`` or
                           ``postgresql+psycopg://``)
``TOCSIN_REDIS_URL``       ``cache_url`` (entity-state cache)
``TOCSIN_STORE_URL``       the store (read by :func:`tocsin.store.sql.store_url`)
=========================  =====================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tocsin.checkpoint.base import CheckpointStore


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSource(_Model):
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

    def with_env(self) -> KafkaSource:
        """This source with the ``TOCSIN_KAFKA_*`` environment overrides applied."""
        update: dict[str, Any] = {}
        for field, variable in (("brokers", "TOCSIN_KAFKA_BROKERS"), ("topic", "TOCSIN_KAFKA_TOPIC"), ("group", "TOCSIN_KAFKA_GROUP")):
            if os.environ.get(variable):
                update[field] = os.environ[variable]
        if os.environ.get("TOCSIN_KAFKA_CONFIG"):
            extra = json.loads(os.environ["TOCSIN_KAFKA_CONFIG"])
            if not isinstance(extra, dict):
                raise ValueError("TOCSIN_KAFKA_CONFIG must be a JSON object of librdkafka settings")
            update["client"] = {**self.client, **extra}
        return self.model_copy(update=update) if update else self

    def client_config(self) -> dict[str, Any]:
        """The settings every client (consumer, producer, admin) shares."""
        return {"bootstrap.servers": self.brokers, **self.client}


class StreamSettings(_Model):
    """Where a streaming worker keeps checkpoints and the entity cache, and how it rides out outages."""

    checkpoint_url: str | None = Field(
        None,
        description="a directory (default: the spec's checkpoint.dir), redis://host:port/db or a SQLAlchemy URL "
        "(postgresql+psycopg://…, sqlite:///…); env TOCSIN_CHECKPOINT_URL",
    )
    cache_url: str | None = Field(None, description="redis:// URL of the entity-state cache; null: no cache; env TOCSIN_REDIS_URL")
    retry_initial: float = Field(0.2, gt=0, description="first back-off after a failed sink or store write, seconds")
    retry_max: float = Field(5.0, gt=0, description="back-off cap, seconds; retries go on until the write succeeds")
    health_path: Path | None = Field(None, description="where the worker writes its health JSON (atomically, on change)")

    @field_validator("retry_max")
    @classmethod
    def _cap_above_initial(cls, value: float, info: Any) -> float:
        initial = info.data.get("retry_initial", 0.2)
        if value < initial:
            raise ValueError(f"retry_max ({value}) must be >= retry_initial ({initial})")
        return value

    def with_env(self) -> StreamSettings:
        update: dict[str, Any] = {}
        if os.environ.get("TOCSIN_CHECKPOINT_URL"):
            update["checkpoint_url"] = os.environ["TOCSIN_CHECKPOINT_URL"]
        if os.environ.get("TOCSIN_REDIS_URL"):
            update["cache_url"] = os.environ["TOCSIN_REDIS_URL"]
        return self.model_copy(update=update) if update else self


def open_checkpoint_store(url: str, namespace: str) -> CheckpointStore:
    """The checkpoint store at ``url``; ``namespace`` (the pipeline name) keeps pipelines apart.

    A plain path or ``file://`` URL is a local directory, ``redis://``/``rediss://``
    Redis, anything SQLAlchemy understands (``postgresql+psycopg://``, ``sqlite:///``)
    a table in that database.
    """
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tocsin.checkpoint.redis import RedisCheckpointStore

        return RedisCheckpointStore(url, namespace=namespace)
    if url.startswith(("postgresql", "postgres://", "sqlite:")):
        from tocsin.checkpoint.postgres import SqlCheckpointStore

        return SqlCheckpointStore(url.replace("postgres://", "postgresql+psycopg://", 1), namespace=namespace)
    from tocsin.checkpoint.local import LocalCheckpointStore

    return LocalCheckpointStore(Path(url.removeprefix("file://")) / namespace)


def load_stream_spec(path: str | Path) -> tuple[Any, KafkaSource, StreamSettings]:
    """A pipeline spec whose ``source`` is ``{kind: kafka, …}``, plus its optional ``stream:`` section.

    Until :mod:`tocsin.spec` lists :class:`KafkaSource` in its source union, the
    Kafka source and the ``stream`` section are taken out here and the rest is
    validated by :func:`tocsin.spec.parse_spec` with a placeholder source.
    """
    import yaml

    from tocsin.spec import SpecError, parse_spec

    path = Path(path)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("source"), dict) or data["source"].get("kind") != "kafka":
        raise SpecError(f"invalid pipeline spec {path}: source.kind must be 'kafka' to run it on Kafka")
    try:
        source = KafkaSource.model_validate(data["source"]).with_env()
        settings = StreamSettings.model_validate(data.get("stream") or {}).with_env()
    except Exception as error:  # pydantic's message names the field
        raise SpecError(f"invalid pipeline spec {path}: {error}") from None
    rest = {k: v for k, v in data.items() if k != "stream"}
    try:
        spec = parse_spec(rest, str(path))
    except SpecError:
        spec = parse_spec({**rest, "source": {"kind": "simulator"}}, str(path))
    return spec, source, settings
