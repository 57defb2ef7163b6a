"""Sinks: where a processed batch's outputs go, each acknowledging before the driver core moves on."""

from tocsin.sinks.base import ProcessedBatch, Sink

__all__ = ["ProcessedBatch", "Sink"]
