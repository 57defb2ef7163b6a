"""Tests for src/tocsin/spec/environment.py: the TOCSIN_* overrides a loaded spec yields to, read in one place."""

from pathlib import Path

import pytest
import yaml

from tocsin.spec import EnvironmentOverrides, SpecError, load_spec

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "transactions.yaml"
VARIABLES = ("TOCSIN_STORE_URL", "TOCSIN_KAFKA_BROKERS", "TOCSIN_KAFKA_TOPIC", "TOCSIN_KAFKA_GROUP", "TOCSIN_KAFKA_CONFIG",
             "TOCSIN_CHECKPOINT_URL", "TOCSIN_REDIS_URL", "TOCSIN_METRICS_PORT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def kafka_spec(tmp_path: Path) -> Path:
    data = yaml.safe_load(REFERENCE.read_text())
    data["source"] = {"kind": "kafka", "brokers": "spec-broker:9092", "topic": "tx", "client": {"acks": "all"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_without_variables_the_spec_is_as_written(tmp_path):
    spec = load_spec(kafka_spec(tmp_path))
    assert spec.store.url == "sqlite:///.tocsin/transactions.db"
    assert (spec.source.brokers, spec.source.topic, spec.source.group) == ("spec-broker:9092", "tx", "tocsin")
    assert spec.stream.checkpoint_url is None and spec.stream.cache_url is None and spec.metrics.port is None


def test_every_variable_overrides_its_field(tmp_path, monkeypatch):
    monkeypatch.setenv("TOCSIN_STORE_URL", "postgresql+psycopg://db/tocsin")
    monkeypatch.setenv("TOCSIN_KAFKA_BROKERS", "b1:9093,b2:9093")
    monkeypatch.setenv("TOCSIN_KAFKA_TOPIC", "payments")
    monkeypatch.setenv("TOCSIN_KAFKA_GROUP", "fraud")
    monkeypatch.setenv("TOCSIN_KAFKA_CONFIG", '{"security.protocol": "SASL_SSL", "sasl.username": "tocsin"}')
    monkeypatch.setenv("TOCSIN_CHECKPOINT_URL", "redis://cache:6379/1")
    monkeypatch.setenv("TOCSIN_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("TOCSIN_METRICS_PORT", "9400")
    spec = load_spec(kafka_spec(tmp_path))
    assert spec.store.url == "postgresql+psycopg://db/tocsin"
    assert (spec.source.brokers, spec.source.topic, spec.source.group) == ("b1:9093,b2:9093", "payments", "fraud")
    # merged into the spec's client settings, not replacing them
    assert spec.source.client == {"acks": "all", "security.protocol": "SASL_SSL", "sasl.username": "tocsin"}
    assert spec.source.client_config()["bootstrap.servers"] == "b1:9093,b2:9093"
    assert spec.stream.checkpoint_url == "redis://cache:6379/1"
    assert spec.stream.cache_url == "redis://cache:6379/0"
    assert spec.metrics.port == 9400


def test_kafka_variables_leave_other_sources_alone(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_TOPIC", "payments")
    monkeypatch.setenv("TOCSIN_STORE_URL", "sqlite:///elsewhere.db")
    spec = load_spec(REFERENCE)
    assert spec.source.kind == "simulator"
    assert spec.store.url == "sqlite:///elsewhere.db"


def test_an_empty_variable_is_not_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TOCSIN_STORE_URL", "")
    assert load_spec(REFERENCE).store.url == "sqlite:///.tocsin/transactions.db"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TOCSIN_KAFKA_CONFIG", "{not json", "TOCSIN_KAFKA_CONFIG"),
    ("TOCSIN_KAFKA_CONFIG", "[1, 2]", "TOCSIN_KAFKA_CONFIG"),
    ("TOCSIN_METRICS_PORT", "ninety", "TOCSIN_METRICS_PORT"),
])
def test_a_bad_variable_is_a_spec_error_naming_it(tmp_path, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SpecError, match=message):
        load_spec(kafka_spec(tmp_path))


def test_overrides_read_nothing_but_their_prefix(monkeypatch):
    monkeypatch.setenv("STORE_URL", "sqlite:///not-mine.db")
    assert EnvironmentOverrides.read().store_url is None


def test_tools_without_a_spec_get_the_kafka_client_settings_from_the_environment(monkeypatch):
    assert EnvironmentOverrides.read().kafka_client() == {"bootstrap.servers": "127.0.0.1:9092"}
    monkeypatch.setenv("TOCSIN_KAFKA_BROKERS", "b1:9093")
    monkeypatch.setenv("TOCSIN_KAFKA_CONFIG", '{"security.protocol": "SSL"}')
    assert EnvironmentOverrides.read().kafka_client() == {"bootstrap.servers": "b1:9093", "security.protocol": "SSL"}
    assert EnvironmentOverrides.read().kafka_client("given:1")["bootstrap.servers"] == "given:1"
