"""Kafka: the consumer-group batching, the producer sinks (alerts, dead letters, scored events) and topic helpers.

The source's settings are the spec's (:class:`tocsin.spec.KafkaSource`); the worker
that ties them to per-partition pipelines is :mod:`tocsin.engine.worker`.
"""
