"""``tocsin bench kafka`` on a tiny load, through its CLI, against the tansu broker it starts itself:
the documented JSON keys and that every published event went through; no timing thresholds
(performance is measured by running the benchmark, not by timed tests)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from tocsin.cli.main import app

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_bench_kafka_writes_its_figures(tmp_path) -> None:
    out = tmp_path / "kafka.json"
    args = ["bench", "kafka", "--events", "20000", "--runs", "2", "--rate", "5000", "--latency-seconds", "4",
            "--users", "2000", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    for key in ("events_per_s", "p50_latency_ms", "p99_latency_ms"):
        assert isinstance(figures[key], float) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert len(figures["events_per_s_runs"]) == 2
    assert figures["events_per_s"] in figures["events_per_s_runs"]
    assert figures["throughput"]["events"] == 20_000 and figures["throughput"]["partitions"] == 2
    assert figures["latency"]["alerts"] > 0
    assert figures["p50_latency_ms"] <= figures["p99_latency_ms"] <= figures["latency"]["max_latency_ms"]
    assert "tansu" in figures["broker"]
