"""Deployment overrides: the ``TOCSIN_*`` environment variables a spec yields to, in one place.

Broker addresses, credentials and database URLs differ per environment while
the pipeline stays the same, so each can be set outside the spec. They are read
once, by :func:`apply_environment` when a spec is loaded, with pydantic-settings;
nothing else in tocsin reads these variables.

=========================  =====================================================
``TOCSIN_STORE_URL``       ``store.url``
``TOCSIN_KAFKA_BROKERS``   ``source.brokers`` (Kafka sources)
``TOCSIN_KAFKA_TOPIC``     ``source.topic``
``TOCSIN_KAFKA_GROUP``     ``source.group``
``TOCSIN_KAFKA_CONFIG``    JSON object merged into ``source.client`` (SASL/TLS)
``TOCSIN_CHECKPOINT_URL``  ``stream.checkpoint_url``
``TOCSIN_REDIS_URL``       ``stream.cache_url``
``TOCSIN_METRICS_PORT``    ``metrics.port``
=========================  =====================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from tocsin.spec.base import SpecError

if TYPE_CHECKING:
    from tocsin.spec.pipeline import PipelineSpec

PREFIX = "TOCSIN_"


class EnvironmentOverrides(BaseSettings):
    """The overrides set in the environment (None: not set)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    store_url: str | None = None
    kafka_brokers: str | None = None
    kafka_topic: str | None = None
    kafka_group: str | None = None
    kafka_config: dict[str, Any] | None = None
    checkpoint_url: str | None = None
    redis_url: str | None = None
    metrics_port: int | None = None

    @classmethod
    def read(cls) -> EnvironmentOverrides:
        """The overrides set in the process environment; an unreadable one is a :class:`SpecError`
        naming the variable."""
        try:
            return cls()
        except (ValidationError, SettingsError) as error:
            raise SpecError(f"invalid environment override: {_describe(error)}") from None

    def kafka_client(self, brokers: str | None = None) -> dict[str, Any]:
        """A Kafka client's settings for tools without a spec (``tocsin produce``): ``brokers`` if given,
        else ``TOCSIN_KAFKA_BROKERS`` (default 127.0.0.1:9092), plus ``TOCSIN_KAFKA_CONFIG``."""
        return {"bootstrap.servers": brokers or self.kafka_brokers or "127.0.0.1:9092", **(self.kafka_config or {})}


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
    return f"{error} (TOCSIN_KAFKA_CONFIG must be a JSON object of librdkafka settings)"


def apply_environment(spec: PipelineSpec) -> PipelineSpec:
    """``spec`` with the environment's overrides applied (the same spec when none is set)."""
    env = EnvironmentOverrides.read()
    update: dict[str, Any] = {}
    if env.store_url:
        update["store"] = spec.store.model_copy(update={"url": env.store_url})
    if spec.source.kind == "kafka":
        source: dict[str, Any] = {}
        for field in ("brokers", "topic", "group"):
            value = getattr(env, f"kafka_{field}")
            if value:
                source[field] = value
        if env.kafka_config:
            source["client"] = {**spec.source.client, **env.kafka_config}
        if source:
            update["source"] = spec.source.model_copy(update=source)
    stream: dict[str, Any] = {}
    if env.checkpoint_url:
        stream["checkpoint_url"] = env.checkpoint_url
    if env.redis_url:
        stream["cache_url"] = env.redis_url
    if stream:
        update["stream"] = spec.stream.model_copy(update=stream)
    if env.metrics_port is not None:
        update["metrics"] = spec.metrics.model_copy(update={"port": env.metrics_port})
    return spec.model_copy(update=update) if update else spec
