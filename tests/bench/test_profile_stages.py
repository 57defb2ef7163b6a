"""``tocsin.bench.profile_stages`` on a tiny stream: the per-stage profile accounts for the loop's time (no timing
thresholds: performance is measured by running the profiler, not by timed tests)."""

from __future__ import annotations

import json

import pytest

from tocsin.bench.profile_stages import STAGES, profile_pipeline, run_profile
from tocsin.bench.throughput import _compile_kernels, generate_lines, reference_spec

EVENTS, USERS, WARMUP, BATCH = 8_000, 400, 2_000, 1_000


@pytest.fixture(scope="module")
def spec_and_lines():
    spec = reference_spec(USERS, seed=3, warmup_events=WARMUP)
    lines = generate_lines(spec, EVENTS)
    _compile_kernels(spec, lines, BATCH)
    return spec, lines


def test_stage_shares_sum_to_about_one_of_the_wall_time_measured_apart(spec_and_lines) -> None:
    spec, lines = spec_and_lines
    profile = profile_pipeline(spec, lines, BATCH, count_batches=2)
    assert profile["measured_events"] == EVENTS - WARMUP
    assert profile["batches"] == (EVENTS - WARMUP) // BATCH
    assert list(profile["stages"]) == list(STAGES)
    shares = [stage["share"] for stage in profile["stages"].values()]
    assert all(share >= 0 for share in shares)
    # exclusive stage times against the loop's wall clock taken outside every wrapper: what is left is the
    # loop's own slicing of the input, so the sum is just under 1 (a stage counted twice would push it past 1)
    assert 0.9 <= sum(shares) <= 1.005, profile["stages"]
    assert profile["share_sum"] == pytest.approx(sum(shares), abs=0.01)
    # the stages that run on every batch were seen on every batch
    for stage in ("decode", "admission", "keys", "features", "score", "calibrate", "alert grouping", "sinks"):
        assert profile["stages"][stage]["calls_per_batch"] >= 1, stage
        assert profile["stages"][stage]["seconds"] > 0, stage
    # the feature operators' kernels are inside "features", and listed one by one
    detail = sum(v["seconds"] for v in profile["features_detail"].values())
    assert detail == pytest.approx(profile["stages"]["features"]["seconds"], rel=0.01, abs=1e-4)
    calls = profile["python_calls"]
    assert calls["batches"] == 2 and calls["python_calls_per_batch"] > 0
    assert sum(v["python_calls_per_batch"] for v in calls["per_stage"].values()) == pytest.approx(calls["python_calls_per_batch"], rel=0.01)


def test_profile_leaves_the_pipeline_classes_unwrapped(spec_and_lines) -> None:
    from tocsin.engine.pipeline import Pipeline

    spec, lines = spec_and_lines
    profile_pipeline(spec, lines, BATCH, count_batches=1)
    assert not getattr(Pipeline.process_raw, "__tocsin_profiled__", False)
    assert "process_raw" not in vars(Pipeline(spec))


def test_run_profile_is_json_with_isolated_stages_and_ceilings() -> None:
    result = run_profile(events=6_000, users=300, batch_sizes=(1_000,), warmup_events=2_000, count_batches=1, bandwidth_mb=8)
    assert json.loads(json.dumps(result))["benchmark"] == "profile_stages"
    isolated = result["isolated"]["1000"]
    assert isolated["measured_events"] == 4_000
    assert all(v["us_per_event"] >= 0 for v in isolated["stages"].values())
    ceilings = result["ceilings"]
    for key in ("msgspec_typed_decode", "numba_welford_per_key", "iforest_score_threaded", "iforest_score_one_thread", "numpy_copy"):
        assert key in ceilings, key
    assert set(result["gil_scaling"]["stages"]) >= {"decode (msgspec + columns)", "score kernel (1 thread each)"}
