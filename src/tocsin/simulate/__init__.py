"""Simulated event streams with ground truth, for demos, tests and benchmarks."""

from tocsin.simulate.hosts import FIELDS as HOST_FIELDS
from tocsin.simulate.hosts import INCIDENT_KINDS, HostMetricsSimulator
from tocsin.simulate.hosts import write_events as write_host_events
from tocsin.simulate.transactions import FIELDS, FRAUD_TYPES, FieldInfo, TransactionSimulator, write_events

__all__ = [
    "FIELDS", "FRAUD_TYPES", "HOST_FIELDS", "INCIDENT_KINDS", "FieldInfo", "HostMetricsSimulator", "TransactionSimulator",
    "write_events", "write_host_events",
]
