"""The channel contract: ``send(alert, idempotency_key)`` returns once the receiver acknowledged.

A channel raises :class:`DeliveryError` when it could not deliver;
``permanent=True`` means retrying cannot help (a 4xx other than 408/425/429, an
address the SMTP server refuses), so the dispatcher marks the delivery
``failed`` instead of retrying it. Anything else (timeouts, refused
connections, 5xx, a broker that is down) is retried with backoff, for as long
as ``retry.max_attempts`` allows (forever by default): an outage delays an
alert and never loses it.

Every channel passes the idempotency key the receiver can deduplicate on (the
dispatcher delivers at least once): the ``Idempotency-Key`` header, the
email's ``Message-ID``, the Kafka message key.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from typing import Any


class DeliveryError(Exception):
    """A failed delivery; ``permanent`` when retrying cannot succeed."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(ABC):
    """Somewhere alerts are delivered."""

    kind: str = "channel"

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def send(self, alert: dict[str, Any], idempotency_key: str) -> None:
        """Deliver ``alert`` (an alert document plus ``notification``); raise DeliveryError on failure."""

    def close(self) -> None:
        """Release connections."""


def when(epoch: float | None) -> str:
    """An event time for people: ISO 8601 in UTC.

    >>> when(0.0)
    '1970-01-01T00:00:00Z'
    """
    if epoch is None:
        return "?"
    return dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(alert: dict[str, Any]) -> str:
    """One line a person reads first (subject line, Slack text).

    >>> summary({"severity": "critical", "pipeline": "tx", "entity": "card7", "pattern": "rate",
    ...          "count": 500, "score_100": 99.99, "notification": "open"})
    '[critical] tx: card7 — rate, 500 anomalies (score 99.99)'
    """
    resolved = " — resolved" if alert.get("notification") == "resolve" else ""
    count = alert.get("count", 1)
    noun = "anomaly" if count == 1 else "anomalies"
    return (
        f"[{alert['severity']}] {alert['pipeline']}: {alert['entity']} — {alert.get('pattern') or 'anomaly'}, "
        f"{count} {noun} (score {alert.get('score_100', 0):.2f}){resolved}"
    )


def explanation_lines(alert: dict[str, Any]) -> list[str]:
    return [str(item.get("text") or item.get("feature")) for item in alert.get("explanation") or []]
