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
            "--users", "2000", "--workers", "none", "--json", str(out)]
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
    assert "scaling" not in figures, "--workers none skips the scaling run"


def test_bench_kafka_scaling_runs_one_and_two_worker_processes(tmp_path) -> None:
    out = tmp_path / "kafka.json"
    published = 60_000
    args = ["bench", "kafka", "--events", "20000", "--runs", "1", "--rate", "5000", "--latency-seconds", "2",
            "--users", "2000", "--workers", "1,2", "--scaling-events", str(published), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    scaling = json.loads(out.read_text())["scaling"]
    assert scaling["partitions"] == 4 and scaling["events"] == published
    assert set(scaling["runs"]) == {"1", "2"}
    for count, run in scaling["runs"].items():
        assert run["workers"] == int(count) == len(run["per_worker"])
        assert run["published"] == published
        # every published event went through exactly one of the run's workers (a moved partition resumes where
        # its previous owner checkpointed on revocation: nothing skipped, nothing twice)
        assert sum(worker["events"] for worker in run["per_worker"]) == run["events"] == published, run
        assert run["active_events"] > 0 and run["seconds"] > 0 and run["cpu_seconds"] > 0
        for key in ("events_per_s", "events_per_cpu_s"):
            assert isinstance(run[key], float) and math.isfinite(run[key]) and run[key] > 0, (count, key)
    for key in ("efficiency_2_vs_1", "speedup_2_vs_1"):
        assert isinstance(scaling[key], float) and math.isfinite(scaling[key]) and scaling[key] > 0, key
    assert "2 vs 1 worker" in result.output
