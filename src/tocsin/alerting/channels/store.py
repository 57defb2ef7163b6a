"""The store channel: alerts are always in the results store; a route to it only records that."""

from __future__ import annotations

from typing import Any

from tocsin.alerting.channels.base import Channel


class StoreChannel(Channel):
    """Nothing to send: the transaction that wrote the alert delivered it (its outbox row is written ``delivered``)."""

    kind = "store"

    def send(self, alert: dict[str, Any], idempotency_key: str) -> None:
        return None
