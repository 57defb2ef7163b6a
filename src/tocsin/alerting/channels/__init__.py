"""Where alerts go: webhook (generic JSON or Slack), email (SMTP), Kafka topic, the store.

:func:`build_channels` turns the spec's ``alerting.channels`` into channel
objects, reading secrets from the environment variables the spec names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tocsin.alerting.channels.base import Channel, DeliveryError
from tocsin.alerting.channels.email import EmailChannel
from tocsin.alerting.channels.kafka import KafkaChannel
from tocsin.alerting.channels.store import StoreChannel
from tocsin.alerting.channels.webhook import WebhookChannel, sign, verify_signature
from tocsin.spec.alerting import AlertingSpec

__all__ = [
    "Channel", "DeliveryError", "EmailChannel", "KafkaChannel", "StoreChannel", "WebhookChannel",
    "build_channels", "sign", "verify_signature",
]


def _secret(env: Mapping[str, str], name: str | None, where: str) -> str | None:
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise ValueError(f"{where}: environment variable {name!r} is not set (secrets come from the environment, never the spec)")
    return value


def build_channels(spec: AlertingSpec, env: Mapping[str, str] | None = None) -> dict[str, Channel]:
    """One channel object per ``alerting.channels`` entry; raises naming the field when a secret is missing."""
    env = os.environ if env is None else env
    channels: dict[str, Channel] = {}
    for name, config in spec.channels.items():
        where = f"alerting.channels.{name}"
        if config.kind in ("webhook", "slack"):
            secret = _secret(env, config.secret_env, f"{where}.secret_env")
            channels[name] = WebhookChannel(
                name, config.url, secret=secret.encode() if secret else None,
                headers=getattr(config, "headers", None), timeout=config.timeout,
                format="slack" if config.kind == "slack" else "json",
            )
        elif config.kind == "email":
            channels[name] = EmailChannel(
                name, config.host, config.port, config.sender, config.to,
                starttls=config.starttls, use_ssl=config.ssl, ca_file=config.ca_file,
                username=config.username, password=_secret(env, config.password_env, f"{where}.password_env"),
                timeout=config.timeout,
            )
        elif config.kind == "kafka":
            channels[name] = KafkaChannel(name, config.bootstrap_servers, config.topic, config=config.config, timeout=config.timeout)
        else:
            channels[name] = StoreChannel(name)
    return channels
