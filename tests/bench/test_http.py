"""``run_http_bench`` on a tiny load: the shape of its figures and that every request succeeded; no
timing thresholds (performance is measured by running ``tocsin bench http``, not by timed tests)."""

from __future__ import annotations

import json

import pytest

from tocsin.bench.http import run_http_bench


@pytest.fixture(scope="module")
def result() -> dict:
    return run_http_bench(rate=100, duration=1.0, batch_size=200, batches=3, users=300, warmup_events=1_000)


def test_result_has_the_documented_keys_and_is_json(result: dict) -> None:
    for key in ("single_p99_ms", "single_p50_ms", "single_rps", "batch_events_per_s", "batch_p99_ms", "machine", "notes", "targets", "meets_targets"):
        assert key in result, key
    assert json.loads(json.dumps(result)) == result
    assert any("separate" in note or "child process" in note for note in result["notes"])


def test_every_request_was_answered(result: dict) -> None:
    assert result["single_requests"] == 100 and result["single_errors"] == 0
    assert result["batch_requests"] == 3 and result["batch_errors"] == 0 and result["batch_size"] == 200
    assert 0 < result["single_p50_ms"] <= result["single_p99_ms"] <= result["single_max_ms"]
    assert result["single_rps"] > 0 and result["batch_events_per_s"] > 0
    assert result["model_fits_at_end"] >= 1
