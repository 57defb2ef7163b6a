"""The Kafka channel: the alert document as JSON to a topic, keyed by its idempotency key.

Consumers deduplicate on the key (delivery is at least once); with a compacted
topic the broker does it too. The producer is idempotent, so its own retries
add no duplicates; ``send`` returns after the broker acknowledged the record.
"""

from __future__ import annotations

import json
from typing import Any

from tocsin.alerting.channels.base import Channel, DeliveryError


class KafkaChannel(Channel):
    kind = "kafka"

    def __init__(self, name: str, bootstrap_servers: str, topic: str, *, config: dict[str, Any] | None = None, timeout: float = 10.0) -> None:
        super().__init__(name)
        self.bootstrap_servers, self.topic = bootstrap_servers, topic
        self.config = dict(config or {})
        self.timeout = timeout
        self._producer: Any = None

    def _get_producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap_servers,
                    "enable.idempotence": True,
                    "acks": "all",
                    "message.timeout.ms": int(self.timeout * 1000),
                    **self.config,
                }
            )
        return self._producer

    def send(self, alert: dict[str, Any], idempotency_key: str) -> None:
        from confluent_kafka import KafkaException

        outcome: list[Any] = []
        try:
            producer = self._get_producer()
            producer.produce(
                self.topic,
                key=idempotency_key.encode(),
                value=json.dumps(alert, separators=(",", ":"), default=str).encode(),
                headers={"idempotency-key": idempotency_key},
                on_delivery=lambda err, _msg: outcome.append(err),
            )
            producer.flush(self.timeout)
        except (KafkaException, BufferError) as error:
            raise DeliveryError(f"kafka: {error}") from None
        if not outcome:
            raise DeliveryError(f"kafka: no acknowledgement from {self.bootstrap_servers} within {self.timeout:g}s")
        if outcome[0] is not None:
            raise DeliveryError(f"kafka: {outcome[0]}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)
            self._producer.close()  # its threads stop now rather than whenever it is collected
            self._producer = None
