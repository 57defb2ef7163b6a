"""The streaming commands end to end against a real broker: ``tocsin produce`` publishes, and
``tocsin run SPEC --workers N`` scores the topic into the store until SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.kafka.admin import read_topic
from tocsin.store.sql import Store

from .helpers import SESSION_TIMEOUT_MS, small_spec_data, topics

pytestmark = pytest.mark.kafka


def test_produce_then_run_with_two_workers(tmp_path, kafka_brokers) -> None:
    names = topics(kafka_brokers)
    result = CliRunner().invoke(app, ["produce", "--topic", names["topic"], "--brokers", kafka_brokers, "--rate", "0",
                                      "--events", "6000", "--users", "300"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in read_topic({"bootstrap.servers": kafka_brokers}, names["topic"])) == 6_000

    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    data["source"] = {"kind": "kafka", "brokers": kafka_brokers, "group": f"cli-{names['topic']}",
                      "session_timeout_ms": SESSION_TIMEOUT_MS, "max_poll_interval_ms": 60_000, **names}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    run = subprocess.Popen([sys.executable, "-m", "tocsin.cli.main", "run", str(spec), "--workers", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    store = Store(data["store"]["url"])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if store.count("scored_events") + store.count("anomalies") and _events_done(tmp_path, data):
                    break
            except Exception:  # noqa: BLE001 - the tables appear with the first worker
                pass
            time.sleep(0.5)
    finally:
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode()
    assert run.returncode == 0, output
    summaries = [line for line in output.splitlines() if line.startswith('{"worker"')]
    assert len(summaries) == 2, output
    assert sum(yaml.safe_load(line)["events"] for line in summaries) == 6_000, output


def _events_done(tmp_path, data) -> bool:
    from tocsin.checkpoint import open_checkpoint_store

    checkpoints = open_checkpoint_store(str(tmp_path / "ck"), data["name"])
    total = 0
    for partition in checkpoints.partitions():
        total += checkpoints.load(partition).offset + 1
    return total >= 6_000
