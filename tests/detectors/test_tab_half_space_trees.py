"""HalfSpaceTrees: windows of mass, online == batch, planted outliers, persistence, throughput."""

import time

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.half_space_trees import HalfSpaceTrees


def _data(rows=3_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    X[:2] = [[-6.0, -6.0, -6.0], [6.0, 6.0, 6.0]]  # widen the limits beyond the bulk
    return X


def test_registered():
    assert DETECTORS["half_space_trees"] is HalfSpaceTrees


def test_planted_outlier_ranks_first():
    X = _data()
    X[1500] = [4.5, -4.5, 4.5]
    detector = HalfSpaceTrees(n_trees=25, height=8, window_size=250, random_state=0).fit(X)
    scores = detector.score_samples(X[2:])
    assert scores.argmax() + 2 == 1500
    assert 0.0 <= scores.min() and scores.max() <= 1.0


def test_online_and_batch_paths_agree():
    X = _data(seed=1)
    whole = HalfSpaceTrees(random_state=3).fit(X[:1000])
    whole.partial_fit(X[1000:])
    chunked = HalfSpaceTrees(random_state=3).fit(X[:1000])
    for start in range(1000, len(X), 137):
        chunked.partial_fit(X[start : start + 137])
    for name in ("l_mass_", "r_mass_", "split_feature_", "split_value_"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    assert whole.window_position_ == chunked.window_position_ == (len(X) % 250)
    np.testing.assert_array_equal(whole.score_samples(X), chunked.score_samples(X))


def test_scores_zero_until_the_first_window_completes_and_masses_swap():
    X = _data(seed=2)
    detector = HalfSpaceTrees(window_size=250, random_state=0).fit(X[:249])
    assert not detector.score_samples(X[:10]).any()
    detector.partial_fit(X[249:250])
    assert detector.window_position_ == 0
    assert detector.l_mass_[:, 0].tolist() == [250] * detector.n_trees  # every row passes each root
    assert not detector.r_mass_.any()
    assert detector.score_samples(X[:10]).any()


def test_explain_points_at_the_odd_feature():
    rng = np.random.default_rng(4)
    X = rng.uniform(0.4, 0.6, size=(3_000, 3))
    X[0], X[1] = 0.0, 1.0
    detector = HalfSpaceTrees(n_trees=30, random_state=0).fit(X)
    explanation = detector.explain([[0.5, 0.98, 0.5]])
    assert explanation.argmax() == 1
    assert explanation.sum() == pytest.approx(1.0)


def test_save_load_gives_identical_scores_and_learning(tmp_path):
    X = _data(seed=5)
    detector = HalfSpaceTrees(random_state=1).fit(X[:2_100])
    detector.save(tmp_path / "hst.npz")
    loaded = Detector.load(tmp_path / "hst.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    loaded.partial_fit(X[2_100:])
    detector.partial_fit(X[2_100:])
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))


def test_not_fitted_and_bad_params():
    with pytest.raises(NotFittedError):
        HalfSpaceTrees().score_samples(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="height"):
        HalfSpaceTrees(height=0).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="padding"):
        HalfSpaceTrees(padding=0.5).fit(np.zeros((3, 1)))


def test_scores_and_learns_over_100k_events_per_second():
    X = np.random.default_rng(6).normal(size=(200_000, 8))
    detector = HalfSpaceTrees(random_state=0).fit(X[:5_000])
    detector.score_samples(X[:5_000])  # compiled
    best = np.inf
    for _ in range(3):  # best of three: the machine is shared
        started = time.perf_counter()
        for start in range(0, len(X), 5_000):
            detector.score_samples(X[start : start + 5_000])
            detector.partial_fit(X[start : start + 5_000])
        best = min(best, time.perf_counter() - started)
    assert len(X) / best > 100_000
