"""Simulated event streams with ground truth, for demos, tests and benchmarks."""

from importlib import import_module

from tocsin.simulate.hosts import FIELDS as HOST_FIELDS
from tocsin.simulate.hosts import INCIDENT_KINDS, HostMetricsSimulator
from tocsin.simulate.hosts import write_events as write_host_events
from tocsin.simulate.requests import FIELDS as REQUEST_FIELDS
from tocsin.simulate.requests import INCIDENT_KINDS as REQUEST_INCIDENT_KINDS
from tocsin.simulate.requests import RequestLogSimulator
from tocsin.simulate.requests import write_events as write_request_events
from tocsin.simulate.sensors import FIELDS as SENSOR_FIELDS
from tocsin.simulate.sensors import INCIDENT_KINDS as SENSOR_INCIDENT_KINDS
from tocsin.simulate.sensors import SensorSimulator
from tocsin.simulate.sensors import write_events as write_sensor_events
from tocsin.simulate.transactions import FIELDS, FRAUD_TYPES, FieldInfo, TransactionSimulator, write_events

__all__ = [
    "FIELDS", "FRAUD_TYPES", "HOST_FIELDS", "INCIDENT_KINDS", "REQUEST_FIELDS", "REQUEST_INCIDENT_KINDS", "SENSOR_FIELDS",
    "SENSOR_INCIDENT_KINDS", "FieldInfo", "HostMetricsSimulator", "RequestLogSimulator", "SensorSimulator",
    "SCENARIOS", "TransactionSimulator", "simulator_class", "write_events", "write_host_events", "write_request_events", "write_sensor_events",
]

#: each scenario's simulator class, as "module:Class" (imported on first use: a scenario's module loads only when run)
SCENARIOS: dict[str, str] = {
    "transactions": "tocsin.simulate.transactions:TransactionSimulator",
    "hosts": "tocsin.simulate.hosts:HostMetricsSimulator",
    "requests": "tocsin.simulate.requests:RequestLogSimulator",
    "sensors": "tocsin.simulate.sensors:SensorSimulator",
    "logins": "tocsin.simulate.logins:LoginSimulator",
    "behaviour": "tocsin.simulate.behaviour:BehaviourSimulator",
    "retail": "tocsin.simulate.retail:RetailSimulator",
    "quality": "tocsin.simulate.tables:TableLoadSimulator",
}


def simulator_class(scenario: str) -> type:
    """The simulator class of ``scenario`` (a key of :data:`SCENARIOS`)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"no simulator for scenario {scenario!r}; choose one of {sorted(SCENARIOS)}")
    module, name = SCENARIOS[scenario].split(":")
    return getattr(import_module(module), name)
