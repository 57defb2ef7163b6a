"""Streaming time-series detectors: the score-then-learn contract, persistence, registration, validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.ewma import EWMAZScore
from tocsin.detectors.forecast import SeasonalForecast
from tocsin.detectors.seasonal import AutoSeasonalProfile, SeasonalProfile
from tocsin.detectors.timeseries import CONFIGURATIONS, TimeSeriesDetector, ValueRarity, make_detector


def _series(n=1500, columns=1, seed=0):
    rng = np.random.default_rng(seed)
    minutes = np.arange(n) * 15
    daily = 10 * np.sin(2 * np.pi * minutes / 1440)
    X = (50 + daily)[:, None] + rng.normal(0, 1, (n, columns))
    X[n // 2, 0] += 25  # a spike
    X[2 * n // 3 :, -1] += 8  # a level shift
    X[min(100, n - 1), 0] = np.nan  # a missing value
    return X, (minutes * 60).astype(np.int64)


def _factories():
    return {
        "ewma": lambda: EWMAZScore(alpha=0.05),
        "seasonal": lambda: SeasonalProfile(n_buckets=24),
        "auto_seasonal": lambda: AutoSeasonalProfile(),
        "forecast": lambda: SeasonalForecast(n_buckets=24),
        "rarity": lambda: ValueRarity(memory=256),
        **{f"timeseries:{name}": (lambda name=name: make_detector(name)) for name in CONFIGURATIONS},
    }


FACTORIES = _factories()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_batch_equals_row_by_row_and_chunks(name):
    X, seconds = _series(columns=2)
    batch = FACTORIES[name]().score_partial_fit(X, timestamps=seconds)
    one_at_a_time = FACTORIES[name]()
    rows = np.concatenate([one_at_a_time.score_partial_fit(X[i : i + 1], timestamps=seconds[i : i + 1]) for i in range(len(X))])
    chunked = FACTORIES[name]()
    cuts = [0, 7, 300, 301, 999, len(X)]
    chunks = np.concatenate([chunked.score_partial_fit(X[a:b], timestamps=seconds[a:b]) for a, b in zip(cuts, cuts[1:])])
    np.testing.assert_array_equal(batch, rows)
    np.testing.assert_array_equal(batch, chunks)
    assert np.isfinite(batch).all()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_each_row_is_scored_before_it_is_learned(name):
    X, seconds = _series()
    streamed = FACTORIES[name]().score_partial_fit(X, timestamps=seconds)
    k = 1000
    detector = FACTORIES[name]().fit(X[:k], timestamps=seconds[:k])
    # scoring row k from the state of rows < k gives the streamed score of row k
    assert detector.score_samples(X[k : k + 1], timestamps=seconds[k : k + 1])[0] == streamed[k]
    # score_samples learns nothing
    again = detector.score_samples(X[k : k + 5], timestamps=seconds[k : k + 5])
    np.testing.assert_array_equal(again, detector.score_samples(X[k : k + 5], timestamps=seconds[k : k + 5]))
    # partial_fit continues where fit stopped
    detector.partial_fit(X[k:1200], timestamps=seconds[k:1200])
    rest = detector.score_partial_fit(X[1200:], timestamps=seconds[1200:])
    np.testing.assert_array_equal(rest, streamed[1200:])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_save_and_load_continue_the_stream_identically(name, tmp_path):
    X, seconds = _series()
    reference = FACTORIES[name]().score_partial_fit(X, timestamps=seconds)
    detector = FACTORIES[name]()
    detector.score_partial_fit(X[:900], timestamps=seconds[:900])
    path = tmp_path / "model.npz"
    detector.save(path)
    restored = Detector.load(path)
    assert type(restored) is type(detector)
    assert restored.get_params() == detector.get_params() or name.startswith("timeseries")
    np.testing.assert_array_equal(restored.score_partial_fit(X[900:], timestamps=seconds[900:]), reference[900:])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_not_fitted_and_explain_shape(name):
    X, seconds = _series(n=400, columns=3)
    detector = FACTORIES[name]()
    with pytest.raises(NotFittedError):
        detector.score_samples(X, timestamps=seconds)
    detector.fit(X, timestamps=seconds)
    explanation = detector.explain(X[:10], timestamps=seconds[:10])
    assert explanation.shape == (10, 3)
    assert np.isfinite(explanation).all()
    with pytest.raises(ValueError, match="columns"):
        detector.score_samples(X[:, :2], timestamps=seconds)


def test_registered_kinds():
    assert DETECTORS["ewma"] is EWMAZScore
    assert DETECTORS["seasonal"] is SeasonalProfile
    assert DETECTORS["seasonal_forecast"] is SeasonalForecast
    assert DETECTORS["value_rarity"] is ValueRarity
    assert DETECTORS["timeseries"] is TimeSeriesDetector


def test_seasonal_detectors_need_timestamps_and_accept_datetime64():
    X, seconds = _series(n=300)
    with pytest.raises(ValueError, match="timestamps"):
        SeasonalProfile().score_partial_fit(X)
    with pytest.raises(ValueError, match="one entry per row"):
        SeasonalProfile().score_partial_fit(X, timestamps=seconds[:-1])
    as_datetime = seconds.astype("datetime64[s]")
    np.testing.assert_array_equal(
        SeasonalProfile().score_partial_fit(X, timestamps=as_datetime), SeasonalProfile().score_partial_fit(X, timestamps=seconds)
    )
    assert not TimeSeriesDetector(components=("rarity", "ewma")).needs_timestamps


@pytest.mark.parametrize(
    "detector",
    [
        EWMAZScore(alpha=0.0),
        EWMAZScore(alpha=1.5),
        SeasonalProfile(n_buckets=0),
        SeasonalForecast(gamma=-1.0),
        ValueRarity(decay=0.0),
        TimeSeriesDetector(components=("nope",)),
        TimeSeriesDetector(combine="mean"),
        TimeSeriesDetector(rarity_memory=1.0),
        TimeSeriesDetector(calibration_window=10),
    ],
)
def test_invalid_parameters_raise_at_fit(detector):
    X, seconds = _series(n=50)
    with pytest.raises(ValueError):
        detector.fit(X, timestamps=seconds)


def test_missing_values_are_neither_scored_nor_learned():
    X = np.array([1.0, 2.0, np.nan, 3.0] * 20)
    detector = EWMAZScore(warmup=2)
    scores = detector.score_partial_fit(X)
    assert np.isnan(scores[2::4]).all() and np.isfinite(scores[0::4]).all()
    assert detector.count_[0] == 60


def test_make_detector_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown"):
        make_detector("best-guess")


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=80),
    cut=st.integers(0, 80),
    kind=st.sampled_from(["ewma", "seasonal", "rarity", "timeseries:tocsin"]),
)
def test_any_split_of_a_stream_gives_the_same_scores(values, cut, kind):
    X = np.asarray(values)
    seconds = np.arange(X.size) * 600
    whole = FACTORIES[kind]().score_partial_fit(X, timestamps=seconds)
    split = FACTORIES[kind]()
    cut = min(cut, X.size)
    parts = [split.score_partial_fit(X[:cut], timestamps=seconds[:cut]), split.score_partial_fit(X[cut:], timestamps=seconds[cut:])]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
