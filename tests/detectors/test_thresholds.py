"""Thresholds and severities on calibrated scores."""

import numpy as np
import pytest

from tocsin.detectors.thresholds import (
    AdaptiveThreshold,
    FixedThreshold,
    QuantileThreshold,
    Threshold,
    assign_severity,
    build_threshold,
)
from tocsin.spec import ThresholdSpec
from tocsin.vocabulary import SEVERITIES


def test_fixed():
    threshold = FixedThreshold(0.99)
    flags = threshold.decide(np.array([0.1, 0.99, 0.995, np.nan]))
    assert flags.tolist() == [False, True, True, False]
    assert threshold.current == 0.99 and threshold.state_dict() == {}
    with pytest.raises(ValueError):
        FixedThreshold(1.0)


def test_quantile_uses_q_before_data_and_decides_before_learning():
    threshold = QuantileThreshold(0.9, window=1_000)
    assert threshold.current == 0.9
    batch = np.linspace(0.0, 0.5, 1_000)
    assert not threshold.decide(batch).any()  # decided with 0.9, then learned
    assert threshold.current == pytest.approx(np.quantile(batch, 0.9))
    assert threshold.decide(np.array([0.44, 0.46])).tolist() == [False, True]


def test_quantile_tracks_recent_window_and_round_trips():
    rng = np.random.default_rng(0)
    threshold = QuantileThreshold(0.99, window=5_000)
    for _ in range(10):
        threshold.decide(rng.uniform(size=1_000))
    assert threshold.current == pytest.approx(0.99, abs=0.005)
    for _ in range(10):  # the distribution shifts: only the last window counts
        threshold.decide(rng.uniform(size=1_000) * 0.5)
    assert threshold.current == pytest.approx(0.495, abs=0.003)
    restored = QuantileThreshold(0.99, window=5_000)
    restored.load_state_dict(threshold.state_dict())
    assert restored.current == threshold.current
    batch = rng.uniform(size=700)
    np.testing.assert_array_equal(restored.decide(batch), threshold.decide(batch))
    assert restored.current == threshold.current


@pytest.mark.parametrize("batch_size", [2_000, 40])
def test_adaptive_converges_to_target_rate_on_a_stationary_stream(batch_size):
    rng = np.random.default_rng(1)
    target = 0.01
    threshold = AdaptiveThreshold(target_rate=target, initial=0.995, gain=0.05, window_events=50_000)
    n_batches = 600_000 // batch_size
    flagged = []
    for _ in range(n_batches):
        p = rng.beta(5.0, 1.0, size=batch_size)  # not uniform: the cut-off must find the quantile
        flagged.append(threshold.decide(p))
    tail = np.concatenate(flagged)[-200_000:]
    assert tail.mean() == pytest.approx(target, rel=0.15)
    assert threshold.recent_rate == pytest.approx(target, rel=0.2)
    true_cut = (1 - target) ** (1 / 5.0)  # the 0.99 quantile of Beta(5, 1)
    assert threshold.current == pytest.approx(true_cut, abs=0.002)


def test_adaptive_follows_a_shift_and_stays_inside_the_unit_interval():
    rng = np.random.default_rng(2)
    threshold = AdaptiveThreshold(target_rate=0.05, initial=0.5, gain=0.1)
    for _ in range(300):
        threshold.decide(rng.uniform(size=1_000))
    assert threshold.current == pytest.approx(0.95, abs=0.01)
    for _ in range(300):
        threshold.decide(rng.uniform(size=1_000) * 0.5)
    assert threshold.current == pytest.approx(0.475, abs=0.01)
    for _ in range(500):
        threshold.decide(np.ones(100))
    assert 0.0 < threshold.current < 1.0
    for _ in range(500):
        threshold.decide(np.zeros(100))
    assert 0.0 < threshold.current < 1.0


def test_adaptive_decides_the_batch_with_one_cut_off_and_round_trips():
    rng = np.random.default_rng(3)
    threshold = AdaptiveThreshold(target_rate=0.01)
    for _ in range(20):
        threshold.decide(rng.uniform(size=500))
    restored = AdaptiveThreshold(target_rate=0.01)
    restored.load_state_dict(threshold.state_dict())
    assert restored.current == threshold.current and restored.recent_rate == threshold.recent_rate
    batch = rng.uniform(size=1_000)
    cut = threshold.current
    flags = threshold.decide(batch)
    np.testing.assert_array_equal(flags, batch >= cut)
    np.testing.assert_array_equal(restored.decide(batch), flags)
    assert restored.current == threshold.current


def test_adaptive_validation():
    with pytest.raises(ValueError, match="target_rate"):
        AdaptiveThreshold(target_rate=0.0)
    with pytest.raises(ValueError, match="gain"):
        AdaptiveThreshold(target_rate=0.1, gain=0.0)
    assert np.isnan(AdaptiveThreshold(target_rate=0.1).recent_rate)


def test_build_threshold():
    fixed = build_threshold(ThresholdSpec(kind="fixed", value=0.99))
    quantile = build_threshold(ThresholdSpec(kind="quantile", value=0.97))
    adaptive = build_threshold(ThresholdSpec(kind="adaptive", value=0.9, target_rate=0.02))
    assert isinstance(fixed, FixedThreshold) and fixed.current == 0.99
    assert isinstance(quantile, QuantileThreshold) and quantile.q == 0.97
    assert isinstance(adaptive, AdaptiveThreshold) and adaptive.target_rate == 0.02
    assert adaptive.current == pytest.approx(0.9)
    assert all(isinstance(t, Threshold) for t in (fixed, quantile, adaptive))


def test_assign_severity():
    assert SEVERITIES == ("info", "warning", "critical")
    p = np.array([0.0, 0.998, 0.999, 0.9995, 0.9999, 1.0, np.nan])
    severity = assign_severity(p, warning=0.999, critical=0.9999)
    assert severity.dtype == np.int8
    assert severity.tolist() == [0, 0, 1, 1, 2, 2, 0]
    assert assign_severity(p, 0.999, 0.999).tolist() == [0, 0, 2, 2, 2, 2, 0]
    with pytest.raises(ValueError, match="critical"):
        assign_severity(p, warning=0.9, critical=0.8)
