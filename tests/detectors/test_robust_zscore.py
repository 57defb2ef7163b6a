"""RobustZScore: robust scale fallbacks, planted outliers, persistence."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError, RobustZScore


def test_registered():
    assert DETECTORS["robust_zscore"] is RobustZScore


def test_scale_is_normal_std_and_falls_back_where_mad_is_zero():
    rng = np.random.default_rng(0)
    mostly_zero = np.where(rng.uniform(size=20_000) < 0.8, 0.0, rng.exponential(size=20_000))
    X = np.column_stack([rng.normal(3.0, 2.0, 20_000), mostly_zero, np.full(20_000, 7.0)])
    detector = RobustZScore(min_scale=1e-6).fit(X)
    assert detector.median_ == pytest.approx([3.0, 0.0, 7.0], abs=0.05)
    assert detector.scale_[0] == pytest.approx(2.0, rel=0.03)
    # MAD is 0 for the mostly-zero column: 1.2533 x mean absolute deviation from the median
    assert detector.scale_[1] == pytest.approx(1.2533 * np.abs(mostly_zero).mean())
    assert detector.scale_[2] == 1e-6  # constant column: min_scale


def test_planted_outlier_ranks_first_and_is_explained_by_its_column():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2_000, 5))
    X[1234, 3] = 9.0
    detector = RobustZScore().fit(X)
    scores = detector.score_samples(X)
    assert scores.argmax() == 1234
    assert detector.explain(X[[1234]]).argmax() == 3
    assert scores[1234] == pytest.approx(detector.explain(X[[1234]]).max())


def test_score_is_max_abs_z_and_skips_missing_columns():
    detector = RobustZScore()
    detector.load_state_dict({"median": np.array([0.0, 10.0]), "scale": np.array([1.0, 2.0])})
    X = np.array([[1.0, 10.0], [-3.0, 14.0], [np.nan, 16.0], [np.nan, np.nan]])
    np.testing.assert_allclose(detector.score_samples(X)[:3], [1.0, 3.0, 3.0])
    assert np.isnan(detector.score_samples(X)[3])
    np.testing.assert_allclose(detector.explain(X), [[1, 0], [3, 2], [0, 3], [0, 0]])


def test_not_fitted_raises():
    with pytest.raises(NotFittedError):
        RobustZScore().score_samples(np.zeros((1, 2)))
    assert not RobustZScore().is_fitted


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="min_scale"):
        RobustZScore(min_scale=0).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="2-D"):
        RobustZScore().fit(np.zeros(3))
    detector = RobustZScore().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="features"):
        detector.score_samples(np.zeros((1, 3)))


def test_save_load_gives_identical_scores(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_t(3, size=(500, 4))
    detector = RobustZScore(min_scale=1e-4).fit(X)
    path = tmp_path / "zscore.npz"
    detector.save(path)
    for loaded in (Detector.load(path), RobustZScore.load(path)):
        assert isinstance(loaded, RobustZScore) and loaded.min_scale == 1e-4
        np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
