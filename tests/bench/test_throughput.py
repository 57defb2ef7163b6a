"""``run_throughput_bench`` on a tiny stream: the shape and consistency of its figures, no timing thresholds
(performance is measured by running the benchmark, not by timed tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tocsin.bench.baselines import FEATURE_NAMES, CardFeatures, MicroserviceBaseline, RiverHSTBaseline, run_baseline
from tocsin.bench.throughput import generate_lines, reference_spec, run_throughput_bench

EVENTS, USERS, BATCH, WARMUP, SAMPLE = 30_000, 2_000, 1_000, 2_500, 500


@pytest.fixture(scope="module")
def result() -> dict:
    return run_throughput_bench(events=EVENTS, users=USERS, batch_size=BATCH, baseline_events=SAMPLE, warmup_events=WARMUP)


def test_result_has_the_documented_keys_and_is_json(result: dict) -> None:
    for key in ("events_per_s", "p50_batch_ms", "p99_batch_ms", "events", "users", "batch_size", "machine", "notes", "stages", "store"):
        assert key in result, key
    for key in ("microservice_events_per_s", "river_hst_events_per_s", "sample_events"):
        assert key in result["baselines"], key
    assert set(result["ratios"]) == {"vs_microservice", "vs_river_hst", "vs_microservice_cpu", "vs_river_hst_cpu"}
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["python"]
    assert any("sample" in note for note in result["notes"]) and any("warm-up" in note for note in result["notes"])
    assert json.loads(json.dumps(result)) == result


def test_counts_are_the_events_fed_after_warm_up(result: dict) -> None:
    measured = EVENTS - WARMUP
    assert (result["events"], result["users"], result["batch_size"], result["warmup_events"]) == (EVENTS, USERS, BATCH, WARMUP)
    assert result["measured_events"] == measured
    assert result["scored_events"] == measured  # the detector was fitted during warm-up: every measured event is scored
    assert result["batches"] == math.ceil(measured / BATCH)
    assert result["dead_letters"] == 0
    assert 0 <= result["anomalies"] <= measured
    assert result["baselines"]["sample_events"] == SAMPLE
    assert 0 <= result["refits"] <= result["batches"]
    assert result["baselines"]["microservice"]["events"] == result["baselines"]["river_hst"]["events"] == SAMPLE


def test_figures_are_positive_and_consistent(result: dict) -> None:
    assert result["events_per_s"] > 0 and result["seconds"] > 0 and result["events_per_cpu_s"] > 0
    assert result["events_per_s"] == pytest.approx(result["measured_events"] / result["seconds"], rel=1e-3)
    assert 0 < result["p50_batch_ms"] <= result["p99_batch_ms"] <= result["max_batch_ms"]
    assert 0 < result["p50_batch_ms_without_refit"] <= result["p99_batch_ms_without_refit"] <= result["max_batch_ms"]
    stage_seconds = sum(stage["seconds"] for stage in result["stages"].values())
    assert stage_seconds == pytest.approx(result["seconds"], rel=0.01, abs=1e-3)
    assert result["stages"]["decode"]["seconds"] > 0 and result["stages"]["features"]["seconds"] > 0
    assert 0 < result["store"]["events_per_s_with_store"] <= result["events_per_s"]
    for name in ("microservice", "river_hst"):
        baseline = result["baselines"][name]
        assert baseline["events_per_s"] > 0 and baseline["events_per_cpu_s"] > 0
        assert 0 < baseline["p50_event_ms"] <= baseline["p99_event_ms"]
        assert result["baselines"][f"{name}_events_per_s"] == baseline["events_per_s"]
    for name in ("microservice", "river_hst"):  # ratios are rounded to 2 decimals, rates to 1
        expected = result["events_per_s"] / result["baselines"][f"{name}_events_per_s"]
        assert result["ratios"][f"vs_{name}"] == pytest.approx(expected, rel=1e-3, abs=0.006)


def test_too_few_events_for_the_warm_up_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        run_throughput_bench(events=1_000, users=100, batch_size=100, baseline_events=10, warmup_events=1_000)


def test_baselines_compute_the_reference_pipelines_features_to_the_same_values() -> None:
    """Both baselines and tocsin score the same inputs: the Python per-event features equal tocsin's columns."""
    from tocsin.bench.throughput import _source_batch
    from tocsin.engine.pipeline import Pipeline

    spec = reference_spec(users=300, seed=3)
    lines = generate_lines(spec, 5_000)
    pipeline = Pipeline(spec)
    events, dead = pipeline.decode(_source_batch(lines, 0, len(lines)), "test")
    frame = pipeline.features.transform_update(events)
    assert dead == [] and [name for name in frame.names if name not in FEATURE_NAMES] == []
    card_features = CardFeatures()
    rows = [card_features.update(json.loads(line)) for line in lines]
    for name in frame.names:
        np.testing.assert_allclose([row[name] for row in rows], frame.column(name), rtol=1e-6, atol=1e-6, err_msg=name)


