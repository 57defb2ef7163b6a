"""Kafka: the consumer-group source, the producer sinks (alerts, dead letters, scored events) and topic helpers.

The worker that ties them to per-partition pipelines is :mod:`tocsin.engine.worker`.
"""

from tocsin.kafka.config import KafkaSource, StreamSettings, open_checkpoint_store

__all__ = ["KafkaSource", "StreamSettings", "open_checkpoint_store"]
