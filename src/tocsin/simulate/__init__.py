"""Simulated event streams with ground truth, for demos, tests and benchmarks."""

from tocsin.simulate.transactions import FIELDS, FRAUD_TYPES, FieldInfo, TransactionSimulator, write_events

__all__ = ["FIELDS", "FRAUD_TYPES", "FieldInfo", "TransactionSimulator", "write_events"]