def test_baselines_score_every_sampled_event() -> None:
    lines = generate_lines(reference_spec(users=200, seed=3), 1_200)
    for baseline in (MicroserviceBaseline(seed=0), RiverHSTBaseline(seed=0)):
        baseline.warm_up(lines[:1_000])
        outcome = run_baseline(baseline, lines[1_000:])
        assert outcome.events == 200 and len(outcome.latencies_s) == 200
        assert np.all(outcome.latencies_s > 0) and outcome.seconds >= outcome.latencies_s.sum() * 0.99


def test_card_features_windows_and_novelty_follow_the_reference_definitions() -> None:
    features = CardFeatures()
    events = [
        {"card_id": "c1", "ts": 0.0, "amount": 10.0, "merchant_id": "m1", "city": "a"},
        {"card_id": "c1", "ts": 30.0, "amount": 20.0, "merchant_id": "m2", "city": "a"},
        {"card_id": "c1", "ts": 80.0, "amount": 40.0, "merchant_id": "m1", "city": "b"},
        {"card_id": "c2", "ts": 90.0, "amount": 5.0, "merchant_id": "m1", "city": "a"},
    ]
    rows = [features.update(event) for event in events]
    assert all(list(row) == list(FEATURE_NAMES) for row in rows)
    assert [r["count_1m"] for r in rows] == [0.0, 1.0, 1.0, 0.0]  # at t=80 the 1-minute window holds (20, 80]: only t=30
    assert [r["amount_sum_1m"] for r in rows] == [0.0, 10.0, 20.0, 0.0]
    assert [r["count_1h"] for r in rows] == [0.0, 1.0, 2.0, 0.0]
    assert [r["amount_sum_1h"] for r in rows] == [0.0, 10.0, 30.0, 0.0]
    assert [r["seconds_since_last"] for r in rows][1:3] == [30.0, 50.0]
    assert [r["merchant_id_novel"] for r in rows] == [1.0, 1.0, 0.0, 1.0]
    assert [r["merchant_id_distinct"] for r in rows] == [0.0, 1.0, 2.0, 0.0]
    assert [r["city_novel"] for r in rows] == [1.0, 0.0, 1.0, 1.0]
    assert [r["merchant_id_share"] for r in rows] == [0.0, 0.0, 0.5, 0.0]
    assert [r["city_share"] for r in rows] == [0.0, 1.0, 0.0, 0.0]
    assert [r["merchant_id.count_1h"] for r in rows] == [0.0, 0.0, 1.0, 2.0]  # per merchant, across cards
    # The z-score needs a prior weight of 2: two events decayed by even a second weigh just under 2.
    assert [r["amount_zscore_30d"] for r in rows] == [0.0, 0.0, 0.0, 0.0]
    assert [r["amount_ratio_30d"] for r in rows[:2]] == [1.0, 1.0]  # likewise a weight of 1
    assert rows[2]["amount_ratio_30d"] == pytest.approx(40.0 / 15.0, rel=1e-3)


def test_stage_clock_times_inline_refits_and_the_calibrator_each_refit_installs() -> None:
    from tocsin.bench.throughput import SOURCE_NAME, _source_batch, _StageClock
    from tocsin.engine.pipeline import Pipeline

    spec = reference_spec(users=200, seed=3, warmup_events=500)
    spec = spec.model_copy(update={"detector": spec.detector.model_copy(update={"refit_every": 1_000, "train_window": 1_000})})
    lines = generate_lines(spec, 4_000)
    pipeline = Pipeline(spec)
    pipeline.process_raw(_source_batch(lines, 0, 500), SOURCE_NAME)
    clock = _StageClock(pipeline)
    calibrate_calls = []
    for start in range(500, 4_000, 500):
        before = clock.calls["calibrate"]
        pipeline.process_raw(_source_batch(lines, start, start + 500), SOURCE_NAME)
        calibrate_calls.append(clock.calls["calibrate"] - before)
    assert clock.calls["refit"] == pipeline.fits - 1 >= 2  # refitted inline while measured
    assert clock.seconds["refit"] > 0
    assert all(calls > 0 for calls in calibrate_calls)  # every batch, before and after refits replaced the calibrator
    clock.remove()
    assert "fit" not in vars(pipeline) and "score_samples" not in vars(pipeline.detector)
