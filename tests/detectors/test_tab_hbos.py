"""HBOS: sparse bins of per-column histograms, planted outliers, persistence."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.hbos import HBOS


def test_registered():
    assert DETECTORS["hbos"] is HBOS


def test_planted_outlier_ranks_first_and_is_explained_by_its_columns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 5))
    X[321] = [7.0, -6.0, 6.5, 7.5, -7.0]  # alone in the edge bin of every column
    X[654, [1, 3]] = [30.0, -30.0]  # beyond the range of a fit without it: the sparsest bin, no more
    detector = HBOS().fit(np.delete(X, 654, axis=0))
    scores = detector.score_samples(X)
    assert scores.argmax() == 321
    assert scores[654] > np.quantile(scores, 0.9)
    explanation = detector.explain(X[[654]])
    assert set(np.argsort(explanation[0])[-2:]) == {1, 3}
    assert explanation.sum() == pytest.approx(scores[654])


def test_surprise_is_the_log_density_ratio_to_the_densest_bin():
    # 10 bins over [0, 10): counts 5, 1, 0, ... with width 1 -> densities 5/n, 1/n, 0
    X = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 1.5, 9.9] + [9.5] * 3)[:, None]
    detector = HBOS(alpha=0.1).fit(X)
    n, width = 10, 0.98
    density = lambda count: count / (n * width)
    top = np.log(density(5) + 0.1)
    got = detector.score_samples([[0.3], [1.5], [5.0], [9.9]])
    np.testing.assert_allclose(got, [0.0, top - np.log(density(1) + 0.1), top - np.log(0.1), top - np.log(density(4) + 0.1)])
    # within tol bin widths of the range: the edge bin; farther out: the sparsest bin
    near, far = detector.score_samples([[0.1 - 0.4 * width], [0.1 - 0.6 * width]])
    assert near == pytest.approx(0.0) and far == pytest.approx(top - np.log(0.1))


def test_the_gap_between_two_modes_is_seen():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-3, 0.5, 1_000), rng.normal(3, 0.5, 1_000)])[:, None]
    detector = HBOS().fit(X)
    gap, mode = detector.score_samples([[0.0], [3.0]])
    assert gap > mode + 1  # with alpha = 0.1 an empty bin is ~1.5 nats from the densest


def test_missing_values_and_constant_columns_add_nothing():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=500), np.full(500, 4.0)])
    detector = HBOS().fit(X)
    assert np.all(detector.explain(X)[:, 1] == 0.0)
    assert detector.score_samples([[np.nan, 4.0]])[0] == 0.0
    X[::7, 0] = np.nan
    assert np.isfinite(HBOS().fit(X).score_samples(X)).all()


def test_save_load_gives_identical_scores(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.lognormal(size=(800, 4))
    detector = HBOS(n_bins=20, max_samples=500, random_state=0).fit(X)
    detector.save(tmp_path / "hbos.npz")
    loaded = Detector.load(tmp_path / "hbos.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.explain(X[:5]), detector.explain(X[:5]))


def test_not_fitted_bad_params_and_wrong_width():
    with pytest.raises(NotFittedError):
        HBOS().score_samples(np.zeros((1, 2)))
    for params, message in (({"n_bins": 0}, "n_bins"), ({"alpha": 0.0}, "alpha"), ({"tol": -1.0}, "tol"), ({"max_samples": 0}, "max_samples")):
        with pytest.raises(ValueError, match=message):
            HBOS(**params).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="features"):
        HBOS().fit(np.zeros((3, 2))).score_samples(np.zeros((1, 3)))
