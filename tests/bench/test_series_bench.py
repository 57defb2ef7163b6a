"""``tocsin bench series`` at a tiny size: its keys and the consistency of its figures, no timing thresholds
(performance is measured by running the benchmark, not by timed tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from tocsin.bench.series import generate_lines, run_series_bench, series_spec
from tocsin.cli.main import app
from tocsin.engine.pipeline import Pipeline

SERIES, READINGS, BATCH, RIVER_SERIES = 2_000, 5, 1_000, 200


@pytest.fixture(scope="module")
def result() -> dict:
    return run_series_bench(series=SERIES, readings=READINGS, batch_size=BATCH, river_series=RIVER_SERIES)


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_result_has_the_issue_keys_as_positive_finite_numbers(result: dict) -> None:
    for key in ("readings_per_s", "bytes_per_series", "p50_batch_ms", "p99_batch_ms", "ratio_to_river"):
        assert _positive(result[key]), key
    assert _positive(result["baselines"]["river_per_series_readings_per_s"])
    assert _positive(result["baselines"]["bytes_per_series"])
    assert "GaussianScorer" in result["baselines"]["river_model"]
    assert (result["series"], result["readings"], result["batch"]) == (SERIES, READINGS, BATCH)
    assert result["machine"]["cpu_count"] >= 1
    assert json.loads(json.dumps(result)) == result


def test_counts_and_consistency(result: dict) -> None:
    total = SERIES * READINGS
    assert result["total_readings"] == total and result["dead_letters"] == 0
    assert result["scored_readings"] == total - series_spec().detector.warmup_events
    assert result["batches"] == math.ceil(total / BATCH)
    assert result["readings_per_s"] == pytest.approx(total / result["seconds"], rel=1e-3)
    assert 0 < result["p50_batch_ms"] <= result["p99_batch_ms"] <= result["max_batch_ms"]
    assert sum(s["seconds"] for s in result["stages"].values()) == pytest.approx(result["seconds"], rel=0.01, abs=1e-3)
    assert result["baselines"]["sample_series"] == RIVER_SERIES
    assert result["baselines"]["sample_readings"] == RIVER_SERIES * READINGS
    expected = result["readings_per_s"] / result["baselines"]["river_per_series_readings_per_s"]
    assert result["ratio_to_river"] == pytest.approx(expected, rel=1e-3, abs=0.006)


def test_bytes_per_series_is_the_model_plus_the_key_interner(result: dict) -> None:
    memory = result["memory"]
    assert result["bytes_per_series"] <= 4096
    (model,) = Pipeline(series_spec()).features.operators
    assert memory["series_model"] == model.bytes_per_series > 0
    assert memory["series"] == SERIES
    assert memory["bytes_per_series"] == pytest.approx(
        memory["series_model"] + memory["key_interner_arrays"] + memory["key_strings"], abs=0.2)


def test_lines_are_deterministic_in_event_time_order_with_the_sample_a_subsequence() -> None:
    lines, sample = generate_lines(50, 4, seed=3, sample=5)
    again, _ = generate_lines(50, 4, seed=3, sample=5)
    assert lines == again and len(lines) == 200 and len(sample) == 20
    events = [json.loads(line) for line in lines]
    times = np.array([e["ts"] for e in events])
    assert (np.diff(times) >= 0).all()
    hosts = {e["host"] for e in events}
    assert len(hosts) == 50 and all(0 <= e["cpu"] <= 100 for e in events)
    sampled = [json.loads(line) for line in sample]
    assert {e["host"] for e in sampled} == {f"host-{i:06d}" for i in range(5)}
    assert sample == [line for line in lines if json.loads(line)["host"] in {e["host"] for e in sampled}]


def test_cli_writes_the_json(tmp_path) -> None:
    out = tmp_path / "series.json"
    run = CliRunner().invoke(app, ["bench", "series", "--series", "1000", "--readings", "3", "--batch", "500",
                                   "--river-series", "50", "--json", str(out)])
    assert run.exit_code == 0, run.output
    assert "River" in run.output and "readings/s" in run.output
    data = json.loads(out.read_text())
    assert _positive(data["readings_per_s"]) and _positive(data["bytes_per_series"]) and data["bytes_per_series"] <= 4096
    assert _positive(data["baselines"]["river_per_series_readings_per_s"])
    assert (data["series"], data["readings"], data["batch"]) == (1_000, 3, 500)


def test_nothing_to_score_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        run_series_bench(series=10, readings=5)
