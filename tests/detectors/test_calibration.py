"""ScoreCalibrator: mid-rank ECDF body, exponential tail, ring buffer, persistence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.detectors.calibration import RingBuffer, ScoreCalibrator, _two_sided_ranks
from tocsin.spec import CalibrationSpec

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_empty_reference_raises_a_clear_error():
    with pytest.raises(ValueError, match="no reference scores yet"):
        ScoreCalibrator().transform(np.array([1.0]))


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(finite, min_size=1, max_size=300),
    queries=st.lists(finite, min_size=1, max_size=100),
    tail_quantile=st.floats(min_value=0.51, max_value=0.999),
)
def test_monotone_and_in_unit_interval(reference, queries, tail_quantile):
    calibrator = ScoreCalibrator(window=128, tail_quantile=tail_quantile)
    calibrator.update(np.array(reference))
    queries = np.sort(np.concatenate([queries, reference[:20], [calibrator.tail_start]]))
    p = calibrator.transform(queries)
    assert ((p >= 0) & (p <= 1)).all()
    assert (np.diff(p) >= 0).all()


@settings(max_examples=100, deadline=None)
@given(reference=st.lists(st.integers(0, 5).map(float), min_size=5, max_size=200))
def test_monotone_with_heavy_ties(reference):
    calibrator = ScoreCalibrator(window=1000, tail_quantile=0.9)
    calibrator.update(np.array(reference))
    p = calibrator.transform(np.linspace(-1.0, 7.0, 801))
    assert (np.diff(p) >= 0).all()


def test_uniform_reference_gives_about_identity_below_the_tail():
    calibrator = ScoreCalibrator(window=50_000, tail_quantile=0.98)
    calibrator.update(np.random.default_rng(0).uniform(size=50_000))
    x = np.linspace(0.0, 0.97, 500)
    np.testing.assert_allclose(calibrator.transform(x), x, atol=0.01)


def test_mid_rank_handles_ties():
    calibrator = ScoreCalibrator(window=100, tail_quantile=0.9)
    calibrator.update(np.array([0.0] * 50 + list(range(1, 51)), dtype=float))
    # half the reference is 0: a 0 is at the middle of its rank range, 25%
    assert calibrator.transform(np.array([0.0]))[0] == pytest.approx(0.25)
    assert calibrator.transform(np.array([-1.0]))[0] == 0.0


def test_continuous_at_tail_start_and_exponential_above():
    rng = np.random.default_rng(1)
    calibrator = ScoreCalibrator(window=50_000, tail_quantile=0.98)
    reference = rng.exponential(scale=2.0, size=50_000)
    calibrator.update(reference)
    s_q, beta = calibrator.tail_start, calibrator.tail_scale
    assert s_q == pytest.approx(np.quantile(reference, 0.98))
    assert beta == pytest.approx(np.mean(reference[reference > s_q] - s_q))
    just_below, at, just_above = calibrator.transform(np.array([s_q - 1e-9, s_q, s_q + 1e-9]))
    assert at == pytest.approx(0.98, abs=1e-12)
    assert just_above == pytest.approx(0.98, abs=1e-9)
    assert 0.98 - 1 / 50_000 <= just_below <= 0.98
    # an exponential reference has an exponential tail: the extrapolation is close to the truth
    survival = 1 - calibrator.transform(np.array([15.0, 25.0]))
    np.testing.assert_allclose(survival, np.exp(-np.array([15.0, 25.0]) / 2.0), rtol=0.25)
    # beyond every reference score it still ranks, and stays below 1
    far = calibrator.transform(np.array([reference.max(), reference.max() + 10, s_q + 30 * beta]))
    assert (np.diff(far) > 0).all() and (far < 1).all()


def test_degenerate_reference_is_still_monotone():
    calibrator = ScoreCalibrator(window=100, tail_quantile=0.98)
    calibrator.update(np.full(100, 3.0))
    assert calibrator.tail_scale > 0
    p = calibrator.transform(np.array([2.0, 3.0, 3.0 + 1e-15, 4.0]))
    assert p[0] == 0.0 and p[1] == pytest.approx(0.98) and (np.diff(p) >= 0).all() and p[-1] == 1.0


def test_nan_and_inf():
    calibrator = ScoreCalibrator(window=10, tail_quantile=0.9)
    calibrator.update(np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0]))
    assert calibrator.n_reference == 3
    p = calibrator.transform(np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(p[0]) and p[1] == 1.0 and p[2] == 0.0


def test_window_keeps_the_newest_scores_and_the_cache_follows_updates():
    calibrator = ScoreCalibrator(window=100, tail_quantile=0.9)
    calibrator.update(np.arange(60.0))
    before = calibrator.transform(np.array([50.0]))[0]
    for start in range(60, 250, 37):  # batches that wrap around the ring
        calibrator.update(np.arange(start, min(start + 37, 250), dtype=float))
    np.testing.assert_array_equal(calibrator.reference(), np.arange(150.0, 250.0))
    after = calibrator.transform(np.array([50.0]))[0]
    assert before > 0.5 and after == 0.0
    calibrator.update(np.arange(1000.0))  # a batch longer than the window
    np.testing.assert_array_equal(calibrator.reference(), np.arange(900.0, 1000.0))


def test_state_round_trip():
    rng = np.random.default_rng(2)
    calibrator = ScoreCalibrator(window=1_000, tail_quantile=0.95)
    calibrator.update(rng.gamma(2.0, size=1_700))
    restored = ScoreCalibrator(window=1_000, tail_quantile=0.95)
    restored.load_state_dict(calibrator.state_dict())
    queries = rng.gamma(2.0, size=500) * 2
    np.testing.assert_array_equal(restored.transform(queries), calibrator.transform(queries))
    batch = rng.gamma(2.0, size=300)
    calibrator.update(batch)
    restored.update(batch)
    np.testing.assert_array_equal(restored.transform(queries), calibrator.transform(queries))
    smaller = ScoreCalibrator(window=10)
    smaller.load_state_dict(calibrator.state_dict())
    np.testing.assert_array_equal(smaller.reference(), calibrator.reference()[-10:])


def test_from_spec_and_validation():
    calibrator = ScoreCalibrator.from_spec(CalibrationSpec(window=500, tail_quantile=0.9))
    assert (calibrator.window, calibrator.tail_quantile) == (500, 0.9)
    with pytest.raises(ValueError, match="window"):
        ScoreCalibrator(window=0)
    with pytest.raises(ValueError, match="tail_quantile"):
        ScoreCalibrator(tail_quantile=1.0)


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.lists(finite, max_size=30), max_size=12), capacity=st.integers(1, 40))
def test_ring_buffer_matches_a_list(chunks, capacity):
    ring = RingBuffer(capacity)
    expected: list[float] = []
    for chunk in chunks:
        ring.extend(np.array(chunk, dtype=float))
        expected = (expected + chunk)[-capacity:]
        np.testing.assert_array_equal(ring.ordered(), np.array(expected, dtype=float))
        assert len(ring) == len(expected)


@settings(max_examples=150, deadline=None)
@given(
    window=st.integers(1, 200),
    batches=st.lists(st.lists(st.integers(-3, 3).map(float), max_size=40), min_size=1, max_size=15),
    queries=st.lists(st.integers(-4, 4).map(float), min_size=1, max_size=1_500),
)
def test_incremental_sorted_reference_equals_a_fresh_sort(window, batches, queries):
    """update() patches the cached sorted reference instead of re-sorting; ties and
    evictions must leave exactly what a fresh calibrator on the same reference has."""
    calibrator = ScoreCalibrator(window=window, tail_quantile=0.9)
    queries = np.array(queries)
    for batch in batches:
        calibrator.update(np.array(batch))
        if calibrator.n_reference == 0:
            continue
        fresh = ScoreCalibrator(window=window, tail_quantile=0.9)
        fresh.update(calibrator.reference())
        np.testing.assert_array_equal(calibrator.transform(queries), fresh.transform(queries))
        assert (calibrator.tail_start, calibrator.tail_scale) == (fresh.tail_start, fresh.tail_scale)


@settings(max_examples=200, deadline=None)
@given(reference=st.lists(st.integers(-20, 20), min_size=1, max_size=300),
       queries=st.lists(st.one_of(st.integers(-30, 30).map(float), st.sampled_from([np.inf, -np.inf, np.nan])), max_size=300))
def test_the_ranks_kernel_equals_numpy_searchsorted_on_both_sides(reference, queries) -> None:
    ordered, asked = np.sort(np.array(reference, dtype=np.float64)), np.array(queries, dtype=np.float64)
    expected = np.searchsorted(ordered, asked, "left") + np.searchsorted(ordered, asked, "right")
    known = ~np.isnan(asked)  # a NaN query's score is NaN whatever its rank
    np.testing.assert_array_equal(_two_sided_ranks(ordered, asked)[known], expected[known])
