"""Fixtures for the HTTP API tests: a small reference spec, simulator events as JSON dicts, a warm
pipeline (warmed once per session, copied per test through its state dict), keys for every role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator
from tocsin.simulate.transactions import _columns
from tocsin.spec import PipelineSpec, parse_spec

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "tocsin" / "specs" / "transactions.yaml"
WARMUP = 2_000
WARM_EVENTS = 3_000  # the first WARMUP train the detector; the rest compile the scoring paths
EVENTS = 12_000
JWT_SECRET = "test-secret-" + "x" * 32
ROLES = ("viewer", "analyst", "admin")


def spec_dict(store_url: str, checkpoint_dir: str) -> dict[str, Any]:
    data = yaml.safe_load(REFERENCE.read_text())
    data["source"].update({"users": 300, "warmup_days": 0.5, "fraud_rate": 0.02, "seed": 3})
    data["detector"].update({"warmup_events": WARMUP, "refit_every": None})
    data["detector"]["params"]["n_estimators"] = 50
    data["calibration"]["window"] = 5_000
    data["runner"].update({"batch_size": 1_000, "max_wait": 0.02})
    data["store"]["url"] = store_url
    data["checkpoint"]["dir"] = checkpoint_dir
    # alerts stay open until a person acts (the simulated day would otherwise auto-resolve them in event time)
    data["alerting"] = {"quiet_period": "30d", "suppress_for": "30d"}
    return data


@pytest.fixture
def spec(tmp_path: Path) -> PipelineSpec:
    return parse_spec(spec_dict(f"sqlite:///{tmp_path / 'store.db'}", str(tmp_path / "checkpoints")))


def as_records(batch: Any) -> list[dict[str, Any]]:
    columns = {k: v.tolist() for k, v in _columns(batch).items()}
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


@pytest.fixture(scope="session")
def records() -> list[dict[str, Any]]:
    """EVENTS simulated transactions as a client would send them (fraud included after warm-up)."""
    simulator = TransactionSimulator(users=300, merchants=2_000, fraud_rate=0.02, warmup_days=0.5, seed=3)
    return as_records(simulator.generate(EVENTS))


@pytest.fixture(scope="session")
def warm_state(tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]) -> dict:
    tmp = tmp_path_factory.mktemp("warm")
    pipeline = Pipeline(parse_spec(spec_dict(f"sqlite:///{tmp / 's.db'}", str(tmp / 'c'))))
    pipeline.process_records(records[:WARM_EVENTS], source="warm")
    assert pipeline.is_warm
    return pipeline.state_dict()


@pytest.fixture
def warm_pipeline(spec: PipelineSpec, warm_state: dict) -> Pipeline:
    pipeline = Pipeline(spec)
    pipeline.load_state_dict(warm_state)
    return pipeline


@dataclass
class Keys:
    viewer: str
    analyst: str
    admin: str

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"X-API-Key": getattr(self, role)}


@pytest.fixture
def auth(tmp_path: Path) -> AuthConfig:
    return AuthConfig(keys=KeyStore(tmp_path / "keys.json"), jwt_secret=JWT_SECRET)


@pytest.fixture
def keys(auth: AuthConfig) -> Keys:
    return Keys(*(auth.keys.create(role, f"test {role}")[0] for role in ROLES))


@pytest.fixture
def app(spec: PipelineSpec, auth: AuthConfig, warm_pipeline: Pipeline):
    return create_app(spec, auth, pipeline=warm_pipeline)


@pytest.fixture
def client(app) -> TestClient:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def seeded(client: TestClient, keys: Keys, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The events after the warm-up scored through the API, so anomalies and alerts exist."""
    answer = client.post("/v1/score", json={"events": records[WARM_EVENTS:EVENTS]}, headers=keys.headers("analyst"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    alerts = client.get("/v1/alerts", params={"limit": 1000}, headers=keys.headers("viewer")).json()["items"]
    anomalies = client.get("/v1/anomalies", params={"limit": 1000}, headers=keys.headers("viewer")).json()["items"]
    assert alerts and anomalies, "the seeded stream should produce alerts"
    return {"score": body, "alerts": alerts, "anomalies": anomalies}


# --- a series pipeline: host metrics (what `tocsin demo --scenario hosts` runs, small and with many incidents) ----

HOSTS_REFERENCE = REFERENCE.with_name("hosts.yaml")
HOSTS = 20
HOST_EVENTS = HOSTS * 60 * 36  # a day and a half of one reading a minute
HOST_WARM_EVENTS = HOSTS * 60 * 24  # the first day: the detector's warm-up and each quarter hour's profile


def hosts_spec_dict(store_url: str, checkpoint_dir: str) -> dict[str, Any]:
    data = yaml.safe_load(HOSTS_REFERENCE.read_text())
    data["source"].update({"hosts": HOSTS, "incident_rate": 3.0})
    data["detector"].update({"warmup_events": 2_000, "train_window": 2_000})
    data["calibration"]["window"] = 20_000
    data["threshold"] = {"kind": "fixed", "value": 0.999}  # a short stream: flag more than the reference does
    data["severity"] = {"warning": 0.9995, "critical": 0.9999}
    data["store"]["url"] = store_url
    data["checkpoint"]["dir"] = checkpoint_dir
    data["alerting"] = {"quiet_period": "30d", "suppress_for": "30d"}
    return data


@pytest.fixture(scope="session")
def host_records() -> list[dict[str, Any]]:
    """HOST_EVENTS simulated host readings as a client would send them (incidents after the first day)."""
    from tocsin.simulate.daily import field_columns
    from tocsin.simulate.hosts import FIELDS, HostMetricsSimulator

    simulator = HostMetricsSimulator(hosts=HOSTS, incident_rate=3.0, seed=7)
    columns = {k: v.tolist() for k, v in field_columns(simulator.generate(HOST_EVENTS), FIELDS).items()}
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


@pytest.fixture
def hosts_app(tmp_path: Path, auth: AuthConfig, keys: Keys, host_records: list[dict[str, Any]]):
    """An app over a warm host-metrics pipeline that has scored the rest of the readings (anomalies, silences, alerts)."""
    spec = parse_spec(hosts_spec_dict(f"sqlite:///{tmp_path / 'hosts.db'}", str(tmp_path / "hosts-checkpoints")))
    pipeline = Pipeline(spec)
    pipeline.process_records(host_records[:HOST_WARM_EVENTS], source="warm")
    assert pipeline.is_warm
    app = create_app(spec, auth, pipeline=pipeline)
    app.state.service.score(host_records[HOST_WARM_EVENTS:])
    return app


def busiest_entity(app) -> str:
    """The host with the most event anomalies among its recent readings (the ones its page plots)."""
    service = app.state.service
    counts: dict[str, int] = {}
    for row in service.store.anomalies(pipeline=service.spec.name, limit=5_000):
        if row["detector"] != "silence":
            counts[row["entity"]] = counts.get(row["entity"], 0) + 1
    return max(sorted(counts), key=lambda key: sum(e["is_anomaly"] for e in service.recent.of(key, 200)))
