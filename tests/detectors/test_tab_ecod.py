"""ECOD: tail surprise per column, planted outliers, persistence."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.ecod import ECOD


def test_registered():
    assert DETECTORS["ecod"] is ECOD


def test_planted_outlier_ranks_first_and_is_explained_by_its_column():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 5))
    X[321, [2, 4]] = [7.0, -6.0]  # far out in two tails
    detector = ECOD().fit(X)
    scores = detector.score_samples(X)
    assert scores.argmax() == 321
    explanation = detector.explain(X[[321]])
    assert set(np.argsort(explanation[0])[-2:]) == {2, 4}
    assert explanation.sum() == pytest.approx(scores[321])


def test_tail_probabilities_follow_the_skew():
    # A right-skewed column: only its right tail is surprising.
    X = np.arange(1.0, 101.0)[:, None] ** 2
    detector = ECOD().fit(X)
    assert detector.skew_sign_[0] == 1
    low, high = detector.score_samples([[1.0], [10_000.0]])
    assert high == pytest.approx(-np.log(1 / 100))
    assert high > low
    # Beyond the training range: tail probability 0.5 / n.
    assert detector.score_samples([[1e9]])[0] == pytest.approx(-np.log(0.5 / 100))


def test_missing_values_add_nothing():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 2))
    detector = ECOD().fit(X)
    row = np.array([[np.nan, 3.0]])
    assert detector.score_samples(row)[0] == pytest.approx(detector.explain(row)[0, 1])
    assert detector.explain(row)[0, 0] == 0.0


def test_save_load_gives_identical_scores(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.lognormal(size=(800, 4))
    detector = ECOD(max_samples=500, random_state=3).fit(X)
    detector.save(tmp_path / "ecod.npz")
    loaded = Detector.load(tmp_path / "ecod.npz")
    assert isinstance(loaded, ECOD)
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))


def test_not_fitted_and_bad_input():
    with pytest.raises(NotFittedError):
        ECOD().score_samples(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="max_samples"):
        ECOD(max_samples=0).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="features"):
        ECOD().fit(np.zeros((3, 2))).score_samples(np.zeros((1, 3)))
