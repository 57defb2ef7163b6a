"""Autoencoder and LSTM forecaster (the optional ``tocsin[deep]`` extra on PyTorch)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the deep detectors are the tocsin[deep] extra")

from tocsin.detectors import DETECTORS, Detector, NotFittedError  # noqa: E402
from tocsin.detectors.autoencoder import Autoencoder  # noqa: E402
from tocsin.detectors.lstm import LSTMForecaster  # noqa: E402


def _factor_rows(rows=1_500, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1.5, 1.5, size=(rows, 1))  # bounded: no tail rows the small network extrapolates badly
    return np.hstack([t, 2 * t, -t]) + rng.normal(scale=0.05, size=(rows, 3))


def test_registered():
    assert DETECTORS["autoencoder"] is Autoencoder
    assert DETECTORS["lstm_forecaster"] is LSTMForecaster


def test_autoencoder_planted_outlier_ranks_first_and_is_deterministic():
    X = _factor_rows()
    X[99] = [1.0, -2.0, -1.0]  # breaks the x1 = 2 x0 relation, each value ordinary
    first = Autoencoder(hidden=[8], latent=1, epochs=15, random_state=0).fit(X)
    scores = first.score_samples(X)
    assert scores.argmax() == 99
    assert first.explain(X[[99]]).argmax() == 1
    again = Autoencoder(hidden=[8], latent=1, epochs=15, random_state=0).fit(X)
    np.testing.assert_array_equal(again.score_samples(X), scores)


def test_autoencoder_save_load_and_partial_fit(tmp_path):
    X = _factor_rows(600, seed=1)
    detector = Autoencoder(epochs=3, random_state=2).fit(X)
    detector.save(tmp_path / "ae.npz")
    loaded = Detector.load(tmp_path / "ae.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    assert all(isinstance(v, np.ndarray) for v in detector.state_dict().values())
    before = detector.score_samples(X)
    detector.partial_fit(X)
    assert not np.array_equal(before, detector.score_samples(X))


def test_lstm_flags_a_value_wrong_for_its_time():
    t = np.arange(800)
    X = np.column_stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 24)])
    detector = LSTMForecaster(lookback=24, hidden=16, epochs=8, random_state=0).fit(X)
    future_t = np.arange(800, 848)
    future = np.column_stack([np.sin(2 * np.pi * future_t / 24), np.cos(2 * np.pi * future_t / 24)])
    future[20, 0] = -future[20, 0]
    scores = detector.score_samples(future)
    assert scores.argmax() == 20
    assert detector.explain(future[:21])[-1].argmax() == 0


def test_lstm_save_load_partial_fit_and_determinism(tmp_path):
    X = np.sin(np.arange(300) / 5.0)[:, None]
    detector = LSTMForecaster(lookback=8, hidden=8, epochs=2, random_state=1).fit(X)
    again = LSTMForecaster(lookback=8, hidden=8, epochs=2, random_state=1).fit(X)
    np.testing.assert_array_equal(again.score_samples(X[:50]), detector.score_samples(X[:50]))
    detector.save(tmp_path / "lstm.npz")
    loaded = Detector.load(tmp_path / "lstm.npz")
    np.testing.assert_array_equal(loaded.score_samples(X[:50]), detector.score_samples(X[:50]))
    detector.partial_fit(X[:40])
    np.testing.assert_allclose(detector.context_, detector._scaled(X[32:40]).numpy())


def test_not_fitted():
    with pytest.raises(NotFittedError):
        Autoencoder().score_samples(np.zeros((1, 2)))
    with pytest.raises(NotFittedError):
        LSTMForecaster().score_samples(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="lookback"):
        LSTMForecaster(lookback=10).fit(np.zeros((5, 1)))
